/* SPDX-License-Identifier: MIT */
/* The session driving the real VM controller (mig_vm_ops): a source and a destination session,
 * each over its own VM controller on the sim backend, a socketpair transport. The happy path
 * (images equal, the destination's guest bridge reconnected, the source terminated), a cancel
 * mid-transfer (the source rolls back and runs), a cancelled destination cleaned up at once,
 * and a finalize retry after a host-compute failure. */
#include "harness.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "ctrl/vm/vm.h"
#include "migration/vm_ops.h"

#define SLOW_OPTS "{\"Sim\":{\"DirtyPageThreshold\":0}}"

static uv_loop_t *loop;
static struct hcs_backend *backend;
static struct vm *src_vm, *dst_vm;
static struct mig_vm_sandbox *src_sb, *dst_sb;
static struct mig_session *src, *dst;
static struct notes src_notes, dst_notes;

#define run_until(flag, ms) run_until_at(loop, flag, ms, __FILE__, __LINE__)
#define assert_state(s, st)                                                                        \
        assert_string_equal(mig_session_state_name(s), migration_machine.state_names[st])

static void wait_state(struct mig_session *s, unsigned state)
{
        uint64_t deadline = ferry_now_us() + 20 * 1000 * 1000;
        while (mig_session_state(s) != state && ferry_now_us() < deadline)
                uvrun_for_ms(loop, 2);
        assert_string_equal(mig_session_state_name(s), migration_machine.state_names[state]);
}

static int setup(void **state)
{
        hcs_fault_reset();
        loop = calloc(1, sizeof(*loop));
        assert_int_equal(uv_loop_init(loop), 0);
        assert_int_equal(hcs_backend_open(loop, "sim", "{}", &backend), 0);
        assert_int_equal(vm_new(loop, backend, "src", &src_vm), 0);
        assert_int_equal(vm_new(loop, backend, "dst", &dst_vm), 0);
        assert_int_equal(mig_vm_sandbox_new(loop, src_vm, &src_sb), 0);
        assert_int_equal(mig_vm_sandbox_new(loop, dst_vm, &dst_sb), 0);
        assert_int_equal(mig_session_new(loop, &mig_vm_ops, src_sb, &src), 0);
        assert_int_equal(mig_session_new(loop, &mig_vm_ops, dst_sb, &dst), 0);
        mig_vm_sandbox_bind(src_sb, src);
        mig_vm_sandbox_bind(dst_sb, dst);
        char doc[1024];
        ssize_t n = ferry_bprintf(
            doc, sizeof(doc),
            "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{\"KernelCmdLine\":"
            "\"console=hvc0 %s\"}},"
            "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":%u},\"Processor\":{\"Count\":2}},"
            "\"Devices\":{\"Scsi\":{\"0\":{\"Attachments\":{\"0\":{\"Path\":\"/img/rootfs.vhdx\","
            "\"Type\":\"VirtualDisk\",\"ReadOnly\":true}}}}},"
            "\"Sim\":{\"DirtyPagesPerSecond\":5000}}}",
            VM_LM_LOG_FORWARDER, MB);
        assert_true(n > 0);
        struct res x = {0};
        assert_int_equal(vm_create(src_vm, "pod1", doc, res_cb, &x), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        x = (struct res){0};
        assert_int_equal(vm_start(src_vm, res_cb, &x), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        memset(&src_notes, 0, sizeof(src_notes));
        memset(&dst_notes, 0, sizeof(dst_notes));
        return 0;
}

static void destroy(struct vm *vm)
{
        struct res x = {0};
        assert_int_equal(vm_terminate(vm, res_cb, &x), 0);
        run_until(&x.done, 5000);
        for (int i = 0; i < 1000 && vm_free(vm); i++)
                uvrun_for_ms(loop, 2);
}

static int teardown(void **state)
{
        hcs_fault_reset();
        uvrun_for_ms(loop, 5);
        assert_int_equal(mig_session_free(src), 0);
        assert_int_equal(mig_session_free(dst), 0);
        assert_int_equal(mig_vm_sandbox_free(src_sb), 0);
        assert_int_equal(mig_vm_sandbox_free(dst_sb), 0);
        destroy(src_vm);
        destroy(dst_vm);
        assert_null(hcs_backend_free(backend));
        uv_run(loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(loop), 0);
        free(loop);
        return 0;
}

static int call_done(int r, struct res *x)
{
        if (r < 0)
                return r;
        run_until(&x->done, 10000);
        return x->r;
}

static int finalize(struct mig_session *s, int action)
{
        struct res x = {0};
        return call_done(mig_session_finalize(s, SESS, action, res_cb, &x), &x);
}

static int cancel(struct mig_session *s)
{
        struct res x = {0};
        return call_done(mig_session_cancel(s, SESS, res_cb, &x), &x);
}

static void to_prepared(const char *opts)
{
        struct res x = {0};
        assert_int_equal(call_done(mig_session_prepare_source(src, SESS, opts, res_cb, &x), &x), 0);
        struct mig_subscriber *sub;
        assert_int_equal(mig_session_subscribe(src, SESS, &notes_ops, &src_notes, &sub), 0);
        _cleanup_free_ uint8_t *snap = NULL;
        size_t len = 0;
        assert_int_equal(mig_session_export(src, SESS, &snap, &len), 0);
        assert_int_equal(
            mig_session_import(dst, SESS, "pod1-dst", MIG_SNAPSHOT_TYPE_URL, snap, len), 0);
        assert_string_equal(vm_state_name(dst_vm), "destination_migration_imported");
        assert_int_equal(mig_session_subscribe(dst, SESS, &notes_ops, &dst_notes, &sub), 0);
        x = (struct res){0};
        assert_int_equal(
            call_done(mig_session_prepare_destination(dst, SESS, NULL, res_cb, &x), &x), 0);
        assert_state(dst, MIGRATION_S_DESTINATION_PREPARED);
        assert_string_equal(vm_state_name(dst_vm), "destination_migration_patched");
}

static void adopt_and_transfer(void)
{
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(mig_session_transfer(dst, SESS, 0), 0); /* waits for its socket */
        assert_int_equal(mig_session_adopt_fd(src, SESS, fds[0]), 0);
        assert_int_equal(mig_session_transfer(src, SESS, 0), 0);
        assert_int_equal(mig_session_adopt_fd(dst, SESS, fds[1]), 0);
        assert_state(src, MIGRATION_S_TRANSFERRING);
        assert_state(dst, MIGRATION_S_TRANSFERRING);
}

static void source_rolls_back(void)
{
        assert_int_equal(finalize(src, MIG_FINALIZE_RESUME), 0);
        assert_string_equal(vm_state_name(src_vm), "running");
        assert_non_null(vm_guest(src_vm));
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_vm_runs(loop, vm_system(src_vm));
}

static void test_vm_happy_path(void **state)
{
        to_prepared(NULL);
        adopt_and_transfer();
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED);
        assert_true(image_hash(vm_system(src_vm)) == image_hash(vm_system(dst_vm)));
        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), 0);
        assert_string_equal(vm_state_name(src_vm), "terminated");
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), 0);
        assert_string_equal(vm_state_name(dst_vm), "running");
        assert_non_null(vm_guest(dst_vm)); /* the bridge reconnected on the destination */
        assert_vm_runs(loop, vm_system(dst_vm));
        assert_int_equal(src_notes.phase[MIG_PHASE_DONE], 1);
        assert_int_equal(dst_notes.phase[MIG_PHASE_DONE], 1);
        assert_true(dst_notes.blackout_details);
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
        assert_true(src_notes.ended && dst_notes.ended);
}

