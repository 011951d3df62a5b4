/* SPDX-License-Identifier: MIT */
/* A pod migrated live between two ferry-shim processes, driven over ttrpc the way ferryctl
 * does: Task and Sandbox on the source, the Migration service on both (export, import, the
 * destination CreateTask patch path, prepare, socket adoption by pidfd, transfer, finalize,
 * cleanup), then the tasks are checked on both sides; doctored snapshots are refused with
 * nothing imported. argv[1] is the binary. */
#include "../service/client.h"
#include "shim_main.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "envelope.pb-c.h"
#include "migration.pb-c.h"

static char dir[64];
static uv_loop_t loop;

struct shimproc {
        pid_t pid;
        char sock[128];
        char events[128];
        struct ttrpc_client *c;
};

static struct shimproc src, dst;

static void start_shim(struct shimproc *p, const char *name)
{
        ferry_bprintf(p->sock, sizeof(p->sock), "%s/%s.sock", dir, name);
        ferry_bprintf(p->events, sizeof(p->events), "%s/%s.events", dir, name);
        int pp[2];
        assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
        p->pid = fork();
        assert_true(p->pid >= 0);
        if (p->pid == 0) {
                dup2(pp[1], 1);
                execl(shim_bin, shim_bin, "serve", "--address", p->sock, "--memory-mb", "16",
                      "--event-log", p->events, (char *)NULL);
                _exit(127);
        }
        close(pp[1]);
        char line[256] = "";
        size_t n = 0;
        uint64_t deadline = ferry_now_us() + 5000000;
        while (n + 1 < sizeof(line) && ferry_now_us() < deadline) {
                struct pollfd pfd = {.fd = pp[0], .events = POLLIN};
                if (poll(&pfd, 1, 50) > 0 && (read(pp[0], line + n, 1) != 1 || line[n++] == '\n'))
                        break;
        }
        close(pp[0]);
        assert_non_null(strstr(line, p->sock));
        assert_int_equal(ttrpc_client_connect(&loop, p->sock, NULL, &p->c), 0);
}

static void stop_shim(struct shimproc *p)
{
        ttrpc_client_close(TAKE_PTR(p->c));
        kill(p->pid, SIGTERM);
        int st = 0;
        assert_int_equal(waitpid(p->pid, &st, 0), p->pid);
        p->pid = 0;
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
}

static enum ferry_code mig_call(struct ttrpc_client *c, const char *method, const void *req,
                                const ProtobufCMessageDescriptor *rd, ProtobufCMessage **ret)
{
        return call_sync(&loop, c, "Migration", method, req, rd, ret);
}

static enum ferry_code session_call(struct ttrpc_client *c, const char *method,
                                    const ProtobufCMessageDescriptor *rd)
{
        CleanupRequest req = CLEANUP_REQUEST__INIT; /* Cancel and Cleanup share the layout */
        req.session_id = "sess-1";
        return mig_call(c, method, &req, rd, NULL);
}

struct notes {
        unsigned done, failed, progress;
        bool ended;
};

static void on_note(ProtobufCMessage *msg, void *ud)
{
        struct notes *n = ud;
        NotificationsResponse *r = (NotificationsResponse *)msg;
        if (r->notification && r->notification->phase == PHASE__PHASE_DONE)
                n->done++;
        if (r->notification && r->notification->phase == PHASE__PHASE_FAILED)
                n->failed++;
        if (r->notification && r->notification->phase == PHASE__PHASE_TRANSFER_IN_PROGRESS)
                n->progress++;
        protobuf_c_message_free_unpacked(msg, NULL);
}

static void on_note_end(enum ferry_code code, const char *m, ProtobufCMessage *resp, void *ud)
{
        struct notes *n = ud;
        n->ended = true;
        if (resp)
                protobuf_c_message_free_unpacked(resp, NULL);
}

/* <dir>/bundles/<id>/config.json naming source_id as the migrated container. */
static void write_bundle(const char *id, const char *source_id, char *ret, size_t size)
{
        char path[256];
        ferry_bprintf(ret, size, "%s/%s", dir, id);
        assert_int_equal(mkdir(ret, 0700), 0);
        ferry_bprintf(path, sizeof(path), "%s/config.json", ret);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f,
                "{\"ociVersion\":\"1.1.0\",\"annotations\":{"
                "\"io.microsoft.migration.source-container-id\":\"%s\"}}",
                source_id);
        fclose(f);
}

