/* SPDX-License-Identifier: MIT */
/* ferry-shim: the containerd shim v2 command (docs/shim.md).
 *
 *   ferry-shim [flags] start    bind the socket, daemonise a server, print its address
 *   ferry-shim [flags] delete   clean up after a lost shim; a DeleteResponse on stdout
 *   ferry-shim [flags] serve    serve in the foreground (tests, demos): --address PATH
 *
 * Flags take one or two dashes and "-flag value" or "-flag=value", as Go's flag package
 * (containerd passes -namespace, -address, -publish-binary, -id, -bundle, -debug). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hcs/fault.h"
#include "hcs/hash.h"
#include "rpc/ident.h"
#include "service/events.h"
#include "service/shim.h"
#include "task.pb-c.h"
#include "util/util.h"

#define DEFAULT_SOCKET_DIR "/run/containerd/s"

struct args {
        const char *action;
        const char *ns, *address, *publish_binary, *id, *bundle;
        const char *backend, *backend_opts, *trace, *event_log, *socket_dir;
        /* containerd's ttrpc socket for events; default $TTRPC_ADDRESS */
        const char *events_address;
        const char *serve_address; /* serve: the socket path */
        int listen_fd;             /* serve: an inherited listening socket (start's child) */
        unsigned memory_mb;
        uint64_t dirty_rate;
        const char *faults[8]; /* --fault NAME[:NTH] */
        size_t n_faults;
        bool debug, version;
};

static _noreturn_ void usage(int code)
{
        fprintf(code ? stderr : stdout,
                "usage: ferry-shim [flags] start|delete|serve\n"
                "  -namespace NS -address ADDR -publish-binary BIN -id ID -bundle DIR -debug\n"
                "                       containerd's flags (start, delete)\n"
                "  --address PATH       serve: the ttrpc socket to create (mode 0600)\n"
                "  --backend NAME       hcs backend (default sim)\n"
                "  --backend-opts JSON  backend options (default {})\n"
                "  --memory-mb N        VM memory (default 256)\n"
                "  --dirty-pages-rate N sim guest workload: pages dirtied per second (default 0)\n"
                "  --fault NAME[:NTH]   arm hcs fault point NAME (src/hcs/fault.h) to fail its\n"
                "                       NTH call (default 1) with EIO; repeatable\n"
                "  --fault NAME:@BYTES  a transfer stream point: drop the socket after BYTES\n"
                "  --event-log FILE     append task events, one JSON per line\n"
                "  --events-address PATH\n"
                "                       forward task events to containerd's ttrpc socket PATH,\n"
                "                       namespace -namespace (default \"default\"); default\n"
                "                       $TTRPC_ADDRESS, as containerd sets it; none: not sent\n"
                "  --trace FILE         append the FSM transition trace (src/fsm/trace.h)\n"
                "  --socket-dir DIR     start: where sockets go (default %s)\n"
                "  -v, --version        print the version\n",
                DEFAULT_SOCKET_DIR);
        exit(code);
}

static int parse_uint(const char *s, unsigned max, unsigned *ret)
{
        char *end = NULL;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || !end || *end || end == s || v > max)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

static void parse_args(int argc, char **argv, struct args *a)
{
        static const struct {
                const char *name;
                size_t off;
        } str_flags[] = {
#define F(n, m) {n, offsetof(struct args, m)}
            F("namespace", ns),
            F("publish-binary", publish_binary),
            F("id", id),
            F("bundle", bundle),
            F("backend", backend),
            F("backend-opts", backend_opts),
            F("trace", trace),
            F("event-log", event_log),
            F("events-address", events_address),
            F("socket-dir", socket_dir),
#undef F
        };
        a->listen_fd = -1;
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i];
                if (arg[0] != '-') {
                        if (a->action)
                                usage(2);
                        a->action = arg;
                        continue;
                }
                arg += arg[1] == '-' ? 2 : 1;
                char name[64];
                const char *eq = strchr(arg, '=');
                size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
                if (n >= sizeof(name))
                        usage(2);
                memcpy(name, arg, n);
                name[n] = '\0';
                if (!strcmp(name, "debug")) {
                        a->debug = true;
                        continue;
                }
                if (!strcmp(name, "v") || !strcmp(name, "version")) {
                        a->version = true;
                        continue;
                }
                if (!strcmp(name, "h") || !strcmp(name, "help"))
                        usage(0);
                const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (!val)
                        usage(2);
                bool known = false;
                for (size_t k = 0; k < ARRAY_SIZE(str_flags) && !known; k++) {
                        if (!strcmp(name, str_flags[k].name)) {
                                *(const char **)((char *)a + str_flags[k].off) = val;
                                known = true;
                        }
                }
                if (known)
                        continue;
                unsigned u;
                if (!strcmp(name, "address")) {
                        /* containerd's -address is its own socket; serve's is ours */
                        a->address = val;
                } else if (!strcmp(name, "memory-mb") && parse_uint(val, 1u << 20, &u) == 0) {
                        a->memory_mb = u;
                } else if (!strcmp(name, "listen-fd") && parse_uint(val, 1024, &u) == 0) {
                        a->listen_fd = (int)u;
                } else if (!strcmp(name, "dirty-pages-rate") &&
                           parse_uint(val, 1u << 30, &u) == 0) {
                        a->dirty_rate = u;
                } else if (!strcmp(name, "fault") && a->n_faults < ARRAY_SIZE(a->faults)) {
                        a->faults[a->n_faults++] = val;
                } else {
                        fprintf(stderr, "ferry-shim: unknown or bad flag -%s\n", name);
                        usage(2);
                }
        }
}

