/* SPDX-License-Identifier: MIT */
/* The Plan9 controller's data and the action handlers of spec/plan9_share.yaml and
 * spec/plan9_mount.yaml. The specs own each share's and mount's lifecycle. The controller finds
 * shares by host path and reservations by id, and runs the two-step public calls (mount: share
 * add then guest mount; unmount: mount release then share removal) as small operations whose
 * steps are spec events. An operation continues only at the top of the stack (never inside a
 * transition), so a step that completes inside another machine's transition is picked up once
 * that transition is over. Machines that end are freed there too. */
#include "ctrl/plan9/plan9.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "ctrl/common/guid.h"
#include "guest/guest.h"
#include "hcs/hcs.h"
#include "plan9_mount_fsm.h"
#include "plan9_share_fsm.h"
#include "save_plan9.pb-c.h"
#include "util/util.h"

#define PLAN9_SCHEMA_VERSION 1
#define SHARE_PATH           "VirtualMachine/Devices/Plan9/Shares/"
#define GUEST_ROOT           "/run/mounts/plan9/"
#define NAME_LEN             24
#define ALLOWED_LEN          256

struct plan9_mount {
        struct fsm fsm;
        struct plan9_share *share;
        bool read_only;
        uint32_t refcount;
        char guest_path[sizeof(GUEST_ROOT) + NAME_LEN];
        struct ctrl_pending pending;
        int op_err;
};

struct plan9_share {
        struct fsm fsm;
        struct plan9 *p;
        size_t slot;
        char name[NAME_LEN];
        char host_path[PLAN9_PATH_MAX];
        bool read_only, restrict_access;
        char allowed[PLAN9_MAX_ALLOWED][ALLOWED_LEN];
        size_t n_allowed;
        struct plan9_mount *mount;
        struct plan9_mount *dead_mount; /* ended; freed once no transition runs */
        struct ctrl_pending pending;
        int op_err;
};

struct reservation {
        char id[PLAN9_ID_LEN];
        struct plan9_share *share;
        bool released; /* its mount reference is dropped; the share removal is what is left */
        struct op *op; /* the operation running on it, if any */
};

enum op_kind { OP_MOUNT, OP_UNMOUNT };

/* A public mount or unmount in progress: its steps are share events. */
struct op {
        struct plan9 *p;
        struct reservation *res;
        enum op_kind kind;
        unsigned step;
        bool in_step, step_done, started;
        int step_r;
        ctrl_done_fn done;
        void *userdata;
        struct op *next_ready;
};

struct plan9 {
        const struct ctrl_env *env;
        bool no_writable;
        uint64_t name_counter;
        struct plan9_share *shares[PLAN9_MAX_SHARES];
        struct reservation *res[PLAN9_MAX_RESERVATIONS];
        struct op *ready; /* operations whose step completed inside a transition */
};

/* A call into a machine: its caller and, for reserve, the mount's read-only flag. */
struct p9_call {
        ctrl_done_fn done; /* taken by an action that goes pending */
        void *userdata;
        bool read_only;
};

static _unused_ bool in_flight(const struct fsm *m)
{
        return m->machine->state_flags[fsm_state(m)] & FSM_STATE_INFLIGHT;
}

/* Dispatches a call event: negative errno when rejected or failed at once; otherwise 0, and done
 * runs now unless an action took it to reply later. */
static int call(struct fsm *m, unsigned ev, struct p9_call *c)
{
        int r = fsm_dispatch(m, ev, c, NULL);
        if (r == FSM_PENDING)
                return 0;
        if (r < 0)
                return r;
        if (c->done) {
                ctrl_done_fn done = c->done;
                c->done = NULL;
                done(0, c->userdata);
        }
        return 0;
}

static void take_call(struct ctrl_pending *pending, void *arg)
{
        struct p9_call *c = arg;
        pending->done = c->done;
        pending->userdata = c->userdata;
        c->done = NULL;
}

static void forget_reservation(struct plan9 *p, struct reservation *res)
{
        for (size_t i = 0; i < PLAN9_MAX_RESERVATIONS; i++)
                if (p->res[i] == res)
                        p->res[i] = NULL;
        free(res);
}

/* Frees what ended: the share's dead mount, and the share itself once removed (with the released
 * reservations still pointing at it: their share is gone, so they are done), unless an operation
 * still runs on one of its reservations (its end reaps again). Called with no transition of s
 * running. */
