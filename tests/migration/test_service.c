/* SPDX-License-Identifier: MIT */
/* The Migration service over real unix sockets: a server thread runs two "shims" (a source
 * with a running sim VM and an empty destination, each a session + ttrpc server + handoff
 * socket) and this thread drives them with the ttrpc client, as an orchestrator would:
 * PrepareAndExportSandbox, ImportSandbox, PrepareSandbox, Notifications streams,
 * CreateDuplicateSocket (handoff token on one side, pidfd on the other), TransferSandbox,
 * FinalizeSandbox, Cleanup; and the error codes that cross the wire. */
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hcs/hash.h"
#include "hcs/hcs.h"
#include "hcs/sim/sim.h"
#include "migration.pb-c.h"
#include "migration/notify.h"
#include "migration/session.h"
#include "migration/sim_ops.h"
#include "pidfd_probe.h"
#include "migration/socket.h"
#include "rpc/ttrpc.h"
#include "service/migration.h"
#include "util/util.h"

#include "../common/uvrun.h"

#define SESS "6f1e0c7a-2b3d-4e5f-8a9b-0c1d2e3f4a5b"

struct shim {
        struct mig_sim_sandbox *sb;
        struct mig_session *s;
        struct ttrpc_server *srv;
        struct mig_handoff *h;
        char sock[128], handoff[128];
};

static struct server {
        uv_loop_t loop;
        uv_async_t stop;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int ready, err;
        struct hcs_backend *backend;
        struct shim src, dst;
        char dir[64];
        bool booted;
        int boot_r;
} sv;

static void booted(int r, void *ud)
{
        sv.booted = true;
        sv.boot_r = r;
}

static int shim_start(struct shim *sh, const char *name)
{
        int r = mig_sim_sandbox_new(&sv.loop, sv.backend, &sh->sb);
        if (r == 0)
                r = mig_session_new(&sv.loop, &mig_sim_ops, sh->sb, &sh->s);
        if (r < 0)
                return r;
        mig_sim_sandbox_bind(sh->sb, sh->s);
        ferry_bprintf(sh->sock, sizeof(sh->sock), "%s/%s.sock", sv.dir, name);
        ferry_bprintf(sh->handoff, sizeof(sh->handoff), "%s/%s.handoff", sv.dir, name);
        r = ttrpc_server_new(&sv.loop, NULL, &sh->srv);
        if (r == 0)
                r = mig_service_register(sh->srv, sh->s);
        if (r == 0)
                r = ttrpc_server_listen(sh->srv, sh->sock);
        if (r == 0)
                r = mig_handoff_listen(&sv.loop, sh->handoff, &sh->h);
        if (r == 0)
                mig_session_set_handoff(sh->s, sh->h);
        return r;
}

static void shim_closed(int r, void *ud)
{
}

static void shim_stop(struct shim *sh)
{
        mig_session_free(sh->s); /* ends its streams before their server goes */
        ttrpc_server_close(sh->srv);
        mig_handoff_close(sh->h);
        mig_sim_sandbox_close(sh->sb, shim_closed, NULL);
        unlink(sh->sock);
        unlink(sh->handoff);
}

static void on_stop(uv_async_t *a)
{
        shim_stop(&sv.src);
        shim_stop(&sv.dst);
        uv_close((uv_handle_t *)&sv.stop, NULL);
}

static void signal_ready(int err)
{
        pthread_mutex_lock(&sv.lock);
        sv.ready = 1;
        sv.err = err;
        pthread_cond_signal(&sv.cond);
        pthread_mutex_unlock(&sv.lock);
}

static void *server_thread(void *arg)
{
        char doc[1024];
        int r = hcs_backend_open(&sv.loop, "sim", "{}", &sv.backend);
        if (r == 0)
                r = shim_start(&sv.src, "src");
        if (r == 0)
                r = shim_start(&sv.dst, "dst");
        ferry_bprintf(doc, sizeof(doc),
                      "{\"VirtualMachine\":{\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":16},"
                      "\"Processor\":{\"Count\":2}},\"Devices\":{},"
                      "\"Sim\":{\"DirtyPagesPerSecond\":5000}}}");
        if (r == 0)
                r = mig_sim_sandbox_boot(sv.src.sb, "pod1", doc, booted, NULL);
        while (r == 0 && !sv.booted)
                uv_run(&sv.loop, UV_RUN_ONCE);
        if (r == 0)
                r = sv.boot_r;
        signal_ready(r);
        if (r < 0)
                return NULL;
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        return NULL;
}

