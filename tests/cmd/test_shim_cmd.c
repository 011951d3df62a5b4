/* SPDX-License-Identifier: MIT */
/* The ferry-shim binary: serve, the containerd shim v2 start and delete conventions, signals
 * and usage errors. argv[1] is the binary. */
#include "../service/client.h"
#include "shim_main.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct proc {
        pid_t pid;
        int out; /* read end of its stdout */
};

/* When set, the next spawned shims write their stderr here (truncated). */
static const char *spawn_stderr;

static struct proc spawn(const char *const *args)
{
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(p[1], 1);
                int devnull = open("/dev/null", O_RDONLY);
                dup2(devnull, 0);
                if (spawn_stderr) {
                        int err = open(spawn_stderr, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                        dup2(err, 2);
                }
                execv(shim_bin, (char *const *)args);
                _exit(127);
        }
        close(p[1]);
        return (struct proc){pid, p[0]};
}

/* Reads until EOF or timeout; returns the byte count. */
static size_t read_all(int fd, char *buf, size_t size, int timeout_ms)
{
        size_t n = 0;
        uint64_t deadline = ferry_now_us() + (uint64_t)timeout_ms * 1000;
        while (n < size && ferry_now_us() < deadline) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                ssize_t r = read(fd, buf + n, size - n);
                if (r <= 0)
                        break;
                n += (size_t)r;
        }
        return n;
}