static enum ferry_code sandbox_state(struct ttrpc_client *c, char *buf, size_t size)
{
        Containerd__Runtime__Sandbox__V1__SandboxStatusRequest req =
            CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_REQUEST__INIT;
        Containerd__Runtime__Sandbox__V1__SandboxStatusResponse *resp = NULL;
        enum ferry_code code =
            SANDBOX_CALL(&loop, c, "SandboxStatus", req,
                         containerd__runtime__sandbox__v1__sandbox_status_response, &resp);
        if (resp) {
                ferry_strscpy(buf, resp->state, size);
                protobuf_c_message_free_unpacked(&resp->base, NULL);
        }
        return code;
}

/* Starts both shims, then a task per id on the source (its pid in pids[i] when pids). */
static void shims_up(const char *const *ids, size_t n, uint32_t *pids)
{
        start_shim(&src, "src");
        start_shim(&dst, "dst");
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(task_create(&loop, src.c, ids[i], NULL), FERRY_CODE_OK);
                assert_int_equal(task_start(&loop, src.c, ids[i], pids ? &pids[i] : NULL),
                                 FERRY_CODE_OK);
        }
}

/* The initialize options of every session here: memory over TCP. */
static InitializeOptions *tcp_options(void)
{
        static InitializeOptions io = INITIALIZE_OPTIONS__INIT;
        io.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        return &io;
}

/* PrepareAndExportSandbox on the source, which must succeed; returns the response (the caller
 * frees it). */
static PrepareAndExportSandboxResponse *export_source(void)
{
        PrepareAndExportSandboxRequest pe = PREPARE_AND_EXPORT_SANDBOX_REQUEST__INIT;
        pe.session_id = "sess-1";
        pe.init_options = tcp_options();
        PrepareAndExportSandboxResponse *exp = NULL;
        assert_int_equal(mig_call(src.c, "PrepareAndExportSandbox", &pe,
                                  &prepare_and_export_sandbox_response__descriptor,
                                  (ProtobufCMessage **)&exp),
                         FERRY_CODE_OK);
        return exp;
}

/* ImportSandbox of config (borrowed) as "pod-dst" on the destination. */
static enum ferry_code import_sandbox(ProtobufAny *config)
{
        ImportSandboxRequest im = IMPORT_SANDBOX_REQUEST__INIT;
        im.session_id = "sess-1";
        im.sandbox_id = "pod-dst";
        im.config = config;
        return mig_call(dst.c, "ImportSandbox", &im, &import_sandbox_response__descriptor, NULL);
}

/* CreateTask of id on the destination over a bundle naming source_id as the migrated
 * container; the response's pid in *ret_pid when ret_pid. */
static enum ferry_code patch_task(const char *id, const char *source_id, uint32_t *ret_pid)
{
        char bundle[128];
        write_bundle(id, source_id, bundle, sizeof(bundle));
        Containerd__Task__V2__CreateTaskRequest cr =
            CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
        Containerd__Task__V2__CreateTaskResponse *crr = NULL;
        cr.id = (char *)id;
        cr.bundle = bundle;
        enum ferry_code code =
            TASK_CALL(&loop, dst.c, "Create", cr, containerd__task__v2__create_task_response, &crr);
        if (crr && ret_pid)
                *ret_pid = crr->pid;
        if (crr)
                protobuf_c_message_free_unpacked(&crr->base, NULL);
        return code;
}

static enum ferry_code finalize(struct shimproc *p, FinalizeAction action)
{
        FinalizeSandboxRequest fr = FINALIZE_SANDBOX_REQUEST__INIT;
        fr.session_id = "sess-1";
        fr.action = action;
        return mig_call(p->c, "FinalizeSandbox", &fr, &finalize_sandbox_response__descriptor, NULL);
}

