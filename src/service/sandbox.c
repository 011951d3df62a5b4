/* SPDX-License-Identifier: MIT */
/* The sandbox: the shim's one VM and its one pod, the Sandbox service over them, and the
 * migration session's sandbox operations.
 *
 * The VM controller (src/ctrl/vm, spec/vm.yaml) owns the VM's lifecycle and the pod controller
 * (src/ctrl/pod, spec/pod.yaml) the pod's, whose containers are the Task service's tasks; this
 * file only maps the VM's states to the Sandbox API's names, keeps the exit (status, time,
 * waiters) that WaitSandbox reports, and sequences the controllers' calls for a migration. */
#include "service/sandbox.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "ctrl/common/envelope.h"
#include "ctrl/pod/pod.h"
#include "ctrl/vm/vm.h"
#include "migration/vm_ops.h"
#include "guest/guest.h"
#include "hcs/hcs.h"
#include "rpc/ttrpc.h"
#include "sandbox.pb-c.h"
#include "save_container.pb-c.h"
#include "save_pod.pb-c.h"
#include "service/events.h"
#include "service/wire.h"
#include "util/util.h"

/* The snapshot's envelope is type.ferry.dev/ferry.migration.save.v1.Payload (issue 5 item 4). */
#define SANDBOX_SAVE_NAME "migration"
/* 3: a list of pod envelopes replaced schema 2's one pod (proto/sandbox.proto) */
#define SANDBOX_SCHEMA_VERSION 3u
/* Container ids a snapshot may carry across its pods (the duplicate check's bound). */
#define SANDBOX_IMPORT_IDS_MAX 1024

struct exit_waiter {
        sandbox_exit_fn fn;
        void *userdata;
        bool permanent;
        struct exit_waiter *next;
};

struct sandbox {
        uv_loop_t *loop;
        struct hcs_backend *backend;
        struct shim_events *events;
        struct sandbox_options opts;
        struct vm *vm;   /* the VM controller owns the lifecycle (spec/vm.yaml) */
        struct pod *pod; /* its containers are the tasks (spec/pod.yaml) */
        struct mig_session *mig;
        char id[TTRPC_ID_MAX + 1]; /* "" until create or import */
        char *bundle;
        struct ctrl_env env;
        struct ctrl_pending pending; /* the one create/start/stop in flight */
        uint64_t created_at_ns;
        uint64_t exited_at_ns;
        uint32_t exit_status;
        bool exited;
        struct exit_waiter *waiters;
        /* migration: the VM's steps are src/migration/vm_ops.c's (mig_vm_ops) */
        struct mig_vm_sandbox *vm_steps;
        /* close */
        uv_timer_t retry;
        bool closing;
        bool terminating;
        unsigned close_tries;
        sandbox_done_fn close_done;
        void *close_userdata;
};

static void on_vm_exit(int result, void *userdata);

int sandbox_new(uv_loop_t *loop, struct hcs_backend *b, struct shim_events *events,
                const struct sandbox_options *opts, struct sandbox **ret)
{
        struct sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return -ENOMEM;
        sb->loop = loop;
        sb->backend = b;
        sb->events = events;
        if (opts)
                sb->opts = *opts;
        if (!sb->opts.memory_mb)
                sb->opts.memory_mb = 256;
        if (!sb->opts.processors)
                sb->opts.processors = 2;
        int r = vm_new(loop, b, "sandbox", &sb->vm);
        if (r == 0) {
                r = pod_new(sb->vm, "sandbox", &sb->pod);
                if (r == 0)
                        r = mig_vm_sandbox_new(loop, sb->vm, &sb->vm_steps);
                if (r < 0) {
                        sb->pod = pod_free(sb->pod);
                        sb->vm = vm_free(sb->vm);
                }
        }
        if (r < 0) {
                free(sb);
                return r;
        }
        vm_on_exit(sb->vm, on_vm_exit, sb);
        uv_timer_init(loop, &sb->retry);
        sb->retry.data = sb;
        *ret = sb;
        return 0;
}

/* The pod's host-side hooks: its containers publish through the shim's events. */
static struct pod_options pod_opts(const struct sandbox *sb)
{
        return (struct pod_options){.pod_id = sb->id,
                                    .publish = sb->events ? shim_events_publish : NULL,
                                    .publish_userdata = sb->events};
}

struct pod *sandbox_pod(struct sandbox *sb)
{
        return sb->pod;
}

bool sandbox_exited(const struct sandbox *sb, uint64_t *ret_exited_at_ns)
{
        if (sb->exited && ret_exited_at_ns)
                *ret_exited_at_ns = sb->exited_at_ns;
        return sb->exited;
}

void sandbox_set_migration(struct sandbox *sb, struct mig_session *s)
{
        sb->mig = s;
        /* the VM's host-compute notifications go to the session */
        mig_vm_sandbox_bind(sb->vm_steps, s);
}

static bool vm_in(const struct sandbox *sb, const char *state)
{
        return strcmp(vm_state_name(sb->vm), state) == 0;
}