static void reap(struct plan9_share *s)
{
        if (s->dead_mount && fsm_is_terminal(&s->dead_mount->fsm)) {
                free(s->dead_mount);
                s->dead_mount = NULL;
        }
        if (!fsm_is_terminal(&s->fsm) || s->dead_mount || s->mount)
                return;
        struct plan9 *p = s->p;
        for (size_t i = 0; i < PLAN9_MAX_RESERVATIONS; i++)
                if (p->res[i] && p->res[i]->share == s && p->res[i]->op)
                        return;
        for (size_t i = 0; i < PLAN9_MAX_RESERVATIONS; i++)
                if (p->res[i] && p->res[i]->share == s && p->res[i]->released)
                        forget_reservation(p, p->res[i]);
        p->shares[s->slot] = NULL;
        free(s);
}

static void kick(struct plan9 *p);

/* ---- plan9_mount actions ----------------------------------------------------------------- */

bool plan9_mount_guard_configs_equal(struct plan9_mount *m, void *arg)
{
        const struct p9_call *c = arg;
        return c->read_only == m->read_only;
}

bool plan9_mount_guard_last_reference(struct plan9_mount *m, void *arg)
{
        return m->refcount == 1;
}

int plan9_mount_action_add_reference(struct plan9_mount *m, void *arg)
{
        m->refcount++;
        return 0;
}

int plan9_mount_action_drop_reference(struct plan9_mount *m, void *arg)
{
        m->refcount--;
        return 0;
}

int plan9_mount_action_release(struct plan9_mount *m, void *arg)
{
        m->refcount = 0;
        /* the share forgets its mount before anyone hears of the release */
        plan9_share_dispatch(&m->share->fsm, PLAN9_SHARE_E_MOUNT_RELEASED, m);
        ctrl_reply(&m->pending, 0);
        return 0;
}

/* Completion of a guest call of mount m: dispatch, free what ended, go on with waiting calls. */
static void mount_complete(struct plan9_mount *m, enum plan9_mount_event ev, int err)
{
        struct plan9_share *s = m->share;
        m->op_err = err;
        plan9_mount_dispatch(&m->fsm, ev, NULL);
        reap(s);
        kick(s->p);
}

static void on_guest_mounted(int r, uint64_t value, void *ud)
{
        mount_complete(ud, r < 0 ? PLAN9_MOUNT_E_MOUNT_FAILED : PLAN9_MOUNT_E_MOUNT_DONE, r);
}

int plan9_mount_action_begin_mount(struct plan9_mount *m, void *arg)
{
        struct guest_conn *g = m->share->p->env->guest;
        int r = g ? guest_plan9_mount(g, m->share->name, m->guest_path, on_guest_mounted, m)
                  : -ENOTCONN;
        if (r < 0)
                return r;
        take_call(&m->pending, arg);
        return FSM_PENDING;
}

int plan9_mount_action_reply_path(struct plan9_mount *m, void *arg)
{
        ctrl_reply(&m->pending, 0);
        return 0;
}

int plan9_mount_action_fail_mount(struct plan9_mount *m, void *arg)
{
        ctrl_reply(&m->pending, m->op_err ? m->op_err : -EIO);
        return 0;
}

static void on_guest_unmounted(int r, uint64_t value, void *ud)
{
        mount_complete(ud, r < 0 ? PLAN9_MOUNT_E_UNMOUNT_FAILED : PLAN9_MOUNT_E_UNMOUNT_DONE, r);
}

int plan9_mount_action_begin_unmount(struct plan9_mount *m, void *arg)
{
        struct guest_conn *g = m->share->p->env->guest;
        int r = g ? guest_plan9_unmount(g, m->guest_path, on_guest_unmounted, m) : -ENOTCONN;
        if (r < 0)
                return r;
        take_call(&m->pending, arg);
        return FSM_PENDING;
}

int plan9_mount_action_reply_error(struct plan9_mount *m, void *arg)
{
        ctrl_reply(&m->pending, m->op_err ? m->op_err : -EIO);
        return 0;
}

/* ---- plan9_share actions ----------------------------------------------------------------- */

bool plan9_share_guard_has_mount(struct plan9_share *s, void *arg)
{
        return s->mount != NULL;
}