/* A session call (Cancel or Cleanup) on the source, then on the destination: both succeed. */
static void session_both(const char *method, const ProtobufCMessageDescriptor *rd)
{
        assert_int_equal(session_call(src.c, method, rd), FERRY_CODE_OK);
        assert_int_equal(session_call(dst.c, method, rd), FERRY_CODE_OK);
}

/* Signals task id on p and checks its exit through a Wait issued before the signal. */
static void kill_and_wait(struct shimproc *p, const char *id, int sig)
{
        struct reply w;
        wait_async(p->c, id, &w);
        assert_int_equal(task_kill(&loop, p->c, id, sig), FERRY_CODE_OK);
        assert_true(uvrun_until(&loop, &w.done, 5000));
        assert_int_equal(wait_exit_status(&w), 128 + sig);
        protobuf_c_message_free_unpacked(w.resp, NULL);
}

static void shims_down(void)
{
        stop_shim(&src);
        stop_shim(&dst);
}

static void test_migrate_pod(void **state)
{
        const char *ids[] = {"web", "worker"};
        uint32_t pids[2];
        shims_up(ids, 2, pids);

        /* source: prepare and export */
        PrepareAndExportSandboxResponse *exp = export_source();
        assert_non_null(exp->config);
        /* while the session runs, State/Kill/Delete are refused on the source (§B.7) */
        assert_int_equal(task_state(&loop, src.c, "web", NULL, NULL),
                         FERRY_CODE_FAILED_PRECONDITION);
        assert_int_equal(task_kill(&loop, src.c, "web", SIGKILL), FERRY_CODE_FAILED_PRECONDITION);

        /* destination: import, patch each container through CreateTask, prepare */
        assert_int_equal(import_sandbox(exp->config), FERRY_CODE_OK);
        protobuf_c_message_free_unpacked(&exp->base, NULL);
        PrepareSandboxRequest ps = PREPARE_SANDBOX_REQUEST__INIT;
        ps.session_id = "sess-1";
        ps.init_options = tcp_options();
        /* not before every container is patched */
        assert_int_equal(
            mig_call(dst.c, "PrepareSandbox", &ps, &prepare_sandbox_response__descriptor, NULL),
            FERRY_CODE_FAILED_PRECONDITION);
        for (int i = 0; i < 2; i++) {
                uint32_t pid = 0;
                assert_int_equal(patch_task(ids[i], ids[i], &pid), FERRY_CODE_OK);
                assert_int_equal(pid, pids[i]); /* the same process, not a new one */
        }
        assert_int_equal(
            mig_call(dst.c, "PrepareSandbox", &ps, &prepare_sandbox_response__descriptor, NULL),
            FERRY_CODE_OK);

        /* both: notifications, the transport (pidfd_getfd from this process), transfer */
        struct notes ns = {0};
        NotificationsRequest nr = NOTIFICATIONS_REQUEST__INIT;
        nr.session_id = "sess-1";
        assert_int_equal(ttrpc_client_stream(src.c, "Migration", "Notifications", &nr.base,
                                             &notifications_response__descriptor, NULL, on_note,
                                             on_note_end, &ns),
                         0);
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        struct shimproc *side[2] = {&src, &dst};
        for (int i = 0; i < 2; i++) {
                char info[96];
                ferry_bprintf(info, sizeof(info), "ferry-socket-v1 pid=%d fd=%d", (int)getpid(),
                              fds[i]);
                CreateDuplicateSocketRequest ds = CREATE_DUPLICATE_SOCKET_REQUEST__INIT;
                ds.session_id = "sess-1";
                ds.protocol_info.data = (uint8_t *)info;
                ds.protocol_info.len = strlen(info);
                assert_int_equal(mig_call(side[i]->c, "CreateDuplicateSocket", &ds,
                                          &create_duplicate_socket_response__descriptor, NULL),
                                 FERRY_CODE_OK);
                close(fds[i]);
        }
        TransferSandboxRequest tr = TRANSFER_SANDBOX_REQUEST__INIT;
        tr.session_id = "sess-1";
        for (int i = 0; i < 2; i++)
                assert_int_equal(mig_call(side[i]->c, "TransferSandbox", &tr,
                                          &transfer_sandbox_response__descriptor, NULL),
                                 FERRY_CODE_OK);
        uint64_t deadline = ferry_now_us() + 30000000;
        while (!ns.done && !ns.failed && ferry_now_us() < deadline) {
                bool never = false;
                uvrun_until(&loop, &never, 10);
        }
        assert_int_equal(ns.failed, 0);
        assert_int_equal(ns.done, 1);

        /* finalize: the source stops, the destination runs */
        assert_int_equal(finalize(&src, FINALIZE_ACTION__FINALIZE_ACTION_STOP), FERRY_CODE_OK);
        enum ferry_code code;
        deadline = ferry_now_us() + 10000000;
        while ((code = finalize(&dst, FINALIZE_ACTION__FINALIZE_ACTION_RESUME)) ==
                   FERRY_CODE_FAILED_PRECONDITION &&
               ferry_now_us() < deadline)
                usleep(5000);
        assert_int_equal(code, FERRY_CODE_OK);
        session_both("Cleanup", &cleanup_response__descriptor);

        /* the pod runs on the destination, the same processes; the source's tasks ended */
        char st[32];
        assert_int_equal(sandbox_state(dst.c, st, sizeof(st)), FERRY_CODE_OK);
        assert_string_equal(st, "ready");
        assert_int_equal(sandbox_state(src.c, st, sizeof(st)), FERRY_CODE_OK);
        assert_string_equal(st, "stopped");
        for (int i = 0; i < 2; i++) {
                Containerd__Task__V2__Status status;
                uint32_t exit_status = 0;
                assert_int_equal(task_state(&loop, dst.c, ids[i], &status, NULL), FERRY_CODE_OK);
                assert_int_equal(status, CONTAINERD__TASK__V2__STATUS__RUNNING);
                assert_int_equal(task_state(&loop, src.c, ids[i], &status, &exit_status),
                                 FERRY_CODE_OK);
                assert_int_equal(status, CONTAINERD__TASK__V2__STATUS__STOPPED);
                assert_int_equal(exit_status, 137);
                assert_int_equal(task_delete(&loop, src.c, ids[i], NULL), FERRY_CODE_OK);
        }
        /* the migrated init still exits through the destination's exit watch */
        kill_and_wait(&dst, "web", SIGTERM);
        assert_int_equal(task_delete(&loop, dst.c, "web", NULL), FERRY_CODE_OK);

        /* the destination republished the tasks: create and start for each */
        FILE *f = fopen(dst.events, "r");
        assert_non_null(f);
        char line[1024];
        unsigned creates = 0, starts = 0;
        while (fgets(line, sizeof(line), f)) {
                creates += strstr(line, "\"/tasks/create\"") != NULL;
                starts += strstr(line, "\"/tasks/start\"") != NULL;
        }
        fclose(f);
        assert_int_equal(creates, 2);
        assert_int_equal(starts, 2);

        assert_true(uvrun_until(&loop, &ns.ended, 5000));
        shims_down();
}