/* The Sandbox API's coarse names for the VM controller's states. */
const char *sandbox_state_name(const struct sandbox *sb)
{
        static const struct {
                const char *vm, *name;
        } map[] = {
            {"not_created", "notready"}, {"creating", "creating"},    {"created", "created"},
            {"starting", "starting"},    {"running", "ready"},        {"updating", "ready"},
            {"invalid", "stopped"},      {"terminating", "stopping"}, {"terminated", "stopped"},
        };
        const char *v = vm_state_name(sb->vm);
        for (size_t i = 0; i < ARRAY_SIZE(map); i++)
                if (strcmp(v, map[i].vm) == 0)
                        return map[i].name;
        return "migrating"; /* every other state is a migration state */
}

bool sandbox_running(const struct sandbox *sb)
{
        return vm_in(sb, "running") || vm_in(sb, "updating");
}

const char *sandbox_id(const struct sandbox *sb)
{
        return sb->id;
}

struct guest_conn *sandbox_guest(const struct sandbox *sb)
{
        return sandbox_running(sb) ? vm_guest(sb->vm) : NULL;
}

struct ctrl_env *sandbox_env(struct sandbox *sb)
{
        vm_env(sb->vm, &sb->env); /* the VM swaps system and guest across a migration */
        sb->env.publish = sb->events ? shim_events_publish : NULL;
        sb->env.publish_userdata = sb->events;
        return &sb->env;
}

struct vm *sandbox_vm(struct sandbox *sb)
{
        return sb->vm;
}

uint64_t sandbox_created_at_ns(const struct sandbox *sb)
{
        return sb->created_at_ns;
}

static void finish(struct sandbox *sb, int result)
{
        ctrl_reply(&sb->pending, result);
}

/* Fires every one-shot waiter and each permanent one; permanent ones stay. */
static void fire_waiters(struct sandbox *sb)
{
        struct exit_waiter *list = sb->waiters, *keep = NULL;
        sb->waiters = NULL;
        while (list) {
                struct exit_waiter *w = list;
                list = w->next;
                w->fn(sb->exit_status, sb->exited_at_ns, w->userdata);
                if (w->permanent) {
                        w->next = keep;
                        keep = w;
                } else {
                        free(w);
                }
        }
        while (keep) { /* back in front of any added meanwhile */
                struct exit_waiter *w = keep;
                keep = w->next;
                w->next = sb->waiters;
                sb->waiters = w;
        }
}

static void mark_exited(struct sandbox *sb, int result)
{
        if (sb->exited || !sb->id[0])
                return;
        sb->exited = true;
        sb->exit_status = result == 0 || result == -EALREADY ? 0 : 255;
        sb->exited_at_ns = shim_wall_ns();
        fire_waiters(sb);
}

static void on_vm_exit(int result, void *userdata)
{
        mark_exited(userdata, result);
}

static void on_created(int result, void *userdata)
{
        struct sandbox *sb = userdata;
        if (result == 0) {
                struct pod_options o = pod_opts(sb);
                result = pod_create(sb->pod, &o);
        }
        if (result < 0)
                sb->id[0] = '\0'; /* the VM controller is invalid or back in not_created */
        else
                sb->created_at_ns = shim_wall_ns();
        finish(sb, result);
}

/* The compute document of a new sandbox VM: built for live migration (the reconnecting log
 * forwarder on the kernel command line, no Plan9), one SCSI controller. */
static int make_doc(const struct sandbox *sb, char *doc, size_t size)
{
        return ferry_bprintf(doc, size,
                             "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":"
                             "{\"KernelCmdLine\":\"console=hvc0 %s\"}},"
                             "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":%u},"
                             "\"Processor\":{\"Count\":%u}},\"Devices\":{\"Scsi\":{\"0\":{}}},"
                             "\"Sim\":{\"DirtyPagesPerSecond\":%llu}}}",
                             VM_LM_LOG_FORWARDER, sb->opts.memory_mb, sb->opts.processors,
                             (unsigned long long)sb->opts.dirty_pages_rate) < 0
                   ? -E2BIG
                   : 0;
}

int sandbox_create(struct sandbox *sb, const char *id, const char *bundle, sandbox_done_fn done,
                   void *userdata)
{
        int r = wire_check_id(id);
        if (r < 0)
                return r;
        if (strlen(id) > VM_ID_MAX)
                return -EINVAL;
        r = wire_check_opt_path(bundle);
        if (r < 0)
                return r;
        if (sb->id[0] || sb->closing)
                return -EEXIST;
        char doc[1024];
        r = make_doc(sb, doc, sizeof(doc));
        if (r < 0)
                return r;
        /* the controller may complete before it returns: be ready for that first */
        ferry_strscpy(sb->id, id, sizeof(sb->id));
        sb->pending = (struct ctrl_pending){done, userdata};
        r = vm_create(sb->vm, id, doc, on_created, sb);
        if (r < 0) {
                sb->id[0] = '\0';
                sb->pending = (struct ctrl_pending){0};
                return r;
        }
        free(sb->bundle);
        sb->bundle = bundle && *bundle ? strdup(bundle) : NULL;
        return 0;
}