static int setup(void **state)
{
        memset(&sv, 0, sizeof(sv));
        ferry_strscpy(sv.dir, "/tmp/ferry-migsvc-XXXXXX", sizeof(sv.dir));
        assert_non_null(mkdtemp(sv.dir));
        assert_int_equal(uv_loop_init(&sv.loop), 0);
        uv_async_init(&sv.loop, &sv.stop, on_stop);
        pthread_mutex_init(&sv.lock, NULL);
        pthread_cond_init(&sv.cond, NULL);
        pthread_create(&sv.thread, NULL, server_thread, NULL);
        pthread_mutex_lock(&sv.lock);
        while (!sv.ready)
                pthread_cond_wait(&sv.cond, &sv.lock);
        pthread_mutex_unlock(&sv.lock);
        assert_int_equal(sv.err, 0);
        return 0;
}

static int teardown(void **state)
{
        uv_async_send(&sv.stop);
        pthread_join(sv.thread, NULL);
        hcs_backend_free(sv.backend);
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        uv_loop_close(&sv.loop);
        rmdir(sv.dir);
        return 0;
}

/* ---- the client side --------------------------------------------------------------------- */

static uv_loop_t cloop;

struct call_res {
        bool done;
        enum ferry_code code;
        char msg[400];
        ProtobufCMessage *resp;
};

static void call_done(enum ferry_code code, const char *message, ProtobufCMessage *resp, void *ud)
{
        struct call_res *x = ud;
        x->done = true;
        x->code = code;
        ferry_strscpy(x->msg, message ? message : "", sizeof(x->msg));
        x->resp = resp;
}

static void crun_until(const bool *flag, uint64_t ms)
{
        assert_true(uvrun_until(&cloop, flag, ms));
}

/* A unary call; returns the code, the reply in *ret (may be NULL: freed). */
static enum ferry_code call(struct ttrpc_client *c, const char *method, const void *req,
                            const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret)
{
        struct call_res x = {0};
        assert_int_equal(
            ttrpc_client_call(c, "Migration", method, req, resp_desc, NULL, call_done, &x), 0);
        crun_until(&x.done, 20000);
        if (x.code != FERRY_CODE_OK)
                print_message("%s: %s %s\n", method, ferry_code_name(x.code), x.msg);
        if (ret)
                *ret = x.resp;
        else if (x.resp)
                protobuf_c_message_free_unpacked(x.resp, NULL);
        return x.code;
}

struct stream_res {
        bool done;
        enum ferry_code code;
        unsigned n;
        unsigned phase[16];
        uint32_t last_id;
        bool ids_increase;
        bool blackout_details;
        bool start_time_set;
};

static void stream_msg(ProtobufCMessage *msg, void *ud)
{
        struct stream_res *x = ud;
        NotificationsResponse *r = (NotificationsResponse *)msg;
        x->ids_increase = x->n == 0 || (x->ids_increase && r->message_id > x->last_id);
        x->last_id = r->message_id;
        x->n++;
        if (r->notification && r->notification->phase < 16)
                x->phase[r->notification->phase]++;
        if (r->notification &&
            r->notification->phase_details_case == NOTIFICATION__PHASE_DETAILS_BLACKOUT_EXITED)
                x->blackout_details = true;
        if (r->start_time && r->start_time->seconds > 0)
                x->start_time_set = true;
        protobuf_c_message_free_unpacked(msg, NULL);
}

static void stream_done(enum ferry_code code, const char *message, ProtobufCMessage *resp, void *ud)
{
        struct stream_res *x = ud;
        x->done = true;
        x->code = code;
}

static void subscribe(struct ttrpc_client *c, struct stream_res *x)
{
        NotificationsRequest req = NOTIFICATIONS_REQUEST__INIT;
        req.session_id = SESS;
        assert_int_equal(ttrpc_client_stream(c, "Migration", "Notifications", &req.base,
                                             &notifications_response__descriptor, NULL, stream_msg,
                                             stream_done, x),
                         0);
}

static enum ferry_code socket_call(struct ttrpc_client *c, const char *info)
{
        CreateDuplicateSocketRequest req = CREATE_DUPLICATE_SOCKET_REQUEST__INIT;
        req.session_id = SESS;
        req.protocol_info.data = (uint8_t *)info;
        req.protocol_info.len = strlen(info);
        return call(c, "CreateDuplicateSocket", &req, &create_duplicate_socket_response__descriptor,
                    NULL);
}