/* Cancelled after the destination imported and patched: the source keeps running its tasks
 * (and serves State again after Cleanup); the destination's imported tasks end with 137 so
 * they can be deleted; a patch naming an unknown source container is NOT_FOUND. */
static void test_cancel_pod(void **state)
{
        const char *ids[] = {"web"};
        shims_up(ids, 1, NULL);

        PrepareAndExportSandboxResponse *exp = export_source();
        assert_int_equal(import_sandbox(exp->config), FERRY_CODE_OK);
        protobuf_c_message_free_unpacked(&exp->base, NULL);

        assert_int_equal(patch_task("nope", "nope", NULL), FERRY_CODE_NOT_FOUND);
        /* the destination may rename the container */
        assert_int_equal(patch_task("web-2", "web", NULL), FERRY_CODE_OK);

        session_both("Cancel", &cancel_response__descriptor);
        /* a cancelled source finalizes (resume) before its cleanup; a destination cleans up */
        assert_int_equal(session_call(src.c, "Cleanup", &cleanup_response__descriptor),
                         FERRY_CODE_FAILED_PRECONDITION);
        assert_int_equal(finalize(&src, FINALIZE_ACTION__FINALIZE_ACTION_RESUME), FERRY_CODE_OK);
        session_both("Cleanup", &cleanup_response__descriptor);

        Containerd__Task__V2__Status status;
        uint32_t exit_status = 0;
        char st[32];
        assert_int_equal(task_state(&loop, src.c, "web", &status, NULL), FERRY_CODE_OK);
        assert_int_equal(status, CONTAINERD__TASK__V2__STATUS__RUNNING);
        assert_int_equal(sandbox_state(src.c, st, sizeof(st)), FERRY_CODE_OK);
        assert_string_equal(st, "ready");
        assert_int_equal(task_state(&loop, dst.c, "web-2", &status, &exit_status), FERRY_CODE_OK);
        assert_int_equal(status, CONTAINERD__TASK__V2__STATUS__STOPPED);
        assert_int_equal(exit_status, 137);
        assert_int_equal(task_delete(&loop, dst.c, "web-2", NULL), FERRY_CODE_OK);
        /* the imported pod's teardown published that exit (once), and the delete after it */
        FILE *ev = fopen(dst.events, "r");
        assert_non_null(ev);
        char line[1024];
        unsigned exits = 0, deletes = 0, starts = 0;
        while (fgets(line, sizeof(line), ev)) {
                bool mine = strstr(line, "\"container_id\":\"web-2\"") != NULL;
                exits += mine && strstr(line, "\"/tasks/exit\"") && strstr(line, "137");
                deletes += mine && strstr(line, "\"/tasks/delete\"") != NULL;
                starts += strstr(line, "\"/tasks/start\"") != NULL;
        }
        fclose(ev);
        assert_int_equal(exits, 1);
        assert_int_equal(deletes, 1);
        assert_int_equal(starts, 0); /* never resumed there: never republished */

        /* the source still runs the task: it can be ended as usual */
        kill_and_wait(&src, "web", SIGKILL);
        shims_down();
}

