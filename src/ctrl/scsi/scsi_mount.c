/* SPDX-License-Identifier: MIT */
/* The scsi_mount machine's guards and actions (spec/scsi_mount.yaml): one partition of a disk,
 * mounted in the guest once and shared by reference count. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "guest/guest.h"
#include "scsi_int.h"
#include "util/util.h"

static void free_options(char **options, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(options[i]);
        free(options);
}

void scsi_mount_clear(struct scsi_mount *m)
{
        free(m->filesystem);
        free_options(m->options, m->n_options);
        memset(m, 0, sizeof(*m));
}

int scsi_mount_init(struct scsi_mount *m, struct scsi_disk *d, uint64_t partition)
{
        memset(m, 0, sizeof(*m));
        m->disk = d;
        m->partition = partition;
        if (ferry_bprintf(m->guest_path, sizeof(m->guest_path), "/run/mounts/scsi/%u_%u_%" PRIu64,
                          d->controller, d->lun, partition) < 0 ||
            ferry_bprintf(m->name, sizeof(m->name), "scsi_mount:%u_%u_%" PRIu64, d->controller,
                          d->lun, partition) < 0)
                return -EINVAL;
        fsm_init(&m->fsm, &scsi_mount_machine, m, m->name);
        m->used = true;
        return 0;
}

/* Copies cfg's strings; on failure m keeps its previous config. */
int scsi_mount_set_config(struct scsi_mount *m, const struct scsi_mount_config *cfg)
{
        _cleanup_free_ char *fs = NULL;
        char **opts = NULL;

        if (cfg->n_options > SCSI_OPTIONS_MAX || (cfg->n_options && !cfg->options))
                return -EINVAL;
        if (cfg->filesystem) {
                if (strlen(cfg->filesystem) >= SCSI_OPTION_MAX)
                        return -EINVAL;
                fs = strdup(cfg->filesystem);
                if (!fs)
                        return -ENOMEM;
        }
        if (cfg->n_options) {
                opts = calloc(cfg->n_options, sizeof(*opts));
                if (!opts)
                        return -ENOMEM;
                for (size_t i = 0; i < cfg->n_options; i++) {
                        int r = 0;

                        if (!cfg->options[i] || strlen(cfg->options[i]) >= SCSI_OPTION_MAX)
                                r = -EINVAL;
                        else if (!(opts[i] = strdup(cfg->options[i])))
                                r = -ENOMEM;
                        if (r < 0) {
                                free_options(opts, i);
                                return r;
                        }
                }
        }
        free(m->filesystem);
        free_options(m->options, m->n_options);
        m->filesystem = TAKE_PTR(fs);
        m->options = opts;
        m->n_options = cfg->n_options;
        m->read_only = cfg->read_only;
        m->encrypted = cfg->encrypted;
        m->ensure_filesystem = cfg->ensure_filesystem;
        m->block_dev = cfg->block_dev;
        return 0;
}

/* ---- guards ------------------------------------------------------------------------------ */

/* Every option of a is in b, ignoring case; checked both ways with equal counts, that is set
 * equality for the short lists mount options are. */
static bool options_within(const char *const *a, size_t na, const char *const *b, size_t nb)
{
        for (size_t i = 0; i < na; i++) {
                bool found = false;
                for (size_t j = 0; j < nb && !found; j++)
                        found = strcasecmp(a[i], b[j]) == 0;
                if (!found)
                        return false;
        }
        return true;
}

bool scsi_mount_guard_configs_equal(struct scsi_mount *m, void *arg)
{
        const struct scsi_mount_config *cfg = arg;
        const char *fs = cfg->filesystem ? cfg->filesystem : "";
        const char *const *mine = (const char *const *)m->options, *const *theirs = cfg->options;
        size_t n = cfg->n_options;

        return m->read_only == cfg->read_only && m->encrypted == cfg->encrypted &&
               m->ensure_filesystem == cfg->ensure_filesystem && m->block_dev == cfg->block_dev &&
               strcmp(m->filesystem ? m->filesystem : "", fs) == 0 &&
               m->n_options == cfg->n_options && options_within(mine, m->n_options, theirs, n) &&
               options_within(theirs, n, mine, m->n_options);
}

bool scsi_mount_guard_last_reference(struct scsi_mount *m, void *arg)
{
        return m->refs <= 1;
}

bool scsi_mount_guard_was_mounted(struct scsi_mount *m, void *arg)
{
        return m->was_mounted;
}

/* ---- actions ----------------------------------------------------------------------------- */

int scsi_mount_action_add_reference(struct scsi_mount *m, void *arg)
{
        m->refs++;
        return 0;
}

int scsi_mount_action_drop_reference(struct scsi_mount *m, void *arg)
{
        m->refs--;
        return 0;
}

/* Hands the completion's result (arg: int *, or an op for a synchronous call) to the waiting
 * call, if any. */
static void hand_over(struct scsi_mount *m, void *arg)
{
        if (!m->op)
                return;
        m->op->result = *(const int *)arg;
        m->op = NULL;
}

int scsi_mount_action_release(struct scsi_mount *m, void *arg)
{
        /* an unmount_done completion carries an int; a synchronous unmount carries the op */
        if (m->op)
                hand_over(m, arg);
        m->refs = 0;
        /* queued: runs once this transition has ended, so m is not forgotten under our feet;
         * the queue holds FSM_QUEUE_MAX events and a controller raises one per dispatch */
        (void)fsm_raise(&m->disk->fsm, SCSI_DISK_E_MOUNT_RELEASED, m);
        return 0;
}

