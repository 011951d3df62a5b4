/* SPDX-License-Identifier: MIT */
/* The migration session controller end to end in one process: a source and a destination
 * session, each driving a sim VM through mig_sim_ops, a socketpair as the transport, and real
 * memory transfers. The reference's scenarios (migration_service.md §E): the happy path
 * (source stopped, destination running, images equal), cancel in every state on both sides,
 * wrong session ids rejected with nothing changed, transfer before the socket, late transfer
 * results after cancel and cleanup (§F.1, §F.2), finalize retries reconciled with the VM,
 * cleanup rules, socket adoption (pidfd_getfd, handoff token, not connected, second socket),
 * notifications (replay, failure replay §F.5, drops). Every failed migration leaves the source
 * running. */
#include "harness.h"
#include "pidfd_probe.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migration.pb-c.h"
#include "migration/options.h"
#include "migration/socket.h"

/* A busy workload with no dirty threshold always needs a second pass, and a stall on that pass
 * keeps the transfer in flight long enough to land a cancel in it. */
#define SLOW_OPTS "{\"Sim\":{\"DirtyPageThreshold\":0}}"

static uv_loop_t *loop;
static struct hcs_backend *backend;
static struct mig_sim_sandbox *src_sb, *dst_sb;
static struct mig_session *src, *dst;
static struct notes src_notes, dst_notes;

#define run_until(flag, ms) run_until_at(loop, flag, ms, __FILE__, __LINE__)

/* cmocka lacks a file/line fail with a message: */
#define _fail_msg(file, line, ...)                                                                 \
        do {                                                                                       \
                print_error(__VA_ARGS__);                                                          \
                _fail(file, line);                                                                 \
        } while (0)

static void wait_state_at(struct mig_session *s, unsigned state, uint64_t ms, const char *file,
                          int line)
{
        uint64_t deadline = ferry_now_us() + ms * 1000;
        while (mig_session_state(s) != state && ferry_now_us() < deadline)
                uvrun_for_ms(loop, 2);
        if (mig_session_state(s) != state)
                _fail_msg(file, line, "session in %s, expected %s", mig_session_state_name(s),
                          migration_machine.state_names[state]);
}
#define wait_state(s, st, ms) wait_state_at(s, st, ms, __FILE__, __LINE__)

#define assert_state(s, st)                                                                        \
        assert_string_equal(mig_session_state_name(s), migration_machine.state_names[st])

/* The sim sandbox only records its own teardowns; these ops also report the source VM
 * terminated once the test made it exit behind the session's back. */
static struct migration_sandbox_ops test_ops;
static bool src_vm_exited;

static enum mig_vm_state test_vm_state(void *sb)
{
        if (src_vm_exited && sb == src_sb)
                return MIG_VM_TERMINATED;
        return mig_sim_ops.vm_state(sb);
}