/* -- serve -- */

/* One --fault as armed: its point and the call it fires on. */
struct armed_fault {
        char name[128];
        unsigned nth;
};

/* Arms "NAME[:NTH]" to fail its NTH call (default the next) with -EIO, or "NAME:@BYTES" to
 * shut a transfer stream point's socket down once BYTES have crossed it (its next transfer). */
static int arm_fault(const char *arg, struct armed_fault *ret)
{
        const char *colon = strchr(arg, ':');
        size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
        struct hcs_fault_spec spec = {.nth = 1, .error = -EIO};
        unsigned v = 1;
        if (n == 0 || n >= sizeof(ret->name))
                return -EINVAL;
        if (colon && colon[1] == '@') {
                if (parse_uint(colon + 2, UINT32_MAX, &v) < 0 || v == 0)
                        return -EINVAL;
                spec = (struct hcs_fault_spec){.nth = 1, .drop_after_bytes = v};
        } else if (colon) {
                if (parse_uint(colon + 1, 1u << 20, &v) < 0)
                        return -EINVAL;
                spec.nth = v;
        }
        memcpy(ret->name, arg, n);
        ret->name[n] = '\0';
        ret->nth = spec.nth;
        return hcs_fault_arm(ret->name, &spec);
}

/* One line per armed point on stderr at exit, for the fault sweep to assert the point was
 * reached: "ferry-shim: fault NAME nth=N calls=C fired=yes|no". A point fires on its NTH
 * check (nth 0: on every check, so from the first). */
static void log_faults(const struct armed_fault *f, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                uint64_t calls = hcs_fault_calls(f[i].name);
                fprintf(stderr, "ferry-shim: fault %s nth=%u calls=%" PRIu64 " fired=%s\n",
                        f[i].name, f[i].nth, calls,
                        calls >= (f[i].nth ? f[i].nth : 1) ? "yes" : "no");
        }
}

/* The forwarder's figures at exit, so a lost or refused event is visible in the shim's log. */
static void log_forward(const struct shim *s)
{
        struct shim_forward_stats st;
        if (!s || !shim_get_forward_stats(s, &st))
                return;
        fprintf(stderr,
                "ferry-shim: events forwarded=%" PRIu64 " dropped=%" PRIu64 " rejected=%" PRIu64
                " abandoned=%" PRIu64 " bad=%" PRIu64 " skipped=%" PRIu64 " retries=%" PRIu64
                " connects=%" PRIu64 " connect_failures=%" PRIu64 "\n",
                st.forwarded, st.dropped, st.rejected, st.abandoned, st.bad, st.skipped, st.retries,
                st.connects, st.connect_failures);
}

static void on_exit_stop(void *userdata)
{
        uv_stop(userdata);
}

