/* SPDX-License-Identifier: MIT */
/* The scsi_disk machine's guards and actions (spec/scsi_disk.yaml): one disk in a slot, put on
 * the VM's bus with hcs_modify and shared by the reservations of its partitions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcs/hcs.h"
#include "scsi_int.h"
#include "util/util.h"

struct scsi_disk *scsi_disk_new(struct scsi_ctrl *c, uint32_t slot)
{
        struct scsi_disk *d = calloc(1, sizeof(*d));

        if (!d)
                return NULL;
        d->ctrl = c;
        d->controller = slot / SCSI_LUNS;
        d->lun = slot % SCSI_LUNS;
        (void)ferry_bprintf(d->name, sizeof(d->name), "scsi_disk:%u_%u", d->controller, d->lun);
        fsm_init(&d->fsm, &scsi_disk_machine, d, d->name);
        return d;
}

void scsi_disk_free(struct scsi_disk *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < SCSI_PARTITIONS_MAX; i++)
                if (d->mounts[i].used)
                        scsi_mount_clear(&d->mounts[i]);
        free(d->host_path);
        free(d->type);
        free(d->evd_type);
        free(d);
}

static const char *type_or_default(const char *type)
{
        return type && *type ? type : "VirtualDisk";
}

/* Copies cfg (validated); on failure d keeps its previous config. */
int scsi_disk_set_config(struct scsi_disk *d, const struct scsi_disk_config *cfg)
{
        _cleanup_free_ char *path = NULL, *type = NULL, *evd = NULL;
        const char *t = type_or_default(cfg->type);

        if (!scsi_path_ok(cfg->host_path))
                return -EINVAL;
        if (strcmp(t, "VirtualDisk") != 0 && strcmp(t, "PassThru") != 0 &&
            strcmp(t, "ExtensibleVirtualDisk") != 0)
                return -EINVAL;
        if (cfg->evd_type && strlen(cfg->evd_type) >= SCSI_OPTION_MAX)
                return -EINVAL;
        path = strdup(cfg->host_path);
        type = strdup(t);
        evd = strdup(cfg->evd_type ? cfg->evd_type : "");
        if (!path || !type || !evd)
                return -ENOMEM;
        free(d->host_path);
        free(d->type);
        free(d->evd_type);
        d->host_path = TAKE_PTR(path);
        d->type = TAKE_PTR(type);
        d->evd_type = TAKE_PTR(evd);
        d->read_only = cfg->read_only;
        return 0;
}

bool scsi_disk_config_equal(const struct scsi_disk *d, const struct scsi_disk_config *cfg)
{
        return strcmp(d->host_path, cfg->host_path) == 0 &&
               strcmp(d->type, type_or_default(cfg->type)) == 0 &&
               strcmp(d->evd_type, cfg->evd_type ? cfg->evd_type : "") == 0 &&
               d->read_only == cfg->read_only;
}

struct scsi_mount *scsi_disk_find_mount(struct scsi_disk *d, uint64_t partition)
{
        for (size_t i = 0; i < SCSI_PARTITIONS_MAX; i++)
                if (d->mounts[i].used && d->mounts[i].partition == partition)
                        return &d->mounts[i];
        return NULL;
}

static struct scsi_mount *free_mount_entry(struct scsi_disk *d)
{
        for (size_t i = 0; i < SCSI_PARTITIONS_MAX; i++)
                if (!d->mounts[i].used)
                        return &d->mounts[i];
        return NULL;
}

/* ---- guards ------------------------------------------------------------------------------ */

bool scsi_disk_guard_has_mounts(struct scsi_disk *d, void *arg)
{
        return d->n_mounts > 0;
}

bool scsi_disk_guard_was_attached(struct scsi_disk *d, void *arg)
{
        return d->was_attached;
}

bool scsi_disk_guard_pinned(struct scsi_disk *d, void *arg)
{
        return d->pinned;
}

/* ---- host calls -------------------------------------------------------------------------- */