int plan9_share_action_reserve_mount(struct plan9_share *s, void *arg)
{
        const struct p9_call *c = arg;
        if (s->mount) {
                struct p9_call fwd = {.read_only = c->read_only};
                return plan9_mount_dispatch(&s->mount->fsm, PLAN9_MOUNT_E_RESERVE, &fwd);
        }
        struct plan9_mount *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->share = s;
        m->read_only = c->read_only;
        m->refcount = 1;
        ferry_bprintf(m->guest_path, sizeof(m->guest_path), GUEST_ROOT "%s", s->name);
        fsm_init(&m->fsm, &plan9_mount_machine, m, m->guest_path);
        s->mount = m;
        return 0;
}

static void share_complete(struct plan9_share *s, enum plan9_share_event ev, int err)
{
        struct plan9 *p = s->p;
        s->op_err = err;
        plan9_share_dispatch(&s->fsm, ev, NULL);
        reap(s);
        kick(p);
}

static void on_host_added(int r, void *ud)
{
        share_complete(ud, r < 0 ? PLAN9_SHARE_E_ADD_FAILED : PLAN9_SHARE_E_ADD_DONE, r);
}

static void on_host_removed(int r, void *ud)
{
        share_complete(ud, r < 0 ? PLAN9_SHARE_E_REMOVE_FAILED : PLAN9_SHARE_E_REMOVE_DONE, r);
}

/* Add or Remove of the share on the VM (port 564, Linux metadata, read-only and restrict flags,
 * allowed names). */
static int host_share(struct plan9_share *s, const char *type, hcs_done_fn done)
{
        char path[sizeof(SHARE_PATH) + NAME_LEN];
        if (!s->p->env->sys)
                return -ENXIO;
        ferry_bprintf(path, sizeof(path), SHARE_PATH "%s", s->name);
        struct json_object *req = json_object_new_object(), *set = json_object_new_object();
        struct json_object *names = json_object_new_array(), *flags = json_object_new_array();
        json_object_object_add(req, "ResourcePath", json_object_new_string(path));
        json_object_object_add(req, "RequestType", json_object_new_string(type));
        json_object_object_add(set, "Name", json_object_new_string(s->name));
        json_object_object_add(set, "AccessName", json_object_new_string(s->name));
        json_object_object_add(set, "Port", json_object_new_int(PLAN9_PORT));
        if (strcmp(type, "Add") == 0) {
                json_object_object_add(set, "Path", json_object_new_string(s->host_path));
                json_object_object_add(set, "ReadOnly", json_object_new_boolean(s->read_only));
                json_object_array_add(flags, json_object_new_string("LinuxMetadata"));
                if (s->read_only)
                        json_object_array_add(flags, json_object_new_string("ReadOnly"));
                if (s->restrict_access)
                        json_object_array_add(flags, json_object_new_string("RestrictFileAccess"));
                for (size_t i = 0; i < s->n_allowed; i++)
                        json_object_array_add(names, json_object_new_string(s->allowed[i]));
        }
        json_object_object_add(set, "Flags", flags);
        json_object_object_add(set, "AllowedFiles", names);
        json_object_object_add(req, "Settings", set);
        int r = hcs_modify(s->p->env->sys, json_object_to_json_string(req), done, s);
        json_object_put(req);
        return r;
}

int plan9_share_action_begin_add(struct plan9_share *s, void *arg)
{
        int r = host_share(s, "Add", on_host_added);
        if (r < 0)
                return r;
        take_call(&s->pending, arg);
        return FSM_PENDING;
}

int plan9_share_action_begin_remove(struct plan9_share *s, void *arg)
{
        int r = host_share(s, "Remove", on_host_removed);
        if (r < 0)
                return r;
        take_call(&s->pending, arg);
        return FSM_PENDING;
}

int plan9_share_action_reply_ok(struct plan9_share *s, void *arg)
{
        ctrl_reply(&s->pending, 0);
        return 0;
}

int plan9_share_action_reply_error(struct plan9_share *s, void *arg)
{
        ctrl_reply(&s->pending, s->op_err ? s->op_err : -EIO);
        return 0;
}

/* Forwards a call to the mount; its result (pending: the mount replies later) is the share's. */
static int forward(struct plan9_share *s, enum plan9_mount_event ev, void *arg)
{
        int r = plan9_mount_dispatch(&s->mount->fsm, ev, arg);
        return r < 0 ? r : 0;
}

int plan9_share_action_mount_in_guest(struct plan9_share *s, void *arg)
{
        if (!s->mount)
                return -EBUSY; /* failed_precondition: nothing reserved */
        return forward(s, PLAN9_MOUNT_E_MOUNT, arg);
}