static int serve(const struct args *a)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct shim_options opts = {
            .backend = a->backend,
            .backend_opts = a->backend_opts,
            .event_log = a->event_log,
            .trace_path = a->trace,
            .handle_signals = true,
            .sandbox = {.memory_mb = a->memory_mb, .dirty_pages_rate = a->dirty_rate},
            .forward = {.address = a->events_address, .ns = a->ns},
            .on_exit = on_exit_stop,
            .on_exit_userdata = &loop,
        };
        struct armed_fault armed[ARRAY_SIZE(a->faults)];
        for (size_t i = 0; i < a->n_faults; i++) {
                int fr = arm_fault(a->faults[i], &armed[i]);
                if (fr < 0) {
                        fprintf(stderr, "ferry-shim: --fault %s: %s\n", a->faults[i],
                                strerror(-fr));
                        return 2;
                }
        }
        struct shim *s = NULL;
        int r = shim_new(&loop, &opts, &s);
        if (r == 0)
                r = a->listen_fd >= 0 ? shim_listen_fd(s, a->listen_fd)
                                      : shim_listen(s, a->address);
        bool own_path = r == 0 || a->listen_fd >= 0; /* never remove another server's socket */
        if (r == 0 && a->address) {
                /* without it CreateDuplicateSocket still takes pid/fd references */
                int hr = shim_listen_handoff(s, a->address);
                if (hr < 0)
                        fprintf(stderr, "ferry-shim: handoff socket %s.handoff: %s\n", a->address,
                                strerror(-hr));
        }
        if (r < 0) {
                fprintf(stderr, "ferry-shim: serve %s: %s\n", a->address ? a->address : "fd",
                        strerror(-r));
                shim_shutdown(s);
        } else if (a->listen_fd < 0) {
                /* tells a test or demo the socket is accepting */
                printf("unix://%s\n", a->address);
                fflush(stdout);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        log_forward(s);
        /* The loop is not run again once the shim is freed: a late completion (a host call or
         * a timer of a session step) would reach freed objects. The process ends here. */
        shim_free(s);
        /* frees libuv's loop internals; a loop that still held a handle (EBUSY) is left to
         * the process exit rather than run again */
        (void)uv_loop_close(&loop);
        log_faults(armed, a->n_faults);
        if (a->address && own_path)
                unlink(a->address);
        return r < 0 ? 1 : 0;
}

/* -- start -- */

/* <dir>/<hash of containerd's address, namespace and id>: stable per shim, short enough for
 * sun_path. Non-cryptographic (hcs_hash64 twice): it only needs to avoid collisions. */
static int socket_path(const struct args *a, char *buf, size_t size)
{
        char key[4096];
        if (ferry_bprintf(key, sizeof(key), "%s/%s/%s", a->address ? a->address : "",
                          a->ns ? a->ns : "", a->id) < 0)
                return -ENAMETOOLONG;
        uint64_t h1 = hcs_hash64(key, strlen(key), 0x6665727279ull);
        uint64_t h2 = hcs_hash64(key, strlen(key), h1);
        if (ferry_bprintf(buf, size, "%s/%016" PRIx64 "%016" PRIx64,
                          a->socket_dir ? a->socket_dir : DEFAULT_SOCKET_DIR, h1, h2) < 0)
                return -ENAMETOOLONG;
        return 0;
}

static int fill_sun(struct sockaddr_un *sun, const char *path)
{
        memset(sun, 0, sizeof(*sun));
        sun->sun_family = AF_UNIX;
        return ferry_strscpy(sun->sun_path, path, sizeof(sun->sun_path)) < 0 ? -ENAMETOOLONG : 0;
}

/* A live shim already serves path: containerd's `start` then just returns the address. */
static bool socket_alive(const char *path)
{
        struct sockaddr_un sun;
        if (fill_sun(&sun, path) < 0)
                return false;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        return fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
}