/* Sends {"ResourcePath": ".../Scsi/<c>/Attachments/<lun>", "RequestType": kind, "Settings"}. */
static int modify(struct scsi_disk *d, bool add, hcs_done_fn done)
{
        struct hcs_system *sys = d->ctrl->env->sys;
        char path[96];
        struct json_object *req, *settings;
        int r;

        if (!sys)
                return -ENOTCONN;
        if (ferry_bprintf(path, sizeof(path), "VirtualMachine/Devices/Scsi/%u/Attachments/%u",
                          d->controller, d->lun) < 0)
                return -EINVAL;
        req = json_object_new_object();
        settings = json_object_new_object();
        if (!req || !settings) {
                json_object_put(req);
                json_object_put(settings);
                return -ENOMEM;
        }
        if (add) {
                json_object_object_add(settings, "Path", json_object_new_string(d->host_path));
                json_object_object_add(settings, "Type", json_object_new_string(d->type));
                json_object_object_add(settings, "ReadOnly", json_object_new_boolean(d->read_only));
                if (*d->evd_type)
                        json_object_object_add(settings, "ExtensibleVirtualDiskType",
                                               json_object_new_string(d->evd_type));
        }
        json_object_object_add(req, "ResourcePath", json_object_new_string(path));
        json_object_object_add(req, "RequestType", json_object_new_string(add ? "Add" : "Remove"));
        json_object_object_add(req, "Settings", settings);
        r = hcs_modify(sys, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), done, d);
        json_object_put(req);
        return r;
}

/* A host completion: dispatch it, then let the waiting call continue (after the dispatch, so the
 * call may free the disk). */
static void host_done(struct scsi_disk *d, enum scsi_disk_event ev, int result)
{
        struct scsi_op *op = d->op;
        int r = scsi_disk_dispatch(&d->fsm, ev, &result);

        if (r < 0 && op)
                op->result = r;
        if (op)
                scsi_op_resume(op);
}

static void attach_done(int result, void *userdata)
{
        host_done(userdata, result < 0 ? SCSI_DISK_E_ATTACH_FAILED : SCSI_DISK_E_ATTACH_DONE,
                  result);
}

static void remove_done(int result, void *userdata)
{
        /* already gone from the bus is what we wanted */
        if (result == -ENOENT)
                result = 0;
        host_done(userdata, result < 0 ? SCSI_DISK_E_REMOVE_FAILED : SCSI_DISK_E_REMOVE_DONE,
                  result);
}

/* ---- actions ----------------------------------------------------------------------------- */

/* arg: the new reservation's mount config. */
int scsi_disk_action_reserve_partition(struct scsi_disk *d, void *arg)
{
        const struct scsi_mount_config *cfg = arg;
        struct scsi_mount *m = scsi_disk_find_mount(d, cfg->partition);
        int r;

        if (m)
                return scsi_mount_dispatch(&m->fsm, SCSI_MOUNT_E_RESERVE, arg);
        m = free_mount_entry(d);
        if (!m)
                return -ENOSPC;
        r = scsi_mount_init(m, d, cfg->partition);
        if (r == 0)
                r = scsi_mount_set_config(m, cfg);
        if (r < 0) {
                scsi_mount_clear(m);
                return r;
        }
        m->refs = 1;
        d->n_mounts++;
        return 0;
}

/* arg: the waiting op. */
int scsi_disk_action_begin_attach(struct scsi_disk *d, void *arg)
{
        int r = modify(d, true, attach_done);

        if (r < 0)
                return r;
        d->op = arg;
        return FSM_PENDING;
}

static void hand_over(struct scsi_disk *d, void *arg)
{
        if (!d->op)
                return;
        d->op->result = *(const int *)arg;
        d->op = NULL;
}

int scsi_disk_action_adopt(struct scsi_disk *d, void *arg)
{
        d->on_bus = true;
        d->pinned = true;
        return 0;
}

int scsi_disk_action_mark_attached(struct scsi_disk *d, void *arg)
{
        d->on_bus = true;
        hand_over(d, arg);
        return 0;
}

