/* SPDX-License-Identifier: MIT */
/* The Linux container controller's handlers and data. The lifecycle is spec/container.yaml;
 * the public calls only pack their arguments and dispatch. The init and the execs are process
 * controllers; the container drives the init and hears back through the init's done callbacks
 * (nested dispatches, so at once) and its exit hook. */
#include "ctrl/container/container.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "container_fsm.h"
#include "guest/guest.h"
#include "save_container.pb-c.h"
#include "util/util.h"

#define INIT_EXEC_ID ""

struct disk {
        char *reservation_id;
        char *guest_path;
        char *host_path;
};

struct exec {
        char *id;
        struct process *p;
};

struct end_waiter {
        container_end_fn fn;
        void *userdata;
};

/* Event arguments: a call's or a completion's. */
struct call {
        ctrl_done_fn done;
        void *userdata;
        const struct container_create_opts *create;
        const struct container_patch_opts *patch;
        const char *exec_id;
        const char *resources;
        int sig;
        bool all;
        const ctrl_envelope *env;
        ctrl_envelope **ret_env;
        int result;
        int64_t value;
};

struct cop;

struct container {
        struct fsm fsm;
        const struct ctrl_env *env;
        struct container_devices devices;
        char name[PROCESS_ID_MAX + 16];
        char id[PROCESS_ID_MAX + 1];
        char guest_id[PROCESS_ID_MAX + 1];
        char *bundle;
        uint64_t io_retry_timeout_us;

        /* Disks held in the SCSI controller; each leaves its list once released. */
        char *rootfs_path;
        bool has_layers, layers_combined;
        struct disk *ro;
        size_t n_ro;
        struct disk *scratch; /* NULL: none */
        struct disk *mounts;
        size_t n_mounts;

        struct process *init;
        struct exec *execs;
        size_t n_execs;

        bool guest_bound;   /* created in, or resumed into, the live guest (has_guest) */
        bool guest_deleted; /* its guest state is gone (release step done) */
        bool patched;       /* a patch completed since import (is_patched) */
        char *resources;    /* the last applied update (JSON) */

        struct ctrl_pending pending;
        struct cop *ops;
        struct end_waiter *waiters;
        size_t n_waiters;
        bool ended; /* waiters told (Wait returned) */
        char *staged_id;
        char *io_path[3]; /* the init's IO, kept from create until the guest container exists */
        bool io_terminal;
        /* The init's answer to the call an action made (see drive_init). */
        uint16_t init_ev_ok, init_ev_fail;
        bool init_in_action, init_answered;
        int init_result;
};

/* A guest call in flight; c is NULL once the container is freed. */
struct cop {
        struct container *c;
        struct cop *next;
        void (*then)(struct container *c, int result); /* the answer, from the loop */
        bool in_action;                                /* the calling action runs still */
        bool completed;                                /* ... and the answer came already */
        int result;
        uv_work_t work; /* the sim update's stand-in */
};

/* ---- helpers ---- */

static bool id_ok(const char *s)
{
        if (!s)
                return false;
        size_t n = strnlen(s, PROCESS_ID_MAX + 1);
        if (n == 0 || n > PROCESS_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x21 || s[i] == '/' || (unsigned char)s[i] > 0x7e)
                        return false;
        return true;
}

static bool str_ok(const char *s)
{
        return !s || strnlen(s, PROCESS_PATH_MAX + 1) <= PROCESS_PATH_MAX;
}

static char *dup0(const char *s)
{
        return strdup(s ? s : "");
}

static void disk_clear(struct disk *d)
{
        free(d->reservation_id);
        free(d->guest_path);
        free(d->host_path);
        memset(d, 0, sizeof(*d));
}

static void disks_free(struct disk **list, size_t *n)
{
        for (size_t i = 0; i < *n; i++)
                disk_clear(&(*list)[i]);
        free(*list);
        *list = NULL;
        *n = 0;
}

static void scratch_free(struct container *c)
{
        if (c->scratch)
                disk_clear(c->scratch);
        free(c->scratch);
        c->scratch = NULL;
}

static bool disk_in_ok(const struct container_disk *d)
{
        return d && id_ok(d->reservation_id) && str_ok(d->guest_path) && str_ok(d->host_path);
}

static int disk_set(struct disk *d, const char *res, const char *guest, const char *host)
{
        d->reservation_id = dup0(res);
        d->guest_path = dup0(guest);
        d->host_path = dup0(host);
        return d->reservation_id && d->guest_path && d->host_path ? 0 : -ENOMEM;
}

/* A new array of n disks copied from in (n may be 0: NULL). */
static int disks_copy(const struct container_disk *in, size_t n, struct disk **ret)
{
        *ret = NULL;
        if (n == 0)
                return 0;
        struct disk *d = calloc(n, sizeof(*d));
        if (!d)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (disk_set(&d[i], in[i].reservation_id, in[i].guest_path, in[i].host_path) < 0) {
                        size_t k = n;
                        disks_free(&d, &k);
                        return -ENOMEM;
                }
        *ret = d;
        return 0;
}

static struct cop *cop_new(struct container *c)
{
        struct cop *o = calloc(1, sizeof(*o));
        if (!o)
                return NULL;
        o->c = c;
        o->next = c->ops;
        c->ops = o;
        return o;
}

static struct container *cop_end(struct cop *o)
{
        struct container *c = o->c;
        if (c)
                for (struct cop **it = &c->ops; *it; it = &(*it)->next)
                        if (*it == o) {
                                *it = o->next;
                                break;
                        }
        free(o);
        return c;
}

/* Guest calls made by actions. The guest answers after the call returns (guest.h): then()
 * gets the answer from the loop and dispatches the completion. An answer that comes before the
 * call returns is taken synchronously instead: the action applies it (the spec's `to` or
 * `on_error` without the in-flight state). */
static void cop_cb(int result, uint64_t value, void *userdata)
{
        struct cop *o = userdata;
        if (o->in_action) {
                o->completed = true;
                o->result = result;
                return;
        }
        void (*then)(struct container *, int) = o->then;
        struct container *c = cop_end(o);
        if (c)
                then(c, result);
}

typedef int (*guest_issue_fn)(struct container *c, struct cop *o, const void *arg);

/* Returns FSM_PENDING (then() follows), a negative errno (refused), or 0 with the answer in
 * *ret_result. */
