/* SPDX-License-Identifier: MIT */
#include "migration/sim_ops.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctrl/common/envelope.h"
#include "migration/ops_step.h"
#include "migration.pb-c.h"
#include "util/base64.h"
#include "util/util.h"

#define SAVE_NAME    "sim_sandbox"
#define SAVE_VERSION 1

struct mig_sim_sandbox {
        struct hcs_backend *backend;
        struct hcs_system *sys;
        struct mig_session *session;
        char id[64];
        char *doc;
        uint8_t *compat;
        size_t compat_len;
        enum mig_vm_state vm;
        bool imported;
        bool started; /* the host migration started (a cancel has something to abort) */
        int fail_patch, fail_resume;
        struct mig_steps steps;
        mig_done_fn close_done;
        void *close_userdata;
};

static int finalize_now(void *p, bool resume, bool skip_host, mig_done_fn done, void *userdata);

static void on_note(struct hcs_system *sys, const struct hcs_notification *n, void *userdata)
{
        struct mig_sim_sandbox *sb = userdata;
        if (sb->session)
                mig_session_host_event(sb->session, n);
}

/* ---- public ------------------------------------------------------------------------------ */

int mig_sim_sandbox_new(uv_loop_t *loop, struct hcs_backend *b, struct mig_sim_sandbox **ret)
{
        struct mig_sim_sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return -ENOMEM;
        mig_steps_init(&sb->steps, loop, sb, finalize_now);
        sb->backend = b;
        sb->vm = MIG_VM_NOT_CREATED;
        *ret = sb;
        return 0;
}

static void boot_started(int r, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_sim_sandbox *sb = st->sb;
        if (r == 0)
                sb->vm = MIG_VM_ACTIVE;
        mig_step_end(st, r);
}

static void boot_created(int r, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_sim_sandbox *sb = st->sb;
        if (r == 0)
                r = hcs_start(sb->sys, boot_started, st);
        if (r < 0)
                mig_step_end(st, r);
}