static void on_started(int result, void *userdata)
{
        finish(userdata, result);
}

int sandbox_start(struct sandbox *sb, sandbox_done_fn done, void *userdata)
{
        if (!sb->id[0])
                return -ENOENT;
        if (sb->pending.done)
                return -EAGAIN;
        sb->pending = (struct ctrl_pending){done, userdata};
        int r = vm_start(sb->vm, on_started, sb);
        if (r < 0)
                sb->pending = (struct ctrl_pending){0};
        return r;
}

static void on_terminated(int result, void *userdata)
{
        struct sandbox *sb = userdata;
        if (result == -EALREADY)
                result = 0;
        mark_exited(sb, result);
        finish(sb, result);
}

int sandbox_stop(struct sandbox *sb, sandbox_done_fn done, void *userdata)
{
        if (!sb->id[0])
                return -ENOENT;
        if (sb->pending.done)
                return -EAGAIN;
        if (sb->exited) {
                done(0, userdata);
                return 0;
        }
        sb->pending = (struct ctrl_pending){done, userdata};
        int r = vm_terminate(sb->vm, on_terminated, sb);
        if (r < 0)
                sb->pending = (struct ctrl_pending){0};
        return r;
}

static int add_waiter(struct sandbox *sb, sandbox_exit_fn fn, void *userdata, bool permanent)
{
        struct exit_waiter *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct exit_waiter){fn, userdata, permanent, sb->waiters};
        sb->waiters = w;
        return 0;
}

int sandbox_wait(struct sandbox *sb, sandbox_exit_fn fn, void *userdata)
{
        if (!sb->id[0])
                return -ENOENT;
        if (sb->exited) {
                fn(sb->exit_status, sb->exited_at_ns, userdata);
                return 0;
        }
        return add_waiter(sb, fn, userdata, false);
}

int sandbox_unwait(struct sandbox *sb, sandbox_exit_fn fn, void *userdata)
{
        for (struct exit_waiter **pp = &sb->waiters; *pp; pp = &(*pp)->next) {
                struct exit_waiter *w = *pp;
                if (!w->permanent && w->fn == fn && w->userdata == userdata) {
                        *pp = w->next;
                        free(w);
                        return 0;
                }
        }
        return -ENOENT;
}

int sandbox_on_exit(struct sandbox *sb, sandbox_exit_fn fn, void *userdata)
{
        return add_waiter(sb, fn, userdata, true);
}

/* -- ensure running: create then start, for the first task -- */

struct ensure {
        struct sandbox *sb;
        sandbox_done_fn done;
        void *userdata;
};

static void ensure_started(int result, void *userdata)
{
        struct ensure *e = userdata;
        e->done(result, e->userdata);
        free(e);
}

static void ensure_created(int result, void *userdata)
{
        struct ensure *e = userdata;
        if (result == 0)
                result = sandbox_start(e->sb, ensure_started, e);
        if (result < 0)
                ensure_started(result, e);
}

int sandbox_ensure_running(struct sandbox *sb, const char *id, const char *bundle,
                           sandbox_done_fn done, void *userdata)
{
        if (sandbox_running(sb)) {
                done(0, userdata);
                return 0;
        }
        if (sb->pending.done || vm_in(sb, "creating") || vm_in(sb, "starting"))
                return -EAGAIN; /* a boot is under way: retry */
        bool fresh = !sb->id[0] && vm_in(sb, "not_created");
        if (!fresh && !vm_in(sb, "created"))
                return -EBUSY; /* stopped, or migrating */
        struct ensure *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        *e = (struct ensure){sb, done, userdata};
        int r = fresh ? sandbox_create(sb, id, bundle, ensure_created, e)
                      : sandbox_start(sb, ensure_started, e);
        if (r < 0)
                free(e);
        return r;
}

/* -- close -- */

static void free_sandbox(uv_handle_t *h)
{
        struct sandbox *sb = h->data;
        sandbox_done_fn done = sb->close_done;
        void *ud = sb->close_userdata;
        while (sb->waiters) {
                struct exit_waiter *w = sb->waiters;
                sb->waiters = w->next;
                free(w);
        }
        free(sb->bundle);
        free(sb);
        if (done)
                done(0, ud);
}

static void try_close(struct sandbox *sb);

static void retry_close(uv_timer_t *t)
{
        try_close(t->data);
}

static void close_terminated(int result, void *userdata)
{
        struct sandbox *sb = userdata;
        sb->terminating = false;
        if (result < 0) /* e.g. a failed terminate: try again a little later */
                uv_timer_start(&sb->retry, retry_close, 5, 0);
        else
                try_close(sb);
}

/* How long a closing sandbox keeps trying to terminate and free its VM (5 ms apart) before it
 * lets go of it, so a host that never answers (or a failing terminate) cannot wedge the
 * shim's exit. */
#define SANDBOX_CLOSE_TRIES 400

/* Terminates the VM (from any state, invalid included: it may still hold a running system),
 * then frees it once no host call is in flight. */
