/* SPDX-License-Identifier: MIT */
/* The Task and Sandbox services over a real unix socket: a shim (src/service/shim.h) and a
 * ttrpc client share one loop; every Task method, the rejections, task events, and clients
 * that misbehave while others are served. */
#include "task_fixture.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "guest/guest.h"

/* Keeps the topics, joined by spaces, checking the sequence numbers on the way. */
static void on_event(uint64_t seq, const char *topic, const char *json, void *ud)
{
        struct fixture *f = ud;
        assert_int_equal(seq, f->n_events + 1);
        assert_true(json[0] == '{');
        f->n_events++;
        size_t n = strlen(f->events);
        ferry_bprintf(f->events + n, sizeof(f->events) - n, "%s%s", n ? " " : "", topic);
}

static int setup(void **state)
{
        static const struct fixture_options o = {
            .name = "svc",
            .sandbox = {.memory_mb = 8},
            .event_log = true,
            .on_event = on_event,
        };
        return fixture_setup(state, &o);
}

/* The socket is owner-only. */
static void test_socket_mode(void **state)
{
        struct fixture *f = *state;
        struct stat st;
        assert_int_equal(stat(f->sock, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);
}

/* Create, State, Start, Pids, Connect, Wait, Kill, Delete on one task, and the events in
 * containerd's order. */
static void test_lifecycle(void **state)
{
        struct fixture *f = *state;
        Containerd__Task__V2__Status st;
        uint32_t pid = 0, code = 0;

        assert_int_equal(task_create(L, f->c, "c1", "/run/bundle/c1"), FERRY_CODE_OK);
        assert_int_equal(task_state(L, f->c, "c1", &st, NULL), FERRY_CODE_OK);
        assert_int_equal(st, CONTAINERD__TASK__V2__STATUS__CREATED);
        assert_true(sandbox_running(shim_sandbox(f->shim))); /* the first task booted the VM */

        assert_int_equal(task_start(L, f->c, "c1", &pid), FERRY_CODE_OK);
        assert_true(pid > 0);
        assert_int_equal(task_state(L, f->c, "c1", &st, NULL), FERRY_CODE_OK);
        assert_int_equal(st, CONTAINERD__TASK__V2__STATUS__RUNNING);

        Containerd__Task__V2__PidsRequest preq = CONTAINERD__TASK__V2__PIDS_REQUEST__INIT;
        Containerd__Task__V2__PidsResponse *pids = NULL;
        preq.id = "c1";
        assert_int_equal(
            TASK_CALL(L, f->c, "Pids", preq, containerd__task__v2__pids_response, &pids),
            FERRY_CODE_OK);
        assert_int_equal(pids->n_processes, 1);
        assert_int_equal(pids->processes[0]->pid, pid);
        protobuf_c_message_free_unpacked(&pids->base, NULL);

        Containerd__Task__V2__ConnectRequest creq = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
        Containerd__Task__V2__ConnectResponse *conn = NULL;
        creq.id = "c1";
        assert_int_equal(
            TASK_CALL(L, f->c, "Connect", creq, containerd__task__v2__connect_response, &conn),
            FERRY_CODE_OK);
        assert_int_equal(conn->shim_pid, (uint32_t)getpid());
        assert_int_equal(conn->task_pid, pid);
        assert_non_null(strstr(conn->version, "ferry"));
        protobuf_c_message_free_unpacked(&conn->base, NULL);

        struct reply w;
        wait_async(f->c, "c1", &w);
        assert_false(uvrun_until(L, &w.done, 50)); /* parked while the task runs */
        assert_int_equal(task_kill(L, f->c, "c1", SIGTERM), FERRY_CODE_OK);
        assert_true(uvrun_until(L, &w.done, 5000));
        assert_int_equal(wait_exit_status(&w), 128 + SIGTERM);
        protobuf_c_message_free_unpacked(w.resp, NULL);

        assert_int_equal(task_state(L, f->c, "c1", &st, &code), FERRY_CODE_OK);
        assert_int_equal(st, CONTAINERD__TASK__V2__STATUS__STOPPED);
        assert_int_equal(code, 128 + SIGTERM);
        /* Wait on a stopped task answers at once */
        assert_int_equal(task_wait_exit(L, f->c, "c1"), 128 + SIGTERM);

        assert_int_equal(task_delete(L, f->c, "c1", &code), FERRY_CODE_OK);
        assert_int_equal(code, 128 + SIGTERM);
        assert_int_equal(task_state(L, f->c, "c1", NULL, NULL), FERRY_CODE_NOT_FOUND);
        assert_string_equal(f->events, "/tasks/create /tasks/start /tasks/exit /tasks/delete");

        /* the log holds the same four events, one JSON line each */
        FILE *log = fopen(f->log, "r");
        assert_non_null(log);
        char line[1024];
        unsigned lines = 0;
        while (fgets(line, sizeof(line), log)) {
                assert_non_null(strstr(line, "\"container_id\":\"c1\""));
                lines++;
        }
        fclose(log);
        assert_int_equal(lines, 4);
}

/* An exit inside the guest (not a Kill) reaches Wait, State and the TaskExit event. */
static void test_guest_exit(void **state)
{
        struct fixture *f = *state;
        uint32_t pid = 0, code = 0;
        assert_int_equal(task_create(L, f->c, "c2", NULL), FERRY_CODE_OK);
        assert_int_equal(task_start(L, f->c, "c2", &pid), FERRY_CODE_OK);
        struct reply w;
        wait_async(f->c, "c2", &w);
        assert_false(uvrun_until(L, &w.done, 20));
        struct guest_conn *g = sandbox_guest(shim_sandbox(f->shim));
        assert_non_null(g);
        assert_int_equal(guest_sim_exit_process(g, pid, 7), 0);
        assert_true(uvrun_until(L, &w.done, 5000));
        assert_int_equal(wait_exit_status(&w), 7);
        protobuf_c_message_free_unpacked(w.resp, NULL);
        assert_int_equal(task_delete(L, f->c, "c2", &code), FERRY_CODE_OK);
        assert_int_equal(code, 7);
        assert_non_null(strstr(f->events, "/tasks/exit"));
}

/* A pod: several containers in one VM; ending one leaves the others running. */
static void test_pod(void **state)
{
        struct fixture *f = *state;
        const char *ids[] = {"pause", "app", "sidecar"};
        Containerd__Task__V2__Status st;
        for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
                assert_int_equal(task_create(L, f->c, ids[i], NULL), FERRY_CODE_OK);
                assert_int_equal(task_start(L, f->c, ids[i], NULL), FERRY_CODE_OK);
        }
        assert_int_equal(task_kill(L, f->c, "app", SIGKILL), FERRY_CODE_OK);
        assert_int_equal(task_wait_exit(L, f->c, "app"), 128 + SIGKILL);
        assert_int_equal(task_state(L, f->c, "pause", &st, NULL), FERRY_CODE_OK);
        assert_int_equal(st, CONTAINERD__TASK__V2__STATUS__RUNNING);
        assert_int_equal(task_state(L, f->c, "sidecar", &st, NULL), FERRY_CODE_OK);
        assert_int_equal(st, CONTAINERD__TASK__V2__STATUS__RUNNING);
        assert_int_equal(task_delete(L, f->c, "app", NULL), FERRY_CODE_OK);
}