int scsi_disk_action_mark_removed(struct scsi_disk *d, void *arg)
{
        d->on_bus = false;
        hand_over(d, arg);
        return 0;
}

int scsi_disk_action_reply_error(struct scsi_disk *d, void *arg)
{
        hand_over(d, arg);
        return 0;
}

int scsi_disk_action_fail_attach(struct scsi_disk *d, void *arg)
{
        hand_over(d, arg);
        return 0;
}

/* Forwards a call to the op's partition; a mount machine going pending marks the op. */
static int forward(struct scsi_disk *d, struct scsi_op *op, enum scsi_mount_event ev,
                   uint64_t partition, int missing)
{
        struct scsi_mount *m = scsi_disk_find_mount(d, partition);
        int r;

        if (!m)
                return missing;
        r = scsi_mount_dispatch(&m->fsm, ev, op);
        if (r == FSM_PENDING) {
                op->pending = true;
                return 0;
        }
        return r < 0 ? r : 0;
}

int scsi_disk_action_mount_partition(struct scsi_disk *d, void *arg)
{
        struct scsi_op *op = arg;

        return forward(d, op, SCSI_MOUNT_E_MOUNT, op->partition, -EBUSY);
}

int scsi_disk_action_unmount_partition(struct scsi_disk *d, void *arg)
{
        struct scsi_op *op = arg;

        /* no entry: released before (or torn down); retrying is harmless */
        return forward(d, op, SCSI_MOUNT_E_UNMOUNT, op->partition, 0);
}

/* arg: the ended mount (queued by its release or drop). */
int scsi_disk_action_drop_mount(struct scsi_disk *d, void *arg)
{
        struct scsi_mount *m = arg;

        if (!m->used)
                return 0;
        scsi_mount_clear(m);
        d->n_mounts--;
        return 0;
}

int scsi_disk_action_begin_remove(struct scsi_disk *d, void *arg)
{
        int r = modify(d, false, remove_done);

        if (r < 0)
                return r;
        d->op = arg;
        return FSM_PENDING;
}

int scsi_disk_action_free_slot(struct scsi_disk *d, void *arg)
{
        return 0;
}

/* Puts every mount back as it was before this save froze it. */
static void unfreeze_mounts(struct scsi_disk *d, const bool *frozen_now)
{
        for (size_t i = 0; i < SCSI_PARTITIONS_MAX; i++)
                if (frozen_now[i])
                        (void)scsi_mount_dispatch(&d->mounts[i].fsm, SCSI_MOUNT_E_RESUME, NULL);
}

/* Serializes the disk and its mounts into a new "scsi_disk" envelope (arg: scsi_save_arg).
 * first: this save freezes the mounts, so a failure must thaw those it froze. */
static int save(struct scsi_disk *d, struct scsi_save_arg *out, bool attached, bool first)
{
        Ferry__Scsi__Save__V1__DiskPayload p = FERRY__SCSI__SAVE__V1__DISK_PAYLOAD__INIT;
        ctrl_envelope *mounts[SCSI_PARTITIONS_MAX] = {0};
        bool frozen_now[SCSI_PARTITIONS_MAX] = {0};
        size_t n = 0;
        int r = 0;

        for (size_t i = 0; i < SCSI_PARTITIONS_MAX && r == 0; i++) {
                struct scsi_save_arg m = {0};

                if (!d->mounts[i].used)
                        continue;
                r = scsi_mount_dispatch(&d->mounts[i].fsm, SCSI_MOUNT_E_SAVE, &m);
                if (r == 0) {
                        frozen_now[i] = first;
                        mounts[n++] = m.env;
                }
        }
        if (r == 0) {
                p.schema_version = SCSI_SCHEMA_VERSION;
                p.slot = scsi_disk_slot(d);
                p.host_path = d->host_path;
                p.type = d->type;
                p.evd_type = d->evd_type;
                p.read_only = d->read_only;
                p.attached = attached;
                p.pinned = d->pinned;
                p.mounts = mounts;
                p.n_mounts = n;
                r = ctrl_envelope_pack("scsi_disk", SCSI_SCHEMA_VERSION, &p.base, &out->env);
        }
        for (size_t i = 0; i < n; i++)
                ctrl_envelope_free(mounts[i]);
        if (r < 0) {
                unfreeze_mounts(d, frozen_now);
                return r;
        }
        d->was_attached = attached;
        d->froze_now = first;
        return 0;
}