static int guest_call(struct container *c, guest_issue_fn issue, const void *arg,
                      void (*then)(struct container *, int), int *ret_result)
{
        if (!c->env->guest)
                return -ENOTCONN;
        struct cop *o = cop_new(c);
        if (!o)
                return -ENOMEM;
        o->then = then;
        o->in_action = true;
        int r = issue(c, o, arg);
        o->in_action = false;
        if (r == 0 && !o->completed)
                return FSM_PENDING;
        *ret_result = o->result;
        cop_end(o);
        return r;
}

static void hold_reply(struct container *c, struct call *a)
{
        c->pending.done = a->done;
        c->pending.userdata = a->userdata;
        a->done = NULL;
}

/* Tells the waiters once: the container has ended (the reference's terminated channel). */
static void signal_ended(struct container *c)
{
        if (c->ended)
                return;
        c->ended = true;
        struct end_waiter *w = c->waiters;
        size_t n = c->n_waiters;
        c->waiters = NULL;
        c->n_waiters = 0;
        for (size_t i = 0; i < n; i++)
                w[i].fn(c, w[i].userdata);
        free(w);
}

static void publish_exit(struct container *c, int code, uint64_t at)
{
        char body[512];
        if (ferry_bprintf(body, sizeof(body),
                          "{\"container_id\":\"%s\",\"id\":\"\",\"pid\":%lld,"
                          "\"exit_status\":%d,\"exited_at_ns\":%llu}",
                          c->id, (long long)(c->init ? process_pid(c->init) : 0), code,
                          (unsigned long long)at) > 0)
                ctrl_publish(c->env, "/tasks/exit", body);
}

static struct exec *find_exec(const struct container *c, const char *exec_id)
{
        for (size_t i = 0; i < c->n_execs; i++)
                if (strcmp(c->execs[i].id, exec_id) == 0)
                        return &c->execs[i];
        return NULL;
}

static void drop_init(struct container *c)
{
        c->init = process_free(c->init);
}

/* The init's exit hook: its exit watch saw it exit. */
static void on_init_exit(struct process *p, int code, uint64_t at, void *userdata)
{
        struct container *c = userdata;
        struct call a = {.result = code, .value = (int64_t)at};
        container_dispatch(&c->fsm, CONTAINER_E_INIT_EXITED, &a);
}

static int new_init(struct container *c, struct process **ret)
{
        int r = process_new(c->env, c->id, c->guest_id, INIT_EXEC_ID, c->io_retry_timeout_us, ret);
        if (r == 0)
                process_set_exit_hook(*ret, on_init_exit, c);
        return r;
}

/* ---- guards ---- */

bool container_guard_kill_all_with_exec(struct container *c, void *arg)
{
        const struct call *a = arg;
        return a->all && a->exec_id && a->exec_id[0];
}

bool container_guard_has_guest(struct container *c, void *arg)
{
        return c->guest_bound;
}

bool container_guard_only_init_process(struct container *c, void *arg)
{
        return c->init && c->n_execs == 0;
}

bool container_guard_is_patched(struct container *c, void *arg)
{
        return c->patched;
}

/* ---- create ---- */

/* The init's answer to a call the container made. Inside the action that made the call (the
 * init answered before its call returned) it is kept for that action; otherwise it is the
 * container's completion event, dispatched at once (nested in the init's own completion). */
static void on_init_done(int result, void *userdata)
{
        struct container *c = userdata;
        if (c->init_in_action) {
                c->init_answered = true;
                c->init_result = result;
                return;
        }
        struct call a = {.result = result < 0 ? result : 0, .value = result};
        container_dispatch(&c->fsm, result < 0 ? c->init_ev_fail : c->init_ev_ok, &a);
}

typedef int (*init_call_fn)(struct process *p, const void *opts, ctrl_done_fn done, void *ud);

/* Calls the init from an action running with a. Returns FSM_PENDING (the reply is held for
 * the completion event), a negative errno (refused, or answered at once with a failure:
 * nothing held, the spec's on_error follows), or 0 with the init's immediate answer in
 * *ret_result (the reply is held for the action, which applies the answer itself). */
static int drive_init(struct container *c, struct call *a, init_call_fn fn, const void *opts,
                      unsigned ev_ok, unsigned ev_fail, int *ret_result)
{
        if (!c->init)
                return -ENOENT;
        c->init_ev_ok = (uint16_t)ev_ok;
        c->init_ev_fail = (uint16_t)ev_fail;
        c->init_in_action = true;
        c->init_answered = false;
        int r = fn(c->init, opts, on_init_done, c);
        c->init_in_action = false;
        if (r == 0 && c->init_answered && c->init_result < 0)
                r = c->init_result;
        if (r < 0)
                return r;
        hold_reply(c, a);
        if (!c->init_answered)
                return FSM_PENDING;
        *ret_result = c->init_result;
        return 0;
}

static int init_create(struct process *p, const void *opts, ctrl_done_fn done, void *ud)
{
        return process_create(p, opts, done, ud);
}

static int init_start(struct process *p, const void *opts, ctrl_done_fn done, void *ud)
{
        return process_start(p, done, ud);
}

static int init_patch(struct process *p, const void *opts, ctrl_done_fn done, void *ud)
{
        return process_patch(p, opts, done, ud);
}

static int init_resume(struct process *p, const void *opts, ctrl_done_fn done, void *ud)
{
        return process_resume(p, done, ud);
}

static const struct container_create_opts *create_opts_ok(const struct call *a)
{
        const struct container_create_opts *o = a->create;
        if (!o || !id_ok(o->id) || !str_ok(o->bundle) || !str_ok(o->rootfs_path) ||
            o->n_ro_layers > CONTAINER_LAYERS_MAX || o->n_mounts > CONTAINER_MOUNTS_MAX ||
            (o->n_ro_layers && !o->ro_layers) || (o->n_mounts && !o->mounts))
                return NULL;
        for (size_t i = 0; i < o->n_ro_layers; i++)
                if (!disk_in_ok(&o->ro_layers[i]))
                        return NULL;
        for (size_t i = 0; i < o->n_mounts; i++)
                if (!disk_in_ok(&o->mounts[i]))
                        return NULL;
        if (o->scratch && !disk_in_ok(o->scratch))
                return NULL;
        return o;
}

