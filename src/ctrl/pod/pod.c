/* SPDX-License-Identifier: MIT */
/* The pod controller's handlers (spec/pod.yaml). The pod fans its calls out to its network and
 * containers; asynchronous fan-outs run one child at a time (a chain) and end with the spec's
 * completion event, whose `answer` action replies to the caller. */
#include "pod.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl/vm/vm.h"
#include "pod_fsm.h"
#include "save_pod.pb-c.h"
#include "util/util.h"

#define POD_NAME_MAX 96

struct pod_entry {
        char id[POD_ID_MAX + 1]; /* containerd's id: registered, imported, or patched to */
        struct container *c;
        bool patched;  /* destination: patched since import */
        bool rollback; /* a failed save froze it: resume it */
};

struct pod;
typedef int (*pod_child_fn)(struct pod *p, size_t i, ctrl_done_fn done, void *ud);
typedef void (*pod_end_fn)(struct pod *p, int result);

struct pod {
        struct fsm fsm;
        char name[POD_NAME_MAX];
        struct vm *vm;
        struct ctrl_env env; /* borrowed by every child */
        char pod_id[POD_ID_MAX + 1];
        char gcs_pod_id[POD_ID_MAX + 1];
        char ns[NETWORK_ID_MAX];
        network_lookup_fn lookup;
        void *lookup_userdata;
        struct container_devices devices;
        bool has_devices;
        struct network *net;
        struct pod_entry *cs;
        size_t n;

        struct ctrl_pending call;
        int result;                 /* what answer replies */
        struct ctrl_pending answer; /* due, sent once no transition of the pod runs */
        int answer_result;
        unsigned inflight; /* child callbacks still to come */

        /* The chain in flight. */
        pod_child_fn chain_fn;
        pod_end_fn chain_end;
        size_t chain_i;
        bool resume_destination;

        /* The patch in flight. */
        size_t patch_index;
        bool patch_sandbox;
        char patch_id[POD_ID_MAX + 1];
        char patch_ns[NETWORK_ID_MAX];
};

struct pod_args {
        const char *id;
        const struct pod_options *opts;
        const ctrl_envelope *env;
        ctrl_envelope **ret_env;
        const char *source_id;
        const struct container_patch_opts *patch;
        const char *netns;
        struct container **ret_c;
        ctrl_done_fn done;
        void *userdata;
};

/* ---- helpers ------------------------------------------------------------------------------ */

/* Sends a due answer, outside any transition of p (its caller may call the pod again). */
static void pod_flush(struct pod *p)
{
        if (!fsm_busy(&p->fsm))
                ctrl_reply(&p->answer, p->answer_result);
}

static int pod_call(struct pod *p, enum pod_event ev, struct pod_args *a)
{
        /* A call from inside one of p's own transitions would be queued with arguments that
         * are gone by then: refused, retry from the loop. */
        if (fsm_busy(&p->fsm))
                return -ENOTCONN;
        int r = pod_dispatch(&p->fsm, ev, a);
        pod_flush(p);
        return ctrl_call_end(r, a->done, a->userdata);
}

static int pod_pend(struct pod *p, struct pod_args *a)
{
        return ctrl_pend(&p->call, &a->done, &a->userdata);
}

/* Ends the call in flight with result: the completion's `answer` replies. */
static void pod_finish(struct pod *p, int result, enum pod_event ok, enum pod_event failed)
{
        p->result = result;
        pod_dispatch(&p->fsm, result < 0 ? failed : ok, NULL);
        pod_flush(p);
}

static ssize_t pod_find(const struct pod *p, const char *id)
{
        for (size_t i = 0; id && i < p->n; i++)
                if (strcmp(p->cs[i].id, id) == 0)
                        return (ssize_t)i;
        return -1;
}

static bool id_valid(const char *id)
{
        size_t n = id ? strnlen(id, POD_ID_MAX + 1) : 0;
        return n > 0 && n <= POD_ID_MAX;
}

static void pod_bind_vm(struct pod *p)
{
        struct ctrl_env e;
        vm_env(p->vm, &e);
        p->env.loop = e.loop;
        p->env.sys = e.sys;
        p->env.guest = e.guest;
}

static void pod_take_options(struct pod *p, const struct pod_options *o)
{
        p->env.publish = o->publish;
        p->env.publish_userdata = o->publish_userdata;
        p->lookup = o->lookup;
        p->lookup_userdata = o->lookup_userdata;
        p->has_devices = o->devices != NULL;
        if (o->devices)
                p->devices = *o->devices;
}