static void test_vm_cancel_mid_transfer(void **state)
{
        to_prepared(SLOW_OPTS);
        assert_int_equal(
            hcs_fault_arm("transfer.pass", &(struct hcs_fault_spec){.nth = 0, .stall_ms = 1000}), 0);
        adopt_and_transfer();
        while (src_notes.max_pass < 1)
                uvrun_for_ms(loop, 2);
        assert_int_equal(cancel(src), 0);
        assert_state(src, MIGRATION_S_CANCELLED);
        /* the rollback waits for the cancelled transfer to unwind, then resumes */
        source_rolls_back();
        assert_int_equal(src_notes.failed_state[MIG_PHASE_STATE_SOURCE_FAILED], 0);
        /* the destination's transfer failed when the source went away */
        wait_state(dst, MIGRATION_S_FAILED);
        assert_int_equal(finalize(dst, MIG_FINALIZE_STOP), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
}

static void test_vm_cancel_destination_prepared(void **state)
{
        to_prepared(NULL);
        assert_int_equal(cancel(dst), 0);
        assert_state(dst, MIGRATION_S_CANCELLED);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
        assert_int_equal(cancel(src), 0);
        source_rolls_back();
}

static void test_vm_finalize_retry(void **state)
{
        to_prepared(NULL);
        adopt_and_transfer();
        wait_state(src, MIGRATION_S_TRANSFER_COMPLETED);
        wait_state(dst, MIGRATION_S_TRANSFER_COMPLETED);
        assert_int_equal(
            hcs_fault_arm("hcs.finalize", &(struct hcs_fault_spec){.nth = 1, .error = -EIO}), 0);
        assert_true(finalize(dst, MIG_FINALIZE_RESUME) < 0);
        assert_state(dst, MIGRATION_S_TRANSFER_COMPLETED);
        assert_int_equal(finalize(dst, MIG_FINALIZE_RESUME), 0);
        assert_state(dst, MIGRATION_S_FINALIZED);
        assert_int_equal(finalize(src, MIG_FINALIZE_STOP), 0);
        assert_int_equal(mig_session_cleanup(src, SESS), 0);
        assert_int_equal(mig_session_cleanup(dst, SESS), 0);
        assert_vm_runs(loop, vm_system(dst_vm));
}

/* A paused VM (Task Pause) cannot start a migration: the session says why, stays idle, and
 * migrates once the VM is resumed. */
static void test_vm_paused_refuses_prepare(void **state)
{
        struct res x = {0};
        assert_int_equal(vm_pause(src_vm, res_cb, &x), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_string_equal(vm_state_name(src_vm), "paused");
        x = (struct res){0};
        assert_int_equal(call_done(mig_session_prepare_source(src, SESS, NULL, res_cb, &x), &x),
                         -EBUSY);
        assert_string_equal(mig_session_error(src), "prepare: initialize_source rejected: the VM is paused; resume it first");
        assert_state(src, MIGRATION_S_IDLE);
        assert_string_equal(vm_state_name(src_vm), "paused");
        x = (struct res){0};
        assert_int_equal(vm_resume(src_vm, res_cb, &x), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        to_prepared(NULL);
        assert_state(src, MIGRATION_S_SOURCE_EXPORTED);
        assert_int_equal(cancel(src), 0);
        assert_int_equal(cancel(dst), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        signal(SIGPIPE, SIG_IGN); /* a peer that goes away must not kill the test */
        const struct CMUnitTest tests[] = {
            T(test_vm_happy_path),
            T(test_vm_cancel_mid_transfer),
            T(test_vm_cancel_destination_prepared),
            T(test_vm_finalize_retry),
            T(test_vm_paused_refuses_prepare),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