static int setup(void **state)
{
        test_ops = mig_sim_ops;
        test_ops.vm_state = test_vm_state;
        src_vm_exited = false;
        hcs_fault_reset();
        loop = calloc(1, sizeof(*loop));
        assert_int_equal(uv_loop_init(loop), 0);
        assert_int_equal(hcs_backend_open(loop, "sim", "{}", &backend), 0);
        assert_int_equal(mig_sim_sandbox_new(loop, backend, &src_sb), 0);
        assert_int_equal(mig_sim_sandbox_new(loop, backend, &dst_sb), 0);
        assert_int_equal(mig_session_new(loop, &test_ops, src_sb, &src), 0);
        assert_int_equal(mig_session_new(loop, &test_ops, dst_sb, &dst), 0);
        mig_sim_sandbox_bind(src_sb, src);
        mig_sim_sandbox_bind(dst_sb, dst);
        char doc[1024];
        make_doc(doc, sizeof(doc), MB, 5000);
        struct res x = {0};
        assert_int_equal(mig_sim_sandbox_boot(src_sb, "pod1", doc, res_cb, &x), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        memset(&src_notes, 0, sizeof(src_notes));
        memset(&dst_notes, 0, sizeof(dst_notes));
        return 0;
}

static int teardown(void **state)
{
        hcs_fault_reset();
        /* let any unwinding transfer finish before closing */
        uvrun_for_ms(loop, 5);
        assert_int_equal(mig_session_free(src), 0);
        assert_int_equal(mig_session_free(dst), 0);
        struct res a = {0}, b = {0};
        assert_int_equal(mig_sim_sandbox_close(src_sb, res_cb, &a), 0);
        assert_int_equal(mig_sim_sandbox_close(dst_sb, res_cb, &b), 0);
        run_until(&a.done, 5000);
        run_until(&b.done, 5000);
        assert_null(hcs_backend_free(backend));
        uv_run(loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(loop), 0);
        free(loop);
        return 0;
}

/* ---- steps -------------------------------------------------------------------------------- */

static int prepare_source(const char *opts)
{
        struct res x = {0};
        int r = mig_session_prepare_source(src, SESS, opts, res_cb, &x);
        if (r < 0)
                return r;
        run_until(&x.done, 5000);
        return x.r;
}

static struct mig_subscriber *subscribe(struct mig_session *s, struct notes *n)
{
        struct mig_subscriber *sub = NULL;
        assert_int_equal(mig_session_subscribe(s, SESS, &notes_ops, n, &sub), 0);
        return sub;
}

/* Source prepared and exported, destination imported and prepared; both subscribed. */
static void to_prepared(const char *opts)
{
        assert_int_equal(prepare_source(opts), 0);
        assert_state(src, MIGRATION_S_SOURCE_PREPARED);
        subscribe(src, &src_notes);
        _cleanup_free_ uint8_t *snap = NULL;
        size_t len = 0;
        assert_int_equal(mig_session_export(src, SESS, &snap, &len), 0);
        assert_state(src, MIGRATION_S_SOURCE_EXPORTED);
        char msg[128];
        assert_int_equal(mig_session_ensure_idle(src, msg, sizeof(msg)), -EBUSY);
        assert_string_equal(msg, "migration session is in progress (state: source_exported)");
        assert_int_equal(mig_session_ensure_idle(dst, msg, sizeof(msg)), 0);
        assert_int_equal(
            mig_session_import(dst, SESS, "pod1-dst", MIG_SNAPSHOT_TYPE_URL, snap, len), 0);
        assert_state(dst, MIGRATION_S_DESTINATION_IMPORTED);
        subscribe(dst, &dst_notes);
        struct res x = {0};
        assert_int_equal(mig_session_prepare_destination(dst, SESS, NULL, res_cb, &x), 0);
        assert_state(dst, MIGRATION_S_DESTINATION_PREPARING);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_state(dst, MIGRATION_S_DESTINATION_PREPARED);
}

static void adopt_pair(void)
{
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(mig_session_adopt_fd(src, SESS, fds[0]), 0);
        assert_int_equal(mig_session_adopt_fd(dst, SESS, fds[1]), 0);
        assert_state(src, MIGRATION_S_SOCKET_READY);
        assert_state(dst, MIGRATION_S_SOCKET_READY);
}

static void transfer_both(void)
{
        assert_int_equal(mig_session_transfer(src, SESS, 0), 0);
        assert_int_equal(mig_session_transfer(dst, SESS, 0), 0);
        assert_state(src, MIGRATION_S_TRANSFERRING);
        assert_state(dst, MIGRATION_S_TRANSFERRING);
}

static int finalize(struct mig_session *s, int action)
{
        struct res x = {0};
        int r = mig_session_finalize(s, SESS, action, res_cb, &x);
        if (r < 0)
                return r;
        run_until(&x.done, 5000);
        return x.r;
}

static int cancel(struct mig_session *s)
{
        struct res x = {0};
        int r = mig_session_cancel(s, SESS, res_cb, &x);
        if (r < 0)
                return r;
        run_until(&x.done, 5000);
        return x.r;
}

/* The source rolls back: finalize(resume) → finalized, cleanup → idle, VM running. */
static void source_rolls_back(void)
{
        assert_int_equal(finalize(src, MIG_FINALIZE_RESUME), 0);
        assert_state(src, MIGRATION_S_FINALIZED);
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_state(src, MIGRATION_S_IDLE);
        assert_vm_runs(loop, mig_sim_sandbox_system(src_sb));
}

/* ---- the happy path ---------------------------------------------------------------------- */

static void test_happy_path(void **state)
{
        to_prepared(NULL);
        /* source: socket then transfer; destination: transfer first, then the socket */
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(mig_session_adopt_fd(src, SESS, fds[0]), 0);
        assert_state(src, MIGRATION_S_SOCKET_READY);
        assert_int_equal(mig_session_transfer(dst, SESS, 0), 0);
        assert_state(dst, MIGRATION_S_SOCKET_WAITING);
        assert_int_equal(mig_session_transfer(dst, SESS, 0), 0); /* deduplicated */
        assert_int_equal(mig_session_transfer(src, SESS, 0), 0);
        assert_state(src, MIGRATION_S_TRANSFERRING);
        assert_int_equal(mig_session_adopt_fd(dst, SESS, fds[1]), 0);
        assert_state(dst, MIGRATION_S_TRANSFERRING);
        assert_int_equal(mig_session_transfer(src, SESS, 0), 0); /* deduplicated */
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        /* the source is in blackout and the destination not yet running: images are final */
        assert_true(image_hash(mig_sim_sandbox_system(src_sb)) ==
                    image_hash(mig_sim_sandbox_system(dst_sb)));
        assert_int_equal(mig_session_transfer(src, SESS, 0), 0); /* deduplicated */
        /* a second socket is refused once one was adopted */
        int extra[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, extra), 0);
        assert_int_equal(mig_session_adopt_fd(src, SESS, extra[0]), -EEXIST);
        close(extra[1]);

        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), 0);
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), 0);
        assert_state(src, MIGRATION_S_FINALIZED);
        assert_state(dst, MIGRATION_S_FINALIZED);
        /* idempotent repeats; cancel after finalized is a no-op (§F.3) */
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), 0);
        assert_int_equal(cancel(src), 0);
        assert_state(src, MIGRATION_S_FINALIZED);
        struct props_res p = vm_props(loop, mig_sim_sandbox_system(src_sb));
        assert_string_equal(p.state, "Stopped");
        assert_vm_runs(loop, mig_sim_sandbox_system(dst_sb));

        /* notifications: ids increase, the phases arrived, the blackout has its details */
        assert_true(src_notes.ids_increase && dst_notes.ids_increase);
        assert_int_equal(src_notes.phase[MIG_PHASE_SETUP_DONE], 1);
        assert_true(src_notes.phase[MIG_PHASE_TRANSFER_IN_PROGRESS] >= 2);
        assert_int_equal(src_notes.phase[MIG_PHASE_BLACKOUT_STARTED], 1);
        assert_int_equal(src_notes.phase[MIG_PHASE_DONE], 1);
        assert_int_equal(src_notes.phase[MIG_PHASE_FAILED], 0);
        assert_true(src_notes.bytes >= (uint64_t)MB << 20);
        assert_int_equal(dst_notes.phase[MIG_PHASE_DONE], 1);
        assert_true(dst_notes.blackout_details);
        assert_int_equal(dst_notes.phase[MIG_PHASE_FAILED], 0);

        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
        assert_state(src, MIGRATION_S_IDLE);
        assert_state(dst, MIGRATION_S_IDLE);
        assert_true(src_notes.ended && dst_notes.ended);
        assert_string_equal(mig_session_id(src), "");
        assert_string_equal(mig_session_sandbox_id(dst), "");
        /* cleanup in idle succeeds with any id */
        assert_int_equal(mig_session_cleanup(src, "anything"), 0);
}

/* ---- session ids -------------------------------------------------------------------------- */

