/* SPDX-License-Identifier: MIT */
/* The SCSI controller: slots, reservations and the map/unmap calls that drive the disk and
 * mount machines. Lifecycle decisions are the specs'; this file keeps the data (who holds which
 * slot and partition) and sequences the steps of a call. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "scsi_int.h"
#include "util/util.h"

bool scsi_path_ok(const char *path)
{
        size_t len;

        if (!path || path[0] != '/')
                return false;
        len = strnlen(path, SCSI_PATH_MAX);
        if (len >= SCSI_PATH_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
                        return false;
        return true;
}

/* ---- slots and reservations --------------------------------------------------------------- */

static struct scsi_disk *disk_by_path(const struct scsi_ctrl *c, const char *path)
{
        for (size_t s = 0; s < SCSI_SLOTS; s++)
                if (c->slots[s] && strcmp(c->slots[s]->host_path, path) == 0)
                        return c->slots[s];
        return NULL;
}

static int free_slot(const struct scsi_ctrl *c, uint32_t *ret)
{
        for (uint32_t s = 0; s < SCSI_SLOTS; s++) {
                if ((c->present & (1u << (s / SCSI_LUNS))) && !c->slots[s]) {
                        *ret = s;
                        return 0;
                }
        }
        return -ENOSPC;
}

static struct scsi_res *res_find(const struct scsi_ctrl *c, const char *id)
{
        if (!id)
                return NULL;
        for (size_t i = 0; i < c->n_res; i++)
                if (strcmp(c->res[i].id, id) == 0)
                        return &c->res[i];
        return NULL;
}

static int res_grow(struct scsi_ctrl *c)
{
        size_t cap;
        struct scsi_res *n;

        if (c->n_res < c->cap_res)
                return 0;
        cap = c->cap_res ? c->cap_res * 2 : 16;
        n = reallocarray(c->res, cap, sizeof(*n));
        if (!n)
                return -ENOMEM;
        c->res = n;
        c->cap_res = cap;
        return 0;
}

/* Appends a reservation (room made by res_grow). */
static struct scsi_res *res_add(struct scsi_ctrl *c, const char *id, uint32_t slot,
                                uint64_t partition)
{
        struct scsi_res *r = &c->res[c->n_res++];

        memset(r, 0, sizeof(*r));
        ferry_strscpy(r->id, id, sizeof(r->id));
        r->slot = slot;
        r->partition = partition;
        c->slots[slot]->n_res++;
        return r;
}

/* Forgets a reservation; its disk goes with it once detached and named by nobody. */
static void res_remove(struct scsi_ctrl *c, struct scsi_res *r)
{
        uint32_t slot = r->slot;
        struct scsi_disk *d = c->slots[slot];

        *r = c->res[--c->n_res];
        if (!d)
                return;
        d->n_res--;
        if (d->n_res == 0 && fsm_is_terminal(&d->fsm)) {
                c->slots[slot] = NULL;
                scsi_disk_free(d);
        }
}

static struct scsi_disk *res_disk(const struct scsi_ctrl *c, const struct scsi_res *r)
{
        return r ? c->slots[r->slot] : NULL;
}

int scsi_new_id(char ret[SCSI_ID_LEN])
{
        uint8_t b[16];

        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
                return -errno ? -errno : -EIO;
        b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
        b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
        (void)ferry_bprintf(ret, SCSI_ID_LEN,
                            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
                            b[11], b[12], b[13], b[14], b[15]);
        return 0;
}

bool scsi_id_ok(const char *id)
{
        if (!id || strnlen(id, SCSI_ID_LEN) != SCSI_ID_LEN - 1)
                return false;
        for (size_t i = 0; i < SCSI_ID_LEN - 1; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                char ch = id[i];

                if (dash ? ch != '-'
                         : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                             (ch >= 'A' && ch <= 'F')))
                        return false;
        }
        return true;
}

/* ---- construction ------------------------------------------------------------------------- */