static const struct container_devices *pod_devices(const struct pod *p)
{
        return p->has_devices ? &p->devices : NULL;
}

static int cmp_entry(const void *a, const void *b)
{
        const struct pod_entry *x = a, *y = b;
        return strcmp(x->id, y->id);
}

static void pod_sort(struct pod *p)
{
        if (p->n > 1)
                qsort(p->cs, p->n, sizeof(*p->cs), cmp_entry);
}

static void free_entries(struct pod_entry *cs, size_t n)
{
        for (size_t i = 0; i < n; i++)
                container_free(cs[i].c);
        free(cs);
}

static int pod_new_network(struct pod *p, const char *ns, bool pbr, struct network **ret)
{
        struct network_options o = {.namespace_id = ns,
                                    .policy_based_routing = pbr,
                                    .lookup = p->lookup,
                                    .lookup_userdata = p->lookup_userdata};
        return network_new(&p->env, &o, ret);
}

/* A child's callback that only counts itself (its caller was answered another way). */
struct pod_fwd {
        struct pod *p;
        ctrl_done_fn done;
        void *userdata;
};

static void pod_fwd_cb(int r, void *ud)
{
        struct pod_fwd *f = ud;
        f->p->inflight--;
        if (f->done)
                f->done(r, f->userdata);
        free(f);
}

static struct pod_fwd *pod_fwd_new(struct pod *p, ctrl_done_fn done, void *ud)
{
        struct pod_fwd *f = malloc(sizeof(*f));
        if (!f)
                return NULL;
        *f = (struct pod_fwd){.p = p, .done = done, .userdata = ud};
        p->inflight++;
        return f;
}

/* ---- chains: one child at a time ----------------------------------------------------------- */

static void chain_next(struct pod *p);

static void chain_cb(int r, void *ud)
{
        struct pod *p = ud;
        p->inflight--;
        if (r < 0)
                p->chain_end(p, r);
        else
                chain_next(p);
}

/* chain_fn returns 0 when it started the child (chain_cb follows), 1 to skip the child, or a
 * negative errno that ends the chain. */
static void chain_next(struct pod *p)
{
        while (p->chain_i < p->n) {
                size_t i = p->chain_i++;
                p->inflight++;
                int r = p->chain_fn(p, i, chain_cb, p);
                if (r == 0)
                        return;
                p->inflight--;
                if (r < 0) {
                        p->chain_end(p, r);
                        return;
                }
        }
        p->chain_end(p, 0);
}

static void chain_start(struct pod *p, pod_child_fn fn, pod_end_fn end)
{
        p->chain_fn = fn;
        p->chain_end = end;
        p->chain_i = 0;
        chain_next(p);
}

/* ---- guards -------------------------------------------------------------------------------- */

bool pod_guard_container_known(struct pod *p, void *arg)
{
        const struct pod_args *a = arg;
        return pod_find(p, a->id) >= 0;
}

bool pod_guard_is_sandbox_container(struct pod *p, void *arg)
{
        const struct pod_args *a = arg;
        return a->source_id &&
               (strcmp(a->source_id, p->gcs_pod_id) == 0 || strcmp(a->source_id, p->pod_id) == 0);
}

bool pod_guard_containers_unpatched(struct pod *p, void *arg)
{
        for (size_t i = 0; i < p->n; i++)
                if (!p->cs[i].patched)
                        return true;
        return false;
}

bool pod_guard_vm_running(struct pod *p, void *arg)
{
        return strcmp(vm_state_name(p->vm), "running") == 0;
}

/* ---- create, import, containers, network ---------------------------------------------------- */

int pod_action_attach_network(struct pod *p, void *arg)
{
        const struct pod_options *o = ((struct pod_args *)arg)->opts;
        if (!o || !id_valid(o->pod_id))
                return -EINVAL;
        bool has_ns = o->namespace_id && *o->namespace_id;
        if (has_ns && (strnlen(o->namespace_id, NETWORK_ID_MAX) >= NETWORK_ID_MAX || !o->lookup))
                return -EINVAL;
        pod_take_options(p, o);
        pod_bind_vm(p);
        if (has_ns) {
                int r = pod_new_network(p, o->namespace_id, o->policy_based_routing, &p->net);
                if (r < 0)
                        return r;
                ferry_strscpy(p->ns, o->namespace_id, sizeof(p->ns));
        }
        ferry_strscpy(p->pod_id, o->pod_id, sizeof(p->pod_id));
        ferry_strscpy(p->gcs_pod_id, o->pod_id, sizeof(p->gcs_pod_id));
        return 0;
}