static void test_wrong_session_id(void **state)
{
        struct res x = {0};
        uint8_t *snap = NULL;
        size_t len = 0;
        /* idle: the active id is "", so a non-empty one mismatches (reference) */
        assert_int_equal(mig_session_export(src, SESS, &snap, &len), -EINVAL);
        assert_int_equal(mig_session_transfer(src, SESS, 0), -EINVAL);
        assert_int_equal(mig_session_transfer(src, "", 0), -EBUSY);
        struct mig_subscriber *sub = NULL;
        assert_int_equal(mig_session_subscribe(src, "", &notes_ops, &src_notes, &sub), -EBUSY);
        assert_int_equal(mig_session_prepare_source(src, "", NULL, res_cb, &x), -EINVAL);
        assert_state(src, MIGRATION_S_IDLE);

        to_prepared(NULL);
        unsigned s0 = mig_session_state(src), d0 = mig_session_state(dst);
        assert_int_equal(mig_session_export(src, "other", &snap, &len), -EINVAL);
        assert_null(snap);
        assert_int_equal(mig_session_transfer(src, "other", 0), -EINVAL);
        assert_int_equal(mig_session_transfer(dst, "other", 0), -EINVAL);
        assert_int_equal(mig_session_cancel(src, "other", res_cb, &x), -EINVAL);
        assert_int_equal(mig_session_finalize(src, "other", MIG_FINALIZE_RESUME, res_cb, &x),
                         -EINVAL);
        assert_int_equal(mig_session_finalize(src, SESS, 0, res_cb, &x), -EINVAL);
        assert_int_equal(mig_session_finalize(src, SESS, 99, res_cb, &x), -EINVAL);
        assert_int_equal(mig_session_cleanup(src, "other"), -EINVAL);
        assert_int_equal(mig_session_subscribe(src, "other", &notes_ops, &src_notes, &sub),
                         -EINVAL);
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(mig_session_adopt_fd(src, "other", fds[0]), -EINVAL);
        assert_int_equal(mig_session_adopt_fd(dst, "other", fds[1]), -EINVAL);
        /* a second session while one is active */
        assert_int_equal(mig_session_prepare_source(src, "sess-2", NULL, res_cb, &x), -EBUSY);
        assert_int_equal(
            mig_session_import(dst, "sess-2", "x", MIG_SNAPSHOT_TYPE_URL, (const uint8_t *)"", 0),
            -EBUSY);
        assert_false(x.done);
        assert_int_equal(mig_session_state(src), s0);
        assert_int_equal(mig_session_state(dst), d0);
        assert_string_equal(mig_session_id(src), SESS);
        assert_int_equal(src_notes.phase[MIG_PHASE_FAILED], 0);
        /* wind down */
        assert_int_equal(cancel(src), 0);
        assert_int_equal(cancel(dst), 0);
        source_rolls_back();
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

static void test_session_number(void **state)
{
        const char *lower = "6f1e0c7a-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
        const char *upper = "6F1E0C7A-2B3D-4E5F-8A9B-0C1D2E3F4A5B";
        assert_int_equal(mig_session_number(lower), mig_session_number(upper));
        assert_int_not_equal(mig_session_number("abc"), mig_session_number("ABC"));
        /* SHA-256("abc") = ba7816bf...: the first four bytes big-endian */
        assert_int_equal(mig_session_number("abc"), 0xba7816bfu);
}

/* ---- socket wait -------------------------------------------------------------------------- */

static void test_transfer_before_socket_waits(void **state)
{
        to_prepared(NULL);
        assert_int_equal(mig_session_transfer(src, SESS, 5ULL * 1000 * 1000), 0);
        assert_int_equal(mig_session_transfer(dst, SESS, 5ULL * 1000 * 1000), 0);
        uvrun_for_ms(loop, 30);
        assert_state(src, MIGRATION_S_SOCKET_WAITING);
        assert_state(dst, MIGRATION_S_SOCKET_WAITING);
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(mig_session_adopt_fd(src, SESS, fds[0]), 0);
        assert_int_equal(mig_session_adopt_fd(dst, SESS, fds[1]), 0);
        assert_state(src, MIGRATION_S_TRANSFERRING);
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        /* the source rolls back even after a good transfer; the destination is discarded */
        assert_int_equal(finalize(dst, MIG_FINALIZE_STOP), 0);
        source_rolls_back();
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

static void test_socket_timeout_fails_and_replays(void **state)
{
        to_prepared(NULL);
        assert_int_equal(mig_session_transfer(src, SESS, 20 * 1000), 0);
        wait_state(src, MIGRATION_S_FAILED, 2000);
        assert_int_equal(src_notes.failed_state[MIG_PHASE_STATE_SOURCE_FAILED], 1);
        /* a subscriber arriving later gets the failure replayed (§F.5) */
        struct notes late = {0};
        subscribe(src, &late);
        assert_int_equal(late.n, 1);
        assert_int_equal(late.failed_state[MIG_PHASE_STATE_SOURCE_FAILED], 1);
        assert_int_equal(late.last_id, src_notes.last_id);
        /* failed: transfer and cleanup refused; the source must finalize first */
        assert_int_equal(mig_session_transfer(src, SESS, 0), -EBUSY);
        assert_int_equal(mig_session_cleanup(src, SESS), -EBUSY);
        source_rolls_back();
        assert_true(late.ended);
        assert_int_equal(cancel(dst), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

/* ---- cancel in every state ---------------------------------------------------------------- */

/* Brings both sides to the requested source state (and the matching destination one). */
static void drive_to(unsigned target)
{
        if (target == MIGRATION_S_SOURCE_PREPARED) {
                assert_int_equal(prepare_source(NULL), 0);
                return;
        }
        to_prepared(SLOW_OPTS);
        if (target == MIGRATION_S_SOURCE_EXPORTED || target == MIGRATION_S_DESTINATION_PREPARED)
                return;
        if (target == MIGRATION_S_SOCKET_WAITING) {
                assert_int_equal(mig_session_transfer(src, SESS, 0), 0);
                assert_int_equal(mig_session_transfer(dst, SESS, 0), 0);
                return;
        }
        adopt_pair();
        if (target == MIGRATION_S_SOCKET_READY)
                return;
        if (target == MIGRATION_S_TRANSFERRING) {
                assert_int_equal(hcs_fault_arm("transfer.pass",
                                               &(struct hcs_fault_spec){.nth = 0, .stall_ms = 1000}),
                                 0);
                transfer_both();
                while (src_notes.max_pass < 1)
                        uvrun_for_ms(loop, 2);
                return;
        }
        transfer_both();
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED, 20000);
}

static void cancel_source_in(unsigned st)
{
        drive_to(st);
        assert_state(src,
                     st == MIGRATION_S_DESTINATION_PREPARED ? MIGRATION_S_SOURCE_EXPORTED : st);
        int r = cancel(src);
        /* after a completed transfer the host has nothing to abort: cancelled, error shown */
        assert_int_equal(r, st == MIGRATION_S_TRANSFER_COMPLETED ? -EALREADY : 0);
        if (r == -EALREADY)
                assert_non_null(strstr(mig_session_error(src), "nothing left to abort"));
        assert_state(src, MIGRATION_S_CANCELLED);
        assert_int_equal(cancel(src), 0); /* idempotent */
        /* a cancelled source must finalize before cleanup */
        assert_int_equal(mig_session_cleanup(src, SESS), -EBUSY);
        assert_int_equal(mig_session_transfer(src, SESS, 0), -EBUSY);
        /* the late transfer result never turns cancelled into failed (§F.1, §F.2) */
        uvrun_for_ms(loop, st == MIGRATION_S_TRANSFERRING ? 500 : 10);
        assert_state(src, MIGRATION_S_CANCELLED);
        assert_int_equal(src_notes.failed_state[MIG_PHASE_STATE_SOURCE_FAILED], 0);
        source_rolls_back();
        /* the destination side of the same session: cancel, then clean up directly */
        if (mig_session_state(dst) != MIGRATION_S_IDLE) {
                cancel(dst);
                if (mig_session_state(dst) == MIGRATION_S_CANCELLED) {
                        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
                } else {
                        assert_int_equal(finalize(dst, MIG_FINALIZE_STOP), 0);
                        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
                }
        }
        uvrun_for_ms(loop, 5);
        assert_state(dst, MIGRATION_S_IDLE);
}

static void test_cancel_source_prepared(void **state)
{
        cancel_source_in(MIGRATION_S_SOURCE_PREPARED);
}

static void test_cancel_source_exported(void **state)
{
        cancel_source_in(MIGRATION_S_SOURCE_EXPORTED);
}

static void test_cancel_source_socket_waiting(void **state)
{
        cancel_source_in(MIGRATION_S_SOCKET_WAITING);
}

static void test_cancel_source_socket_ready(void **state)
{
        cancel_source_in(MIGRATION_S_SOCKET_READY);
}

static void test_cancel_source_transferring(void **state)
{
        cancel_source_in(MIGRATION_S_TRANSFERRING);
}

static void test_cancel_source_transfer_completed(void **state)
{
        cancel_source_in(MIGRATION_S_TRANSFER_COMPLETED);
}

static void test_cancel_source_failed(void **state)
{
        to_prepared(NULL);
        assert_int_equal(mig_session_transfer(src, SESS, 10 * 1000), 0);
        wait_state(src, MIGRATION_S_FAILED, 2000);
        assert_int_equal(cancel(src), 0);
        assert_state(src, MIGRATION_S_CANCELLED);
        source_rolls_back();
        assert_int_equal(cancel(dst), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

/* Destination: cancel in each of its states; it may clean up at once; the source (rolled
 * back) keeps running every time. */
static void cancel_destination_in(unsigned st)
{
        if (st == MIGRATION_S_DESTINATION_IMPORTED) {
                assert_int_equal(prepare_source(NULL), 0);
                _cleanup_free_ uint8_t *snap = NULL;
                size_t len = 0;
                assert_int_equal(mig_session_export(src, SESS, &snap, &len), 0);
                assert_int_equal(
                    mig_session_import(dst, SESS, "pod1-dst", MIG_SNAPSHOT_TYPE_URL, snap, len), 0);
                subscribe(src, &src_notes);
        } else {
                drive_to(st);
        }
        unsigned want =
            st == MIGRATION_S_DESTINATION_PREPARED ? MIGRATION_S_DESTINATION_PREPARED : st;
        assert_state(dst, want);
        int r = cancel(dst);
        assert_int_equal(r, st == MIGRATION_S_TRANSFER_COMPLETED ? -EALREADY : 0);
        if (r == -EALREADY)
                assert_non_null(strstr(mig_session_error(dst), "nothing left to abort"));
        assert_state(dst, MIGRATION_S_CANCELLED);
        assert_int_equal(finalize(dst, MIG_FINALIZE_STOP), 0); /* a no-op when cancelled */
        assert_state(dst, MIGRATION_S_CANCELLED);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
        assert_state(dst, MIGRATION_S_IDLE);
        /* a transfer result arriving after cleanup never touches the idle session (§F.1) */
        uvrun_for_ms(loop, st == MIGRATION_S_TRANSFERRING ? 500 : 10);
        assert_state(dst, MIGRATION_S_IDLE);
        assert_int_equal(dst_notes.failed_state[MIG_PHASE_STATE_DESTINATION_FAILED], 0);
        /* the source learns through its own transfer (failed) or is cancelled, then rolls back */
        if (mig_session_state(src) != MIGRATION_S_FAILED &&
            mig_session_state(src) != MIGRATION_S_TRANSFER_COMPLETED)
                cancel(src);
        source_rolls_back();
}

static void test_cancel_destination_imported(void **state)
{
        cancel_destination_in(MIGRATION_S_DESTINATION_IMPORTED);
}

static void test_cancel_destination_prepared(void **state)
{
        cancel_destination_in(MIGRATION_S_DESTINATION_PREPARED);
}

static void test_cancel_destination_socket_waiting(void **state)
{
        cancel_destination_in(MIGRATION_S_SOCKET_WAITING);
}

static void test_cancel_destination_socket_ready(void **state)
{
        cancel_destination_in(MIGRATION_S_SOCKET_READY);
}

static void test_cancel_destination_transferring(void **state)
{
        cancel_destination_in(MIGRATION_S_TRANSFERRING);
        /* the source's transfer failed when the destination went away; it runs again */
        assert_int_equal(mig_session_state(src), MIGRATION_S_IDLE);
}

static void test_cancel_destination_transfer_completed(void **state)
{
        cancel_destination_in(MIGRATION_S_TRANSFER_COMPLETED);
}

static void test_cancel_idle_is_noop(void **state)
{
        struct res x = {0};
        /* idle: the active id is "": cancel and finalize with it are no-ops, others mismatch */
        assert_int_equal(mig_session_cancel(src, "", res_cb, &x), 0);
        assert_true(x.done && x.r == 0);
        assert_state(src, MIGRATION_S_IDLE);
        x = (struct res){0};
        assert_int_equal(mig_session_finalize(src, "", MIG_FINALIZE_RESUME, res_cb, &x), 0);
        assert_true(x.done && x.r == 0);
        assert_state(src, MIGRATION_S_IDLE);
        assert_int_equal(cancel(src), -EINVAL);
        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), -EINVAL);
        assert_state(src, MIGRATION_S_IDLE);
}

/* ---- failures ----------------------------------------------------------------------------- */

static void test_failed_migration_leaves_source_running(void **state)
{
        to_prepared(NULL);
        assert_int_equal(hcs_fault_arm("transfer.corrupt_checksum",
                                       &(struct hcs_fault_spec){.nth = 1, .error = -EBADMSG}),
                         0);
        adopt_pair();
        transfer_both();
        wait_state(src, MIGRATION_S_FAILED, 20000);
        wait_state(dst, MIGRATION_S_FAILED, 20000);
        /* PHASE_FAILED reached subscribers on both sides */
        assert_true(src_notes.phase[MIG_PHASE_FAILED] >= 1);
        assert_true(dst_notes.phase[MIG_PHASE_FAILED] >= 1);
        assert_int_equal(mig_session_cleanup(src, SESS), -EBUSY);
        source_rolls_back();
        assert_int_equal(finalize(dst, MIG_FINALIZE_STOP), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

static void test_prepare_failures(void **state)
{
        /* host initialize fails: retriable, nothing recorded */
        assert_int_equal(
            hcs_fault_arm("hcs.lm_initialize", &(struct hcs_fault_spec){.nth = 1, .error = -EIO}),
            0);
        assert_int_equal(prepare_source(NULL), -EIO);
        assert_state(src, MIGRATION_S_IDLE);
        assert_string_equal(mig_session_id(src), "");
        assert_int_equal(prepare_source(NULL), 0);
        assert_int_equal(prepare_source(NULL), -EBUSY); /* already prepared */
        _cleanup_free_ uint8_t *snap = NULL;
        size_t len = 0;
        assert_int_equal(mig_session_export(src, SESS, &snap, &len), 0);
        /* import checks: type URL, ids, bytes */
        assert_int_equal(mig_session_import(dst, SESS, "d", "type.ferry.dev/other", snap, len),
                         -EINVAL);
        assert_int_equal(mig_session_import(dst, SESS, "", MIG_SNAPSHOT_TYPE_URL, snap, len),
                         -EINVAL);
        assert_int_equal(
            mig_session_import(dst, SESS, "d", MIG_SNAPSHOT_TYPE_URL, (const uint8_t *)"\x08", 1),
            -EINVAL);
        assert_state(dst, MIGRATION_S_IDLE);
        /* the source VM exists: it cannot import */
        assert_int_equal(mig_session_cleanup(src, SESS), -EBUSY);
        assert_int_equal(
            mig_session_import(dst, SESS, "pod1-dst", MIG_SNAPSHOT_TYPE_URL, snap, len), 0);
        /* create fails: back to destination_imported, retriable */
        assert_int_equal(
            hcs_fault_arm("hcs.create", &(struct hcs_fault_spec){.nth = 1, .error = -ENOMEM}), 0);
        struct res x = {0};
        assert_int_equal(mig_session_prepare_destination(dst, SESS, NULL, res_cb, &x), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, -ENOMEM);
        assert_state(dst, MIGRATION_S_DESTINATION_IMPORTED);
        /* patch fails: past the point of no return */
        mig_sim_sandbox_fail_patch(dst_sb, -EACCES);
        x = (struct res){0};
        assert_int_equal(mig_session_prepare_destination(dst, SESS, NULL, res_cb, &x), 0);
        /* refused while in flight, and cancel asks to retry */
        assert_int_equal(mig_session_cancel(dst, SESS, res_cb, &x), -ENOTCONN);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, -EACCES);
        assert_state(dst, MIGRATION_S_FAILED);
        subscribe(dst, &dst_notes); /* the failure was recorded: replayed */
        assert_int_equal(dst_notes.failed_state[MIG_PHASE_STATE_DESTINATION_FAILED], 1);
        assert_int_equal(cancel(dst), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
        assert_int_equal(cancel(src), 0);
        source_rolls_back();
}

/* ---- finalize retries --------------------------------------------------------------------- */

static void test_finalize_retry(void **state)
{
        to_prepared(NULL);
        adopt_pair();
        transfer_both();
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        /* the host finalize fails: the state stays, a retry succeeds */
        assert_int_equal(
            hcs_fault_arm("hcs.finalize", &(struct hcs_fault_spec){.nth = 1, .error = -EIO}), 0);
        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), -EIO);
        assert_state(src, MIGRATION_S_TRANSFER_COMPLETED);
        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), 0);
        assert_state(src, MIGRATION_S_FINALIZED);
        /* the destination's host finalize succeeds but its resume step fails: a retry skips
         * the host finalize (vm_finalized) and only resumes */
        mig_sim_sandbox_fail_resume(dst_sb, -EPIPE);
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), -EPIPE);
        assert_state(dst, MIGRATION_S_TRANSFER_COMPLETED);
        unsigned calls = hcs_fault_calls("hcs.finalize");
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), 0);
        assert_int_equal(hcs_fault_calls("hcs.finalize"), calls); /* no second host finalize */
        assert_state(dst, MIGRATION_S_FINALIZED);
        assert_vm_runs(loop, mig_sim_sandbox_system(dst_sb));
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