/* Records what the caller reserved (all or nothing). */
static int record_disks(struct container *c, const struct container_create_opts *o)
{
        struct disk *ro = NULL, *mounts = NULL, *scratch = NULL;
        char *rootfs = dup0(o->rootfs_path), *bundle = dup0(o->bundle);
        int r = rootfs && bundle ? 0 : -ENOMEM;
        if (r == 0)
                r = disks_copy(o->ro_layers, o->n_ro_layers, &ro);
        if (r == 0)
                r = disks_copy(o->mounts, o->n_mounts, &mounts);
        if (r == 0 && o->scratch)
                r = disks_copy(o->scratch, 1, &scratch);
        if (r < 0) {
                size_t n1 = o->n_ro_layers, n2 = o->n_mounts, n3 = 1;
                if (ro)
                        disks_free(&ro, &n1);
                if (mounts)
                        disks_free(&mounts, &n2);
                if (scratch)
                        disks_free(&scratch, &n3);
                free(rootfs);
                free(bundle);
                return r;
        }
        c->ro = ro;
        c->n_ro = o->n_ro_layers;
        c->mounts = mounts;
        c->n_mounts = o->n_mounts;
        c->scratch = scratch;
        c->rootfs_path = rootfs;
        c->bundle = bundle;
        c->has_layers = o->n_ro_layers > 0 || o->scratch;
        return 0;
}

static void io_paths_free(struct container *c)
{
        for (int i = 0; i < 3; i++) {
                free(c->io_path[i]);
                c->io_path[i] = NULL;
        }
}

static int io_paths_keep(struct container *c, const struct process_io *io)
{
        const char *in[3] = {io->stdin_path, io->stdout_path, io->stderr_path};
        for (int i = 0; i < 3; i++)
                if (!str_ok(in[i]) || !(c->io_path[i] = dup0(in[i]))) {
                        io_paths_free(c);
                        return str_ok(in[i]) ? -ENOMEM : -EINVAL;
                }
        c->io_terminal = io->terminal;
        return 0;
}

/* Forgets everything create recorded (a synchronous create failure allocates nothing). */
static void forget_created(struct container *c)
{
        disks_free(&c->ro, &c->n_ro);
        disks_free(&c->mounts, &c->n_mounts);
        scratch_free(c);
        free(c->rootfs_path);
        c->rootfs_path = NULL;
        free(c->bundle);
        c->bundle = NULL;
        c->has_layers = false;
        io_paths_free(c);
        drop_init(c);
}

static int issue_create(struct container *c, struct cop *o, const void *arg)
{
        return guest_create_container(c->env->guest, c->guest_id, cop_cb, o);
}

/* Creates the init in the guest container: drive_init's outcome. */
static int create_init(struct container *c, struct call *a)
{
        struct process_create_opts po = {
            .bundle = c->bundle,
            .io = {c->io_path[0], c->io_path[1], c->io_path[2], c->io_terminal}};
        int answer = 0;
        c->layers_combined = c->has_layers;
        return drive_init(c, a, init_create, &po, CONTAINER_E_CREATE_DONE,
                          CONTAINER_E_CREATE_FAILED, &answer);
}

/* The guest container exists (or not): create the init next, or fail the create. */
static void guest_created(struct container *c, int result)
{
        struct call a = {.done = c->pending.done, .userdata = c->pending.userdata};
        c->pending.done = NULL; /* create_init holds the reply again */
        if (result == 0)
                result = create_init(c, &a);
        if (result == FSM_PENDING)
                return; /* the init's answer is the completion */
        if (result < 0 && a.done) {
                c->pending.done = a.done; /* not held again: fail_create replies */
                c->pending.userdata = a.userdata;
        }
        a.result = result < 0 ? result : 0;
        container_dispatch(&c->fsm,
                           result < 0 ? CONTAINER_E_CREATE_FAILED : CONTAINER_E_CREATE_DONE, &a);
}

static void forget_guest_container(struct container *c);

int container_action_begin_create(struct container *c, void *arg)
{
        struct call *a = arg;
        const struct container_create_opts *o = create_opts_ok(a);
        if (!o)
                return -EINVAL;
        if (!c->env->guest)
                return -ENOTCONN;
        ferry_strscpy(c->id, o->id, sizeof(c->id));
        ferry_strscpy(c->guest_id, o->id, sizeof(c->guest_id));
        c->io_retry_timeout_us = o->io_retry_timeout_us;
        /* Bound to the live guest from here: whatever happens next, delete releases through
         * it (an absent guest container counts as released). */
        c->guest_bound = true;
        int answer = 0;
        int r = record_disks(c, o);
        if (r == 0)
                r = io_paths_keep(c, &o->io);
        if (r == 0)
                r = new_init(c, &c->init);
        if (r == 0)
                r = guest_call(c, issue_create, NULL, guest_created, &answer);
        if (r == FSM_PENDING) {
                hold_reply(c, a);
                return FSM_PENDING;
        }
        if (r == 0 && answer < 0)
                r = answer;
        if (r == 0) {
                r = create_init(c, a);
                if (r < 0)
                        forget_guest_container(c); /* created above, synchronously */
        }
        if (r == 0)
                return container_action_bind_created(c, a);
        if (r < 0) {
                forget_created(c);
                c->guest_bound = false;
        }
        return r;
}

int container_action_bind_created(struct container *c, void *arg)
{
        io_paths_free(c);
        ctrl_reply(&c->pending, 0);
        return 0;
}

int container_action_fail_create(struct container *c, void *arg)
{
        const struct call *a = arg;
        /* The init never got its IO: it is dropped; what the guest holds stays for delete. */
        io_paths_free(c);
        drop_init(c);
        signal_ended(c);
        ctrl_reply(&c->pending, a->result < 0 ? a->result : -EIO);
        return 0;
}

/* ---- start and the init's exit ---- */

int container_action_begin_start(struct container *c, void *arg)
{
        /* The sim guest starts the container and its init in one call, which the init's own
         * start makes. */
        int pid = 0;
        int r = drive_init(c, arg, init_start, NULL, CONTAINER_E_START_DONE,
                           CONTAINER_E_START_FAILED, &pid);
        if (r != 0)
                return r;
        return container_action_bind_started(c, &(struct call){.value = pid});
}

int container_action_bind_started(struct container *c, void *arg)
{
        const struct call *a = arg;
        ctrl_reply(&c->pending, (int)a->value);
        return 0;
}

int container_action_fail_start(struct container *c, void *arg)
{
        const struct call *a = arg;
        /* The init is terminated with pid -1 (§12.23: never 1); resources stay for delete. */
        ctrl_reply(&c->pending, a->result < 0 ? a->result : -EIO);
        return 0;
}