/* Imports every container envelope of m into a new array (all or nothing). */
static int import_containers(struct pod *p, const Ferry__Pod__Save__V1__Payload *m,
                             struct pod_entry **ret)
{
        struct pod_entry *cs = calloc(m->n_containers ? m->n_containers : 1, sizeof(*cs));
        if (!cs)
                return -ENOMEM;
        int r = 0;
        size_t n = 0;
        for (; n < m->n_containers && r == 0; n++) {
                r = container_new(&p->env, pod_devices(p), &cs[n].c);
                if (r == 0)
                        r = container_import(cs[n].c, m->containers[n]);
                if (r == 0 && !id_valid(container_id(cs[n].c)))
                        r = -EINVAL;
                if (r == 0)
                        ferry_strscpy(cs[n].id, container_id(cs[n].c), sizeof(cs[n].id));
                for (size_t j = 0; r == 0 && j < n; j++)
                        if (strcmp(cs[j].id, cs[n].id) == 0)
                                r = -EINVAL; /* duplicate container id */
        }
        if (r < 0) {
                free_entries(cs, n);
                return r;
        }
        *ret = cs;
        return 0;
}

int pod_action_import_state(struct pod *p, void *arg)
{
        struct pod_args *a = arg;
        ProtobufCMessage *msg = NULL;
        uint32_t version;
        struct network *net = NULL;
        struct pod_entry *cs = NULL;
        if (!a->opts)
                return -EINVAL;
        int r =
            ctrl_envelope_unpack(a->env, "pod", POD_SCHEMA_VERSION,
                                 &ferry__pod__save__v1__payload__descriptor, &msg, &version, NULL);
        if (r < 0)
                return r;
        Ferry__Pod__Save__V1__Payload *m = (Ferry__Pod__Save__V1__Payload *)msg;
        if (!id_valid(m->pod_id) || !id_valid(m->gcs_pod_id) ||
            m->n_containers > POD_CONTAINERS_MAX)
                r = -EINVAL;
        if (r == 0) {
                pod_take_options(p, a->opts);
                pod_bind_vm(p);
        }
        if (r == 0 && m->network) {
                r = pod_new_network(p, m->namespace_id, a->opts->policy_based_routing, &net);
                if (r == 0)
                        r = network_import(net, m->network);
        }
        if (r == 0)
                r = import_containers(p, m, &cs);
        if (r < 0) {
                network_free(net);
                protobuf_c_message_free_unpacked(msg, NULL);
                return r;
        }
        p->net = net;
        p->cs = cs;
        p->n = m->n_containers;
        ferry_strscpy(p->pod_id, m->pod_id, sizeof(p->pod_id));
        ferry_strscpy(p->gcs_pod_id, m->gcs_pod_id, sizeof(p->gcs_pod_id));
        ferry_strscpy(p->ns, m->namespace_id, sizeof(p->ns));
        protobuf_c_message_free_unpacked(msg, NULL);
        return 0;
}

int pod_action_add_container(struct pod *p, void *arg)
{
        struct pod_args *a = arg;
        if (!id_valid(a->id))
                return -EINVAL;
        struct pod_entry *cs = realloc(p->cs, (p->n + 1) * sizeof(*cs));
        if (!cs)
                return -ENOMEM;
        p->cs = cs;
        pod_bind_vm(p);
        struct container *c = NULL;
        int r = container_new(&p->env, pod_devices(p), &c);
        if (r < 0)
                return r;
        /* The container takes its id at create; the pod knows it by the id registered here. */
        p->cs[p->n] = (struct pod_entry){.c = c, .patched = true};
        ferry_strscpy(p->cs[p->n].id, a->id, sizeof(p->cs[p->n].id));
        p->n++;
        *a->ret_c = c;
        return 0;
}

int pod_action_remove_container(struct pod *p, void *arg)
{
        ssize_t i = pod_find(p, ((struct pod_args *)arg)->id);
        container_free(p->cs[i].c);
        memmove(&p->cs[i], &p->cs[i + 1], (p->n - (size_t)i - 1) * sizeof(*p->cs));
        p->n--;
        return 0;
}