static void test_stop_after_resume_terminates(void **state)
{
        to_prepared(NULL);
        adopt_pair();
        transfer_both();
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), 0);
        /* the destination resume-finalized in the host, then failed: a stop now terminates */
        mig_sim_sandbox_fail_resume(dst_sb, -EPIPE);
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), -EPIPE);
        assert_int_equal(finalize(dst, MIG_FINALIZE_STOP), 0);
        assert_state(dst, MIGRATION_S_FINALIZED);
        struct props_res p = vm_props(loop, mig_sim_sandbox_system(dst_sb));
        assert_string_equal(p.state, "Stopped");
        /* and a resume after that stop is refused (vm_terminated) — already finalized: no-op */
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), 0);
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

/* The source VM exits on its own mid-session, then the session is cancelled: the reference's
 * rollback (finalize resume) must wind the session down, not be refused forever. */
static void test_resume_after_vm_exit_finalizes(void **state)
{
        to_prepared(NULL);
        struct res hx = {0};
        assert_int_equal(hcs_terminate(mig_sim_sandbox_system(src_sb), res_cb, &hx), 0);
        run_until(&hx.done, 5000);
        assert_int_equal(hx.r, 0);
        src_vm_exited = true;
        cancel(src); /* nothing left to abort: the session is cancelled or failed */
        unsigned from = mig_session_state(src);
        assert_true(from == MIGRATION_S_CANCELLED || from == MIGRATION_S_FAILED);
        /* no resume is possible: not_found saying why, and the session is finalized */
        assert_int_equal(finalize(src, MIG_FINALIZE_RESUME), -ENOENT);
        assert_state(src, MIGRATION_S_FINALIZED);
        assert_non_null(strstr(mig_session_error(src), "the VM is terminated"));
        assert_null(strstr(mig_session_error(src), "by a stop finalize"));
        /* a client that retries the rollback is answered at once; then cleanup ends it */
        assert_int_equal(finalize(src, MIG_FINALIZE_RESUME), 0);
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_state(src, MIGRATION_S_IDLE);
        assert_int_equal(cancel(dst), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

/* ---- socket adoption ---------------------------------------------------------------------- */

static void test_socket_pidfd_and_token(void **state)
{
        to_prepared(NULL);
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        /* malformed references are refused before anything changes */
        assert_int_equal(mig_session_register_socket(src, SESS, "junk", 4), -EINVAL);
        assert_int_equal(mig_session_register_socket(src, SESS, "ferry-socket-v1 token=abc", 25),
                         -EINVAL);
        assert_state(src, MIGRATION_S_SOURCE_EXPORTED);
        /* pidfd_getfd: the source copies fds[0] out of this process */
        char info[96];
        ferry_bprintf(info, sizeof(info), "ferry-socket-v1 pid=%d fd=%d", (int)getpid(), fds[0]);
        if (!pidfd_getfd_works()) {
                /* no pidfd_getfd here (valgrind): a failure past the guards, which the
                 * spec declares past the point of no return, as the reference does */
                assert_int_equal(mig_session_register_socket(src, SESS, info, strlen(info)),
                                 -ENOSYS);
                assert_state(src, MIGRATION_S_FAILED);
                close(fds[0]);
                close(fds[1]);
                skip();
        }
        assert_int_equal(mig_session_register_socket(src, SESS, info, strlen(info)), 0);
        close(fds[0]);
        assert_state(src, MIGRATION_S_SOCKET_READY);
        assert_int_equal(mig_session_register_socket(src, SESS, info, strlen(info)), -EEXIST);
        /* handoff: the destination claims fds[1] by token */
        char dir[] = "/tmp/ferry-mig-XXXXXX", path[128];
        assert_non_null(mkdtemp(dir));
        ferry_bprintf(path, sizeof(path), "%s/handoff", dir);
        struct mig_handoff *h = NULL;
        assert_int_equal(mig_handoff_listen(loop, path, &h), 0);
        mig_session_set_handoff(dst, h);
        char token[MIG_TOKEN_LEN + 1];
        assert_int_equal(mig_token_new(token), 0);
        /* the blocking sender needs the loop to answer: send from a forked child */
        pid_t child = fork();
        if (child == 0)
                _exit(mig_handoff_send(path, fds[1], token, 5000) == 0 ? 0 : 1);
        close(fds[1]);
        while (mig_handoff_held(h) == 0)
                uvrun_for_ms(loop, 2);
        int status = 0;
        waitpid(child, &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ferry_bprintf(info, sizeof(info), "ferry-socket-v1 token=%s", token);
        assert_int_equal(mig_session_register_socket(dst, SESS, info, strlen(info)), 0);
        assert_state(dst, MIGRATION_S_SOCKET_READY);
        assert_int_equal(mig_handoff_held(h), 0);
        /* the adopted pair carries a real transfer */
        transfer_both();
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), 0);
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), 0);
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
        mig_session_set_handoff(dst, NULL);
        mig_handoff_close(h);
        unlink(path);
        rmdir(dir);
}