int plan9_share_action_unmount_share(struct plan9_share *s, void *arg)
{
        return s->mount ? forward(s, PLAN9_MOUNT_E_UNMOUNT, arg) : 0;
}

int plan9_share_action_drop_mount(struct plan9_share *s, void *arg)
{
        s->dead_mount = s->mount;
        s->mount = NULL;
        return 0;
}

int plan9_share_action_forget(struct plan9_share *s, void *arg)
{
        ctrl_reply(&s->pending, 0);
        return 0;
}

/* ---- operations -------------------------------------------------------------------------- */

static void step_done(int r, void *ud)
{
        struct op *op = ud;
        op->step_r = r;
        op->step_done = true;
        if (!op->in_step) { /* completed inside a transition: go on at the top */
                op->next_ready = op->p->ready;
                op->p->ready = op;
        }
}

/* Starts step op->step; returns 1 when the operation has no more steps. */
static int start_step(struct op *op)
{
        struct plan9_share *s = op->res->share;
        struct p9_call c = {.done = step_done, .userdata = op};
        static const unsigned mount_steps[] = {PLAN9_SHARE_E_ADD, PLAN9_SHARE_E_MOUNT};
        unsigned ev;

        if (op->kind == OP_MOUNT) {
                if (op->step >= ARRAY_SIZE(mount_steps))
                        return 1;
                ev = mount_steps[op->step];
        } else {
                if (op->step == 0 && op->res->released)
                        op->step = 1; /* a retry after the share removal failed */
                if (op->step > 1)
                        return 1;
                ev = op->step == 0 ? PLAN9_SHARE_E_UNMOUNT : PLAN9_SHARE_E_REMOVE;
        }
        op->in_step = true;
        op->step_done = false;
        int r = call(&s->fsm, ev, &c);
        op->in_step = false;
        reap(s);
        if (r < 0) {
                op->step_r = r;
                op->step_done = true;
        }
        return 0;
}

static void finish(struct op *op, int r)
{
        ctrl_done_fn done = op->done;
        void *ud = op->userdata;
        struct plan9 *p = op->p;
        struct plan9_share *s = op->res->share;
        op->res->op = NULL;
        if (r == 0 && op->kind == OP_UNMOUNT)
                forget_reservation(p, op->res);
        reap(s);
        free(op);
        if (done)
                done(r, ud);
}

/* Runs op's steps while they complete at once. Returns the error of a first step refused at once
 * (op freed, done not called), else 0. */
static int run(struct op *op)
{
        for (;;) {
                if (op->step_done) {
                        op->step_done = false;
                        if (op->step_r < 0) {
                                int r = op->step_r;
                                if (!op->started) {
                                        op->res->op = NULL;
                                        free(op);
                                        return r;
                                }
                                finish(op, r);
                                return 0;
                        }
                        if (op->kind == OP_UNMOUNT && op->step == 0)
                                op->res->released = true;
                        op->step++;
                }
                if (start_step(op) == 1) {
                        finish(op, 0);
                        return 0;
                }
                if (!op->step_done) {
                        op->started = true; /* pending: step_done comes later */
                        return 0;
                }
                if (op->step_r >= 0)
                        op->started = true;
        }
}

static void kick(struct plan9 *p)
{
        while (p->ready) {
                struct op *op = p->ready;
                p->ready = op->next_ready;
                op->started = true;
                run(op);
        }
}

static int start_op(struct plan9 *p, const char *id, enum op_kind kind, ctrl_done_fn done,
                    void *userdata)
{
        struct reservation *res = NULL;
        for (size_t i = 0; id && i < PLAN9_MAX_RESERVATIONS; i++)
                if (p->res[i] && strcmp(p->res[i]->id, id) == 0)
                        res = p->res[i];
        if (!res)
                return -ENOENT;
        if (res->op)
                return -ESTALE; /* aborted: a call on this reservation is in flight */
        if (kind == OP_MOUNT && res->released)
                return -EBUSY; /* being released: only unmount can finish it */
        struct op *op = calloc(1, sizeof(*op));
        if (!op)
                return -ENOMEM;
        *op = (struct op){.p = p, .res = res, .kind = kind, .done = done, .userdata = userdata};
        res->op = op;
        return run(op);
}

/* ---- public calls ------------------------------------------------------------------------ */