static void mount_done(int result, uint64_t value, void *userdata)
{
        struct scsi_mount *m = userdata;
        struct scsi_op *op = m->op;
        int r;

        r = scsi_mount_dispatch(
            &m->fsm, result < 0 ? SCSI_MOUNT_E_MOUNT_FAILED : SCSI_MOUNT_E_MOUNT_DONE, &result);
        if (r < 0 && op)
                op->result = r;
        if (op)
                scsi_op_resume(op);
}

int scsi_mount_action_begin_mount(struct scsi_mount *m, void *arg)
{
        struct scsi_op *op = arg;
        struct guest_conn *g = m->disk->ctrl->env->guest;
        int r;

        if (!g)
                return -ENOTCONN;
        r = guest_scsi_mount(g, m->disk->controller, m->disk->lun, m->guest_path, mount_done, m);
        if (r < 0)
                return r;
        m->op = op;
        return FSM_PENDING;
}

int scsi_mount_action_reply_path(struct scsi_mount *m, void *arg)
{
        hand_over(m, arg);
        return 0;
}

int scsi_mount_action_fail_mount(struct scsi_mount *m, void *arg)
{
        hand_over(m, arg);
        return 0;
}

static void unmount_done(int result, uint64_t value, void *userdata)
{
        struct scsi_mount *m = userdata;
        struct scsi_op *op = m->op;
        int r;

        r = scsi_mount_dispatch(
            &m->fsm, result < 0 ? SCSI_MOUNT_E_UNMOUNT_FAILED : SCSI_MOUNT_E_UNMOUNT_DONE, &result);
        if (r < 0 && op)
                op->result = r;
        if (op)
                scsi_op_resume(op);
}

int scsi_mount_action_begin_unmount(struct scsi_mount *m, void *arg)
{
        struct scsi_op *op = arg;
        struct guest_conn *g = m->disk->ctrl->env->guest;
        int r;

        if (!g)
                return -ENOTCONN;
        r = guest_scsi_unmount(g, m->guest_path, unmount_done, m);
        if (r < 0)
                return r;
        m->op = op;
        return FSM_PENDING;
}

int scsi_mount_action_reply_error(struct scsi_mount *m, void *arg)
{
        hand_over(m, arg);
        return 0;
}

/* Serializes the mount into a new "scsi_mount" envelope (arg: struct scsi_save_arg). */
static int save(struct scsi_mount *m, struct scsi_save_arg *out, bool mounted)
{
        Ferry__Scsi__Save__V1__MountPayload p = FERRY__SCSI__SAVE__V1__MOUNT_PAYLOAD__INIT;

        p.schema_version = SCSI_SCHEMA_VERSION;
        p.partition = m->partition;
        p.read_only = m->read_only;
        p.encrypted = m->encrypted;
        p.ensure_filesystem = m->ensure_filesystem;
        p.block_dev = m->block_dev;
        p.filesystem = m->filesystem ? m->filesystem : (char *)"";
        p.options = m->options;
        p.n_options = m->n_options;
        p.ref_count = m->refs;
        p.guest_path = m->guest_path;
        p.mounted = mounted;
        return ctrl_envelope_pack("scsi_mount", SCSI_SCHEMA_VERSION, &p.base, &out->env);
}

int scsi_mount_action_save_reserved(struct scsi_mount *m, void *arg)
{
        int r = save(m, arg, false);
        if (r == 0)
                m->was_mounted = false;
        return r;
}

int scsi_mount_action_save_mounted(struct scsi_mount *m, void *arg)
{
        int r = save(m, arg, true);
        if (r == 0)
                m->was_mounted = true;
        return r;
}

int scsi_mount_action_save_again(struct scsi_mount *m, void *arg)
{
        return save(m, arg, m->was_mounted);
}

/* arg: the decoded MountPayload, checked by the controller (partition, guest path, counts). */
int scsi_mount_action_import_mount(struct scsi_mount *m, void *arg)
{
        const Ferry__Scsi__Save__V1__MountPayload *p = arg;
        struct scsi_mount_config cfg = {
            .partition = p->partition,
            .read_only = p->read_only,
            .encrypted = p->encrypted,
            .ensure_filesystem = p->ensure_filesystem,
            .block_dev = p->block_dev,
            .filesystem = p->filesystem && *p->filesystem ? p->filesystem : NULL,
            .options = (const char *const *)p->options,
            .n_options = p->n_options,
        };
        int r;

        if (p->ref_count == 0 || strcmp(p->guest_path, m->guest_path) != 0)
                return -EINVAL;
        r = scsi_mount_set_config(m, &cfg);
        if (r < 0)
                return r;
        m->refs = p->ref_count;
        m->was_mounted = p->mounted;
        return 0;
}

int scsi_mount_action_lift_freeze(struct scsi_mount *m, void *arg)
{
        return 0;
}

int scsi_mount_action_drop(struct scsi_mount *m, void *arg)
{
        (void)fsm_raise(&m->disk->fsm, SCSI_DISK_E_MOUNT_RELEASED, m);
        return 0;
}