int container_action_record_init_exit(struct container *c, void *arg)
{
        const struct call *a = arg;
        publish_exit(c, a->result, (uint64_t)a->value);
        signal_ended(c);
        return 0;
}

/* ---- update ---- */

static bool linux_resources(const char *json)
{
        static const char *const keys[] = {"linux", "cpu",     "memory",
                                           "pids",  "blockIO", "hugepageLimits"};
        struct json_object *o = json ? json_tokener_parse(json) : NULL;
        bool ok = false;
        if (o && json_object_is_type(o, json_type_object))
                for (size_t i = 0; i < ARRAY_SIZE(keys) && !ok; i++)
                        ok = json_object_object_get_ex(o, keys[i], NULL);
        json_object_put(o);
        return ok;
}

/* The sim guest has no constraints call (guest.h): its stand-in answers from the thread pool,
 * as a guest call answers, after the limits were recorded host-side. A test may substitute
 * the call (CONTAINER_UPDATE_GUEST) to steer its answer. */
static void update_work_cb(uv_work_t *w)
{
}

static void update_after_cb(uv_work_t *w, int status)
{
        cop_cb(status, 0, w->data);
}

static int update_guest_sim(struct container *c, struct cop *o, const void *json)
{
        o->work.data = o;
        return uv_queue_work(c->env->loop, &o->work, update_work_cb, update_after_cb);
}

#ifndef CONTAINER_UPDATE_GUEST
#define CONTAINER_UPDATE_GUEST update_guest_sim
#endif

static void guest_updated(struct container *c, int result)
{
        struct call a = {.result = result};
        container_dispatch(&c->fsm,
                           result < 0 ? CONTAINER_E_UPDATE_FAILED : CONTAINER_E_UPDATE_DONE, &a);
}

int container_action_begin_update(struct container *c, void *arg)
{
        struct call *a = arg;
        if (!a->resources || strnlen(a->resources, 65537) > 65536 || !linux_resources(a->resources))
                return -EINVAL;
        char *res = strdup(a->resources);
        if (!res)
                return -ENOMEM;
        free(c->resources);
        c->resources = res;
        int answer = 0;
        int r = guest_call(c, CONTAINER_UPDATE_GUEST, res, guest_updated, &answer);
        if (r == FSM_PENDING)
                hold_reply(c, a);
        return r == 0 ? answer : r;
}

int container_action_reply_ok(struct container *c, void *arg)
{
        ctrl_reply(&c->pending, 0);
        return 0;
}

int container_action_reply_error(struct container *c, void *arg)
{
        const struct call *a = arg;
        free(c->staged_id);
        c->staged_id = NULL;
        ctrl_reply(&c->pending, a->result < 0 ? a->result : -EIO);
        return 0;
}

/* ---- execs and signals ---- */

int container_action_add_exec(struct container *c, void *arg)
{
        const struct call *a = arg;
        if (!id_ok(a->exec_id))
                return -EINVAL;
        if (find_exec(c, a->exec_id))
                return -EEXIST;
        if (c->n_execs >= CONTAINER_EXECS_MAX)
                return -ENOSPC;
        struct exec *e = realloc(c->execs, (c->n_execs + 1) * sizeof(*e));
        if (!e)
                return -ENOMEM;
        c->execs = e;
        struct exec x = {.id = strdup(a->exec_id)};
        int r =
            x.id ? process_new(c->env, c->id, c->guest_id, a->exec_id, c->io_retry_timeout_us, &x.p)
                 : -ENOMEM;
        if (r < 0) {
                free(x.id);
                return r;
        }
        c->execs[c->n_execs++] = x;
        return 0;
}

int container_action_kill_processes(struct container *c, void *arg)
{
        struct call *a = arg;
        if (a->sig < 0 || a->sig >= 65)
                return -EINVAL;
        const char *target = a->exec_id ? a->exec_id : INIT_EXEC_ID;
        struct process *p = target[0] ? NULL : c->init;
        if (target[0]) {
                struct exec *e = find_exec(c, target);
                p = e ? e->p : NULL;
        }
        if (!p)
                return -ENOENT;
        /* The init's signal or all: every exec first; their errors do not fail the call. */
        if (a->all || !target[0])
                for (size_t i = 0; i < c->n_execs; i++)
                        process_kill(c->execs[i].p, a->sig, NULL, NULL);
        /* The target's own machine answers the caller. */
        int r = process_kill(p, a->sig, a->done, a->userdata);
        if (r == 0)
                a->done = NULL;
        return r;
}

int container_action_remove_exec(struct container *c, void *arg)
{
        const struct call *a = arg;
        if (!a->exec_id || !a->exec_id[0])
                return -EINVAL; /* the init leaves with the container: delete */
        struct exec *e = find_exec(c, a->exec_id);
        if (!e)
                return -ENOENT;
        int r = process_delete(e->p, NULL, NULL);
        if (r < 0)
                return r;
        process_free(e->p);
        free(e->id);
        *e = c->execs[--c->n_execs];
        return 0;
}

/* ---- release (delete of the init) ---- */

/* Releases the host-side reservations in order, each leaving its list once released, so a
 * retry resumes at the one that failed (§12.15). -ENOENT counts as released. */
static int release_disks(struct container *c)
{
        int (*rel)(void *, const char *) = c->devices.release;
        int r;
        if (c->scratch) {
                r = rel ? rel(c->devices.userdata, c->scratch->reservation_id) : 0;
                if (r < 0 && r != -ENOENT)
                        return r;
                scratch_free(c);
        }
        while (c->n_ro > 0) {
                r = rel ? rel(c->devices.userdata, c->ro[0].reservation_id) : 0;
                if (r < 0 && r != -ENOENT)
                        return r;
                disk_clear(&c->ro[0]);
                memmove(&c->ro[0], &c->ro[1], --c->n_ro * sizeof(*c->ro));
        }
        while (c->n_mounts > 0) {
                r = rel ? rel(c->devices.userdata, c->mounts[0].reservation_id) : 0;
                if (r < 0 && r != -ENOENT)
                        return r;
                disk_clear(&c->mounts[0]);
                memmove(&c->mounts[0], &c->mounts[1], --c->n_mounts * sizeof(*c->mounts));
        }
        return 0;
}

static int issue_delete(struct container *c, struct cop *o, const void *arg)
{
        return guest_delete_container(c->env->guest, c->guest_id, cop_cb, o);
}

static void ignore_answer(struct container *c, int result)
{
}