/* The Any type URL the source's export carried around the snapshot. */
static char any_url[128];

/* Imports an envelope with type_url over payload on the destination, as the snapshot of the
 * Migration service's Any. */
static enum ferry_code import_doctored(const char *type_url, const ProtobufCMessage *payload)
{
        Ferry__Save__V1__Envelope env = FERRY__SAVE__V1__ENVELOPE__INIT;
        env.type_url = (char *)type_url;
        env.schema_version = 3;
        env.value.len = protobuf_c_message_get_packed_size(payload);
        env.value.data = malloc(env.value.len + 1);
        assert_non_null(env.value.data);
        protobuf_c_message_pack(payload, env.value.data);
        ProtobufAny any = PROTOBUF_ANY__INIT;
        any.type_url = any_url;
        any.value.len = protobuf_c_message_get_packed_size(&env.base);
        any.value.data = malloc(any.value.len + 1);
        assert_non_null(any.value.data);
        protobuf_c_message_pack(&env.base, any.value.data);
        enum ferry_code code = import_sandbox(&any);
        free(any.value.data);
        free(env.value.data);
        return code;
}

/* The destination has imported nothing: no sandbox (its status is NOT_FOUND before a create or
 * an import), the source's task unknown. */
static void assert_nothing_imported(void)
{
        char st[32];
        assert_int_equal(sandbox_state(dst.c, st, sizeof(st)), FERRY_CODE_NOT_FOUND);
        assert_int_equal(task_state(&loop, dst.c, "web", NULL, NULL), FERRY_CODE_NOT_FOUND);
}

/* The snapshot is {schema_version, sandbox_id, vm, pods} in a migration envelope (issue 5).
 * Two pods that share a container id, and a foreign type URL, are INVALID_ARGUMENT with
 * nothing imported: the untouched snapshot then imports. Each shim serves a handoff socket
 * "<address>.handoff" (mode 0600) that its exit removes. */