static int pod_network_call(struct pod *p, struct pod_args *a,
                            int (*fn)(struct network *, ctrl_done_fn, void *))
{
        if (!p->net)
                return -ENOENT;
        struct pod_fwd *f = pod_fwd_new(p, a->done, a->userdata);
        if (!f)
                return -ENOMEM;
        int r = fn(p->net, pod_fwd_cb, f);
        if (r < 0) {
                p->inflight--;
                free(f);
                return r;
        }
        a->done = NULL; /* the network answers */
        return 0;
}

int pod_action_setup_network(struct pod *p, void *arg)
{
        pod_bind_vm(p);
        return pod_network_call(p, arg, network_setup);
}

int pod_action_teardown_network(struct pod *p, void *arg)
{
        return pod_network_call(p, arg, network_teardown);
}

/* ---- save ------------------------------------------------------------------------------------ */

static int rollback_one(struct pod *p, size_t i, ctrl_done_fn done, void *ud)
{
        if (!p->cs[i].rollback)
                return 1;
        p->cs[i].rollback = false;
        return container_resume(p->cs[i].c, done, ud);
}

static void rollback_end(struct pod *p, int result)
{
        /* The save's own error is what the caller hears; a failed un-freeze is logged by the
         * container (it stays frozen and teardown still works). */
        pod_finish(p, p->result, POD_E_SAVE_ROLLED_BACK, POD_E_SAVE_ROLLED_BACK);
}

static void free_envs(ctrl_envelope **envs, size_t n)
{
        for (size_t i = 0; envs && i < n; i++)
                ctrl_envelope_free(envs[i]);
        free(envs);
}

/* Saves every child into m; on failure marks the containers it newly froze for rollback. */
static int save_children(struct pod *p, Ferry__Pod__Save__V1__Payload *m, bool *ret_net_frozen)
{
        bool net_was_frozen = p->net && strcmp(network_state_name(p->net), "source_migrating") == 0;
        int r = 0;
        for (size_t i = 0; i < p->n && r == 0; i++) {
                bool was_frozen = container_is_frozen(p->cs[i].c);
                r = container_save(p->cs[i].c, &m->containers[i]);
                if (r == 0) {
                        m->n_containers++;
                        p->cs[i].rollback = !was_frozen;
                }
        }
        if (r == 0 && p->net)
                r = network_save(p->net, &m->network);
        *ret_net_frozen = p->net && !net_was_frozen && r == 0;
        return r;
}

int pod_action_save_pod(struct pod *p, void *arg)
{
        struct pod_args *a = arg;
        Ferry__Pod__Save__V1__Payload m = FERRY__POD__SAVE__V1__PAYLOAD__INIT;
        bool net_frozen = false;
        pod_sort(p);
        for (size_t i = 0; i < p->n; i++)
                p->cs[i].rollback = false;
        m.containers = calloc(p->n ? p->n : 1, sizeof(*m.containers));
        if (!m.containers)
                return -ENOMEM;
        m.schema_version = POD_SCHEMA_VERSION;
        m.pod_id = p->pod_id;
        m.gcs_pod_id = p->gcs_pod_id;
        m.namespace_id = p->ns;
        int r = save_children(p, &m, &net_frozen);
        if (r == 0)
                r = ctrl_envelope_pack("pod", POD_SCHEMA_VERSION, &m.base, a->ret_env);
        free_envs(m.containers, m.n_containers);
        ctrl_envelope_free(m.network);
        if (r == 0)
                return 0;
        /* All or nothing: un-freeze what this save froze. */
        if (net_frozen)
                network_resume(p->net);
        bool any = false;
        for (size_t i = 0; i < p->n; i++)
                any |= p->cs[i].rollback;
        if (!any)
                return r;
        p->result = r;
        pod_pend(p, a);
        chain_start(p, rollback_one, rollback_end);
        return FSM_PENDING;
}

/* ---- patch ------------------------------------------------------------------------------------
 */

static void patch_cb(int r, void *ud)
{
        struct pod *p = ud;
        p->inflight--;
        if (r == 0) {
                p->cs[p->patch_index].patched = true;
                ferry_strscpy(p->cs[p->patch_index].id, p->patch_id, sizeof(p->patch_id));
                if (p->patch_sandbox) {
                        ferry_strscpy(p->pod_id, p->patch_id, sizeof(p->pod_id));
                        if (p->net)
                                r = network_patch(p->net, p->patch_ns);
                }
        }
        pod_finish(p, r, POD_E_PATCH_DONE, POD_E_PATCH_FAILED);
}