/* Best effort: a guest container whose create is being undone synchronously. */
static void forget_guest_container(struct container *c)
{
        int answer;
        guest_call(c, issue_delete, NULL, ignore_answer, &answer);
}

/* Already gone (no container, no guest) counts as released. */
static int released(int result)
{
        return result == -ENOENT || result == -ENOTCONN ? 0 : result;
}

/* The guest's answer to the delete: release the host side and complete. */
static void guest_deleted(struct container *c, int result)
{
        result = released(result);
        if (result == 0) {
                c->guest_deleted = true;
                result = release_disks(c);
        }
        struct call a = {.result = result};
        container_dispatch(&c->fsm,
                           result < 0 ? CONTAINER_E_RELEASE_FAILED : CONTAINER_E_RELEASE_DONE, &a);
}

int container_action_begin_release(struct container *c, void *arg)
{
        struct call *a = arg;
        int answer = 0, r = 0;
        if (c->init) {
                r = process_delete(c->init, NULL, NULL);
                if (r < 0)
                        return r;
        }
        c->layers_combined = false; /* the sim guest combines no layers: nothing to remove */
        if (!c->guest_deleted) {
                r = guest_call(c, issue_delete, NULL, guest_deleted, &answer);
                if (r == FSM_PENDING) {
                        hold_reply(c, a);
                        return FSM_PENDING;
                }
                r = released(r < 0 ? r : answer);
                if (r < 0)
                        return r;
                c->guest_deleted = true;
        }
        /* Answered at once, or nothing to ask the guest: release the host side now. */
        r = release_disks(c);
        if (r < 0)
                return r;
        return container_action_finish_delete(c, a);
}

int container_action_finish_delete(struct container *c, void *arg)
{
        drop_init(c);
        signal_ended(c);
        ctrl_reply(&c->pending, 0);
        return 0;
}

int container_action_forget(struct container *c, void *arg)
{
        drop_init(c);
        disks_free(&c->ro, &c->n_ro);
        disks_free(&c->mounts, &c->n_mounts);
        scratch_free(c);
        signal_ended(c);
        return 0;
}

/* ---- save ---- */

typedef Ferry__Container__Save__V1__LayerReservation layer_msg;

static void layer_fill(layer_msg *m, const struct disk *d)
{
        ferry__container__save__v1__layer_reservation__init(m);
        m->reservation_id = d->reservation_id;
        m->guest_path = d->guest_path;
        m->host_path = d->host_path;
}

/* Packs the payload around the init's envelope into *ret. */
static int pack_payload(struct container *c, ctrl_envelope *init_env, ctrl_envelope **ret)
{
        Ferry__Container__Save__V1__Payload m = FERRY__CONTAINER__SAVE__V1__PAYLOAD__INIT;
        Ferry__Container__Save__V1__Duration d = FERRY__CONTAINER__SAVE__V1__DURATION__INIT;
        Ferry__Container__Save__V1__Layers layers = FERRY__CONTAINER__SAVE__V1__LAYERS__INIT;
        Ferry__Container__Save__V1__ProcessEntry entry =
            FERRY__CONTAINER__SAVE__V1__PROCESS_ENTRY__INIT;
        Ferry__Container__Save__V1__ProcessEntry *entries[1] = {&entry};
        layer_msg scratch;
        _cleanup_free_ layer_msg *ro = calloc(c->n_ro + 1, sizeof(*ro));
        _cleanup_free_ layer_msg **ro_ptr = calloc(c->n_ro + 1, sizeof(*ro_ptr));
        _cleanup_free_ layer_msg *mo = calloc(c->n_mounts + 1, sizeof(*mo));
        _cleanup_free_ layer_msg **mo_ptr = calloc(c->n_mounts + 1, sizeof(*mo_ptr));
        _cleanup_free_ char **mo_ids = calloc(c->n_mounts + 1, sizeof(*mo_ids));
        if (!ro || !ro_ptr || !mo || !mo_ptr || !mo_ids)
                return -ENOMEM;

        m.schema_version = CONTAINER_SCHEMA_VERSION;
        m.container_id = c->id;
        m.gcs_container_id = c->guest_id;
        d.seconds = (int64_t)(c->io_retry_timeout_us / 1000000);
        d.nanos = (int32_t)(c->io_retry_timeout_us % 1000000) * 1000;
        m.io_retry_timeout = &d;
        if (c->has_layers) {
                for (size_t i = 0; i < c->n_ro; i++) {
                        layer_fill(&ro[i], &c->ro[i]);
                        ro_ptr[i] = &ro[i];
                }
                layers.ro_layers = ro_ptr;
                layers.n_ro_layers = c->n_ro;
                if (c->scratch) {
                        layer_fill(&scratch, c->scratch);
                        layers.scratch = &scratch;
                }
                layers.layers_combined = c->layers_combined;
                layers.rootfs_path = c->rootfs_path ? c->rootfs_path : "";
                m.layers = &layers;
        }
        for (size_t i = 0; i < c->n_mounts; i++) {
                layer_fill(&mo[i], &c->mounts[i]);
                mo_ptr[i] = &mo[i];
                mo_ids[i] = c->mounts[i].reservation_id;
        }
        m.scsi_mounts = mo_ptr;
        m.n_scsi_mounts = c->n_mounts;
        m.scsi_reservation_ids = mo_ids;
        m.n_scsi_reservation_ids = c->n_mounts;
        entry.exec_id = INIT_EXEC_ID;
        entry.envelope = init_env;
        m.processes = entries;
        m.n_processes = 1;
        return ctrl_envelope_pack(CONTAINER_SAVE_NAME, CONTAINER_SCHEMA_VERSION, &m.base, ret);
}

int container_action_save_payload(struct container *c, void *arg)
{
        struct call *a = arg;
        ctrl_envelope *init_env = NULL;
        if (!a->ret_env)
                return -EINVAL;
        /* A re-save finds the init frozen already; only a first save may unfreeze it again. */
        bool init_was_frozen = process_is_frozen(c->init);
        int r = process_save(c->init, &init_env);
        if (r < 0)
                return r;
        r = pack_payload(c, init_env, a->ret_env);
        ctrl_envelope_free(init_env);
        if (r < 0 && !init_was_frozen)
                process_resume(c->init, NULL, NULL); /* a failed save freezes nothing */
        return r;
}

/* ---- import ---- */

typedef Ferry__Container__Save__V1__Payload payload_msg;

static bool layer_ok(const layer_msg *l)
{
        return l && id_ok(l->reservation_id) && str_ok(l->guest_path) && str_ok(l->host_path);
}