/* Reads one line (without its newline). */
static void read_line(int fd, char *buf, size_t size)
{
        size_t n = 0;
        uint64_t deadline = ferry_now_us() + 5000000;
        while (n + 1 < size && ferry_now_us() < deadline) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                if (read(fd, buf + n, 1) != 1)
                        break;
                if (buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = '\0';
}

/* Waits for pid's exit; returns its exit status, or -1 on timeout. */
static int wait_exit(pid_t pid, int timeout_ms)
{
        uint64_t deadline = ferry_now_us() + (uint64_t)timeout_ms * 1000;
        while (ferry_now_us() < deadline) {
                int st;
                pid_t r = waitpid(pid, &st, WNOHANG);
                if (r == pid)
                        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                usleep(5000);
        }
        return -1;
}

static bool gone_within(const char *path, int timeout_ms)
{
        uint64_t deadline = ferry_now_us() + (uint64_t)timeout_ms * 1000;
        while (ferry_now_us() < deadline) {
                if (access(path, F_OK) < 0)
                        return true;
                usleep(5000);
        }
        return false;
}

/* A client of a serving shim, on a loop of its own. */
struct client {
        uv_loop_t loop;
        struct ttrpc_client *c;
};

static void client_open(struct client *x, const char *sock)
{
        uv_loop_init(&x->loop);
        x->c = NULL;
        assert_int_equal(ttrpc_client_connect(&x->loop, sock, NULL, &x->c), 0);
}

static void client_close(struct client *x)
{
        ttrpc_client_close(x->c);
        uv_run(&x->loop, UV_RUN_DEFAULT);
        uv_loop_close(&x->loop);
}

/* Spawns a shim (args) that serves at sock: it prints the address once it listens. */
static struct proc spawn_serving(const char *const *args, const char *sock)
{
        char line[256];
        struct proc p = spawn(args);
        read_line(p.out, line, sizeof(line));
        assert_non_null(strstr(line, sock));
        return p;
}

/* SIGTERM ends p cleanly (exit 0 within 5 s), and removes its socket sock (when not NULL). */
static void end_with_sigterm(struct proc *p, const char *sock)
{
        assert_int_equal(kill(p->pid, SIGTERM), 0);
        assert_int_equal(wait_exit(p->pid, 5000), 0);
        if (sock)
                assert_int_equal(access(sock, F_OK), -1);
        close(p->out);
}

static char dir[64];

static int setup(void **state)
{
        ferry_strscpy(dir, "/tmp/ferry-cmd-XXXXXX", sizeof(dir));
        assert_non_null(mkdtemp(dir));
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];
        ferry_bprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

/* serve: prints its address once listening; a client runs a task; a second serve on the
 * same path refuses it; Shutdown(now) ends the shim and removes the socket. */
static void test_serve(void **state)
{
        char sock[128], line[256], want[160], trace[128];
        ferry_bprintf(sock, sizeof(sock), "%s/s.sock", dir);
        ferry_bprintf(trace, sizeof(trace), "%s/s.trace", dir);
        const char *args[] = {shim_bin, "serve",   "--address", sock, "--memory-mb",
                              "8",      "--trace", trace,       NULL};
        struct proc p = spawn(args);
        read_line(p.out, line, sizeof(line));
        ferry_bprintf(want, sizeof(want), "unix://%s", sock);
        assert_string_equal(line, want);
        struct stat st;
        assert_int_equal(stat(sock, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        struct proc dup = spawn(args);
        assert_int_equal(wait_exit(dup.pid, 5000), 1);
        close(dup.out);
        assert_int_equal(access(sock, F_OK), 0); /* the loser left the winner's socket */

        struct client cl;
        client_open(&cl, sock);
        uint32_t pid = 0;
        Containerd__Task__V2__Status status;
        assert_int_equal(task_create(&cl.loop, cl.c, "app", NULL), FERRY_CODE_OK);
        assert_int_equal(task_start(&cl.loop, cl.c, "app", &pid), FERRY_CODE_OK);
        assert_true(pid > 0);
        assert_int_equal(task_state(&cl.loop, cl.c, "app", &status, NULL), FERRY_CODE_OK);
        assert_int_equal(status, CONTAINERD__TASK__V2__STATUS__RUNNING);

        /* --trace: the VM controller's transitions, one "fsm1" line each (src/fsm/trace.h) */
        FILE *tf = fopen(trace, "r");
        assert_non_null(tf);
        char tl[1024];
        bool vm_running = false;
        while (fgets(tl, sizeof(tl), tf)) {
                assert_memory_equal(tl, "fsm1 ", 5);
                vm_running |= strstr(tl, "fsm1 vm ") && strstr(tl, " running ok ");
        }
        fclose(tf);
        assert_true(vm_running);

        Containerd__Task__V2__ConnectRequest cr = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
        Containerd__Task__V2__ConnectResponse *conn = NULL;
        cr.id = "app";
        assert_int_equal(
            TASK_CALL(&cl.loop, cl.c, "Connect", cr, containerd__task__v2__connect_response, &conn),
            FERRY_CODE_OK);
        assert_int_equal(conn->shim_pid, (uint32_t)p.pid);
        protobuf_c_message_free_unpacked(&conn->base, NULL);

        Containerd__Task__V2__ShutdownRequest sr = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
        sr.now = true;
        assert_int_equal(
            TASK_CALL(&cl.loop, cl.c, "Shutdown", sr, containerd__task__v2__empty, NULL),
            FERRY_CODE_OK);
        assert_int_equal(wait_exit(p.pid, 5000), 0);
        assert_int_equal(access(sock, F_OK), -1);
        client_close(&cl);
        close(p.out);
}

/* start: daemonises (its stdout reaches EOF while the daemon runs), prints unix://PATH, the
 * socket is 0600 in a 0700 directory; a second start finds the live shim and prints the same
 * address; the daemon serves and leaves on Shutdown. */
static void test_start(void **state)
{
        char sdir[128];
        ferry_bprintf(sdir, sizeof(sdir), "%s/s", dir);
        const char *args[] = {shim_bin,
                              "-namespace",
                              "ns1",
                              "-address",
                              "/run/containerd/containerd.sock",
                              "-publish-binary",
                              "/usr/bin/containerd",
                              "-id",
                              "task-1",
                              "--memory-mb",
                              "8",
                              "--socket-dir",
                              sdir,
                              "start",
                              NULL};
        struct proc p = spawn(args);
        char out[512] = "";
        size_t n = read_all(p.out, out, sizeof(out) - 1, 5000);
        out[n] = '\0';
        assert_int_equal(wait_exit(p.pid, 5000), 0);
        close(p.out);
        assert_true(n > 8);
        assert_memory_equal(out, "unix://", 7);
        assert_int_equal(out[n - 1], '\n');
        out[n - 1] = '\0';
        const char *path = out + 7;

        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(sdir, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);

        struct proc again = spawn(args);
        char out2[512] = "";
        n = read_all(again.out, out2, sizeof(out2) - 1, 5000);
        out2[n] = '\0';
        assert_int_equal(wait_exit(again.pid, 5000), 0);
        close(again.out);
        assert_memory_equal(out2, out, strlen(out));

        struct client cl;
        client_open(&cl, path);
        assert_int_equal(task_create(&cl.loop, cl.c, "task-1", NULL), FERRY_CODE_OK);
        assert_int_equal(task_delete(&cl.loop, cl.c, "task-1", NULL), FERRY_CODE_OK);
        Containerd__Task__V2__ShutdownRequest sr = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
        assert_int_equal(
            TASK_CALL(&cl.loop, cl.c, "Shutdown", sr, containerd__task__v2__empty, NULL),
            FERRY_CODE_OK);
        assert_true(gone_within(path, 5000)); /* the daemon removed its socket on the way out */
        client_close(&cl);
}

/* delete: a protobuf DeleteResponse on stdout, decodable by the task.proto descriptor. */
static void test_delete(void **state)
{
        const char *args[] = {shim_bin, "-namespace",   "ns1", "-id",    "task-1", "-bundle",
                              dir,      "--socket-dir", dir,   "delete", NULL};
        struct proc p = spawn(args);
        uint8_t out[256];
        size_t n = read_all(p.out, (char *)out, sizeof(out), 5000);
        assert_int_equal(wait_exit(p.pid, 5000), 0);
        close(p.out);
        assert_true(n > 0);
        Containerd__Task__V2__DeleteResponse *resp =
            containerd__task__v2__delete_response__unpack(NULL, n, out);
        assert_non_null(resp);
        assert_int_equal(resp->exit_status, 128 + SIGKILL);
        assert_non_null(resp->exited_at);
        assert_true(resp->exited_at->seconds > 1600000000);
        containerd__task__v2__delete_response__free_unpacked(resp, NULL);
}

/* SIGTERM ends a serving shim cleanly and removes its socket. */
static void test_sigterm(void **state)
{
        char sock[128];
        ferry_bprintf(sock, sizeof(sock), "%s/t.sock", dir);
        const char *args[] = {shim_bin, "--memory-mb", "8", "serve", "--address", sock, NULL};
        struct proc p = spawn_serving(args, sock);
        end_with_sigterm(&p, sock);
}

/* --fault arms a host-compute fault point in the shim: the guest refuses the first container
 * create (the client sees the error, the task is not kept), the retry succeeds. An unknown
 * point is a usage error. At exit the shim logs each armed point, fired or not (a transfer
 * point armed by bytes never ran here). */
static void test_fault(void **state)
{
        char sock[128];
        ferry_bprintf(sock, sizeof(sock), "%s/f.sock", dir);
        const char *bad[] = {shim_bin, "--fault", "no.such.point", "serve", "--address",
                             sock,     NULL};
        struct proc p = spawn(bad);
        assert_int_equal(wait_exit(p.pid, 5000), 2);
        close(p.out);
        const char *bad_bytes[] = {shim_bin, "--fault", "transfer.pass:@x", "serve", "--address",
                                   sock,     NULL};
        p = spawn(bad_bytes);
        assert_int_equal(wait_exit(p.pid, 5000), 2);
        close(p.out);
        const char *args[] = {shim_bin,
                              "--fault",
                              "guest.create_container:1",
                              "--fault",
                              "transfer.source_drop_after_bytes:@4096",
                              "--memory-mb",
                              "8",
                              "serve",
                              "--address",
                              sock,
                              NULL};
        char errlog[128];
        ferry_bprintf(errlog, sizeof(errlog), "%s/f.stderr", dir);
        spawn_stderr = errlog;
        p = spawn_serving(args, sock);
        spawn_stderr = NULL;
        struct client cl;
        client_open(&cl, sock);
        enum ferry_code code = task_create(&cl.loop, cl.c, "app", NULL);
        assert_int_not_equal(code, FERRY_CODE_OK);
        assert_int_equal(task_state(&cl.loop, cl.c, "app", NULL, NULL), FERRY_CODE_NOT_FOUND);
        assert_int_equal(task_create(&cl.loop, cl.c, "app", NULL), FERRY_CODE_OK);
        client_close(&cl);
        end_with_sigterm(&p, NULL);
        char text[4096] = "";
        int fd = open(errlog, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(read_all(fd, text, sizeof(text) - 1, 1000) > 0);
        close(fd);
        assert_non_null(strstr(text, "ferry-shim: fault guest.create_container nth=1 calls=2 "
                                     "fired=yes\n"));
        assert_non_null(strstr(text, "ferry-shim: fault transfer.source_drop_after_bytes nth=1 "
                                     "calls=0 fired=no\n"));
}

/* Regression: a VM whose boot failed past the point of no return (the guest connection
 * refused: the VM controller is invalid with its system still up) once kept a closing shim
 * retrying forever, so SIGTERM never ended it. */
static void test_failed_boot_then_sigterm(void **state)
{
        char sock[128];
        ferry_bprintf(sock, sizeof(sock), "%s/b.sock", dir);
        const char *args[] = {shim_bin,      "--fault", "guest.connect",
                              "--memory-mb", "8",       "serve",
                              "--address",   sock,      NULL};
        struct proc p = spawn_serving(args, sock);
        struct client cl;
        client_open(&cl, sock);
        assert_int_not_equal(task_create(&cl.loop, cl.c, "app", NULL), FERRY_CODE_OK);
        client_close(&cl);
        end_with_sigterm(&p, sock);
}

/* Usage errors exit 2 without serving anything. */
static void test_usage(void **state)
{
        const char *none[] = {shim_bin, NULL};
        const char *no_addr[] = {shim_bin, "serve", NULL};
        const char *relative[] = {shim_bin, "serve", "--address", "rel.sock", NULL};
        const char *bad_flag[] = {shim_bin, "--nope", "x", "serve", NULL};
        const char *bad_id[] = {shim_bin, "-id", "../x", "start", NULL};
        const char *unknown[] = {shim_bin, "frobnicate", NULL};
        const char *const *cases[] = {none, no_addr, relative, bad_flag, bad_id, unknown};
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct proc p = spawn(cases[i]);
                assert_int_equal(wait_exit(p.pid, 5000), 2);
                close(p.out);
        }
        const char *version[] = {shim_bin, "-v", NULL};
        struct proc p = spawn(version);
        char out[64] = "";
        read_all(p.out, out, sizeof(out) - 1, 2000);
        assert_int_equal(wait_exit(p.pid, 5000), 0);
        close(p.out);
        assert_non_null(strstr(out, "ferry-shim"));
        const char *help[] = {shim_bin, "--help", NULL};
        p = spawn(help);
        char text[4096] = "";
        read_all(p.out, text, sizeof(text) - 1, 2000);
        assert_int_equal(wait_exit(p.pid, 5000), 0);
        close(p.out);
        assert_non_null(strstr(text, "--fault"));
        assert_non_null(strstr(text, "--dirty-pages-rate"));
}

int main(int argc, char **argv)
{
        if (!shim_args(argc, argv))
                return 2;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_serve, setup, teardown),
            cmocka_unit_test_setup_teardown(test_start, setup, teardown),
            cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sigterm, setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault, setup, teardown),
            cmocka_unit_test_setup_teardown(test_failed_boot_then_sigterm, setup, teardown),
            cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