static int parse_index(const char *key, unsigned max, uint32_t *ret)
{
        char *end;
        unsigned long v;

        if (!key[0] || (key[0] == '0' && key[1]) || key[0] < '0' || key[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(key, &end, 10);
        if (errno || *end || v >= max)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

struct scsi_ctrl *scsi_ctrl_alloc(const struct ctrl_env *env)
{
        struct scsi_ctrl *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->env = env;
        fsm_init(&c->fsm, &scsi_machine, c, "scsi");
        return c;
}

/* Adds the rootfs attachment at (controller, lun) from a compute document. */
static int add_doc_disk(struct scsi_ctrl *c, uint32_t ctl, const char *lkey, struct json_object *a)
{
        struct json_object *v;
        struct scsi_disk_config cfg = {0};
        struct scsi_disk *d;
        uint32_t lun;
        int r;

        if (parse_index(lkey, SCSI_LUNS, &lun) < 0 || !json_object_is_type(a, json_type_object))
                return -EINVAL;
        if (json_object_object_get_ex(a, "Path", &v))
                cfg.host_path = json_object_get_string(v);
        if (json_object_object_get_ex(a, "Type", &v))
                cfg.type = json_object_get_string(v);
        if (json_object_object_get_ex(a, "ExtensibleVirtualDiskType", &v))
                cfg.evd_type = json_object_get_string(v);
        if (json_object_object_get_ex(a, "ReadOnly", &v))
                cfg.read_only = json_object_get_boolean(v);
        if (!scsi_path_ok(cfg.host_path) || disk_by_path(c, cfg.host_path))
                return -EINVAL;
        d = scsi_disk_new(c, ctl * SCSI_LUNS + lun);
        if (!d)
                return -ENOMEM;
        r = scsi_disk_set_config(d, &cfg);
        if (r == 0)
                r = scsi_disk_dispatch(&d->fsm, SCSI_DISK_E_ADOPT, NULL);
        if (r < 0) {
                scsi_disk_free(d);
                return r;
        }
        c->slots[ctl * SCSI_LUNS + lun] = d;
        return 0;
}

static int parse_doc(struct scsi_ctrl *c, struct json_object *doc)
{
        struct json_object *vm, *dev, *scsi;

        if (!doc || !json_object_object_get_ex(doc, "VirtualMachine", &vm) ||
            !json_object_object_get_ex(vm, "Devices", &dev) ||
            !json_object_object_get_ex(dev, "Scsi", &scsi))
                return 0; /* no SCSI controller: every reserve finds no slot */
        if (!json_object_is_type(scsi, json_type_object))
                return -EINVAL;
        json_object_object_foreach(scsi, ckey, ctl)
        {
                struct json_object *att;
                uint32_t idx;

                if (parse_index(ckey, SCSI_CONTROLLERS_MAX, &idx) < 0 ||
                    !json_object_is_type(ctl, json_type_object))
                        return -EINVAL;
                c->present |= (uint8_t)(1u << idx);
                if (!json_object_object_get_ex(ctl, "Attachments", &att))
                        continue;
                if (!json_object_is_type(att, json_type_object))
                        return -EINVAL;
                json_object_object_foreach(att, lkey, a)
                {
                        int r = add_doc_disk(c, idx, lkey, a);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int scsi_ctrl_new(const struct ctrl_env *env, struct json_object *doc, struct scsi_ctrl **ret)
{
        struct scsi_ctrl *c;
        int r;

        if (!env || !ret)
                return -EINVAL;
        c = scsi_ctrl_alloc(env);
        if (!c)
                return -ENOMEM;
        r = parse_doc(c, doc);
        if (r < 0) {
                (void)scsi_ctrl_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int scsi_ctrl_free(struct scsi_ctrl *c)
{
        if (!c)
                return 0;
        if (c->in_flight)
                return -EBUSY;
        for (size_t s = 0; s < SCSI_SLOTS; s++)
                scsi_disk_free(c->slots[s]);
        free(c->res);
        free(c);
        return 0;
}

/* ---- reserve ------------------------------------------------------------------------------ */

int scsi_action_reserve(struct scsi_ctrl *c, void *arg)
{
        const struct scsi_reserve_arg *a = arg;
        const struct scsi_disk_config *disk = a->disk;
        const struct scsi_mount_config *mount = a->mount;
        char id[SCSI_ID_LEN];
        struct scsi_disk *d;
        uint32_t slot;
        bool created = false;
        int r;

        r = res_grow(c);
        if (r < 0)
                return r;
        do {
                r = scsi_new_id(id);
                if (r < 0)
                        return r;
        } while (res_find(c, id));

        d = disk_by_path(c, disk->host_path);
        if (d) {
                if (!scsi_disk_config_equal(d, disk))
                        return -EBUSY;
                slot = scsi_disk_slot(d);
        } else {
                r = free_slot(c, &slot);
                if (r < 0)
                        return r;
                d = scsi_disk_new(c, slot);
                if (!d)
                        return -ENOMEM;
                r = scsi_disk_set_config(d, disk);
                if (r < 0) {
                        scsi_disk_free(d);
                        return r;
                }
                created = true;
        }
        r = scsi_disk_dispatch(&d->fsm, SCSI_DISK_E_RESERVE, (void *)mount);
        if (r < 0) {
                if (created)
                        scsi_disk_free(d);
                return r;
        }
        c->slots[slot] = d;
        res_add(c, id, slot, mount->partition);
        memcpy(a->ret_id, id, SCSI_ID_LEN);
        return 0;
}

/* Caller-supplied mount configs are bounded before any machine compares or copies them. */
static bool mount_config_ok(const struct scsi_mount_config *m)
{
        if (m->n_options > SCSI_OPTIONS_MAX || (m->n_options && !m->options))
                return false;
        if (m->filesystem && strnlen(m->filesystem, SCSI_OPTION_MAX) >= SCSI_OPTION_MAX)
                return false;
        for (size_t i = 0; i < m->n_options; i++)
                if (!m->options[i] || strnlen(m->options[i], SCSI_OPTION_MAX) >= SCSI_OPTION_MAX)
                        return false;
        return true;
}

int scsi_reserve(struct scsi_ctrl *c, const struct scsi_disk_config *disk,
                 const struct scsi_mount_config *mount, char ret_id[SCSI_ID_LEN])
{
        struct scsi_reserve_arg a = {disk, mount, ret_id};

        if (!c || !disk || !mount || !ret_id || !scsi_path_ok(disk->host_path) ||
            !mount_config_ok(mount))
                return -EINVAL;
        return scsi_dispatch(&c->fsm, SCSI_E_RESERVE, &a);
}

/* ---- map / unmap: steps over the machines ------------------------------------------------- */

static int step_dispatch(struct scsi_op *op, enum scsi_disk_event ev)
{
        struct scsi_res *r = res_find(op->ctrl, op->id);
        struct scsi_disk *d = res_disk(op->ctrl, r);
        int ret;

        if (!d)
                return -ENOENT;
        op->partition = r->partition;
        ret = scsi_disk_dispatch(&d->fsm, ev, op);
        if (ret == FSM_PENDING) {
                op->pending = true;
                return 0;
        }
        return ret < 0 ? ret : 0;
}

static int step_attach(struct scsi_op *op)
{
        return step_dispatch(op, SCSI_DISK_E_ATTACH);
}

static int step_mount(struct scsi_op *op)
{
        return step_dispatch(op, SCSI_DISK_E_MOUNT);
}

static int step_unmount(struct scsi_op *op)
{
        struct scsi_res *r = res_find(op->ctrl, op->id);

        /* a retried unmap whose reference went already only detaches */
        if (r && r->released)
                return 0;
        return step_dispatch(op, SCSI_DISK_E_UNMOUNT);
}

static int step_mark_released(struct scsi_op *op)
{
        struct scsi_res *r = res_find(op->ctrl, op->id);

        if (r)
                r->released = true;
        return 0;
}

static int step_detach(struct scsi_op *op)
{
        return step_dispatch(op, SCSI_DISK_E_DETACH);
}

static int step_forget(struct scsi_op *op)
{
        struct scsi_res *r = res_find(op->ctrl, op->id);

        if (r)
                res_remove(op->ctrl, r);
        return 0;
}

static const scsi_step_fn map_steps[] = {step_attach, step_mount, NULL};
static const scsi_step_fn unmap_steps[] = {step_unmount, step_mark_released, step_detach,
                                           step_forget, NULL};

/* Runs the op's steps until one goes pending (FSM_PENDING) or fails, or all are done (0). */
static int op_advance(struct scsi_op *op)
{
        while (op->steps[op->next]) {
                int r;

                op->pending = false;
                op->result = 0;
                r = op->steps[op->next++](op);
                if (r < 0)
                        return r;
                if (op->pending)
                        return FSM_PENDING;
        }
        return 0;
}

static void op_finish(struct scsi_op *op, int result)
{
        struct scsi_ctrl *c = op->ctrl;
        struct ctrl_pending p = {op->done, op->userdata};

        c->in_flight--;
        free(op);
        ctrl_reply(&p, result);
}

void scsi_op_resume(struct scsi_op *op)
{
        int r = op->result;

        if (r == 0)
                r = op_advance(op);
        if (r != FSM_PENDING)
                op_finish(op, r);
}

/* The controller accepted the call: make the op. Its steps run after the controller's dispatch
 * has returned, so every step is a dispatch of its own whose raised events (a mount's end) are
 * handled before the next step looks at the disk. */
static int op_make(struct scsi_ctrl *c, struct scsi_call_arg *a)
{
        struct scsi_op *op;

        if (!res_find(c, a->id))
                return -ENOENT;
        op = calloc(1, sizeof(*op));
        if (!op)
                return -ENOMEM;
        op->ctrl = c;
        ferry_strscpy(op->id, a->id, sizeof(op->id));
        op->steps = a->steps;
        a->op = op;
        return 0;
}

int scsi_action_map(struct scsi_ctrl *c, void *arg)
{
        return op_make(c, arg);
}

int scsi_action_unmap(struct scsi_ctrl *c, void *arg)
{
        return op_make(c, arg);
}

int scsi_action_release(struct scsi_ctrl *c, void *arg)
{
        /* the disks and mounts were dropped: every step finds nothing to call */
        return op_make(c, arg);
}

static int call(struct scsi_ctrl *c, enum scsi_event ev, const char *id, const scsi_step_fn *steps,
                ctrl_done_fn done, void *userdata)
{
        struct scsi_call_arg a = {.id = id, .steps = steps};
        struct ctrl_pending p = {done, userdata};
        struct scsi_op *op;
        int r;

        if (!c || !id)
                return -EINVAL;
        r = scsi_dispatch(&c->fsm, ev, &a);
        if (r < 0)
                return r;
        op = a.op;
        op->done = done;
        op->userdata = userdata;
        r = op_advance(op);
        if (r == FSM_PENDING) {
                c->in_flight++;
                return 0;
        }
        free(op);
        if (r < 0)
                return r;
        ctrl_reply(&p, 0);
        return 0;
}

int scsi_map(struct scsi_ctrl *c, const char *id, ctrl_done_fn done, void *userdata)
{
        return call(c, SCSI_E_MAP, id, map_steps, done, userdata);
}

int scsi_unmap(struct scsi_ctrl *c, const char *id, ctrl_done_fn done, void *userdata)
{
        return call(c, SCSI_E_UNMAP, id, unmap_steps, done, userdata);
}

/* ---- destination: patch and attachments --------------------------------------------------- */

int scsi_action_patch_disk(struct scsi_ctrl *c, void *arg)
{
        const struct scsi_patch_arg *a = arg;
        struct scsi_disk *d, *other;
        char *path;
        int r;

        d = res_disk(c, res_find(c, a->id));
        if (!d)
                return -ENOENT;
        if (!scsi_path_ok(a->host_path))
                return -EINVAL;
        other = disk_by_path(c, a->host_path);
        if (other && other != d)
                return -EEXIST;
        path = strdup(a->host_path);
        if (!path)
                return -ENOMEM;
        r = scsi_disk_dispatch(&d->fsm, SCSI_DISK_E_PATCH, &path);
        free(path); /* NULL when the disk took it */
        return r < 0 ? r : 0;
}

int scsi_patch(struct scsi_ctrl *c, const char *id, const char *host_path)
{
        struct scsi_patch_arg a = {id, host_path};

        if (!c || !id)
                return -EINVAL;
        return scsi_dispatch(&c->fsm, SCSI_E_PATCH, &a);
}

int scsi_attachments(const struct scsi_ctrl *c, struct json_object **ret)
{
        struct json_object *scsi = json_object_new_object();

        if (!scsi)
                return -ENOMEM;
        for (uint32_t ctl = 0; ctl < SCSI_CONTROLLERS_MAX; ctl++) {
                struct json_object *entry, *att;
                char key[4];

                if (!(c->present & (1u << ctl)))
                        continue;
                entry = json_object_new_object();
                att = json_object_new_object();
                if (!entry || !att)
                        goto oom;
                json_object_object_add(entry, "Attachments", att);
                (void)ferry_bprintf(key, sizeof(key), "%u", ctl);
                json_object_object_add(scsi, key, entry);
                for (uint32_t lun = 0; lun < SCSI_LUNS; lun++) {
                        const struct scsi_disk *d = c->slots[ctl * SCSI_LUNS + lun];
                        struct json_object *a;

                        if (!d || !d->on_bus)
                                continue;
                        a = json_object_new_object();
                        if (!a)
                                goto oom;
                        json_object_object_add(a, "Path", json_object_new_string(d->host_path));
                        json_object_object_add(a, "Type", json_object_new_string(d->type));
                        json_object_object_add(a, "ReadOnly",
                                               json_object_new_boolean(d->read_only));
                        if (*d->evd_type)
                                json_object_object_add(a, "ExtensibleVirtualDiskType",
                                                       json_object_new_string(d->evd_type));
                        (void)ferry_bprintf(key, sizeof(key), "%u", lun);
                        json_object_object_add(att, key, a);
                }
        }
        *ret = scsi;
        return 0;
oom:
        json_object_put(scsi);
        return -ENOMEM;
}

/* ---- resume and teardown ------------------------------------------------------------------ */

static void to_every_disk(struct scsi_ctrl *c, enum scsi_disk_event ev)
{
        for (size_t s = 0; s < SCSI_SLOTS; s++)
                if (c->slots[s])
                        (void)scsi_disk_dispatch(&c->slots[s]->fsm, ev, NULL);
}

int scsi_action_unfreeze(struct scsi_ctrl *c, void *arg)
{
        to_every_disk(c, SCSI_DISK_E_RESUME);
        return 0;
}

int scsi_action_bind(struct scsi_ctrl *c, void *arg)
{
        /* the env is read at every call: binding is checking the live VM and guest are there */
        if (!c->env->sys || !c->env->guest)
                return -EINVAL;
        to_every_disk(c, SCSI_DISK_E_RESUME);
        return 0;
}

int scsi_action_drop(struct scsi_ctrl *c, void *arg)
{
        to_every_disk(c, SCSI_DISK_E_TEARDOWN);
        for (size_t s = 0; s < SCSI_SLOTS; s++) {
                struct scsi_disk *d = c->slots[s];

                /* a dropped disk nobody names (a rootfs disk) goes now; the others with their
                 * last reservation */
                if (d && d->n_res == 0 && fsm_is_terminal(&d->fsm)) {
                        c->slots[s] = NULL;
                        scsi_disk_free(d);
                }
        }
        return 0;
}

int scsi_resume(struct scsi_ctrl *c)
{
        if (!c)
                return -EINVAL;
        return scsi_dispatch(&c->fsm, SCSI_E_RESUME, NULL);
}

int scsi_teardown(struct scsi_ctrl *c)
{
        if (!c)
                return -EINVAL;
        return scsi_dispatch(&c->fsm, SCSI_E_TEARDOWN, NULL);
}

/* ---- introspection ------------------------------------------------------------------------ */

static struct scsi_mount *res_mount(const struct scsi_ctrl *c, const char *id)
{
        struct scsi_res *r = res_find(c, id);
        struct scsi_disk *d = res_disk(c, r);

        return d ? scsi_disk_find_mount(d, r->partition) : NULL;
}

const char *scsi_guest_path(const struct scsi_ctrl *c, const char *id)
{
        struct scsi_mount *m = res_mount(c, id);

        return m ? m->guest_path : NULL;
}

int scsi_slot(const struct scsi_ctrl *c, const char *id, uint32_t *ret_controller,
              uint32_t *ret_lun)
{
        struct scsi_disk *d = res_disk(c, res_find(c, id));

        if (!d)
                return -ENOENT;
        if (ret_controller)
                *ret_controller = d->controller;
        if (ret_lun)
                *ret_lun = d->lun;
        return 0;
}

size_t scsi_disk_count(const struct scsi_ctrl *c)
{
        size_t n = 0;

        for (size_t s = 0; s < SCSI_SLOTS; s++)
                n += c->slots[s] != NULL;
        return n;
}

unsigned scsi_controller_count(const struct scsi_ctrl *c)
{
        return (unsigned)__builtin_popcount(c->present);
}

const char *scsi_disk_state(const struct scsi_ctrl *c, const char *id)
{
        struct scsi_disk *d = res_disk(c, res_find(c, id));

        return d ? fsm_state_name(&d->fsm) : NULL;
}

const char *scsi_mount_state(const struct scsi_ctrl *c, const char *id)
{
        struct scsi_mount *m = res_mount(c, id);

        return m ? fsm_state_name(&m->fsm) : NULL;
}

uint32_t scsi_mount_refs(const struct scsi_ctrl *c, const char *id)
{
        struct scsi_mount *m = res_mount(c, id);

        return m ? m->refs : 0;
}

const char *scsi_host_path(const struct scsi_ctrl *c, const char *id)
{
        struct scsi_disk *d = res_disk(c, res_find(c, id));

        return d ? d->host_path : NULL;
}

/* ---- for scsi_save.c ---------------------------------------------------------------------- */

struct scsi_disk *scsi_ctrl_disk_by_path(const struct scsi_ctrl *c, const char *path)
{
        return disk_by_path(c, path);
}

struct scsi_res *scsi_ctrl_res_find(const struct scsi_ctrl *c, const char *id)
{
        return res_find(c, id);
}

int scsi_ctrl_res_add(struct scsi_ctrl *c, const char *id, uint32_t slot, uint64_t partition)
{
        int r = res_grow(c);

        if (r < 0)
                return r;
        res_add(c, id, slot, partition);
        return 0;
}