static int payload_check(const payload_msg *m)
{
        if (!id_ok(m->container_id) || !id_ok(m->gcs_container_id))
                return -EINVAL;
        if (m->io_retry_timeout &&
            (m->io_retry_timeout->seconds < 0 || m->io_retry_timeout->seconds > 86400 ||
             m->io_retry_timeout->nanos < 0 || m->io_retry_timeout->nanos >= 1000000000))
                return -EINVAL;
        if (m->layers) {
                if (m->layers->n_ro_layers > CONTAINER_LAYERS_MAX ||
                    !str_ok(m->layers->rootfs_path) ||
                    (m->layers->scratch && !layer_ok(m->layers->scratch)))
                        return -EINVAL;
                for (size_t i = 0; i < m->layers->n_ro_layers; i++)
                        if (!layer_ok(m->layers->ro_layers[i]))
                                return -EINVAL;
        }
        if (m->n_scsi_mounts > CONTAINER_MOUNTS_MAX ||
            m->n_scsi_reservation_ids != m->n_scsi_mounts)
                return -EINVAL;
        for (size_t i = 0; i < m->n_scsi_mounts; i++)
                if (!layer_ok(m->scsi_mounts[i]) ||
                    strcmp(m->scsi_mounts[i]->reservation_id, m->scsi_reservation_ids[i]) != 0)
                        return -EINVAL;
        /* Only a container whose sole process is its init migrates. */
        if (m->n_processes != 1 || !m->processes[0]->exec_id ||
            m->processes[0]->exec_id[0] != '\0' || !m->processes[0]->envelope)
                return -EINVAL;
        return 0;
}

static int layers_from(const layer_msg *const *in, size_t n, struct disk **ret)
{
        _cleanup_free_ struct container_disk *tmp = calloc(n + 1, sizeof(*tmp));
        if (!tmp)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                tmp[i] = (struct container_disk){in[i]->reservation_id, in[i]->guest_path,
                                                 in[i]->host_path};
        return disks_copy(tmp, n, ret);
}

/* Builds everything the payload describes off to the side, then commits it at once. */
static int import_from(struct container *c, const payload_msg *m)
{
        struct container n = {.env = c->env};
        ferry_strscpy(n.id, m->container_id, sizeof(n.id));
        ferry_strscpy(n.guest_id, m->gcs_container_id, sizeof(n.guest_id));
        if (m->io_retry_timeout)
                n.io_retry_timeout_us = (uint64_t)m->io_retry_timeout->seconds * 1000000 +
                                        (uint64_t)m->io_retry_timeout->nanos / 1000;
        int r = 0;
        if (m->layers) {
                n.has_layers = true;
                n.layers_combined = m->layers->layers_combined;
                r = layers_from((const layer_msg *const *)m->layers->ro_layers,
                                m->layers->n_ro_layers, &n.ro);
                n.n_ro = r == 0 ? m->layers->n_ro_layers : 0;
                if (r == 0 && m->layers->scratch)
                        r = layers_from((const layer_msg *const *)&m->layers->scratch, 1,
                                        &n.scratch);
                if (r == 0 && !(n.rootfs_path = dup0(m->layers->rootfs_path)))
                        r = -ENOMEM;
        }
        if (r == 0) {
                r = layers_from((const layer_msg *const *)m->scsi_mounts, m->n_scsi_mounts,
                                &n.mounts);
                n.n_mounts = r == 0 ? m->n_scsi_mounts : 0;
        }
        struct process *init = NULL;
        if (r == 0)
                r = process_new(c->env, n.id, n.guest_id, INIT_EXEC_ID, n.io_retry_timeout_us,
                                &init);
        if (r == 0)
                r = process_import(init, m->processes[0]->envelope);
        if (r < 0) {
                process_free(init);
                disks_free(&n.ro, &n.n_ro);
                disks_free(&n.mounts, &n.n_mounts);
                if (n.scratch)
                        disk_clear(n.scratch);
                free(n.scratch);
                free(n.rootfs_path);
                return r;
        }
        /* Commit. */
        memcpy(c->id, n.id, sizeof(c->id));
        memcpy(c->guest_id, n.guest_id, sizeof(c->guest_id));
        c->io_retry_timeout_us = n.io_retry_timeout_us;
        c->has_layers = n.has_layers;
        c->layers_combined = n.layers_combined;
        c->ro = n.ro;
        c->n_ro = n.n_ro;
        c->scratch = n.scratch;
        c->rootfs_path = n.rootfs_path;
        c->mounts = n.mounts;
        c->n_mounts = n.n_mounts;
        c->init = init;
        process_set_exit_hook(init, on_init_exit, c);
        c->guest_bound = false;
        c->patched = false;
        return 0;
}

int container_action_import_payload(struct container *c, void *arg)
{
        struct call *a = arg;
        ProtobufCMessage *msg = NULL;
        int r = ctrl_envelope_unpack(a->env, CONTAINER_SAVE_NAME, CONTAINER_SCHEMA_VERSION,
                                     &ferry__container__save__v1__payload__descriptor, &msg, NULL,
                                     NULL);
        if (r < 0)
                return r;
        payload_msg *m = (payload_msg *)msg;
        r = payload_check(m);
        if (r == 0)
                r = import_from(c, m);
        protobuf_c_message_free_unpacked(msg, NULL);
        return r;
}

/* ---- patch ---- */

static int patch_check(const struct container *c, const struct container_patch_opts *o)
{
        if (!o || !id_ok(o->id) || !str_ok(o->bundle))
                return -EINVAL;
        if (o->n_ro_layer_paths != c->n_ro || o->n_mount_paths != c->n_mounts ||
            (o->n_ro_layer_paths && !o->ro_layer_paths) || (o->n_mount_paths && !o->mount_paths) ||
            (c->scratch && !o->scratch_path))
                return -EINVAL;
        for (size_t i = 0; i < o->n_ro_layer_paths; i++)
                if (!o->ro_layer_paths[i] || !o->ro_layer_paths[i][0] ||
                    !str_ok(o->ro_layer_paths[i]))
                        return -EINVAL;
        for (size_t i = 0; i < o->n_mount_paths; i++)
                if (!o->mount_paths[i] || !o->mount_paths[i][0] || !str_ok(o->mount_paths[i]))
                        return -EINVAL;
        return str_ok(o->scratch_path) ? 0 : -EINVAL;
}