static enum ferry_code finalize(struct ttrpc_client *c, FinalizeAction action)
{
        FinalizeSandboxRequest req = FINALIZE_SANDBOX_REQUEST__INIT;
        req.session_id = SESS;
        req.action = action;
        return call(c, "FinalizeSandbox", &req, &finalize_sandbox_response__descriptor, NULL);
}

static enum ferry_code session_call(struct ttrpc_client *c, const char *method, const char *sid)
{
        CancelRequest req = CANCEL_REQUEST__INIT; /* Cancel and Cleanup share the shape */
        req.session_id = (char *)sid;
        return call(c, method, &req, &cancel_response__descriptor, NULL);
}

static int vm_state(struct mig_sim_sandbox *sb)
{
        struct sim_vm *vm = hcs_system_backend_vm(mig_sim_sandbox_system(sb));
        pthread_mutex_lock(&vm->lock);
        int st = vm->state;
        pthread_mutex_unlock(&vm->lock);
        return st;
}

static void test_migrate_over_ttrpc(void **state)
{
        struct ttrpc_client *cs = NULL, *cd = NULL;
        assert_int_equal(uv_loop_init(&cloop), 0);
        assert_int_equal(ttrpc_client_connect(&cloop, sv.src.sock, NULL, &cs), 0);
        assert_int_equal(ttrpc_client_connect(&cloop, sv.dst.sock, NULL, &cd), 0);

        /* source: prepare and export */
        MemoryTransferThrottleParams tp = MEMORY_TRANSFER_THROTTLE_PARAMS__INIT;
        tp.maximum_number_of_brownout_transfer_passes = 8;
        InitializeOptions io = INITIALIZE_OPTIONS__INIT;
        io.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_UNSPECIFIED;
        PrepareAndExportSandboxRequest pe = PREPARE_AND_EXPORT_SANDBOX_REQUEST__INIT;
        pe.session_id = SESS;
        pe.init_options = &io;
        assert_int_equal(call(cs, "PrepareAndExportSandbox", &pe,
                              &prepare_and_export_sandbox_response__descriptor, NULL),
                         FERRY_CODE_INVALID_ARGUMENT); /* transport must be TCP */
        io.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        io.memory_transfer_throttle_params = &tp;
        ProtobufCMessage *m = NULL;
        assert_int_equal(call(cs, "PrepareAndExportSandbox", &pe,
                              &prepare_and_export_sandbox_response__descriptor, &m),
                         FERRY_CODE_OK);
        PrepareAndExportSandboxResponse *exp = (PrepareAndExportSandboxResponse *)m;
        assert_non_null(exp->config);
        assert_string_equal(exp->config->type_url, MIG_SNAPSHOT_TYPE_URL);
        assert_int_equal(call(cs, "PrepareAndExportSandbox", &pe,
                              &prepare_and_export_sandbox_response__descriptor, NULL),
                         FERRY_CODE_FAILED_PRECONDITION); /* one session at a time */
        assert_int_equal(session_call(cs, "Cancel", "other"), FERRY_CODE_INVALID_ARGUMENT);

        /* destination: import and prepare */
        ImportSandboxRequest im = IMPORT_SANDBOX_REQUEST__INIT;
        im.session_id = SESS;
        im.sandbox_id = "pod1-dst";
        im.config = exp->config;
        assert_int_equal(call(cd, "ImportSandbox", &im, &import_sandbox_response__descriptor, NULL),
                         FERRY_CODE_OK);
        assert_int_equal(call(cd, "ImportSandbox", &im, &import_sandbox_response__descriptor, NULL),
                         FERRY_CODE_FAILED_PRECONDITION);
        protobuf_c_message_free_unpacked(m, NULL);
        PrepareSandboxRequest ps = PREPARE_SANDBOX_REQUEST__INIT;
        ps.session_id = SESS;
        ps.init_options = &io;
        assert_int_equal(
            call(cd, "PrepareSandbox", &ps, &prepare_sandbox_response__descriptor, NULL),
            FERRY_CODE_OK);

        /* both: notifications, the transport, transfer */
        struct stream_res ns = {0}, nd = {0};
        subscribe(cs, &ns);
        subscribe(cd, &nd);
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        char token[MIG_TOKEN_LEN + 1], info[96];
        assert_int_equal(mig_token_new(token), 0);
        assert_int_equal(mig_handoff_send(sv.src.handoff, fds[0], token, 5000), 0);
        close(fds[0]);
        assert_int_equal(socket_call(cs, "bogus"), FERRY_CODE_INVALID_ARGUMENT);
        ferry_bprintf(info, sizeof(info), "ferry-socket-v1 token=%s", token);
        assert_int_equal(socket_call(cs, info), FERRY_CODE_OK);
        assert_int_equal(socket_call(cs, info), FERRY_CODE_ALREADY_EXISTS);
        if (pidfd_getfd_works()) {
                ferry_bprintf(info, sizeof(info), "ferry-socket-v1 pid=%d fd=%d", (int)getpid(),
                              fds[1]);
        } else {
                /* no pidfd_getfd here (valgrind): the destination takes the handoff too */
                assert_int_equal(mig_token_new(token), 0);
                assert_int_equal(mig_handoff_send(sv.dst.handoff, fds[1], token, 5000), 0);
                ferry_bprintf(info, sizeof(info), "ferry-socket-v1 token=%s", token);
        }
        assert_int_equal(socket_call(cd, info), FERRY_CODE_OK);
        close(fds[1]);
        ProtobufDuration timeout = PROTOBUF_DURATION__INIT;
        timeout.seconds = 30;
        TransferSandboxRequest tr = TRANSFER_SANDBOX_REQUEST__INIT;
        tr.session_id = SESS;
        tr.timeout = &timeout;
        assert_int_equal(
            call(cs, "TransferSandbox", &tr, &transfer_sandbox_response__descriptor, NULL),
            FERRY_CODE_OK);
        assert_int_equal(
            call(cd, "TransferSandbox", &tr, &transfer_sandbox_response__descriptor, NULL),
            FERRY_CODE_OK);

        /* the source reports DONE when the destination acknowledged the image */
        uint64_t deadline = ferry_now_us() + 20 * 1000 * 1000;
        while (ns.phase[MIG_PHASE_DONE] == 0 && ns.phase[MIG_PHASE_FAILED] == 0 &&
               ferry_now_us() < deadline)
                uvrun_for_ms(&cloop, 5);
        assert_int_equal(ns.phase[MIG_PHASE_FAILED], 0);
        assert_int_equal(ns.phase[MIG_PHASE_DONE], 1);
        assert_true(ns.phase[MIG_PHASE_TRANSFER_IN_PROGRESS] >= 1);
        assert_int_equal(session_call(cs, "Cleanup", SESS), FERRY_CODE_FAILED_PRECONDITION);
        FinalizeSandboxRequest bad = FINALIZE_SANDBOX_REQUEST__INIT;
        bad.session_id = SESS;
        assert_int_equal(
            call(cs, "FinalizeSandbox", &bad, &finalize_sandbox_response__descriptor, NULL),
            FERRY_CODE_INVALID_ARGUMENT);

        /* finalize: the source stops, the destination runs (it may still be finishing) */
        assert_int_equal(finalize(cs, FINALIZE_ACTION__FINALIZE_ACTION_STOP), FERRY_CODE_OK);
        enum ferry_code code;
        deadline = ferry_now_us() + 5 * 1000 * 1000;
        while ((code = finalize(cd, FINALIZE_ACTION__FINALIZE_ACTION_RESUME)) ==
                   FERRY_CODE_FAILED_PRECONDITION &&
               ferry_now_us() < deadline)
                usleep(2000);
        assert_int_equal(code, FERRY_CODE_OK);
        assert_int_equal(vm_state(sv.src.sb), SIM_STOPPED);
        assert_int_equal(vm_state(sv.dst.sb), SIM_RUNNING);

        /* cleanup ends both streams normally */
        assert_int_equal(session_call(cs, "Cleanup", SESS), FERRY_CODE_OK);
        assert_int_equal(session_call(cd, "Cleanup", SESS), FERRY_CODE_OK);
        crun_until(&ns.done, 5000);
        crun_until(&nd.done, 5000);
        assert_int_equal(ns.code, FERRY_CODE_OK);
        assert_int_equal(nd.code, FERRY_CODE_OK);
        assert_true(ns.ids_increase && nd.ids_increase);
        assert_true(ns.start_time_set);
        assert_true(nd.blackout_details);
        assert_int_equal(nd.phase[MIG_PHASE_DONE], 1);

        /* idle again: notifications refused, cleanup with any id fine */
        struct stream_res late = {0};
        subscribe(cs, &late);
        crun_until(&late.done, 5000);
        assert_int_equal(late.code, FERRY_CODE_FAILED_PRECONDITION); /* no active session */
        assert_int_equal(session_call(cs, "Cleanup", "whatever"), FERRY_CODE_OK);

        ttrpc_client_close(cs);
        ttrpc_client_close(cd);
        uv_run(&cloop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&cloop), 0);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN); /* a peer that goes away must not kill the test */
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_migrate_over_ttrpc, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