static int patch_container(struct pod *p, struct pod_args *a, bool sandbox)
{
        ssize_t i = pod_find(p, a->source_id);
        if (!a->patch || !id_valid(a->patch->id))
                return -EINVAL;
        if (i < 0)
                return -ENOENT;
        if (strcmp(a->patch->id, a->source_id) != 0 && pod_find(p, a->patch->id) >= 0)
                return -EEXIST;
        /* §12.19: the sandbox's namespace is checked before anything is renamed. */
        if (sandbox && p->net &&
            (!a->netns || !*a->netns || strnlen(a->netns, NETWORK_ID_MAX) >= NETWORK_ID_MAX))
                return -EINVAL;
        p->patch_index = (size_t)i;
        p->patch_sandbox = sandbox;
        ferry_strscpy(p->patch_id, a->patch->id, sizeof(p->patch_id));
        ferry_strscpy(p->patch_ns, sandbox && a->netns ? a->netns : "", sizeof(p->patch_ns));
        pod_pend(p, a);
        p->inflight++;
        int r = container_patch(p->cs[i].c, a->patch, patch_cb, p);
        if (r < 0) {
                p->inflight--;
                /* The call is refused: the caller hears it from the return value. */
                p->call = (struct ctrl_pending){0};
                return r;
        }
        return FSM_PENDING;
}

int pod_action_patch_sandbox_container(struct pod *p, void *arg)
{
        return patch_container(p, arg, true);
}

int pod_action_patch_workload_container(struct pod *p, void *arg)
{
        return patch_container(p, arg, false);
}

/* ---- resume -----------------------------------------------------------------------------------
 */

static int resume_one(struct pod *p, size_t i, ctrl_done_fn done, void *ud)
{
        return container_resume(p->cs[i].c, done, ud);
}

static void reset_cb(int r, void *ud)
{
        struct pod *p = ud;
        p->inflight--;
        pod_finish(p, r, POD_E_RESUME_DONE, POD_E_RESUME_FAILED);
}

static void resume_end(struct pod *p, int result)
{
        if (result == 0 && p->resume_destination && p->net) {
                p->inflight++;
                result = network_reset(p->net, reset_cb, p);
                if (result == 0)
                        return;
                p->inflight--;
        }
        pod_finish(p, result, POD_E_RESUME_DONE, POD_E_RESUME_FAILED);
}

static int pod_resume_start(struct pod *p, struct pod_args *a, bool destination)
{
        pod_bind_vm(p);
        if (p->net) {
                int r = network_resume(p->net);
                if (r < 0)
                        return r;
        }
        p->resume_destination = destination;
        pod_pend(p, a);
        chain_start(p, resume_one, resume_end);
        return FSM_PENDING;
}

int pod_action_resume_source(struct pod *p, void *arg)
{
        return pod_resume_start(p, arg, false);
}

int pod_action_resume_destination(struct pod *p, void *arg)
{
        return pod_resume_start(p, arg, true);
}

/* ---- teardown ----------------------------------------------------------------------------- */

static void teardown_cb(int r, void *ud)
{
        struct pod *p = ud;
        p->inflight--;
        pod_finish(p, r, POD_E_TEARDOWN_DONE, POD_E_TEARDOWN_FAILED);
}

int pod_action_teardown_active(struct pod *p, void *arg)
{
        if (!p->net)
                return 0;
        pod_pend(p, arg);
        p->inflight++;
        int r = network_teardown(p->net, teardown_cb, p);
        if (r < 0) {
                p->inflight--;
                p->call = (struct ctrl_pending){0};
                return r;
        }
        return FSM_PENDING;
}

int pod_action_discard_frozen(struct pod *p, void *arg)
{
        /* No guest is reachable (or wanted): each container ends its tasks with exit 137 and
         * publishes TaskExit, so containerd's Delete proceeds. */
        for (size_t i = 0; i < p->n; i++)
                container_teardown(p->cs[i].c);
        if (p->net) {
                struct pod_fwd *f = pod_fwd_new(p, NULL, NULL);
                if (f && network_teardown(p->net, pod_fwd_cb, f) < 0)
                        pod_fwd_cb(0, f);
        }
        return 0;
}