int plan9_new(const struct ctrl_env *env, bool no_writable_shares, struct plan9 **ret)
{
        if (!env || !ret)
                return -EINVAL;
        struct plan9 *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->env = env;
        p->no_writable = no_writable_shares;
        *ret = p;
        return 0;
}

struct plan9 *plan9_free(struct plan9 *p)
{
        if (!p)
                return NULL;
        for (size_t i = 0; i < PLAN9_MAX_RESERVATIONS; i++)
                free(p->res[i]);
        for (size_t i = 0; i < PLAN9_MAX_SHARES; i++) {
                struct plan9_share *s = p->shares[i];
                if (!s)
                        continue;
                assert(!in_flight(&s->fsm) && !(s->mount && in_flight(&s->mount->fsm)));
                free(s->mount);
                free(s->dead_mount);
                free(s);
        }
        assert(!p->ready);
        free(p);
        return NULL;
}

static int check_config(const struct plan9_share_config *cfg)
{
        if (!cfg || !cfg->host_path || cfg->host_path[0] != '/' ||
            strlen(cfg->host_path) >= PLAN9_PATH_MAX || cfg->n_allowed > PLAN9_MAX_ALLOWED ||
            (cfg->n_allowed && !cfg->allowed_names))
                return -EINVAL;
        for (size_t i = 0; i < cfg->n_allowed; i++)
                if (!cfg->allowed_names[i] || !*cfg->allowed_names[i] ||
                    strlen(cfg->allowed_names[i]) >= ALLOWED_LEN)
                        return -EINVAL;
        return 0;
}

static bool name_in(const char *name, const char (*list)[ALLOWED_LEN], size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(name, list[i]) == 0)
                        return true;
        return false;
}

/* Equal configs share a share; allowed names compare case- and order-insensitively. */
static bool config_equal(const struct plan9_share *s, const struct plan9_share_config *cfg)
{
        if (s->read_only != cfg->read_only || s->restrict_access != cfg->restrict_access ||
            s->n_allowed != cfg->n_allowed)
                return false;
        for (size_t i = 0; i < cfg->n_allowed; i++)
                if (!name_in(cfg->allowed_names[i], s->allowed, s->n_allowed))
                        return false;
        return true;
}

static struct plan9_share *new_share(struct plan9 *p, size_t slot,
                                     const struct plan9_share_config *cfg)
{
        struct plan9_share *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->p = p;
        s->slot = slot;
        ferry_bprintf(s->name, sizeof(s->name), "%llu", (unsigned long long)p->name_counter);
        ferry_strscpy(s->host_path, cfg->host_path, sizeof(s->host_path));
        s->read_only = cfg->read_only;
        s->restrict_access = cfg->restrict_access;
        s->n_allowed = cfg->n_allowed;
        for (size_t i = 0; i < cfg->n_allowed; i++)
                ferry_strscpy(s->allowed[i], cfg->allowed_names[i], ALLOWED_LEN);
        fsm_init(&s->fsm, &plan9_share_machine, s, s->name);
        return s;
}

int plan9_add(struct plan9 *p, const struct plan9_share_config *cfg, bool mount_read_only,
              char ret_id[PLAN9_ID_LEN])
{
        int r = check_config(cfg);
        if (r < 0)
                return r;
        if (p->no_writable && !cfg->read_only)
                return -EPERM;
        size_t rslot = 0, sslot = PLAN9_MAX_SHARES;
        while (rslot < PLAN9_MAX_RESERVATIONS && p->res[rslot])
                rslot++;
        if (rslot == PLAN9_MAX_RESERVATIONS)
                return -ENOSPC;
        struct plan9_share *s = NULL;
        for (size_t i = 0; i < PLAN9_MAX_SHARES; i++) {
                if (p->shares[i] && strcmp(p->shares[i]->host_path, cfg->host_path) == 0)
                        s = p->shares[i];
                else if (!p->shares[i] && sslot == PLAN9_MAX_SHARES)
                        sslot = i;
        }
        if (s && !config_equal(s, cfg))
                return -EBUSY;
        if (!s && sslot == PLAN9_MAX_SHARES)
                return -ENOSPC;

        _cleanup_free_ struct reservation *res = calloc(1, sizeof(*res));
        if (!res)
                return -ENOMEM;
        r = ctrl_new_guid(res->id);
        if (r < 0)
                return r;
        bool fresh = !s;
        if (fresh && !(s = new_share(p, sslot, cfg)))
                return -ENOMEM;
        struct p9_call c = {.read_only = mount_read_only};
        r = call(&s->fsm, PLAN9_SHARE_E_RESERVE, &c);
        if (r < 0) {
                if (fresh) {
                        free(s->mount);
                        free(s);
                }
                return r;
        }
        if (fresh) { /* the name is used only once the share exists */
                p->name_counter++;
                p->shares[sslot] = s;
        }
        res->share = s;
        memcpy(ret_id, res->id, PLAN9_ID_LEN);
        p->res[rslot] = TAKE_PTR(res);
        return 0;
}