static void try_close(struct sandbox *sb)
{
        if (++sb->close_tries > SANDBOX_CLOSE_TRIES) {
                /* give up on the VM: detach it from this sandbox and leave it to process exit */
                vm_subscribe(sb->vm, NULL, NULL);
                vm_on_exit(sb->vm, NULL, NULL);
                sb->vm = NULL;
                sb->pod = NULL; /* they borrow the VM: left with it */
                sb->vm_steps = NULL;
                uv_close((uv_handle_t *)&sb->retry, free_sandbox);
                return;
        }
        bool down = vm_in(sb, "not_created") || vm_in(sb, "terminated");
        if (!down && !sb->terminating) {
                sb->terminating = true;
                int r = vm_terminate(sb->vm, close_terminated, sb);
                if (r < 0) { /* a call is in flight that terminate cannot abort yet */
                        sb->terminating = false;
                        uv_timer_start(&sb->retry, retry_close, 5, 0);
                }
                return;
        }
        if (!down) /* terminate is on its way */
                return;
        /* the VM's borrowers first; each refuses while one of its calls is in flight */
        if (mig_vm_sandbox_free(sb->vm_steps) == 0)
                sb->vm_steps = NULL;
        if (!sb->vm_steps)
                sb->pod = pod_free(sb->pod);
        if (sb->vm_steps || sb->pod) {
                uv_timer_start(&sb->retry, retry_close, 5, 0);
                return;
        }
        sb->vm = vm_free(sb->vm);
        if (sb->vm) { /* its last host completion is still on its way */
                uv_timer_start(&sb->retry, retry_close, 5, 0);
                return;
        }
        uv_close((uv_handle_t *)&sb->retry, free_sandbox);
}

void sandbox_close(struct sandbox *sb, sandbox_done_fn done, void *userdata)
{
        if (!sb) {
                if (done)
                        done(0, userdata);
                return;
        }
        if (sb->closing)
                return;
        sb->closing = true;
        sb->close_done = done;
        sb->close_userdata = userdata;
        mark_exited(sb, sandbox_running(sb) ? -ECANCELED : 0);
        try_close(sb);
}

/* ---------------------------------------------------------------------------------------- */
/* migration: the session's sandbox operations: the VM's steps are mig_vm_ops (src/migration/
 * vm_ops.c) over the same VM controller; the pod's calls are sequenced around them */

/* A completion delivered on a later loop turn, so no caller is called back before it
 * returns. */
struct later {
        uv_timer_t timer;
        int result;
        mig_done_fn done;
        void *userdata;
};

static void later_closed(uv_handle_t *h)
{
        struct later *l = h->data;
        l->done(l->result, l->userdata);
        free(l);
}

static void later_fire(uv_timer_t *t)
{
        uv_close((uv_handle_t *)t, later_closed);
}

static int later_done(struct sandbox *sb, int result, mig_done_fn done, void *userdata)
{
        struct later *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        *l = (struct later){.result = result, .done = done, .userdata = userdata};
        uv_timer_init(sb->loop, &l->timer);
        l->timer.data = l;
        uv_timer_start(&l->timer, later_fire, 0, 0);
        return 0;
}

/* One migration step in flight: what to call when it ends. */
struct step {
        struct sandbox *sb;
        mig_done_fn done;
        void *userdata;
        bool resume;    /* the VM runs again after it: the pod resumes */
        bool terminate; /* a terminate: -EALREADY (already down) is success */
};

static struct step *step_new(struct sandbox *sb, mig_done_fn done, void *userdata)
{
        struct step *st = calloc(1, sizeof(*st));
        if (st)
                *st = (struct step){.sb = sb, .done = done, .userdata = userdata};
        return st;
}

static void step_end(struct step *st, int result)
{
        mig_done_fn done = st->done;
        void *ud = st->userdata;
        free(st);
        done(result, ud);
}

static enum mig_vm_state ops_vm_state(void *p)
{
        struct sandbox *sb = p;
        return mig_vm_ops.vm_state(sb->vm_steps);
}

static void step_result(int result, void *userdata)
{
        step_end(userdata, result);
}

static int ops_initialize(void *p, const char *opts_json, mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        return mig_vm_ops.initialize(sb->vm_steps, opts_json, done, userdata);
}

/* A pod call whose done may come at once (its answer is then taken as the call's outcome) or
 * later (a save rolling back, a patch opening IO on the thread pool). */
struct pod_wait {
        bool answered, detached;
        int result;
};

static void pod_wait_done(int result, void *userdata)
{
        struct pod_wait *w = userdata;
        if (w->detached) {
                free(w);
                return;
        }
        w->answered = true;
        w->result = result;
}

/* The outcome of a pod call that took w: its answer if it came at once, else pending (the
 * late answer frees w). */
static int pod_wait_end(struct pod_wait *w, int r, int pending)
{
        if (r < 0) {
                free(w);
                return r;
        }
        if (!w->answered) {
                w->detached = true;
                return pending;
        }
        r = w->result;
        free(w);
        return r;
}

