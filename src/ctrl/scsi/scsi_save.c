/* SPDX-License-Identifier: MIT */
/* Save and import of the SCSI controller (proto/save_scsi.proto): one "scsi" envelope nesting a
 * "scsi_disk" envelope per occupied slot, each nesting a "scsi_mount" envelope per partition.
 * Import builds a new controller and hands it out only when every check passed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scsi_int.h"
#include "util/util.h"

/* Thaws the disks this save froze (a re-save froze none). */
static void thaw(struct scsi_ctrl *c, const bool *froze)
{
        for (size_t s = 0; s < SCSI_SLOTS; s++)
                if (froze[s])
                        (void)scsi_disk_dispatch(&c->slots[s]->fsm, SCSI_DISK_E_RESUME, NULL);
}

static int pack(const struct scsi_ctrl *c, ctrl_envelope **disks, size_t n_disks,
                ctrl_envelope **ret)
{
        Ferry__Scsi__Save__V1__Payload p = FERRY__SCSI__SAVE__V1__PAYLOAD__INIT;
        Ferry__Scsi__Save__V1__Reservation *res = NULL, **resp = NULL;
        uint32_t controllers[SCSI_CONTROLLERS_MAX];
        size_t n_ctl = 0;
        int r;

        for (uint32_t i = 0; i < SCSI_CONTROLLERS_MAX; i++)
                if (c->present & (1u << i))
                        controllers[n_ctl++] = i;
        if (c->n_res) {
                res = calloc(c->n_res, sizeof(*res));
                resp = calloc(c->n_res, sizeof(*resp));
                if (!res || !resp) {
                        free(res);
                        free(resp);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < c->n_res; i++) {
                ferry__scsi__save__v1__reservation__init(&res[i]);
                res[i].id = (char *)c->res[i].id;
                res[i].slot = c->res[i].slot;
                res[i].partition = c->res[i].partition;
                res[i].released = c->res[i].released;
                resp[i] = &res[i];
        }
        p.schema_version = SCSI_SCHEMA_VERSION;
        p.controllers = controllers;
        p.n_controllers = n_ctl;
        p.disks = disks;
        p.n_disks = n_disks;
        p.reservations = resp;
        p.n_reservations = c->n_res;
        r = ctrl_envelope_pack("scsi", SCSI_SCHEMA_VERSION, &p.base, ret);
        free(res);
        free(resp);
        return r;
}

/* Saves every disk into *ret; thaws the disks this save froze when anything fails. */
static int save_all(struct scsi_ctrl *c, ctrl_envelope **ret)
{
        ctrl_envelope *disks[SCSI_SLOTS];
        bool froze[SCSI_SLOTS] = {0};
        size_t n = 0;
        int r = 0;

        for (size_t s = 0; s < SCSI_SLOTS && r == 0; s++) {
                struct scsi_save_arg a = {0};

                if (!c->slots[s])
                        continue;
                r = scsi_disk_dispatch(&c->slots[s]->fsm, SCSI_DISK_E_SAVE, &a);
                if (r == 0) {
                        froze[s] = c->slots[s]->froze_now;
                        disks[n++] = a.env;
                }
        }
        if (r == 0)
                r = pack(c, disks, n, ret);
        for (size_t i = 0; i < n; i++)
                ctrl_envelope_free(disks[i]);
        if (r < 0)
                thaw(c, froze);
        return r;
}

int scsi_action_save_all(struct scsi_ctrl *c, void *arg)
{
        return save_all(c, arg);
}

int scsi_action_save_again(struct scsi_ctrl *c, void *arg)
{
        /* every disk is frozen already, so none is thawed on failure */
        return save_all(c, arg);
}

int scsi_save(struct scsi_ctrl *c, ctrl_envelope **ret)
{
        if (!c || !ret)
                return -EINVAL;
        return scsi_dispatch(&c->fsm, SCSI_E_SAVE, ret);
}

/* ---- import ------------------------------------------------------------------------------- */

static int import_disk(struct scsi_ctrl *c, const ctrl_envelope *e)
{
        ProtobufCMessage *msg = NULL;
        Ferry__Scsi__Save__V1__DiskPayload *p;
        struct scsi_disk *d;
        uint32_t version;
        int r;

        r = ctrl_envelope_unpack(e, "scsi_disk", SCSI_SCHEMA_VERSION,
                                 &ferry__scsi__save__v1__disk_payload__descriptor, &msg, &version,
                                 NULL);
        if (r < 0)
                return r;
        p = (Ferry__Scsi__Save__V1__DiskPayload *)msg;
        /* the slot must be one the destination VM has, and free (bug 21 in the reference) */
        if (p->schema_version != version || p->slot >= SCSI_SLOTS ||
            !(c->present & (1u << (p->slot / SCSI_LUNS))) || c->slots[p->slot] ||
            !scsi_path_ok(p->host_path) || scsi_ctrl_disk_by_path(c, p->host_path)) {
                r = -EINVAL;
                goto out;
        }
        d = scsi_disk_new(c, p->slot);
        if (!d) {
                r = -ENOMEM;
                goto out;
        }
        c->slots[p->slot] = d; /* freed with c on failure */
        r = scsi_disk_dispatch(&d->fsm, SCSI_DISK_E_IMPORT, p);
out:
        protobuf_c_message_free_unpacked(msg, NULL);
        return r;
}

static int import_reservation(struct scsi_ctrl *c, const Ferry__Scsi__Save__V1__Reservation *p)
{
        struct scsi_disk *d;

        if (!scsi_id_ok(p->id) || scsi_ctrl_res_find(c, p->id) || p->slot >= SCSI_SLOTS)
                return -EINVAL;
        d = c->slots[p->slot];
        if (!d || (!p->released && !scsi_disk_find_mount(d, p->partition)))
                return -EINVAL;
        return scsi_ctrl_res_add(c, p->id, p->slot, p->partition);
}

/* Every mount's reference count is the number of reservations still holding it. */
static int check_counts(const struct scsi_ctrl *c)
{
        for (size_t s = 0; s < SCSI_SLOTS; s++) {
                struct scsi_disk *d = c->slots[s];

                for (size_t i = 0; d && i < SCSI_PARTITIONS_MAX; i++) {
                        const struct scsi_mount *m = &d->mounts[i];
                        uint32_t held = 0;

                        if (!m->used)
                                continue;
                        for (size_t k = 0; k < c->n_res; k++)
                                held += c->res[k].slot == s && !c->res[k].released &&
                                        c->res[k].partition == m->partition;
                        if (held != m->refs)
                                return -EINVAL;
                }
        }
        return 0;
}

int scsi_action_import_all(struct scsi_ctrl *c, void *arg)
{
        const Ferry__Scsi__Save__V1__Payload *p = arg;
        int r;

        for (size_t i = 0; i < p->n_controllers; i++) {
                uint32_t idx = p->controllers[i];

                if (idx >= SCSI_CONTROLLERS_MAX || (c->present & (1u << idx)))
                        return -EINVAL;
                c->present |= (uint8_t)(1u << idx);
        }
        if (p->n_disks > SCSI_SLOTS)
                return -EINVAL;
        for (size_t i = 0; i < p->n_disks; i++) {
                r = import_disk(c, p->disks[i]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < p->n_reservations; i++) {
                r = import_reservation(c, p->reservations[i]);
                if (r < 0)
                        return r;
        }
        return check_counts(c);
}

int scsi_import(const struct ctrl_env *env, const ctrl_envelope *e, struct scsi_ctrl **ret)
{
        ProtobufCMessage *msg = NULL;
        Ferry__Scsi__Save__V1__Payload *p;
        struct scsi_ctrl *c;
        uint32_t version;
        int r;

        if (!env || !ret)
                return -EINVAL;
        r = ctrl_envelope_unpack(e, "scsi", SCSI_SCHEMA_VERSION,
                                 &ferry__scsi__save__v1__payload__descriptor, &msg, &version, NULL);
        if (r < 0)
                return r;
        p = (Ferry__Scsi__Save__V1__Payload *)msg;
        c = scsi_ctrl_alloc(env);
        if (!c)
                r = -ENOMEM;
        else if (p->schema_version != version)
                r = -EINVAL;
        else
                r = scsi_dispatch(&c->fsm, SCSI_E_IMPORT, p);
        protobuf_c_message_free_unpacked(msg, NULL);
        if (r < 0) {
                (void)scsi_ctrl_free(c);
                return r;
        }
        *ret = c;
        return 0;
}