/* Repoints disk d to path through the SCSI hook and records it; returns the old path (taken)
 * in *ret_old so a later failure can point it back. */
static int repoint(struct container *c, struct disk *d, const char *path, char **ret_old)
{
        char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        int r = c->devices.repoint
                    ? c->devices.repoint(c->devices.userdata, d->reservation_id, path)
                    : 0;
        if (r < 0) {
                free(p);
                return r;
        }
        *ret_old = d->host_path;
        d->host_path = p;
        return 0;
}

/* The disks in patch order: read-only layers, scratch, extra SCSI mounts (§12.16: those are
 * repointed too). */
static size_t patch_disks(struct container *c, const struct container_patch_opts *o,
                          struct disk **ret_d, const char **ret_p)
{
        size_t n = 0;
        for (size_t i = 0; i < c->n_ro; i++, n++) {
                ret_d[n] = &c->ro[i];
                ret_p[n] = o->ro_layer_paths[i];
        }
        if (c->scratch) {
                ret_d[n] = c->scratch;
                ret_p[n++] = o->scratch_path;
        }
        for (size_t i = 0; i < c->n_mounts; i++, n++) {
                ret_d[n] = &c->mounts[i];
                ret_p[n] = o->mount_paths[i];
        }
        return n;
}

/* Repoints every disk, or none: a failure points the done ones back. */
static int repoint_all(struct container *c, const struct container_patch_opts *o)
{
        size_t max = c->n_ro + c->n_mounts + 1;
        _cleanup_free_ struct disk **d = calloc(max, sizeof(*d));
        _cleanup_free_ const char **path = calloc(max, sizeof(*path));
        _cleanup_free_ char **old = calloc(max, sizeof(*old));
        if (!d || !path || !old)
                return -ENOMEM;
        size_t n = patch_disks(c, o, d, path), done = 0;
        int r = 0;
        for (; done < n && r == 0; done++)
                r = repoint(c, d[done], path[done], &old[done]);
        if (r < 0) {
                for (size_t i = 0; i + 1 < done; i++) {
                        char *undo = NULL;
                        if (repoint(c, d[i], old[i], &undo) == 0)
                                free(undo);
                        free(old[i]);
                }
                return r;
        }
        for (size_t i = 0; i < n; i++)
                free(old[i]);
        return 0;
}

int container_action_begin_patch(struct container *c, void *arg)
{
        struct call *a = arg;
        const struct container_patch_opts *o = a->patch;
        int r = patch_check(c, o);
        char *staged = r == 0 ? strdup(o->id) : NULL;
        if (r == 0 && !staged)
                r = -ENOMEM;
        if (r == 0)
                r = repoint_all(c, o);
        if (r < 0) {
                free(staged);
                return r;
        }
        free(c->staged_id);
        c->staged_id = staged;
        struct process_patch_opts po = {.container_id = o->id, .bundle = o->bundle, .io = o->io};
        int answer = 0;
        r = drive_init(c, a, init_patch, &po, CONTAINER_E_PATCH_DONE, CONTAINER_E_PATCH_FAILED,
                       &answer);
        if (r != 0)
                return r;
        return container_action_adopt_container_id(c, a);
}

int container_action_adopt_container_id(struct container *c, void *arg)
{
        ferry_strscpy(c->id, c->staged_id, sizeof(c->id));
        free(c->staged_id);
        c->staged_id = NULL;
        free(c->bundle);
        c->bundle = strdup(process_bundle(c->init));
        c->patched = true;
        ctrl_reply(&c->pending, c->bundle ? 0 : -ENOMEM);
        return 0;
}

/* ---- resume ---- */

/* Resumes the init; an immediate answer is bound at once through bind. */
static int resume_init(struct container *c, struct call *a, int (*bind)(struct container *, void *))
{
        int answer = 0;
        int r = drive_init(c, a, init_resume, NULL, CONTAINER_E_RESUME_DONE,
                           CONTAINER_E_RESUME_FAILED, &answer);
        if (r != 0)
                return r;
        return bind(c, a);
}

int container_action_begin_source_resume(struct container *c, void *arg)
{
        return resume_init(c, arg, container_action_bind_source_resumed);
}

int container_action_bind_source_resumed(struct container *c, void *arg)
{
        ctrl_reply(&c->pending, 0);
        return 0;
}

int container_action_begin_destination_resume(struct container *c, void *arg)
{
        /* The sim guest has no OpenContainer: the guest container travels in the VM image and
         * is addressed by its guest id; reopening the init proves it is there. */
        if (!c->env->guest)
                return -ENOTCONN;
        return resume_init(c, arg, container_action_bind_destination_resumed);
}

static void publish_create_start(struct container *c)
{
        struct process_io io = {"", "", "", false};
        process_io(c->init, &io);
        char body[PROCESS_PATH_MAX * 4 + 512];
        long long pid = (long long)process_pid(c->init);
        if (ferry_bprintf(body, sizeof(body),
                          "{\"container_id\":\"%s\",\"bundle\":\"%s\",\"io\":{\"stdin\":\"%s\","
                          "\"stdout\":\"%s\",\"stderr\":\"%s\",\"terminal\":%s},\"pid\":%lld}",
                          c->id, c->bundle ? c->bundle : "", io.stdin_path, io.stdout_path,
                          io.stderr_path, io.terminal ? "true" : "false", pid) > 0)
                ctrl_publish(c->env, "/tasks/create", body);
        if (ferry_bprintf(body, sizeof(body), "{\"container_id\":\"%s\",\"pid\":%lld}", c->id,
                          pid) > 0)
                ctrl_publish(c->env, "/tasks/start", body);
}

int container_action_bind_destination_resumed(struct container *c, void *arg)
{
        c->guest_bound = true;
        publish_create_start(c);
        ctrl_reply(&c->pending, 0);
        return 0;
}

int container_action_abort_migrated(struct container *c, void *arg)
{
        /* The frozen source's guest went with its VM: delete must not call into it. */
        c->guest_bound = false;
        process_teardown(c->init);
        publish_exit(c, process_exit_code(c->init), process_exited_at_ns(c->init));
        signal_ended(c);
        return 0;
}

/* ---- public calls ---- */

static int call(struct container *c, unsigned event, struct call *a)
{
        if (!c)
                return -EINVAL;
        /* From inside c's own transition the event would outlive a: a conflict to retry. */
        if (fsm_busy(&c->fsm))
                return -ESTALE;
        int r = container_dispatch(&c->fsm, event, a);
        if (r < 0)
                return r;
        if (a->done) {
                struct ctrl_pending p = {a->done, a->userdata};
                ctrl_reply(&p, 0);
        }
        return 0;
}