static int bind_listen(const char *path, int *ret_fd)
{
        struct sockaddr_un sun;
        int r = fill_sun(&sun, path);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        unlink(path); /* stale: socket_alive() found nobody behind it */
        /* owner-only from the first moment: bind under a umask that leaves 0600 */
        mode_t old = umask(0177);
        r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
        umask(old);
        if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 128) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* The child: a new session, the listener at fd 3, stdio on /dev/null (containerd reads the
 * start's stdout to EOF, so the daemon must not hold it), then exec serve. */
static _noreturn_ void exec_daemon(int fd, char **argv, const struct args *a, const char *path)
{
        setsid();
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull >= 0) {
                dup2(devnull, 0);
                dup2(devnull, 1);
                if (!a->debug)
                        dup2(devnull, 2);
        }
        /* dup2 onto itself keeps close-on-exec: clear it by hand in that case */
        if (fd == 3 ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, 3) < 0)
                _exit(127);
        char mem[16], rate[24];
        ferry_bprintf(mem, sizeof(mem), "%u", a->memory_mb);
        ferry_bprintf(rate, sizeof(rate), "%llu", (unsigned long long)a->dirty_rate);
        const char *args[48];
        size_t n = 0;
        args[n++] = argv[0];
        args[n++] = "--listen-fd";
        args[n++] = "3";
        args[n++] = "--address";
        args[n++] = path;
        const char *pairs[][2] = {{"--backend", a->backend},
                                  {"--backend-opts", a->backend_opts},
                                  {"--trace", a->trace},
                                  {"--event-log", a->event_log},
                                  {"--events-address", a->events_address},
                                  {"-namespace", a->ns},
                                  {"--memory-mb", a->memory_mb ? mem : NULL},
                                  {"--dirty-pages-rate", a->dirty_rate ? rate : NULL}};
        for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
                if (pairs[i][1]) {
                        args[n++] = pairs[i][0];
                        args[n++] = pairs[i][1];
                }
        }
        for (size_t i = 0; i < a->n_faults; i++) {
                args[n++] = "--fault";
                args[n++] = a->faults[i];
        }
        args[n++] = "serve";
        args[n] = NULL;
        execv("/proc/self/exe", (char *const *)args);
        _exit(127);
}

static int start(char **argv, const struct args *a)
{
        if (!a->id || ttrpc_valid_id(a->id, strlen(a->id)) < 0) {
                fprintf(stderr, "ferry-shim: start needs a valid -id\n");
                return 2;
        }
        char path[108];
        int r = socket_path(a, path, sizeof(path));
        if (r < 0) {
                fprintf(stderr, "ferry-shim: socket path too long\n");
                return 1;
        }
        if (!socket_alive(path)) {
                const char *dir = a->socket_dir ? a->socket_dir : DEFAULT_SOCKET_DIR;
                if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                        fprintf(stderr, "ferry-shim: mkdir %s: %m\n", dir);
                        return 1;
                }
                int fd = -1;
                r = bind_listen(path, &fd);
                if (r < 0) {
                        fprintf(stderr, "ferry-shim: listen %s: %s\n", path, strerror(-r));
                        return 1;
                }
                pid_t pid = fork();
                if (pid < 0) {
                        fprintf(stderr, "ferry-shim: fork: %m\n");
                        unlink(path);
                        close(fd);
                        return 1;
                }
                if (pid == 0)
                        exec_daemon(fd, argv, a, path);
                close(fd);
        }
        printf("unix://%s\n", path);
        return fflush(stdout) == 0 ? 0 : 1;
}

/* -- delete -- */

/* containerd calls delete when it lost the shim: the task is gone, reported as killed. */
static int delete_action(const struct args *a)
{
        Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts = CONTAINERD__TASK__V2__TIMESTAMP__INIT;
        uint64_t now = ferry_wall_ns();
        ts.seconds = (int64_t)(now / 1000000000ull);
        ts.nanos = (int32_t)(now % 1000000000ull);
        resp.exit_status = 128 + SIGKILL;
        resp.exited_at = &ts;
        uint8_t buf[64];
        size_t n = containerd__task__v2__delete_response__pack(&resp, buf);
        if (a->id && ttrpc_valid_id(a->id, strlen(a->id)) == 0) {
                char path[108];
                if (socket_path(a, path, sizeof(path)) == 0 && !socket_alive(path))
                        unlink(path);
        }
        return fwrite(buf, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
        struct args a = {0};
        parse_args(argc, argv, &a);
        signal(SIGPIPE, SIG_IGN);
        if (a.version) {
                printf("ferry-shim 0.1.0\n");
                return 0;
        }
        if (!a.action)
                usage(2);
        if (!strcmp(a.action, "start"))
                return start(argv, &a);
        if (!strcmp(a.action, "delete"))
                return delete_action(&a);
        if (!strcmp(a.action, "serve")) {
                if (!a.address && a.listen_fd < 0) {
                        fprintf(stderr, "ferry-shim: serve needs --address PATH\n");
                        return 2;
                }
                if (a.address && ttrpc_valid_path(a.address, strlen(a.address)) < 0) {
                        fprintf(stderr, "ferry-shim: --address must be an absolute path\n");
                        return 2;
                }
                if (!a.events_address)
                        a.events_address = getenv("TTRPC_ADDRESS");
                if (a.events_address && !*a.events_address)
                        a.events_address = NULL;
                return serve(&a);
        }
        fprintf(stderr, "ferry-shim: unknown action %s\n", a.action);
        usage(2);
}