/* Source: the VM's envelope (a pure serialization), then the pod's, which freezes the pod and
 * its containers; a failed pod save leaves nothing frozen. */
static int ops_export(void *p, uint8_t **ret, size_t *ret_len)
{
        struct sandbox *sb = p;
        Containerd__Runtime__Sandbox__V1__SandboxSave msg =
            CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_SAVE__INIT;
        ctrl_envelope *venv = NULL, *penv = NULL, *env = NULL;
        int r = vm_save(sb->vm, &venv);
        if (r < 0)
                return r;
        struct pod_wait *w = calloc(1, sizeof(*w));
        r = w ? pod_save(sb->pod, &penv, pod_wait_done, w) : -ENOMEM;
        r = w ? pod_wait_end(w, r, -EBUSY) : r; /* a late answer is a rollback: failed */
        msg.schema_version = SANDBOX_SCHEMA_VERSION;
        msg.sandbox_id = sb->id;
        msg.vm = venv;
        msg.n_pods = 1; /* one pod per sandbox today; import takes a list */
        msg.pods = &penv;
        if (r == 0)
                r = ctrl_envelope_pack(SANDBOX_SAVE_NAME, SANDBOX_SCHEMA_VERSION, &msg.base, &env);
        if (r == 0)
                r = ctrl_envelope_to_bytes(env, ret, ret_len);
        ctrl_envelope_free(env);
        ctrl_envelope_free(penv);
        ctrl_envelope_free(venv);
        return r;
}

/* Adds the container ids of one pod envelope to ids (n in use, cap max). A payload that does
 * not decode is left to pod_import to refuse; here only ids matter. */
static int pod_container_ids(const ctrl_envelope *penv, char **ids, size_t *n, size_t max)
{
        ProtobufCMessage *pm = NULL;
        int r = ctrl_envelope_unpack(penv, "pod", UINT32_MAX,
                                     &ferry__pod__save__v1__payload__descriptor, &pm, NULL, NULL);
        if (r < 0)
                return r;
        const Ferry__Pod__Save__V1__Payload *pod = (const Ferry__Pod__Save__V1__Payload *)pm;
        for (size_t i = 0; r == 0 && i < pod->n_containers; i++) {
                ProtobufCMessage *cm = NULL;
                r = ctrl_envelope_unpack(pod->containers[i], "container", UINT32_MAX,
                                         &ferry__container__save__v1__payload__descriptor, &cm,
                                         NULL, NULL);
                if (r < 0)
                        break;
                const char *id = ((Ferry__Container__Save__V1__Payload *)cm)->container_id;
                if (*n >= max)
                        r = -EINVAL;
                else if (!(ids[*n] = strdup(id)))
                        r = -ENOMEM;
                else
                        (*n)++;
                protobuf_c_message_free_unpacked(cm, NULL);
        }
        protobuf_c_message_free_unpacked(pm, NULL);
        return r;
}

/* Decodes every pod's envelope before anything is imported and refuses (-EINVAL) a container
 * id that two pods (or one pod twice) carry: the destination could not tell their patches
 * apart. */
static int check_pods(const Containerd__Runtime__Sandbox__V1__SandboxSave *m)
{
        char **ids = calloc(SANDBOX_IMPORT_IDS_MAX, sizeof(*ids));
        if (!ids)
                return -ENOMEM;
        size_t n = 0;
        int r = 0;
        for (size_t p = 0; r == 0 && p < m->n_pods; p++)
                r = pod_container_ids(m->pods[p], ids, &n, SANDBOX_IMPORT_IDS_MAX);
        for (size_t i = 0; r == 0 && i < n; i++)
                for (size_t j = i + 1; r == 0 && j < n; j++)
                        if (strcmp(ids[i], ids[j]) == 0)
                                r = -EINVAL;
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
        return r;
}

/* Destination: every pod is checked first (check_pods), then the pod's import, then the VM's;
 * a VM that refuses leaves a fresh pod again (an imported pod has nothing in any guest yet,
 * and freeing it publishes nothing), so a failure anywhere leaves nothing imported. The
 * sandbox holds one pod: a snapshot with more is refused (-EINVAL) once they have been
 * checked, before any is imported. */
static int import_pod_vm(struct sandbox *sb, const char *sandbox_id,
                         const Containerd__Runtime__Sandbox__V1__SandboxSave *m)
{
        if (!m->vm || m->n_pods == 0)
                return -EINVAL;
        int r = check_pods(m);
        if (r < 0)
                return r;
        if (m->n_pods != 1)
                return -EINVAL;
        uint8_t *vbuf = NULL;
        size_t vlen = 0;
        r = ctrl_envelope_to_bytes(m->vm, &vbuf, &vlen);
        if (r < 0)
                return r;
        struct pod_options o = pod_opts(sb);
        r = pod_import(sb->pod, &o, m->pods[0]);
        if (r == 0)
                r = mig_vm_ops.import_state(sb->vm_steps, sandbox_id, vbuf, vlen);
        free(vbuf);
        if (r < 0 && strcmp(pod_state_name(sb->pod), "not_created") != 0) {
                struct pod *fresh = NULL;
                if (pod_new(sb->vm, "sandbox", &fresh) == 0 && !pod_free(sb->pod))
                        sb->pod = fresh;
                else
                        pod_free(fresh);
        }
        return r;
}

