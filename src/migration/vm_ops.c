/* SPDX-License-Identifier: MIT */
#include "migration/vm_ops.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/defer.h"
#include "util/util.h"

struct mig_vm_sandbox {
        uv_loop_t *loop;
        struct vm *vm;
        struct mig_session *session;
        char dest_id[VM_ID_MAX + 1];
        unsigned inflight;
        bool xfer_inflight;
        /* a finalize that waits for a cancelled transfer to unwind */
        bool def_set, def_resume, def_skip;
        mig_done_fn def_done;
        void *def_userdata;
};

struct step {
        struct mig_vm_sandbox *sb;
        mig_done_fn done;
        mig_prepare_fn prepared;
        void *userdata;
        bool resume;
        enum mig_origin origin;
};

static struct step *step_new(struct mig_vm_sandbox *sb, mig_done_fn done, void *userdata)
{
        struct step *st = calloc(1, sizeof(*st));
        if (!st)
                return NULL;
        st->sb = sb;
        st->done = done;
        st->userdata = userdata;
        sb->inflight++;
        return st;
}

static void step_drop(struct step *st)
{
        st->sb->inflight--;
        free(st);
}

static void step_end(struct step *st, int result)
{
        mig_done_fn done = st->done;
        void *ud = st->userdata;
        step_drop(st);
        done(result, ud);
}

/* Completes with result on the next loop turn. */
static int later_done(struct mig_vm_sandbox *sb, int result, mig_done_fn done, void *userdata)
{
        return mig_defer(sb->loop, &sb->inflight, result, done, userdata);
}

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
        sb->loop = loop;
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
        if (sb->inflight)
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

static void step_cb(int r, void *userdata)
{
        step_end(userdata, r);
}

static int vmo_initialize(void *p, const char *opts_json, mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_initialize_source(sb->vm, opts_json, step_cb, st);
        if (r < 0)
                step_drop(st);
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

static void prepare_end(struct step *st, int r, bool created)
{
        mig_prepare_fn fn = st->prepared;
        void *ud = st->userdata;
        step_drop(st);
        fn(r, created, ud);
}

static void patched(int r, void *userdata)
{
        prepare_end(userdata, r, true);
}

static void created(int r, void *userdata)
{
        struct step *st = userdata;
        if (r < 0) {
                prepare_end(st, r, false);
                return;
        }
        r = vm_patch(st->sb->vm, patched, st);
        if (r < 0)
                prepare_end(st, r, true);
}

static int vmo_prepare_destination(void *p, const char *opts_json, mig_prepare_fn done,
                                   void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct step *st = step_new(sb, NULL, NULL);
        if (!st)
                return -ENOMEM;
        st->prepared = done;
        st->userdata = userdata;
        int r = vm_create_destination(sb->vm, sb->dest_id, opts_json, created, st);
        if (r < 0)
                step_drop(st);
        return r;
}

static void finalize_deferred(struct mig_vm_sandbox *sb);

static void transferred(int r, void *userdata)
{
        struct step *st = userdata;
        struct mig_vm_sandbox *sb = st->sb;
        sb->xfer_inflight = false;
        step_end(st, r);
        if (sb->def_set)
                finalize_deferred(sb);
}

static void started(int r, void *userdata)
{
        struct step *st = userdata;
        if (r == 0)
                r = vm_transfer(st->sb->vm, transferred, st);
        if (r < 0)
                transferred(r, st);
}

static int vmo_transfer(void *p, enum mig_origin origin, int fd, uint32_t session_num,
                        mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct step *st = step_new(sb, done, userdata);
        if (!st) {
                close(fd);
                return -ENOMEM;
        }
        int r = origin == MIG_ORIGIN_SOURCE
                    ? vm_start_source(sb->vm, fd, session_num, started, st)
                    : vm_start_destination(sb->vm, fd, session_num, started, st);
        if (r < 0) {
                step_drop(st);
                return r;
        }
        sb->xfer_inflight = true;
        return 0;
}

static void resumed(int r, void *userdata)
{
        step_end(userdata, r);
}

static void finalized(int r, void *userdata)
{
        struct step *st = userdata;
        if (r == 0 && st->resume) {
                r = vm_resume(st->sb->vm, resumed, st);
                if (r == 0)
                        return;
        }
        step_end(st, r);
}

static int finalize_now(struct mig_vm_sandbox *sb, bool resume, bool skip_host, mig_done_fn done,
                        void *userdata)
{
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        st->resume = resume;
        int r =
            skip_host ? vm_resume(sb->vm, resumed, st) : vm_finalize(sb->vm, resume, finalized, st);
        if (r < 0)
                step_drop(st);
        return r;
}

static void finalize_deferred(struct mig_vm_sandbox *sb)
{
        sb->def_set = false;
        int r = finalize_now(sb, sb->def_resume, sb->def_skip, sb->def_done, sb->def_userdata);
        if (r < 0)
                sb->def_done(r, sb->def_userdata);
}

static int vmo_finalize(void *p, enum mig_origin origin, bool resume, bool skip_host,
                        mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        if (sb->xfer_inflight) {
                /* A cancelled transfer is still unwinding in the VM: finalize once it has. */
                if (sb->def_set)
                        return -EBUSY;
                sb->def_set = true;
                sb->def_resume = resume;
                sb->def_skip = skip_host;
                sb->def_done = done;
                sb->def_userdata = userdata;
                return 0;
        }
        return finalize_now(sb, resume, skip_host, done, userdata);
}

static int vmo_terminate(void *p, mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_terminate(sb->vm, step_cb, st);
        if (r < 0)
                step_drop(st);
        return r;
}

static int vmo_cancel(void *p, enum mig_origin origin, mig_done_fn done, void *userdata)
{
        struct mig_vm_sandbox *sb = p;
        const char *st_name = vm_state_name(sb->vm);
        /* A destination that never started has nothing in host compute to abort. */
        if (origin == MIG_ORIGIN_DESTINATION && !sb->xfer_inflight &&
            (!strcmp(st_name, "destination_migration_imported") ||
             !strcmp(st_name, "destination_migration_created") ||
             !strcmp(st_name, "destination_migration_patched")))
                return later_done(sb, 0, done, userdata);
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_cancel(sb->vm, step_cb, st);
        if (r < 0)
                step_drop(st);
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