int pod_action_answer(struct pod *p, void *arg)
{
        p->answer = p->call;
        p->answer_result = p->result;
        p->call = (struct ctrl_pending){0};
        return 0;
}

/* ---- public ------------------------------------------------------------------------------------
 */

int pod_new(struct vm *vm, const char *name, struct pod **ret)
{
        if (!vm || !name || !ret)
                return -EINVAL;
        struct pod *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->vm = vm;
        ferry_bprintf(p->name, sizeof(p->name), "pod:%s", name);
        fsm_init(&p->fsm, &pod_machine, p, p->name);
        pod_bind_vm(p);
        *ret = p;
        return 0;
}

struct pod *pod_free(struct pod *p)
{
        if (!p)
                return NULL;
        if (p->inflight || fsm_busy(&p->fsm))
                return p;
        free_entries(p->cs, p->n);
        network_free(p->net);
        free(p);
        return NULL;
}

int pod_create(struct pod *p, const struct pod_options *opts)
{
        struct pod_args a = {.opts = opts};
        return pod_call(p, POD_E_CREATE, &a);
}

int pod_import(struct pod *p, const struct pod_options *opts, const ctrl_envelope *env)
{
        struct pod_args a = {.opts = opts, .env = env};
        return pod_call(p, POD_E_IMPORT, &a);
}

int pod_new_container(struct pod *p, const char *id, struct container **ret)
{
        if (!ret)
                return -EINVAL;
        struct pod_args a = {.id = id, .ret_c = ret};
        return pod_call(p, POD_E_NEW_CONTAINER, &a);
}

int pod_delete_container(struct pod *p, const char *id)
{
        struct pod_args a = {.id = id};
        return pod_call(p, POD_E_DELETE_CONTAINER, &a);
}

int pod_setup_network(struct pod *p, ctrl_done_fn done, void *ud)
{
        struct pod_args a = {.done = done, .userdata = ud};
        return pod_call(p, POD_E_SETUP_NETWORK, &a);
}

int pod_teardown_network(struct pod *p, ctrl_done_fn done, void *ud)
{
        struct pod_args a = {.done = done, .userdata = ud};
        return pod_call(p, POD_E_TEARDOWN_NETWORK, &a);
}

int pod_save(struct pod *p, ctrl_envelope **ret, ctrl_done_fn done, void *ud)
{
        if (!ret)
                return -EINVAL;
        struct pod_args a = {.ret_env = ret, .done = done, .userdata = ud};
        return pod_call(p, POD_E_SAVE, &a);
}

int pod_patch_container(struct pod *p, const char *source_id,
                        const struct container_patch_opts *opts, const char *netns,
                        ctrl_done_fn done, void *ud)
{
        struct pod_args a = {
            .source_id = source_id, .patch = opts, .netns = netns, .done = done, .userdata = ud};
        return pod_call(p, POD_E_PATCH_CONTAINER, &a);
}

int pod_resume(struct pod *p, ctrl_done_fn done, void *ud)
{
        struct pod_args a = {.done = done, .userdata = ud};
        return pod_call(p, POD_E_RESUME, &a);
}

int pod_teardown(struct pod *p, ctrl_done_fn done, void *ud)
{
        struct pod_args a = {.done = done, .userdata = ud};
        return pod_call(p, POD_E_TEARDOWN, &a);
}

const char *pod_id(const struct pod *p)
{
        return p->pod_id;
}

const char *pod_state_name(const struct pod *p)
{
        return fsm_state_name(&p->fsm);
}

bool pod_is_migrating(const struct pod *p)
{
        return fsm_is_frozen(&p->fsm);
}

size_t pod_container_count(const struct pod *p)
{
        return p->n;
}

struct container *pod_container(const struct pod *p, const char *id)
{
        ssize_t i = pod_find(p, id);
        return i < 0 ? NULL : p->cs[i].c;
}

struct container *pod_container_at(const struct pod *p, size_t i)
{
        return i < p->n ? p->cs[i].c : NULL;
}

struct network *pod_network(const struct pod *p)
{
        return p->net;
}

bool pod_container_patched(const struct pod *p, const struct container *c)
{
        for (size_t i = 0; i < p->n; i++)
                if (p->cs[i].c == c)
                        return p->cs[i].patched;
        return false;
}