static int ops_import(void *p, const char *sandbox_id, const uint8_t *buf, size_t len)
{
        struct sandbox *sb = p;
        if (wire_check_id(sandbox_id) < 0 || strlen(sandbox_id) > VM_ID_MAX)
                return -EINVAL;
        if (sb->id[0] || !vm_in(sb, "not_created"))
                return -EBUSY;
        ctrl_envelope *env = NULL;
        Containerd__Runtime__Sandbox__V1__SandboxSave *msg = NULL;
        int r = ctrl_envelope_from_bytes(buf, len, &env);
        if (r == 0)
                r = ctrl_envelope_unpack(
                    env, SANDBOX_SAVE_NAME, SANDBOX_SCHEMA_VERSION,
                    &containerd__runtime__sandbox__v1__sandbox_save__descriptor,
                    (ProtobufCMessage **)&msg, NULL, NULL);
        if (r == 0)
                r = import_pod_vm(sb, sandbox_id, msg);
        if (r == 0) {
                ferry_strscpy(sb->id, sandbox_id, sizeof(sb->id));
                sb->created_at_ns = shim_wall_ns();
        }
        if (msg)
                protobuf_c_message_free_unpacked(&msg->base, NULL);
        ctrl_envelope_free(env);
        return r;
}

/* The imported containers that wait for their patch (a destination CreateTask), by id. */
static int ops_pending(void *p, char *buf, size_t size)
{
        struct sandbox *sb = p;
        int n = 0;
        size_t len = 0;
        if (size)
                buf[0] = '\0';
        for (size_t i = 0; i < pod_container_count(sb->pod); i++) {
                struct container *c = pod_container_at(sb->pod, i);
                if (pod_container_patched(sb->pod, c))
                        continue;
                if (size > len) {
                        ssize_t w = ferry_bprintf(buf + len, size - len, "%s%s", n ? ", " : "",
                                                  container_id(c));
                        len = w < 0 ? size : len + (size_t)w;
                }
                n++;
        }
        return n;
}

/* Destination CreateTask with the source-container annotation: the pod patches the imported
 * container with the destination's id, bundle and stdio. The pod has no network (the shim
 * does not attach one), so no namespace travels with the sandbox container's patch. A patch
 * that opens stdio on the thread pool completes later; until then the container counts as
 * unpatched (PrepareSandbox names it). */
static int ops_patch(void *p, const struct mig_patch *patch)
{
        struct sandbox *sb = p;
        const Containerd__Task__V2__CreateTaskRequest *req = patch->request;
        struct container_patch_opts o = {.id = patch->container_id};
        if (req) {
                o.bundle = req->bundle;
                o.io = (struct process_io){req->stdin, req->stdout, req->stderr, req->terminal};
        }
        struct pod_wait *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        int r =
            pod_patch_container(sb->pod, patch->source_container_id, &o, NULL, pod_wait_done, w);
        return pod_wait_end(w, r, 0);
}

static int ops_prepare_destination(void *p, const char *opts_json, mig_prepare_fn done,
                                   void *userdata)
{
        struct sandbox *sb = p;
        return mig_vm_ops.prepare_destination(sb->vm_steps, opts_json, done, userdata);
}

static int ops_transfer(void *p, enum mig_origin origin, int fd, uint32_t session_num,
                        mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        return mig_vm_ops.transfer(sb->vm_steps, origin, fd, session_num, done, userdata);
}

static void ignore_done(int result, void *userdata)
{
}

/* This side's VM is gone, or never ran: the pod's frozen containers end (137, their exits
 * published) so Delete can proceed. Best effort: a pod that is not frozen is left as it is. */
static void teardown_pod(struct sandbox *sb)
{
        (void)pod_teardown(sb->pod, ignore_done, NULL);
}

/* The VM's finalize (resume or stop) or terminate is done: the pod follows. */
static void vm_step_done(int result, void *userdata)
{
        struct step *st = userdata;
        struct sandbox *sb = st->sb;
        if (result == -EALREADY && st->terminate)
                result = 0;
        if (result == 0 && st->resume) {
                /* the VM runs again: a source rolls back, a destination binds its containers
                 * (they republish TaskCreate and TaskStart) */
                result = pod_resume(sb->pod, step_result, st);
                if (result == 0)
                        return;
        } else if (result == 0) {
                teardown_pod(sb); /* this side's VM is gone */
                mark_exited(sb, 0);
        }
        step_end(st, result);
}

static int ops_finalize(void *p, enum mig_origin origin, bool resume, bool skip_host,
                        mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        st->resume = resume || skip_host; /* skip_host: resume the VM only */
        int r = mig_vm_ops.finalize(sb->vm_steps, origin, resume, skip_host, vm_step_done, st);
        if (r < 0)
                free(st);
        return r;
}