static void test_socket_not_connected_fails_session(void **state)
{
        to_prepared(NULL);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s >= 0);
        assert_int_equal(mig_session_adopt_fd(src, SESS, s), -EBUSY);
        assert_state(src, MIGRATION_S_FAILED); /* point of no return (reference) */
        int d = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_int_equal(mig_session_adopt_fd(dst, SESS, d), -EPROTOTYPE);
        assert_state(dst, MIGRATION_S_FAILED);
        /* an unknown token also fails it; here the destination is already failed */
        source_rolls_back();
        assert_int_equal(finalize(dst, MIG_FINALIZE_STOP), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

/* The handoff listener on its own: one fd per message, tokens one-time, malformed messages
 * and unknown tokens refused; an unknown token fails the session that names it. */
static int send_raw(const char *path, const void *buf, size_t len, int fd)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        ferry_strscpy(sa.sun_path, path, sizeof(sa.sun_path));
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -1;
        union {
                char b[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof(ctl));
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        if (fd >= 0) {
                msg.msg_control = ctl.b;
                msg.msg_controllen = sizeof(ctl.b);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        }
        ssize_t w = sendmsg(s, &msg, MSG_NOSIGNAL);
        return w == (ssize_t)len ? s : (close(s), -1);
}

/* Reads the shim's one-byte answer on s while running the loop: 0 stored, 1 refused. */
static int read_ack(int s)
{
        uint8_t ack = 0xff;
        for (int i = 0; i < 1000; i++) {
                uvrun_for_ms(loop, 1);
                if (recv(s, &ack, 1, MSG_DONTWAIT) == 1)
                        break;
        }
        close(s);
        return ack;
}

static void test_handoff_rules(void **state)
{
        char dir[] = "/tmp/ferry-mig-XXXXXX", path[128];
        assert_non_null(mkdtemp(dir));
        ferry_bprintf(path, sizeof(path), "%s/handoff", dir);
        struct mig_handoff *h = NULL;
        assert_int_equal(mig_handoff_listen(loop, path, &h), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        char token[MIG_TOKEN_LEN + 1], msg[64];
        assert_int_equal(mig_token_new(token), 0);
        ferry_bprintf(msg, sizeof(msg), "FERRYFD1%s", token);
        /* no fd, a wrong magic, a short token: refused, nothing held */
        assert_int_equal(read_ack(send_raw(path, msg, 40, -1)), 1);
        assert_int_equal(read_ack(send_raw(path, "FERRYFD2", 8, fds[0])), 1);
        char bad[64];
        ferry_bprintf(bad, sizeof(bad), "XERRYFD1%s", token);
        assert_int_equal(read_ack(send_raw(path, bad, 40, fds[0])), 1);
        assert_int_equal(mig_handoff_held(h), 0);
        /* good; the same token again is refused while held */
        assert_int_equal(read_ack(send_raw(path, msg, 40, fds[0])), 0);
        assert_int_equal(read_ack(send_raw(path, msg, 40, fds[0])), 1);
        assert_int_equal(mig_handoff_held(h), 1);
        int got = -1;
        assert_int_equal(mig_handoff_claim(h, "00000000000000000000000000000000", &got), -ENOENT);
        assert_int_equal(mig_handoff_claim(h, token, &got), 0);
        assert_true(got >= 0);
        assert_int_equal(mig_handoff_claim(h, token, &got), -ENOENT); /* one-time */
        assert_int_equal(mig_socket_check(got), 0);
        close(got);
        /* a session naming an unknown token fails (point of no return, reference) */
        mig_session_set_handoff(src, h);
        assert_int_equal(prepare_source(NULL), 0);
        uint8_t *snap = NULL;
        size_t len = 0;
        assert_int_equal(mig_session_export(src, SESS, &snap, &len), 0);
        free(snap);
        char info[96];
        ferry_bprintf(info, sizeof(info), "ferry-socket-v1 token=%s", token);
        assert_int_equal(mig_session_register_socket(src, SESS, info, strlen(info)), -ENOENT);
        assert_state(src, MIGRATION_S_FAILED);
        /* pid/fd references are parsed strictly */
        struct mig_socket_ref ref;
        assert_int_equal(mig_socket_parse("ferry-socket-v1 pid=12 fd=3", 27, &ref), 0);
        assert_int_equal(ref.pid, 12);
        assert_int_equal(ref.fd, 3);
        assert_int_equal(mig_socket_parse("ferry-socket-v1 pid=12 fd=3 ", 28, &ref), -EINVAL);
        assert_int_equal(mig_socket_parse("ferry-socket-v1 pid=0 fd=3", 26, &ref), -EINVAL);
        assert_int_equal(mig_socket_parse("ferry-socket-v1 pid=99999999999 fd=3", 36, &ref),
                         -EINVAL);
        assert_int_equal(mig_socket_parse("ferry-socket-v1 pid=1\0 fd=3", 27, &ref), -EINVAL);
        source_rolls_back();
        mig_session_set_handoff(src, NULL);
        close(fds[0]);
        close(fds[1]);
        /* a peer that connects and leaves without a word costs nothing (and no SIGPIPE); one
         * that stays silent is closed with the listener */
        int gone = send_raw(path, "", 0, -1);
        assert_true(gone >= 0);
        close(gone);
        int silent = send_raw(path, "", 0, -1);
        assert_true(silent >= 0);
        uvrun_for_ms(loop, 10);
        assert_int_equal(mig_handoff_held(h), 0);
        mig_handoff_close(h);
        uvrun_for_ms(loop, 5);
        char c;
        assert_int_equal(recv(silent, &c, 1, 0), 0); /* the shim closed it */
        close(silent);
        unlink(path);
        rmdir(dir);
}

/* ---- notifications ------------------------------------------------------------------------ */

static void test_slow_subscriber_never_blocks(void **state)
{
        struct notes slow = {.refuse = -ENOBUFS};
        to_prepared(NULL);
        subscribe(src, &slow);
        adopt_pair();
        transfer_both();
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED, 20000);
        assert_true(mig_session_dropped(src) >= 3);
        assert_int_equal(mig_session_subscribers(src), 2);
        assert_true(src_notes.n >= 3); /* the other subscriber got everything */
        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), 0);
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), 0);
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
        assert_true(slow.ended);
        assert_int_equal(mig_session_subscribers(src), 0);
}