int plan9_mount(struct plan9 *p, const char *id, ctrl_done_fn done, void *userdata)
{
        return start_op(p, id, OP_MOUNT, done, userdata);
}

int plan9_unmount(struct plan9 *p, const char *id, ctrl_done_fn done, void *userdata)
{
        return start_op(p, id, OP_UNMOUNT, done, userdata);
}

int plan9_save(struct plan9 *p, ctrl_envelope **ret)
{
        /* every share answers for itself: the spec refuses save in each state but removed */
        for (size_t i = 0; i < PLAN9_MAX_SHARES; i++) {
                if (!p->shares[i])
                        continue;
                struct p9_call c = {0};
                int r = call(&p->shares[i]->fsm, PLAN9_SHARE_E_SAVE, &c);
                if (r < 0)
                        return r;
        }
        Ferry__Plan9__Save__V1__Payload msg = FERRY__PLAN9__SAVE__V1__PAYLOAD__INIT;
        msg.schema_version = PLAN9_SCHEMA_VERSION;
        return ctrl_envelope_pack("plan9", PLAN9_SCHEMA_VERSION, &msg.base, ret);
}

int plan9_import(struct plan9 *p, const ctrl_envelope *env_in)
{
        ProtobufCMessage *m = NULL;
        int r = ctrl_envelope_unpack(env_in, "plan9", PLAN9_SCHEMA_VERSION,
                                     &ferry__plan9__save__v1__payload__descriptor, &m, NULL, NULL);
        if (r < 0)
                return r;
        const Ferry__Plan9__Save__V1__Payload *msg = (const void *)m;
        if (msg->schema_version != env_in->schema_version)
                r = -EINVAL;
        else if (plan9_share_count(p) > 0)
                r = -EBUSY;
        protobuf_c_message_free_unpacked(m, NULL);
        return r; /* an empty payload: nothing to commit */
}

int plan9_patch(struct plan9 *p, const char *from_host_path, const char *to_host_path)
{
        if (!from_host_path || !*from_host_path || !to_host_path || !*to_host_path)
                return -EINVAL;
        return -ENOENT;
}

int plan9_resume(struct plan9 *p)
{
        return plan9_share_count(p) > 0 ? -EBUSY : 0;
}

size_t plan9_share_count(const struct plan9 *p)
{
        size_t n = 0;
        for (size_t i = 0; i < PLAN9_MAX_SHARES; i++)
                n += p->shares[i] != NULL;
        return n;
}

size_t plan9_reservation_count(const struct plan9 *p)
{
        size_t n = 0;
        for (size_t i = 0; i < PLAN9_MAX_RESERVATIONS; i++)
                n += p->res[i] != NULL;
        return n;
}

static const struct reservation *find(const struct plan9 *p, const char *id)
{
        for (size_t i = 0; id && i < PLAN9_MAX_RESERVATIONS; i++)
                if (p->res[i] && strcmp(p->res[i]->id, id) == 0)
                        return p->res[i];
        return NULL;
}

const char *plan9_guest_path(const struct plan9 *p, const char *id)
{
        const struct reservation *r = find(p, id);
        return r && r->share->mount ? r->share->mount->guest_path : NULL;
}

const char *plan9_share_name(const struct plan9 *p, const char *id)
{
        const struct reservation *r = find(p, id);
        return r ? r->share->name : NULL;
}

const char *plan9_share_state(const struct plan9 *p, const char *id)
{
        const struct reservation *r = find(p, id);
        return r ? fsm_state_name(&r->share->fsm) : NULL;
}

const char *plan9_mount_state(const struct plan9 *p, const char *id)
{
        const struct reservation *r = find(p, id);
        return r && r->share->mount ? fsm_state_name(&r->share->mount->fsm) : NULL;
}

uint32_t plan9_mount_refcount(const struct plan9 *p, const char *id)
{
        const struct reservation *r = find(p, id);
        return r && r->share->mount ? r->share->mount->refcount : 0;
}