static int ops_terminate(void *p, mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        st->terminate = true;
        int r = mig_vm_ops.terminate(sb->vm_steps, vm_step_done, st);
        if (r < 0)
                free(st);
        return r;
}

static int ops_cancel(void *p, enum mig_origin origin, mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        /* nothing exists in host compute yet to abort */
        if (!vm_system(sb->vm))
                return later_done(sb, 0, done, userdata);
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_cancel(sb->vm, step_result, st);
        if (r < 0) {
                free(st);
                return later_done(sb, r == -EBUSY ? 0 : r, done, userdata);
        }
        return 0;
}

static void cleanup_terminated(int result, void *userdata)
{
        mark_exited(userdata, 0);
}

/* The session ended. A side whose VM does not run (a destination cancelled or stopped before
 * its resume) is torn down: the host system goes, the imported pod's teardown ends every task
 * with 137 (TaskExit published) so Delete can proceed, and the sandbox reports stopped. A
 * running side keeps everything. */
static void ops_cleanup(void *p)
{
        struct sandbox *sb = p;
        if (sandbox_running(sb) || !sb->id[0])
                return;
        teardown_pod(sb);
        if (vm_in(sb, "terminated") || vm_in(sb, "not_created")) {
                mark_exited(sb, 0);
                return;
        }
        if (vm_terminate(sb->vm, cleanup_terminated, sb) < 0)
                mark_exited(sb, 0);
}

const struct migration_sandbox_ops sandbox_mig_ops = {
    .vm_state = ops_vm_state,
    .initialize = ops_initialize,
    .export_state = ops_export,
    .import_state = ops_import,
    .pending_patches = ops_pending,
    .patch_container = ops_patch,
    .prepare_destination = ops_prepare_destination,
    .transfer = ops_transfer,
    .finalize = ops_finalize,
    .terminate = ops_terminate,
    .cancel = ops_cancel,
    .cleanup = ops_cleanup,
};

/* ---------------------------------------------------------------------------------------- */
/* the Sandbox service */

struct sandbox_service {
        struct sandbox *sb;
        void (*shutdown)(void *);
        void *shutdown_userdata;
};

static struct sandbox_service the_service; /* one per process: a shim has one sandbox */

/* A sandbox_id that names another sandbox is NOT_FOUND; empty means "this shim's". */
static int check_target(struct sandbox *sb, const char *sandbox_id)
{
        if (!sandbox_id || !*sandbox_id)
                return sb->id[0] ? 0 : -ENOENT;
        int r = wire_check_id(sandbox_id);
        if (r < 0)
                return r;
        return strcmp(sandbox_id, sb->id) == 0 ? 0 : -ENOENT;
}

static void reply_empty_done(int result, void *userdata)
{
        struct ttrpc_call *call = userdata;
        if (result < 0)
                ttrpc_call_fail(call, result, "sandbox");
        else
                ttrpc_call_reply(call, NULL);
}

static void h_create(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__CreateSandboxRequest *req = (const void *)msg;
        int r = sandbox_create(svc->sb, req->sandbox_id, req->bundle_path, reply_empty_done, call);
        if (r < 0)
                ttrpc_call_fail(call, r,
                                r == -EEXIST ? "sandbox already exists" : "create sandbox");
}

static void reply_started(int result, void *userdata)
{
        struct ttrpc_call *call = userdata;
        if (result < 0) {
                ttrpc_call_fail(call, result, "start sandbox");
                return;
        }
        Containerd__Runtime__Sandbox__V1__StartSandboxResponse resp =
            CONTAINERD__RUNTIME__SANDBOX__V1__START_SANDBOX_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts;
        wire_timestamp(&ts, sandbox_created_at_ns(the_service.sb));
        resp.pid = (uint32_t)getpid();
        resp.created_at = &ts;
        ttrpc_call_reply(call, &resp.base);
}

static void h_start(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__StartSandboxRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        if (r == 0)
                r = sandbox_start(svc->sb, reply_started, call);
        if (r < 0)
                ttrpc_call_fail(call, r,
                                r == -EBUSY ? "sandbox is not in created state" : "start sandbox");
}

static void h_platform(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        Containerd__Runtime__Sandbox__V1__PlatformResponse resp =
            CONTAINERD__RUNTIME__SANDBOX__V1__PLATFORM_RESPONSE__INIT;
        Containerd__Runtime__Sandbox__V1__Platform p =
            CONTAINERD__RUNTIME__SANDBOX__V1__PLATFORM__INIT;
        struct utsname u;
        p.os = "linux";
        /* the guest runs the host's architecture (the sim and qemu -accel tcg of the same arch) */
        p.architecture = "amd64";
        if (uname(&u) == 0 && strcmp(u.machine, "aarch64") == 0)
                p.architecture = "arm64";
        resp.platform = &p;
        ttrpc_call_reply(call, &resp.base);
}

static void h_stop(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__StopSandboxRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        if (r == 0)
                r = sandbox_stop(svc->sb, reply_empty_done, call);
        if (r < 0)
                ttrpc_call_fail(call, r, "stop sandbox");
}