int container_new(const struct ctrl_env *env, const struct container_devices *devices,
                  struct container **ret)
{
        if (!env || !env->loop || !ret)
                return -EINVAL;
        struct container *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->env = env;
        if (devices)
                c->devices = *devices;
        ferry_bprintf(c->name, sizeof(c->name), "container:%p", (void *)c);
        fsm_init(&c->fsm, &container_machine, c, c->name);
        *ret = c;
        return 0;
}

struct container *container_free(struct container *c)
{
        if (!c)
                return NULL;
        for (struct cop *o = c->ops; o; o = o->next)
                o->c = NULL;
        drop_init(c);
        for (size_t i = 0; i < c->n_execs; i++) {
                process_free(c->execs[i].p);
                free(c->execs[i].id);
        }
        free(c->execs);
        disks_free(&c->ro, &c->n_ro);
        disks_free(&c->mounts, &c->n_mounts);
        scratch_free(c);
        io_paths_free(c);
        free(c->rootfs_path);
        free(c->bundle);
        free(c->resources);
        free(c->staged_id);
        free(c->waiters);
        free(c);
        return NULL;
}

int container_create(struct container *c, const struct container_create_opts *opts,
                     ctrl_done_fn done, void *userdata)
{
        if (!opts)
                return -EINVAL;
        struct call a = {.done = done, .userdata = userdata, .create = opts};
        return call(c, CONTAINER_E_CREATE, &a);
}

int container_start(struct container *c, ctrl_done_fn done, void *userdata)
{
        struct call a = {.done = done, .userdata = userdata};
        return call(c, CONTAINER_E_START, &a);
}

int container_update(struct container *c, const char *resources_json, ctrl_done_fn done,
                     void *userdata)
{
        struct call a = {.done = done, .userdata = userdata, .resources = resources_json};
        return call(c, CONTAINER_E_UPDATE, &a);
}

int container_exec(struct container *c, const char *exec_id)
{
        struct call a = {.exec_id = exec_id};
        return call(c, CONTAINER_E_EXEC, &a);
}

int container_kill(struct container *c, const char *exec_id, int sig, bool all, ctrl_done_fn done,
                   void *userdata)
{
        struct call a = {.done = done,
                         .userdata = userdata,
                         .exec_id = exec_id ? exec_id : "",
                         .sig = sig,
                         .all = all};
        return call(c, CONTAINER_E_KILL, &a);
}

int container_delete_exec(struct container *c, const char *exec_id, ctrl_done_fn done,
                          void *userdata)
{
        struct call a = {.done = done, .userdata = userdata, .exec_id = exec_id};
        return call(c, CONTAINER_E_DELETE_EXEC, &a);
}

int container_delete(struct container *c, ctrl_done_fn done, void *userdata)
{
        struct call a = {.done = done, .userdata = userdata};
        return call(c, CONTAINER_E_DELETE, &a);
}

int container_inspect(struct container *c)
{
        struct call a = {0};
        return call(c, CONTAINER_E_INSPECT, &a);
}

int container_wait(struct container *c, container_end_fn fn, void *userdata)
{
        if (!c || !fn)
                return -EINVAL;
        if (c->ended) {
                fn(c, userdata);
                return 0;
        }
        struct end_waiter *w = realloc(c->waiters, (c->n_waiters + 1) * sizeof(*w));
        if (!w)
                return -ENOMEM;
        w[c->n_waiters++] = (struct end_waiter){fn, userdata};
        c->waiters = w;
        return 0;
}

int container_save(struct container *c, ctrl_envelope **ret)
{
        if (!ret)
                return -EINVAL;
        ctrl_envelope *e = NULL;
        struct call a = {.ret_env = &e};
        int r = call(c, CONTAINER_E_SAVE, &a);
        if (r == 0)
                *ret = e;
        return r;
}

int container_import(struct container *c, const ctrl_envelope *env)
{
        struct call a = {.env = env};
        return call(c, CONTAINER_E_IMPORT, &a);
}

int container_patch(struct container *c, const struct container_patch_opts *opts, ctrl_done_fn done,
                    void *userdata)
{
        struct call a = {.done = done, .userdata = userdata, .patch = opts};
        return call(c, CONTAINER_E_PATCH, &a);
}

int container_resume(struct container *c, ctrl_done_fn done, void *userdata)
{
        struct call a = {.done = done, .userdata = userdata};
        return call(c, CONTAINER_E_RESUME, &a);
}

int container_teardown(struct container *c)
{
        struct call a = {0};
        return call(c, CONTAINER_E_TEARDOWN, &a);
}

/* ---- queries ---- */

const char *container_id(const struct container *c)
{
        return c->id;
}

const char *container_guest_id(const struct container *c)
{
        return c->guest_id;
}

const char *container_state_name(const struct container *c)
{
        return fsm_state_name(&c->fsm);
}

bool container_is_frozen(const struct container *c)
{
        return fsm_is_frozen(&c->fsm);
}

bool container_is_ended(const struct container *c)
{
        return c->ended;
}

struct process *container_process(const struct container *c, const char *exec_id)
{
        if (!exec_id || !exec_id[0])
                return c->init;
        struct exec *e = find_exec(c, exec_id);
        return e ? e->p : NULL;
}

size_t container_exec_count(const struct container *c)
{
        return c->n_execs;
}

int64_t container_pid(const struct container *c)
{
        return c->init ? process_pid(c->init) : -1;
}

bool container_disk_at(const struct container *c, size_t i, enum container_disk_kind *ret_kind,
                       struct container_disk *ret)
{
        const struct disk *d = NULL;
        enum container_disk_kind k = CONTAINER_DISK_LAYER;
        if (i < c->n_ro) {
                d = &c->ro[i];
        } else if (c->scratch && i == c->n_ro) {
                d = c->scratch;
                k = CONTAINER_DISK_SCRATCH;
        } else {
                size_t m = i - c->n_ro - (c->scratch ? 1 : 0);
                if (m < c->n_mounts) {
                        d = &c->mounts[m];
                        k = CONTAINER_DISK_MOUNT;
                }
        }
        if (!d)
                return false;
        if (ret_kind)
                *ret_kind = k;
        if (ret)
                *ret = (struct container_disk){d->reservation_id, d->guest_path, d->host_path};
        return true;
}