int scsi_disk_action_save_reserved(struct scsi_disk *d, void *arg)
{
        return save(d, arg, false, true);
}

int scsi_disk_action_save_attached(struct scsi_disk *d, void *arg)
{
        return save(d, arg, true, true);
}

int scsi_disk_action_save_again(struct scsi_disk *d, void *arg)
{
        return save(d, arg, d->was_attached, false);
}

/* arg: the decoded DiskPayload; the controller checked the slot. Mounts are unpacked and
 * imported here; on failure the caller frees the disk (nothing is shared yet). */
int scsi_disk_action_import_disk(struct scsi_disk *d, void *arg)
{
        const Ferry__Scsi__Save__V1__DiskPayload *p = arg;
        struct scsi_disk_config cfg = {
            .host_path = p->host_path,
            .type = p->type,
            .evd_type = p->evd_type,
            .read_only = p->read_only,
        };
        int r;

        if (p->n_mounts > SCSI_PARTITIONS_MAX)
                return -EINVAL;
        r = scsi_disk_set_config(d, &cfg);
        if (r < 0)
                return r;
        d->was_attached = p->attached;
        d->on_bus = p->attached;
        d->pinned = p->pinned;
        for (size_t i = 0; i < p->n_mounts; i++) {
                ProtobufCMessage *msg = NULL;
                Ferry__Scsi__Save__V1__MountPayload *mp;
                struct scsi_mount *m;
                uint32_t version;

                r = ctrl_envelope_unpack(p->mounts[i], "scsi_mount", SCSI_SCHEMA_VERSION,
                                         &ferry__scsi__save__v1__mount_payload__descriptor, &msg,
                                         &version, NULL);
                if (r < 0)
                        return r;
                mp = (Ferry__Scsi__Save__V1__MountPayload *)msg;
                if (mp->schema_version != version || scsi_disk_find_mount(d, mp->partition))
                        r = -EINVAL;
                m = &d->mounts[i];
                if (r == 0)
                        r = scsi_mount_init(m, d, mp->partition);
                if (r == 0) {
                        d->n_mounts++;
                        r = scsi_mount_dispatch(&m->fsm, SCSI_MOUNT_E_IMPORT, mp);
                }
                protobuf_c_message_free_unpacked(msg, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* arg: char ** holding the new path, taken (the controller validated it). */
int scsi_disk_action_update_host_path(struct scsi_disk *d, void *arg)
{
        char **path = arg;

        free(d->host_path);
        d->host_path = TAKE_PTR(*path);
        return 0;
}

static void to_every_mount(struct scsi_disk *d, enum scsi_mount_event ev)
{
        for (size_t i = 0; i < SCSI_PARTITIONS_MAX; i++)
                if (d->mounts[i].used)
                        (void)scsi_mount_dispatch(&d->mounts[i].fsm, ev, NULL);
}

int scsi_disk_action_unfreeze(struct scsi_disk *d, void *arg)
{
        to_every_mount(d, SCSI_MOUNT_E_RESUME);
        return 0;
}

int scsi_disk_action_bind(struct scsi_disk *d, void *arg)
{
        /* the controller's env holds the live VM and guest; every call reads them there */
        to_every_mount(d, SCSI_MOUNT_E_RESUME);
        return 0;
}

int scsi_disk_action_drop(struct scsi_disk *d, void *arg)
{
        to_every_mount(d, SCSI_MOUNT_E_TEARDOWN);
        return 0;
}