int mig_sim_sandbox_boot(struct mig_sim_sandbox *sb, const char *id, const char *doc_json,
                         mig_done_fn done, void *userdata)
{
        if (sb->sys || sb->imported)
                return -EEXIST;
        if (ferry_strscpy(sb->id, id, sizeof(sb->id)) < 0)
                return -EINVAL;
        sb->doc = strdup(doc_json);
        if (!sb->doc)
                return -ENOMEM;
        int r = hcs_system_new(sb->backend, id, doc_json, on_note, sb, &sb->sys);
        if (r < 0)
                return r;
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        r = hcs_create(sb->sys, boot_created, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

void mig_sim_sandbox_bind(struct mig_sim_sandbox *sb, struct mig_session *s)
{
        sb->session = s;
}

struct hcs_system *mig_sim_sandbox_system(struct mig_sim_sandbox *sb)
{
        return sb->sys;
}

void mig_sim_sandbox_fail_patch(struct mig_sim_sandbox *sb, int err)
{
        sb->fail_patch = err;
}

void mig_sim_sandbox_fail_resume(struct mig_sim_sandbox *sb, int err)
{
        sb->fail_resume = err;
}

static void sandbox_free(struct mig_sim_sandbox *sb)
{
        mig_done_fn done = sb->close_done;
        void *ud = sb->close_userdata;
        free(sb->doc);
        free(sb->compat);
        free(sb);
        if (done)
                done(0, ud);
}

static void closed(int r, void *userdata)
{
        sandbox_free(userdata);
}

int mig_sim_sandbox_close(struct mig_sim_sandbox *sb, mig_done_fn done, void *userdata)
{
        if (sb->steps.inflight)
                return -EBUSY;
        sb->close_done = done;
        sb->close_userdata = userdata;
        sb->session = NULL;
        if (!sb->sys) {
                sandbox_free(sb);
                return 0;
        }
        int r = hcs_system_close(sb->sys, closed, sb);
        if (r < 0) {
                sb->close_done = NULL;
                return r;
        }
        return 0;
}

/* ---- ops: source ------------------------------------------------------------------------ */

static enum mig_vm_state sim_vm_state(void *p)
{
        struct mig_sim_sandbox *sb = p;
        return sb->imported && sb->vm == MIG_VM_NOT_CREATED ? MIG_VM_ACTIVE : sb->vm;
}

static void initialized(int r, const void *blob, size_t size, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_sim_sandbox *sb = st->sb;
        if (r == 0) {
                uint8_t *copy = malloc(size ? size : 1);
                if (copy) {
                        memcpy(copy, blob, size);
                        free(sb->compat);
                        sb->compat = copy;
                        sb->compat_len = size;
                } else {
                        r = -ENOMEM; /* the host initialized; a cancel or resume unwinds it */
                }
        }
        mig_step_end(st, r);
}

static int sim_initialize(void *p, const char *opts_json, mig_done_fn done, void *userdata)
{
        struct mig_sim_sandbox *sb = p;
        if (!sb->sys)
                return -EBUSY;
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = hcs_lm_initialize(sb->sys, opts_json, initialized, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

static int sim_export(void *p, uint8_t **ret, size_t *ret_len)
{
        struct mig_sim_sandbox *sb = p;
        SimSandboxSave m = SIM_SANDBOX_SAVE__INIT;
        m.schema_version = SAVE_VERSION;
        m.vm_id = sb->id;
        m.hcs_document = sb->doc;
        m.compat_info.data = sb->compat;
        m.compat_info.len = sb->compat_len;
        ctrl_envelope *env = NULL;
        int r = ctrl_envelope_pack(SAVE_NAME, SAVE_VERSION, &m.base, &env);
        if (r < 0)
                return r;
        r = ctrl_envelope_to_bytes(env, ret, ret_len);
        ctrl_envelope_free(env);
        return r;
}

/* ---- ops: destination ------------------------------------------------------------------- */

static int sim_import(void *p, const char *sandbox_id, const uint8_t *buf, size_t len)
{
        struct mig_sim_sandbox *sb = p;
        ctrl_envelope *env = NULL;
        ProtobufCMessage *msg = NULL;
        uint32_t version = 0;
        int r = ctrl_envelope_from_bytes(buf, len, &env);
        if (r < 0)
                return -EINVAL;
        r = ctrl_envelope_unpack(env, SAVE_NAME, SAVE_VERSION, &sim_sandbox_save__descriptor, &msg,
                                 &version, NULL);
        ctrl_envelope_free(env);
        if (r < 0)
                return r;
        SimSandboxSave *m = (SimSandboxSave *)msg;
        char id[64];
        if (ferry_bprintf(id, sizeof(id), "%s.vm", sandbox_id) < 0 || !m->hcs_document ||
            !*m->hcs_document) {
                protobuf_c_message_free_unpacked(msg, NULL);
                return -EINVAL;
        }
        char *doc = strdup(m->hcs_document);
        uint8_t *compat = malloc(m->compat_info.len ? m->compat_info.len : 1);
        if (!doc || !compat) {
                free(doc);
                free(compat);
                protobuf_c_message_free_unpacked(msg, NULL);
                return -ENOMEM;
        }
        memcpy(compat, m->compat_info.data, m->compat_info.len);
        free(sb->doc);
        free(sb->compat);
        sb->doc = doc;
        sb->compat = compat;
        sb->compat_len = m->compat_info.len;
        memcpy(sb->id, id, sizeof(id));
        sb->imported = true;
        protobuf_c_message_free_unpacked(msg, NULL);
        return 0;
}

static char *base64(const uint8_t *p, size_t n)
{
        char *out = malloc(FERRY_BASE64_SIZE(n));
        if (out)
                ferry_base64_encode(p, n, out);
        return out;
}

/* The retained document with VirtualMachine.MigrationOptions = opts + the compat blob. */
static char *destination_doc(struct mig_sim_sandbox *sb, const char *opts_json)
{
        struct json_object *doc = json_tokener_parse(sb->doc), *vm = NULL;
        struct json_object *opts = json_tokener_parse(opts_json);
        _cleanup_free_ char *b64 = base64(sb->compat, sb->compat_len);
        char *r = NULL;
        if (doc && opts && b64 && json_object_object_get_ex(doc, "VirtualMachine", &vm) &&
            json_object_is_type(opts, json_type_object)) {
                if (sb->compat_len) {
                        struct json_object *cd = json_object_new_object();
                        json_object_object_add(cd, "Data", json_object_new_string(b64));
                        json_object_object_add(opts, "CompatibilityData", cd);
                }
                json_object_object_add(vm, "MigrationOptions", json_object_get(opts));
                r = strdup(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN));
        }
        json_object_put(doc);
        json_object_put(opts);
        return r;
}

static void sys_closed_after_failed_create(int r, void *userdata)
{
        struct mig_step *st = userdata;
        mig_step_end_prepare(st, st->result, false);
}

static void created(int r, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_sim_sandbox *sb = st->sb;
        if (r < 0) {
                /* Retriable: drop the handle so a retry starts from the imported document. */
                struct hcs_system *sys = sb->sys;
                sb->sys = NULL;
                st->result = r;
                if (hcs_system_close(sys, sys_closed_after_failed_create, st) < 0)
                        mig_step_end_prepare(st, r, false);
                return;
        }
        /* The sim has no disk ACLs to grant; the patch step is where a real host's would be. */
        int err = sb->fail_patch;
        sb->fail_patch = 0;
        mig_step_end_prepare(st, err, true);
}

static int sim_prepare_destination(void *p, const char *opts_json, mig_prepare_fn done,
                                   void *userdata)
{
        struct mig_sim_sandbox *sb = p;
        if (sb->sys)
                return -EEXIST;
        _cleanup_free_ char *doc = destination_doc(sb, opts_json);
        if (!doc)
                return -EINVAL;
        int r = hcs_system_new(sb->backend, sb->id, doc, on_note, sb, &sb->sys);
        if (r < 0)
                return r;
        struct mig_step *st = mig_step_new_prepare(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        r = hcs_create(sb->sys, created, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

/* ---- ops: transfer, finalize, cancel ---------------------------------------------------- */

static void started(int r, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_sim_sandbox *sb = st->sb;
        if (r == 0) {
                sb->started = true;
                r = hcs_lm_transfer(sb->sys, mig_transfer_ended, st);
        }
        if (r < 0)
                mig_transfer_ended(r, st);
}

static int sim_transfer(void *p, enum mig_origin origin, int fd, uint32_t session_num,
                        mig_done_fn done, void *userdata)
{
        struct mig_sim_sandbox *sb = p;
        if (!sb->sys) {
                close(fd);
                return -EBUSY;
        }
        struct mig_step *st = mig_transfer_step(&sb->steps, fd, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = origin == MIG_ORIGIN_SOURCE
                    ? hcs_lm_start_source(sb->sys, fd, session_num, started, st)
                    : hcs_lm_start_destination(sb->sys, fd, session_num, started, st);
        return mig_transfer_begun(&sb->steps, st, r);
}

static void resumed_or_stopped(int r, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_sim_sandbox *sb = st->sb;
        if (r == 0 && st->resume) {
                sb->vm = MIG_VM_FINALIZED;
                /* The VM and pod resume steps come after the host finalize; in the sim they
                 * are nothing more than this point, which a test can make fail. */
                r = sb->fail_resume;
                sb->fail_resume = 0;
                if (r == 0)
                        sb->vm = MIG_VM_ACTIVE;
        } else if (r == 0) {
                sb->vm = MIG_VM_TERMINATED;
        }
        mig_step_end(st, r);
}

static void skip_fire(struct ferry_later *l)
{
        resumed_or_stopped(0, ferry_container_of(l, struct mig_step, turn));
}

static int finalize_now(void *p, bool resume, bool skip_host, mig_done_fn done, void *userdata)
{
        struct mig_sim_sandbox *sb = p;
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        st->resume = resume;
        if (skip_host) {
                /* The host already resume-finalized: only the resume step, on the next turn. */
                ferry_later_start(&st->turn, sb->steps.loop, skip_fire);
                return 0;
        }
        int r = hcs_lm_finalize(sb->sys, resume, resumed_or_stopped, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

static int sim_finalize(void *p, enum mig_origin origin, bool resume, bool skip_host,
                        mig_done_fn done, void *userdata)
{
        struct mig_sim_sandbox *sb = p;
        if (!sb->sys)
                return -EBUSY;
        /* a cancelled transfer that is still unwinding holds it until it has */
        return mig_steps_finalize(&sb->steps, resume, skip_host, done, userdata);
}

static void terminated(int r, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_sim_sandbox *sb = st->sb;
        if (r == -EALREADY)
                r = 0;
        if (r == 0)
                sb->vm = MIG_VM_TERMINATED;
        mig_step_end(st, r);
}

static int sim_terminate(void *p, mig_done_fn done, void *userdata)
{
        struct mig_sim_sandbox *sb = p;
        if (!sb->sys)
                return mig_steps_defer(&sb->steps, 0, done, userdata);
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = hcs_terminate(sb->sys, terminated, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

static int sim_cancel(void *p, enum mig_origin origin, mig_done_fn done, void *userdata)
{
        struct mig_sim_sandbox *sb = p;
        /* A destination that never started has nothing in the host to abort. */
        if (!sb->sys ||
            (origin == MIG_ORIGIN_DESTINATION && !sb->started && !sb->steps.xfer_inflight))
                return mig_steps_defer(&sb->steps, 0, done, userdata);
        struct mig_step *st = mig_step_new(&sb->steps, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = hcs_lm_cancel(sb->sys, mig_step_cb, st);
        if (r < 0)
                mig_step_drop(st);
        return r;
}

static void sim_cleanup(void *p)
{
        struct mig_sim_sandbox *sb = p;
        sb->started = false;
}

const struct migration_sandbox_ops mig_sim_ops = {
    .vm_state = sim_vm_state,
    .initialize = sim_initialize,
    .export_state = sim_export,
    .import_state = sim_import,
    .pending_patches = NULL,
    .patch_container = NULL,
    .prepare_destination = sim_prepare_destination,
    .transfer = sim_transfer,
    .finalize = sim_finalize,
    .terminate = sim_terminate,
    .cancel = sim_cancel,
    .cleanup = sim_cleanup,
};