/* ---- conversions (reference parse_test.go) ------------------------------------------------ */

static void test_options_to_json(void **state)
{
        char *json = NULL;
        assert_int_equal(mig_options_to_json(NULL, &json), 0);
        assert_null(json);
        InitializeOptions o = INITIALIZE_OPTIONS__INIT;
        assert_int_equal(mig_options_to_json(&o, &json), -EINVAL); /* UNSPECIFIED transport */
        o.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        MemoryTransferThrottleParams tp = MEMORY_TRANSFER_THROTTLE_PARAMS__INIT;
        tp.minimum_throttle_percentage = 300; /* narrowed by truncation: 44 */
        tp.maximum_number_of_brownout_transfer_passes = 4;
        o.memory_transfer_throttle_params = &tp;
        o.checksum_verification = true;
        assert_int_equal(mig_options_to_json(&o, &json), 0);
        struct json_object *j = json_tokener_parse(json), *v = NULL, *t = NULL;
        assert_non_null(j);
        assert_true(json_object_object_get_ex(j, "MemoryTransport", &v));
        assert_string_equal(json_object_get_string(v), "TCP");
        assert_true(json_object_object_get_ex(j, "MemoryTransferThrottleParams", &t));
        assert_true(json_object_object_get_ex(t, "MinimumThrottlePercentage", &v));
        assert_int_equal(json_object_get_int(v), 44);
        assert_true(json_object_object_get_ex(t, "MaximumNumberOfBrownoutTransferPasses", &v));
        assert_int_equal(json_object_get_int(v), 4);
        assert_false(json_object_object_get_ex(t, "SkipThrottling", &v));
        assert_true(json_object_object_get_ex(j, "ChecksumVerification", &v));
        assert_true(json_object_get_boolean(v));
        assert_false(json_object_object_get_ex(j, "Origin", &v)); /* the session stamps it */
        json_object_put(j);
        free(json);
}