/* A WaitSandbox call parked until the VM stops; call is NULL once the client went away. */
struct wait_call {
        struct ttrpc_call *call;
};

static void wait_exited(uint32_t exit_status, uint64_t exited_at_ns, void *userdata);

static void wait_cancelled(struct ttrpc_call *call, void *userdata)
{
        struct wait_call *w = userdata;
        ttrpc_call_fail(call, -ECANCELED, "wait cancelled");
        /* leave the sandbox's list now, so vanished clients cannot grow it */
        if (sandbox_unwait(the_service.sb, wait_exited, w) == 0)
                free(w);
        else
                w->call = NULL;
}

static void wait_exited(uint32_t exit_status, uint64_t exited_at_ns, void *userdata)
{
        struct wait_call *w = userdata;
        if (w->call) {
                Containerd__Runtime__Sandbox__V1__WaitSandboxResponse resp =
                    CONTAINERD__RUNTIME__SANDBOX__V1__WAIT_SANDBOX_RESPONSE__INIT;
                Containerd__Task__V2__Timestamp ts;
                wire_timestamp(&ts, exited_at_ns);
                resp.exit_status = exit_status;
                resp.exited_at = &ts;
                ttrpc_call_reply(w->call, &resp.base);
        }
        free(w);
}

static void h_wait(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__WaitSandboxRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        struct wait_call *w = r < 0 ? NULL : calloc(1, sizeof(*w));
        if (r == 0 && !w)
                r = -ENOMEM;
        if (r == 0) {
                w->call = call;
                ttrpc_call_on_cancel(call, wait_cancelled, w);
                r = sandbox_wait(svc->sb, wait_exited, w);
        }
        if (r < 0) {
                free(w);
                ttrpc_call_fail(call, r, "wait sandbox");
        }
}

static void h_status(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        struct sandbox *sb = svc->sb;
        const Containerd__Runtime__Sandbox__V1__SandboxStatusRequest *req = (const void *)msg;
        int r = check_target(sb, req->sandbox_id);
        if (r < 0) {
                ttrpc_call_fail(call, r, "sandbox status");
                return;
        }
        Containerd__Runtime__Sandbox__V1__SandboxStatusResponse resp =
            CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp created, exited;
        Containerd__Task__V2__KeyValue kv = CONTAINERD__TASK__V2__KEY_VALUE__INIT;
        Containerd__Task__V2__KeyValue *info[1] = {&kv};
        resp.sandbox_id = sb->id;
        resp.pid = (uint32_t)getpid();
        resp.state = (char *)sandbox_state_name(sb);
        if (sb->created_at_ns) {
                wire_timestamp(&created, sb->created_at_ns);
                resp.created_at = &created;
        }
        if (sb->exited) {
                wire_timestamp(&exited, sb->exited_at_ns);
                resp.exited_at = &exited;
        }
        if (req->verbose) {
                kv.key = "backend";
                kv.value = (char *)hcs_backend_name(sb->backend);
                resp.n_info = 1;
                resp.info = info;
        }
        ttrpc_call_reply(call, &resp.base);
}

static void h_ping(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__PingRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        if (r < 0)
                ttrpc_call_fail(call, r, "ping sandbox");
        else
                ttrpc_call_reply(call, NULL);
}

static void shutdown_stopped(int result, void *userdata)
{
        struct ttrpc_call *call = userdata;
        if (result < 0) {
                ttrpc_call_fail(call, result, "shutdown sandbox: stop");
                return;
        }
        ttrpc_call_reply(call, NULL);
        if (the_service.shutdown)
                the_service.shutdown(the_service.shutdown_userdata);
}

static void h_shutdown(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__ShutdownSandboxRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        if (r == -ENOENT && !svc->sb->id[0]) { /* nothing was ever created: just leave */
                shutdown_stopped(0, call);
                return;
        }
        if (r == 0)
                r = sandbox_stop(svc->sb, shutdown_stopped, call);
        if (r < 0)
                ttrpc_call_fail(call, r, "shutdown sandbox");
}

/* In the descriptor's method order (sandbox.proto). */
static const struct ttrpc_method sandbox_methods[] = {
    {h_create, TTRPC_UNARY}, {h_start, TTRPC_UNARY},    {h_platform, TTRPC_UNARY},
    {h_stop, TTRPC_UNARY},   {h_wait, TTRPC_UNARY},     {h_status, TTRPC_UNARY},
    {h_ping, TTRPC_UNARY},   {h_shutdown, TTRPC_UNARY}, {NULL, TTRPC_UNARY}, /* Metrics */
};

int sandbox_service_register(struct ttrpc_server *srv, struct sandbox *sb, void (*shutdown)(void *),
                             void *shutdown_userdata)
{
        the_service = (struct sandbox_service){sb, shutdown, shutdown_userdata};
        return ttrpc_server_register(srv, &containerd__runtime__sandbox__v1__sandbox__descriptor,
                                     sandbox_methods, ARRAY_SIZE(sandbox_methods), &the_service);
}