static void test_import_doctored(void **state)
{
        const char *ids[] = {"web"};
        shims_up(ids, 0, NULL);
        char handoff[160];
        struct stat sst;
        ferry_bprintf(handoff, sizeof(handoff), "%s.handoff", src.sock);
        assert_int_equal(stat(handoff, &sst), 0);
        assert_true(S_ISSOCK(sst.st_mode));
        assert_int_equal(sst.st_mode & 0777, 0600);
        assert_int_equal(task_create(&loop, src.c, "web", NULL), FERRY_CODE_OK);
        assert_int_equal(task_start(&loop, src.c, "web", NULL), FERRY_CODE_OK);

        PrepareAndExportSandboxResponse *exp = export_source();
        assert_non_null(exp->config);
        ferry_strscpy(any_url, exp->config->type_url, sizeof(any_url));
        Ferry__Save__V1__Envelope *env = ferry__save__v1__envelope__unpack(
            NULL, exp->config->value.len, exp->config->value.data);
        assert_non_null(env);
        assert_string_equal(env->type_url, "type.ferry.dev/ferry.migration.save.v1.Payload");
        assert_int_equal(env->schema_version, 3);
        Containerd__Runtime__Sandbox__V1__SandboxSave *save =
            containerd__runtime__sandbox__v1__sandbox_save__unpack(NULL, env->value.len,
                                                                   env->value.data);
        assert_non_null(save);
        assert_int_equal(save->schema_version, 3);
        assert_non_null(save->vm);
        assert_int_equal(save->n_pods, 1);

        /* a second pod carrying the same container "web" */
        Ferry__Save__V1__Envelope **pods = save->pods, *two[] = {pods[0], pods[0]};
        save->pods = two;
        save->n_pods = 2;
        assert_int_equal(import_doctored(env->type_url, &save->base), FERRY_CODE_INVALID_ARGUMENT);
        save->pods = pods;
        save->n_pods = 1;
        assert_nothing_imported();
        /* no pod at all */
        save->n_pods = 0;
        assert_int_equal(import_doctored(env->type_url, &save->base), FERRY_CODE_INVALID_ARGUMENT);
        save->n_pods = 1;
        assert_nothing_imported();
        /* schema 2's controller name: a foreign type URL */
        assert_int_equal(
            import_doctored("type.ferry.dev/ferry.sandbox.save.v1.Payload", &save->base),
            FERRY_CODE_INVALID_ARGUMENT);
        assert_nothing_imported();
        /* the snapshot as exported still imports: the refusals changed nothing */
        assert_int_equal(import_doctored(env->type_url, &save->base), FERRY_CODE_OK);
        char st[32];
        assert_int_equal(sandbox_state(dst.c, st, sizeof(st)), FERRY_CODE_OK);
        assert_string_equal(st, "migrating"); /* the VM is imported */
        protobuf_c_message_free_unpacked(&save->base, NULL);
        protobuf_c_message_free_unpacked(&env->base, NULL);
        protobuf_c_message_free_unpacked(&exp->base, NULL);

        session_both("Cancel", &cancel_response__descriptor);
        assert_int_equal(finalize(&src, FINALIZE_ACTION__FINALIZE_ACTION_RESUME), FERRY_CODE_OK);
        session_both("Cleanup", &cleanup_response__descriptor);
        shims_down();
        assert_int_equal(stat(handoff, &sst), -1);
        assert_int_equal(errno, ENOENT);
}

static int setup(void **state)
{
        ferry_strscpy(dir, "/tmp/ferry-mig-XXXXXX", sizeof(dir));
        assert_non_null(mkdtemp(dir));
        assert_int_equal(uv_loop_init(&loop), 0);
        return 0;
}

static int teardown(void **state)
{
        /* a failed test may leave shims behind: end them by pid */
        struct shimproc *ps[] = {&src, &dst};
        for (size_t i = 0; i < ARRAY_SIZE(ps); i++) {
                ttrpc_client_close(TAKE_PTR(ps[i]->c));
                if (ps[i]->pid > 0) {
                        kill(ps[i]->pid, SIGKILL);
                        waitpid(ps[i]->pid, NULL, 0);
                        ps[i]->pid = 0;
                }
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        char cmd[128];
        ferry_bprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

int main(int argc, char **argv)
{
        if (!shim_args(argc, argv))
                return 2;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_migrate_pod, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cancel_pod, setup, teardown),
            cmocka_unit_test_setup_teardown(test_import_doctored, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