static enum ferry_code resize_pty(struct fixture *f, const char *id, uint32_t width,
                                  uint32_t height)
{
        Containerd__Task__V2__ResizePtyRequest rz = CONTAINERD__TASK__V2__RESIZE_PTY_REQUEST__INIT;
        rz.id = (char *)id;
        rz.width = width;
        rz.height = height;
        return TASK_CALL(L, f->c, "ResizePty", rz, containerd__task__v2__empty, NULL);
}

/* Every rejection a client can provoke, with its status code. */
static void test_rejections(void **state)
{
        struct fixture *f = *state;
        /* strict grammars before anything reaches the guest */
        assert_int_equal(task_create(L, f->c, "bad id", NULL), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(task_create(L, f->c, "", NULL), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(task_create(L, f->c, "c/../x", NULL), FERRY_CODE_INVALID_ARGUMENT);
        char longid[100];
        memset(longid, 'a', sizeof(longid) - 1);
        longid[sizeof(longid) - 1] = '\0';
        assert_int_equal(task_create(L, f->c, longid, NULL), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(task_create(L, f->c, "c3", "relative/bundle"),
                         FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(task_create(L, f->c, "c3", "/a/../etc"), FERRY_CODE_INVALID_ARGUMENT);
        Containerd__Task__V2__CreateTaskRequest cr =
            CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
        cr.id = "c3";
        cr.stdout = "/tmp/../../x";
        assert_int_equal(
            TASK_CALL(L, f->c, "Create", cr, containerd__task__v2__create_task_response, NULL),
            FERRY_CODE_INVALID_ARGUMENT);
        cr.stdout = "";
        cr.checkpoint = "/cp";
        assert_int_equal(
            TASK_CALL(L, f->c, "Create", cr, containerd__task__v2__create_task_response, NULL),
            FERRY_CODE_UNIMPLEMENTED);

        /* unknown task */
        assert_int_equal(task_start(L, f->c, "nope", NULL), FERRY_CODE_NOT_FOUND);
        assert_int_equal(task_kill(L, f->c, "nope", SIGKILL), FERRY_CODE_NOT_FOUND);
        assert_int_equal(task_delete(L, f->c, "nope", NULL), FERRY_CODE_NOT_FOUND);

        assert_int_equal(task_create(L, f->c, "c3", NULL), FERRY_CODE_OK);
        assert_int_equal(task_create(L, f->c, "c3", NULL), FERRY_CODE_ALREADY_EXISTS);
        assert_int_equal(task_start(L, f->c, "c3", NULL), FERRY_CODE_OK);
        assert_int_equal(task_start(L, f->c, "c3", NULL), FERRY_CODE_FAILED_PRECONDITION);
        assert_int_equal(task_delete(L, f->c, "c3", NULL), FERRY_CODE_FAILED_PRECONDITION);
        assert_int_equal(task_kill(L, f->c, "c3", 0), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(task_kill(L, f->c, "c3", 99), FERRY_CODE_INVALID_ARGUMENT);

        /* a Kill that meets the Start still in flight: refused in the spec's words
         * (spec/container.yaml, starting × kill: aborted), and the Start goes on */
        assert_int_equal(task_create(L, f->c, "c4", NULL), FERRY_CODE_OK);
        Containerd__Task__V2__StartRequest st = CONTAINERD__TASK__V2__START_REQUEST__INIT;
        Containerd__Task__V2__KillRequest kr = CONTAINERD__TASK__V2__KILL_REQUEST__INIT;
        st.id = kr.id = "c4";
        kr.signal = SIGKILL;
        struct reply started, refused;
        call_async(f->c, TASK_SVC, "Start", &st.base,
                   &containerd__task__v2__start_response__descriptor, &started);
        call_async(f->c, TASK_SVC, "Kill", &kr.base, &containerd__task__v2__empty__descriptor,
                   &refused);
        assert_true(uvrun_until(L, &refused.done, 10000));
        assert_true(uvrun_until(L, &started.done, 10000));
        assert_int_equal(started.code, FERRY_CODE_OK);
        protobuf_c_message_free_unpacked(started.resp, NULL);
        assert_int_equal(refused.code, FERRY_CODE_ABORTED);
        assert_string_equal(refused.message, "kill rejected: an operation is in flight "
                                             "(starting); retry when it completes");
        assert_null(refused.resp);
        assert_int_equal(task_kill(L, f->c, "c4", SIGKILL), FERRY_CODE_OK);

        /* an unknown exec id is NOT_FOUND */
        Containerd__Task__V2__StateRequest sr = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
        sr.id = "c3";
        sr.exec_id = "e1";
        assert_int_equal(
            TASK_CALL(L, f->c, "State", sr, containerd__task__v2__state_response, NULL),
            FERRY_CODE_NOT_FOUND);
        /* unimplemented methods say so */
        Containerd__Task__V2__CheckpointTaskRequest pr =
            CONTAINERD__TASK__V2__CHECKPOINT_TASK_REQUEST__INIT;
        pr.id = "c3";
        assert_int_equal(TASK_CALL(L, f->c, "Checkpoint", pr, containerd__task__v2__empty, NULL),
                         FERRY_CODE_UNIMPLEMENTED);
        Containerd__Task__V2__ExecProcessRequest er =
            CONTAINERD__TASK__V2__EXEC_PROCESS_REQUEST__INIT;
        er.id = "c3";
        /* an Exec without an exec id names nothing to create */
        assert_int_equal(TASK_CALL(L, f->c, "Exec", er, containerd__task__v2__empty, NULL),
                         FERRY_CODE_INVALID_ARGUMENT);

        /* CloseIO on a known task; ResizePty needs a terminal */
        Containerd__Task__V2__CloseIORequest io = CONTAINERD__TASK__V2__CLOSE_IOREQUEST__INIT;
        io.id = "c3";
        io.stdin = true;
        assert_int_equal(TASK_CALL(L, f->c, "CloseIO", io, containerd__task__v2__empty, NULL),
                         FERRY_CODE_OK);
        io.id = "nope";
        assert_int_equal(TASK_CALL(L, f->c, "CloseIO", io, containerd__task__v2__empty, NULL),
                         FERRY_CODE_NOT_FOUND);
        assert_int_equal(resize_pty(f, "c3", 80, 24), FERRY_CODE_FAILED_PRECONDITION);

        /* kill, then a second kill finds the process finished */
        assert_int_equal(task_kill(L, f->c, "c3", SIGKILL), FERRY_CODE_OK);
        struct reply w;
        wait_async(f->c, "c3", &w);
        assert_true(uvrun_until(L, &w.done, 5000));
        protobuf_c_message_free_unpacked(w.resp, NULL);
        assert_int_equal(task_kill(L, f->c, "c3", SIGKILL), FERRY_CODE_NOT_FOUND);
        assert_int_equal(task_start(L, f->c, "c3", NULL), FERRY_CODE_FAILED_PRECONDITION);
        assert_int_equal(task_delete(L, f->c, "c3", NULL), FERRY_CODE_OK);
        assert_int_equal(task_delete(L, f->c, "c3", NULL), FERRY_CODE_NOT_FOUND);
}

/* A created task that is killed never ran: the process controller ends it with exit code 1
 * (the reference's exitFromCreated), Wait and Delete report it. ResizePty checks its size,
 * needs a running terminal (the process spec refuses a created one) and is then accepted. */
static void test_kill_created_and_terminal(void **state)
{
        struct fixture *f = *state;
        uint32_t code = 0;
        assert_int_equal(task_create(L, f->c, "never", NULL), FERRY_CODE_OK);
        assert_int_equal(task_kill(L, f->c, "never", SIGKILL), FERRY_CODE_OK);
        struct reply w;
        assert_int_equal(task_wait_exit(L, f->c, "never"), 1);
        assert_int_equal(task_delete(L, f->c, "never", &code), FERRY_CODE_OK);
        assert_int_equal(code, 1);

        Containerd__Task__V2__CreateTaskRequest cr =
            CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
        cr.id = "tty";
        cr.terminal = true;
        assert_int_equal(
            TASK_CALL(L, f->c, "Create", cr, containerd__task__v2__create_task_response, NULL),
            FERRY_CODE_OK);
        assert_int_equal(resize_pty(f, "tty", 0, 24), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(resize_pty(f, "tty", 120, 24), FERRY_CODE_FAILED_PRECONDITION);
        assert_int_equal(task_start(L, f->c, "tty", NULL), FERRY_CODE_OK);
        assert_int_equal(resize_pty(f, "tty", 120, 24), FERRY_CODE_OK);
        assert_int_equal(task_kill(L, f->c, "tty", SIGKILL), FERRY_CODE_OK);
        wait_async(f->c, "tty", &w);
        assert_true(uvrun_until(L, &w.done, 5000));
        protobuf_c_message_free_unpacked(w.resp, NULL);
        assert_int_equal(task_delete(L, f->c, "tty", &code), FERRY_CODE_OK);
        assert_int_equal(code, 128 + SIGKILL);
}

/* Shutdown keeps the shim while a task remains, ends it once none does. */
static void test_shutdown(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(task_create(L, f->c, "c4", NULL), FERRY_CODE_OK);
        Containerd__Task__V2__ShutdownRequest sr = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
        assert_int_equal(TASK_CALL(L, f->c, "Shutdown", sr, containerd__task__v2__empty, NULL),
                         FERRY_CODE_OK);
        assert_false(uvrun_until(L, &f->exited, 100));
        assert_int_equal(task_delete(L, f->c, "c4", NULL), FERRY_CODE_OK);
        assert_int_equal(TASK_CALL(L, f->c, "Shutdown", sr, containerd__task__v2__empty, NULL),
                         FERRY_CODE_OK);
        assert_true(uvrun_until(L, &f->exited, 5000));
        assert_true(shim_finished(f->shim));
}

/* -- the Sandbox service -- */

static void test_sandbox_api(void **state)
{
        struct fixture *f = *state;
        Containerd__Runtime__Sandbox__V1__CreateSandboxRequest cr =
            CONTAINERD__RUNTIME__SANDBOX__V1__CREATE_SANDBOX_REQUEST__INIT;
        cr.sandbox_id = "pod-1";
        cr.bundle_path = "/run/pods/pod-1";
        assert_int_equal(SANDBOX_CALL(L, f->c, "CreateSandbox", cr,
                                      containerd__runtime__sandbox__v1__create_sandbox_response,
                                      NULL),
                         FERRY_CODE_OK);
        assert_int_equal(SANDBOX_CALL(L, f->c, "CreateSandbox", cr,
                                      containerd__runtime__sandbox__v1__create_sandbox_response,
                                      NULL),
                         FERRY_CODE_ALREADY_EXISTS);

        assert_int_equal(sandbox_start_call(L, f->c, "other", NULL), FERRY_CODE_NOT_FOUND);
        Containerd__Runtime__Sandbox__V1__StartSandboxResponse *sresp = NULL;
        assert_int_equal(sandbox_start_call(L, f->c, "pod-1", &sresp), FERRY_CODE_OK);
        assert_int_equal(sresp->pid, (uint32_t)getpid());
        assert_non_null(sresp->created_at);
        protobuf_c_message_free_unpacked(&sresp->base, NULL);
        /* starting a running sandbox is idempotent (spec/vm.yaml: start when running) */
        assert_int_equal(sandbox_start_call(L, f->c, "pod-1", NULL), FERRY_CODE_OK);

        Containerd__Runtime__Sandbox__V1__SandboxStatusRequest ss =
            CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_REQUEST__INIT;
        Containerd__Runtime__Sandbox__V1__SandboxStatusResponse *status = NULL;
        ss.sandbox_id = "pod-1";
        ss.verbose = true;
        assert_int_equal(SANDBOX_CALL(L, f->c, "SandboxStatus", ss,
                                      containerd__runtime__sandbox__v1__sandbox_status_response,
                                      &status),
                         FERRY_CODE_OK);
        assert_string_equal(status->state, "ready");
        assert_string_equal(status->sandbox_id, "pod-1");
        assert_int_equal(status->n_info, 1);
        assert_string_equal(status->info[0]->value, "sim");
        protobuf_c_message_free_unpacked(&status->base, NULL);

        Containerd__Runtime__Sandbox__V1__PlatformRequest pl =
            CONTAINERD__RUNTIME__SANDBOX__V1__PLATFORM_REQUEST__INIT;
        Containerd__Runtime__Sandbox__V1__PlatformResponse *plat = NULL;
        assert_int_equal(SANDBOX_CALL(L, f->c, "Platform", pl,
                                      containerd__runtime__sandbox__v1__platform_response, &plat),
                         FERRY_CODE_OK);
        assert_string_equal(plat->platform->os, "linux");
        protobuf_c_message_free_unpacked(&plat->base, NULL);

        Containerd__Runtime__Sandbox__V1__PingRequest ping =
            CONTAINERD__RUNTIME__SANDBOX__V1__PING_REQUEST__INIT;
        ping.sandbox_id = "pod-1";
        assert_int_equal(SANDBOX_CALL(L, f->c, "PingSandbox", ping,
                                      containerd__runtime__sandbox__v1__ping_response, NULL),
                         FERRY_CODE_OK);

        /* a container in the pod, then the VM stops under it */
        assert_int_equal(task_create(L, f->c, "app", NULL), FERRY_CODE_OK);
        assert_int_equal(task_start(L, f->c, "app", NULL), FERRY_CODE_OK);
        struct reply tw, sw;
        wait_async(f->c, "app", &tw);
        Containerd__Runtime__Sandbox__V1__WaitSandboxRequest wr =
            CONTAINERD__RUNTIME__SANDBOX__V1__WAIT_SANDBOX_REQUEST__INIT;
        wr.sandbox_id = "pod-1";
        call_async(f->c, SANDBOX_SVC, "WaitSandbox", &wr.base,
                   &containerd__runtime__sandbox__v1__wait_sandbox_response__descriptor, &sw);
        assert_false(uvrun_until(L, &sw.done, 50));
        /* a second waiter whose client vanishes leaves no trace behind */
        struct ttrpc_client *quitter = NULL;
        struct reply gone;
        assert_int_equal(ttrpc_client_connect(L, f->sock, NULL, &quitter), 0);
        call_async(quitter, SANDBOX_SVC, "WaitSandbox", &wr.base,
                   &containerd__runtime__sandbox__v1__wait_sandbox_response__descriptor, &gone);
        assert_false(uvrun_until(L, &gone.done, 50));
        ttrpc_client_close(quitter);
        assert_true(uvrun_until(L, &gone.done, 1000));
        assert_int_equal(gone.code, FERRY_CODE_UNAVAILABLE);

        assert_int_equal(sandbox_stop_call(L, f->c, "pod-1"), FERRY_CODE_OK);
        assert_true(uvrun_until(L, &sw.done, 5000));
        assert_int_equal(sw.code, FERRY_CODE_OK);
        protobuf_c_message_free_unpacked(sw.resp, NULL);
        assert_true(uvrun_until(L, &tw.done, 5000));
        assert_int_equal(wait_exit_status(&tw), 255); /* the task went with its VM */
        protobuf_c_message_free_unpacked(tw.resp, NULL);
        assert_int_equal(task_create(L, f->c, "late", NULL), FERRY_CODE_FAILED_PRECONDITION);
        assert_int_equal(task_delete(L, f->c, "app", NULL), FERRY_CODE_OK);

        Containerd__Runtime__Sandbox__V1__ShutdownSandboxRequest sd =
            CONTAINERD__RUNTIME__SANDBOX__V1__SHUTDOWN_SANDBOX_REQUEST__INIT;
        sd.sandbox_id = "pod-1";
        assert_int_equal(SANDBOX_CALL(L, f->c, "ShutdownSandbox", sd,
                                      containerd__runtime__sandbox__v1__shutdown_sandbox_response,
                                      NULL),
                         FERRY_CODE_OK);
        assert_true(uvrun_until(L, &f->exited, 5000));
}

/* -- misbehaving clients -- */

static int raw_connect(const char *path)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        ferry_strscpy(sun.sun_path, path, sizeof(sun.sun_path));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
        return fd;
}

/* Garbage, a client stalled mid-frame and one that vanishes mid-call (a parked Wait): the
 * others keep being served and the shim keeps every task right. */
static void test_bad_clients(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(task_create(L, f->c, "c5", NULL), FERRY_CODE_OK);
        assert_int_equal(task_start(L, f->c, "c5", NULL), FERRY_CODE_OK);

        int garbage = raw_connect(f->sock);
        uint8_t junk[4096];
        for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (uint8_t)(i * 131 + 7);
        assert_int_equal(write(garbage, junk, sizeof(junk)), (ssize_t)sizeof(junk));

        int staller = raw_connect(f->sock);
        const uint8_t half[] = {0x00, 0x00, 0x00, 0x20, 0x00, 0x00}; /* 6 of 10 header bytes */
        assert_int_equal(write(staller, half, sizeof(half)), (ssize_t)sizeof(half));

        struct ttrpc_client *quitter = NULL;
        assert_int_equal(ttrpc_client_connect(L, f->sock, NULL, &quitter), 0);
        struct reply gone;
        wait_async(quitter, "c5", &gone);
        assert_false(uvrun_until(L, &gone.done, 50)); /* the Wait is parked in the shim */
        ttrpc_client_close(quitter);                     /* ... and its client vanishes */
        assert_true(uvrun_until(L, &gone.done, 1000));
        assert_int_equal(gone.code, FERRY_CODE_UNAVAILABLE);

        /* meanwhile the good client is served, many times over */
        Containerd__Task__V2__Status st;
        for (int i = 0; i < 50; i++) {
                assert_int_equal(task_state(L, f->c, "c5", &st, NULL), FERRY_CODE_OK);
                assert_int_equal(st, CONTAINERD__TASK__V2__STATUS__RUNNING);
        }
        assert_true(ttrpc_server_n_connections(shim_server(f->shim)) >= 2);

        /* the abandoned Wait does not disturb the exit */
        struct reply w;
        wait_async(f->c, "c5", &w);
        assert_int_equal(task_kill(L, f->c, "c5", SIGKILL), FERRY_CODE_OK);
        assert_true(uvrun_until(L, &w.done, 5000));
        assert_int_equal(wait_exit_status(&w), 128 + SIGKILL);
        protobuf_c_message_free_unpacked(w.resp, NULL);
        assert_int_equal(task_delete(L, f->c, "c5", NULL), FERRY_CODE_OK);
        close(garbage);
        close(staller);
}

/* Many clients at once, each running its own task through its life. */
static void test_concurrent_clients(void **state)
{
        struct fixture *f = *state;
        enum { N = 8 };
        struct ttrpc_client *cs[N];
        char ids[N][16];
        struct reply r[N];
        for (int i = 0; i < N; i++) {
                assert_int_equal(ttrpc_client_connect(L, f->sock, NULL, &cs[i]), 0);
                ferry_bprintf(ids[i], sizeof(ids[i]), "task-%d", i);
        }
        /* all Creates in flight together: the first boots the VM, the others wait for it or
         * are told to retry */
        for (int i = 0; i < N; i++) {
                Containerd__Task__V2__CreateTaskRequest cr =
                    CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
                cr.id = ids[i];
                call_async(cs[i], TASK_SVC, "Create", &cr.base,
                           &containerd__task__v2__create_task_response__descriptor, &r[i]);
        }
        for (int i = 0; i < N; i++) {
                assert_true(uvrun_until(L, &r[i].done, 10000));
                if (r[i].resp)
                        protobuf_c_message_free_unpacked(r[i].resp, NULL);
                if (r[i].code == FERRY_CODE_UNAVAILABLE) /* the VM was booting: retry */
                        assert_int_equal(task_create(L, cs[i], ids[i], NULL), FERRY_CODE_OK);
                else
                        assert_int_equal(r[i].code, FERRY_CODE_OK);
        }
        for (int i = 0; i < N; i++)
                assert_int_equal(task_start(L, cs[i], ids[i], NULL), FERRY_CODE_OK);
        for (int i = 0; i < N; i++)
                assert_int_equal(task_kill(L, cs[i], ids[i], SIGKILL), FERRY_CODE_OK);
        for (int i = 0; i < N; i++) {
                assert_int_equal(task_wait_exit(L, cs[i], ids[i]), 128 + SIGKILL);
                assert_int_equal(task_delete(L, cs[i], ids[i], NULL), FERRY_CODE_OK);
                ttrpc_client_close(cs[i]);
        }
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            FIXTURE_TEST(test_socket_mode),
            FIXTURE_TEST(test_lifecycle),
            FIXTURE_TEST(test_guest_exit),
            FIXTURE_TEST(test_pod),
            FIXTURE_TEST(test_rejections),
            FIXTURE_TEST(test_kill_created_and_terminal),
            FIXTURE_TEST(test_shutdown),
            FIXTURE_TEST(test_sandbox_api),
            FIXTURE_TEST(test_bad_clients),
            FIXTURE_TEST(test_concurrent_clients),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