static void test_notification_mapping(void **state)
{
        struct mig_notification n;
        struct hcs_notification hn = {.event = HCS_EVENT_MIGRATION_FAILED,
                                      .origin = HCS_ORIGIN_SOURCE,
                                      .result = HCS_RESULT_SOURCE_FAILED};
        mig_notification_from_host(&hn, MIG_ORIGIN_DESTINATION, &n);
        assert_int_equal(n.origin, MIG_ORIGIN_SOURCE);
        assert_int_equal(n.phase, MIG_PHASE_FAILED);
        assert_int_equal(n.state, MIG_PHASE_STATE_SOURCE_FAILED);
        /* no origin: this side; a progress phase is a success by nature */
        hn = (struct hcs_notification){.event = HCS_EVENT_SETUP_DONE};
        mig_notification_from_host(&hn, MIG_ORIGIN_DESTINATION, &n);
        assert_int_equal(n.origin, MIG_ORIGIN_DESTINATION);
        assert_int_equal(n.phase, MIG_PHASE_SETUP_DONE);
        assert_int_equal(n.state, MIG_PHASE_STATE_SUCCESS);
        hn = (struct hcs_notification){.event = HCS_EVENT_BLACKOUT_EXITED, .blackout_us = 1234000};
        mig_notification_from_host(&hn, MIG_ORIGIN_SOURCE, &n);
        assert_int_equal(n.phase, MIG_PHASE_BLACKOUT_EXITED);
        assert_true(n.has_blackout);
        assert_int_equal(n.blackout_ms, 1234);
        assert_true(n.blackout_stop_unix_us > 0);
        hn = (struct hcs_notification){.event = HCS_EVENT_MIGRATION_DONE,
                                       .result = HCS_RESULT_SUCCESS};
        mig_notification_from_host(&hn, MIG_ORIGIN_SOURCE, &n);
        assert_int_equal(n.phase, MIG_PHASE_DONE);
        assert_int_equal(n.state, MIG_PHASE_STATE_SUCCESS);
        assert_false(n.has_blackout);
        hn = (struct hcs_notification){.event = HCS_EVENT_RECOVERY_DONE,
                                       .result = HCS_RESULT_RECOVERY_FAILED};
        mig_notification_from_host(&hn, MIG_ORIGIN_SOURCE, &n);
        assert_int_equal(n.phase, MIG_PHASE_RECOVERY_DONE);
        assert_int_equal(n.state, MIG_PHASE_STATE_RECOVERY_FAILED);
        hn = (struct hcs_notification){.event = HCS_EVENT_MIGRATION_FAILED,
                                       .result = HCS_RESULT_CANCELLED};
        mig_notification_from_host(&hn, MIG_ORIGIN_SOURCE, &n);
        assert_int_equal(n.state, MIG_PHASE_STATE_CANCELLED);
        hn = (struct hcs_notification){.event = (enum hcs_event)99};
        mig_notification_from_host(&hn, MIG_ORIGIN_SOURCE, &n);
        assert_int_equal(n.phase, MIG_PHASE_UNSPECIFIED);
        assert_int_equal(n.state, MIG_PHASE_STATE_UNSPECIFIED);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        signal(SIGPIPE, SIG_IGN); /* a peer that goes away must not kill the test */
        const struct CMUnitTest tests[] = {
            T(test_happy_path),
            T(test_wrong_session_id),
            T(test_session_number),
            T(test_transfer_before_socket_waits),
            T(test_socket_timeout_fails_and_replays),
            T(test_cancel_source_prepared),
            T(test_cancel_source_exported),
            T(test_cancel_source_socket_waiting),
            T(test_cancel_source_socket_ready),
            T(test_cancel_source_transferring),
            T(test_cancel_source_transfer_completed),
            T(test_cancel_source_failed),
            T(test_cancel_destination_imported),
            T(test_cancel_destination_prepared),
            T(test_cancel_destination_socket_waiting),
            T(test_cancel_destination_socket_ready),
            T(test_cancel_destination_transferring),
            T(test_cancel_destination_transfer_completed),
            T(test_cancel_idle_is_noop),
            T(test_failed_migration_leaves_source_running),
            T(test_prepare_failures),
            T(test_finalize_retry),
            T(test_stop_after_resume_terminates),
            T(test_resume_after_vm_exit_finalizes),
            T(test_socket_pidfd_and_token),
            T(test_socket_not_connected_fails_session),
            T(test_handoff_rules),
            T(test_slow_subscriber_never_blocks),
            T(test_options_to_json),
            T(test_notification_mapping),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
