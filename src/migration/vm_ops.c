/* SPDX-License-Identifier: MIT */
#include "migration/vm_ops.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/ops_step.h"
#include "util/util.h"

struct mig_vm_sandbox {
        struct vm *vm;
        struct mig_session *session;
        char dest_id[VM_ID_MAX + 1];
        struct mig_steps steps;
};

static int finalize_now(void *p, bool resume, bool skip_host, mig_done_fn done, void *userdata);

static void on_note(struct vm *vm, const struct hcs_notification *n, void *userdata)
{
        struct mig_vm_sandbox *sb = userdata;
        if (sb->session)
                mig_session_host_event(sb->session, n);
}

int mig_vm_sandbox_new(uv_loop_t *loop, struct vm *vm, struct mig_vm_sandbox **ret)
{
        struct mig_vm_sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return -ENOMEM;
        mig_steps_init(&sb->steps, loop, sb, finalize_now);
        sb->vm = vm;
        *ret = sb;
        return 0;
}

void mig_vm_sandbox_bind(struct mig_vm_sandbox *sb, struct mig_session *s)
{
        sb->session = s;
        vm_subscribe(sb->vm, s ? on_note : NULL, s ? sb : NULL);
}

int mig_vm_sandbox_free(struct mig_vm_sandbox *sb)
{
        if (!sb)
                return 0;
        if (sb->steps.inflight)
                return -EBUSY;
        if (sb->session)
                vm_subscribe(sb->vm, NULL, NULL);
        free(sb);
        return 0;
}

/* ---- ops -------------------------------------------------------------------------------- */

static enum mig_vm_state vmo_state(void *p)
{
        struct mig_vm_sandbox *sb = p;
        const char *st = vm_state_name(sb->vm);
        if (!strcmp(st, "not_created"))
                return MIG_VM_NOT_CREATED;
        if (!strcmp(st, "terminated"))
                return MIG_VM_TERMINATED;
        if (!strcmp(st, "migration_finalized"))
                return MIG_VM_FINALIZED;
        if (!strcmp(st, "paused") || !strcmp(st, "pausing") || !strcmp(st, "resuming"))
                return MIG_VM_PAUSED;
        return MIG_VM_ACTIVE;
}

static int vmo_initialize(void *p, const char *opts_json, mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_initialize_source(sb->vm, opts_json, mig_step_cb, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

static int vmo_export(void *p, uint8_t **ret, size_t *ret_len)
{
        struct mig_vm_sandbox *sb = p;
        ctrl_envelope *env = NULL;
        int r = vm_save(sb->vm, &env);
        if (r < 0)
                return r;
        r = ctrl_envelope_to_bytes(env, ret, ret_len);
        ctrl_envelope_free(env);
        return r;
}

static int vmo_import(void *p, const char *sandbox_id, const uint8_t *buf, size_t len)
{
        struct mig_vm_sandbox *sb = p;
        char id[VM_ID_MAX + 1];
        if (ferry_bprintf(id, sizeof(id), "%s.vm", sandbox_id) < 0)
                return -EINVAL;
        ctrl_envelope *env = NULL;
        int r = ctrl_envelope_from_bytes(buf, len, &env);
        if (r < 0)
                return -EINVAL;
        r = vm_import(sb->vm, env);
        ctrl_envelope_free(env);
        if (r == 0)
                memcpy(sb->dest_id, id, sizeof(id));
        return r;
}

static void patched(int r, void *userdata)
{
        mig_step_end_prepare(userdata, r, true);
}

static void created(int r, void *userdata)
{
        struct mig_step *st = userdata;
        if (r < 0) {
                mig_step_end_prepare(st, r, false);
                return;
        }
        struct mig_vm_sandbox *sb = st->sb;
        r = vm_patch(sb->vm, patched, st);
        if (r < 0)
                mig_step_end_prepare(st, r, true);
}

static int vmo_prepare_destination(void *p, const char *opts_json, mig_prepare_fn done,
                                   void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct mig_step *st = mig_step_new_prepare(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_create_destination(sb->vm, sb->dest_id, opts_json, created, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

static void started(int r, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_vm_sandbox *sb = st->sb;
        if (r == 0)
                r = vm_transfer(sb->vm, mig_transfer_ended, st);
        if (r < 0)
                mig_transfer_ended(r, st);
}

static int vmo_transfer(void *p, enum mig_origin origin, int fd, uint32_t session_num,
                        mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct mig_step *st = mig_transfer_step(&sb->steps, fd, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = origin == MIG_ORIGIN_SOURCE
                    ? vm_start_source(sb->vm, fd, session_num, started, st)
                    : vm_start_destination(sb->vm, fd, session_num, started, st);
        return mig_transfer_begun(&sb->steps, st, r);
}

static void finalized(int r, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_vm_sandbox *sb = st->sb;
        if (r == 0 && st->resume) {
                r = vm_resume(sb->vm, mig_step_cb, st);
                if (r == 0)
                        return;
        }
        mig_step_end(st, r);
}

static int finalize_now(void *p, bool resume, bool skip_host, mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        st->resume = resume;
        int r = skip_host ? vm_resume(sb->vm, mig_step_cb, st)
                          : vm_finalize(sb->vm, resume, finalized, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

static int vmo_finalize(void *p, enum mig_origin origin, bool resume, bool skip_host,
                        mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        /* a cancelled transfer that is still unwinding in the VM holds it until it has */
        return mig_steps_finalize(&sb->steps, resume, skip_host, done, userdata);
}

static int vmo_terminate(void *p, mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_terminate(sb->vm, mig_step_cb, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

static int vmo_cancel(void *p, enum mig_origin origin, mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        const char *st_name = vm_state_name(sb->vm);
        /* A destination that never started has nothing in host compute to abort. */
        if (origin == MIG_ORIGIN_DESTINATION && !sb->steps.xfer_inflight &&
            (!strcmp(st_name, "destination_migration_imported") ||
             !strcmp(st_name, "destination_migration_created") ||
             !strcmp(st_name, "destination_migration_patched")))
                return mig_steps_defer(&sb->steps, 0, done, userdata);
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_cancel(sb->vm, mig_step_cb, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

const struct migration_sandbox_ops mig_vm_ops = {
    .vm_state = vmo_state,
    .initialize = vmo_initialize,
    .export_state = vmo_export,
    .import_state = vmo_import,
    .pending_patches = NULL,
    .patch_container = NULL,
    .prepare_destination = vmo_prepare_destination,
    .transfer = vmo_transfer,
    .finalize = vmo_finalize,
    .terminate = vmo_terminate,
    .cancel = vmo_cancel,
    .cleanup = NULL,
};
