/* SPDX-License-Identifier: MIT */
/* The network controller's data and the action handlers of spec/network.yaml. The spec owns the
 * lifecycle; the handlers here do the host and guest work and chain the asynchronous calls of
 * one operation (setup, teardown, reset), ending it with the spec's completion event. */
#include "ctrl/network/network.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctrl/common/guid.h"
#include "guest/guest.h"
#include "hcs/hcs.h"
#include "network_fsm.h"
#include "save_network.pb-c.h"
#include "util/util.h"

#define NETWORK_SCHEMA_VERSION 1
#define NIC_PATH               "VirtualMachine/Devices/NetworkAdapters/"

struct nic {
        char id[NETWORK_ID_MAX];
        struct network_endpoint ep;
        /* added by a reset still in progress (a retry removes it on both legs, not guest-only
         * like a source NIC: reference bug 17) */
        bool added_by_reset;
};

/* One call's inputs and outputs, handed to the actions as the dispatch argument. */
struct net_call {
        ctrl_done_fn done; /* taken by an action that goes pending */
        void *userdata;
        const void *in;
        ctrl_envelope *out;
};

struct network {
        struct fsm fsm;
        const struct ctrl_env *env;
        char ns_id[NETWORK_ID_MAX];
        char patched_ns[NETWORK_ID_MAX]; /* destination namespace recorded by patch */
        bool pbr;
        bool ns_supported; /* the guest's namespace capability, read at setup */
        network_lookup_fn lookup;
        void *lookup_userdata;
        struct nic nics[NETWORK_MAX_ENDPOINTS];
        size_t n_nics;

        /* the operation in flight */
        struct ctrl_pending pending;
        int op_err;
        struct network_endpoint eps[NETWORK_MAX_ENDPOINTS];
        size_t n_eps, cursor;
        bool netns_todo;
        char cur_nic[NETWORK_ID_MAX];
        const char *cur_ns; /* guest namespace the current NIC goes into */
        enum network_event add_done_ev, add_failed_ev; /* how adding ends: setup's or reset's */
        size_t rm_index;                               /* teardown/reset: the NIC being removed */
};

static bool id_ok(const char *s)
{
        return s && *s && strlen(s) < NETWORK_ID_MAX;
}

/* ---- host and guest calls ----------------------------------------------------------------- */

/* Sends an Add or Remove of adapter nic (with its endpoint) to the VM. */
static int host_nic(struct network *n, const char *type, const char *nic,
                    const struct network_endpoint *ep, hcs_done_fn done)
{
        char path[sizeof(NIC_PATH) + NETWORK_ID_MAX];
        if (!n->env->sys)
                return -ENXIO;
        if (ferry_bprintf(path, sizeof(path), NIC_PATH "%s", nic) < 0)
                return -EINVAL;
        struct json_object *req = json_object_new_object(), *set = json_object_new_object();
        if (!req || !set) {
                json_object_put(req);
                json_object_put(set);
                return -ENOMEM;
        }
        json_object_object_add(req, "ResourcePath", json_object_new_string(path));
        json_object_object_add(req, "RequestType", json_object_new_string(type));
        json_object_object_add(set, "EndpointId", json_object_new_string(ep->id));
        json_object_object_add(set, "MacAddress", json_object_new_string(ep->mac));
        json_object_object_add(req, "Settings", set);
        int r = hcs_modify(n->env->sys, json_object_to_json_string(req), done, n);
        json_object_put(req);
        return r;
}

static int guest_of(struct network *n, struct guest_conn **ret)
{
        *ret = n->env->guest;
        return *ret ? 0 : -ENOTCONN;
}

/* Already gone counts as done when removing: the guest or VM is unreachable or has no such NIC. */
static bool gone(int r)
{
        return r == -ENOENT || r == -ENOTCONN;
}

static void track(struct network *n, const char *nic, const struct network_endpoint *ep,
                  bool added_by_reset)
{
        assert(n->n_nics < NETWORK_MAX_ENDPOINTS);
        struct nic *t = &n->nics[n->n_nics++];
        ferry_strscpy(t->id, nic, sizeof(t->id));
        t->ep = *ep;
        t->added_by_reset = added_by_reset;
}

static void untrack(struct network *n, size_t i)
{
        n->nics[i] = n->nics[--n->n_nics];
}

/* Looks ns up into n->eps, endpoints whose name ends in "eth0" first (stable). */
static int fetch_endpoints(struct network *n, const char *ns)
{
        struct network_endpoint tmp[NETWORK_MAX_ENDPOINTS];
        int r = n->lookup(ns, tmp, ARRAY_SIZE(tmp), n->lookup_userdata);
        if (r < 0)
                return r;
        if ((size_t)r > ARRAY_SIZE(tmp))
                return -E2BIG;
        n->n_eps = 0;
        for (int pass = 0; pass < 2; pass++) {
                for (int i = 0; i < r; i++) {
                        size_t len = strnlen(tmp[i].name, NETWORK_ID_MAX);
                        bool eth0 = len >= 4 && strcmp(tmp[i].name + len - 4, "eth0") == 0;
                        if (eth0 == (pass == 0))
                                n->eps[n->n_eps++] = tmp[i];
                }
        }
        for (size_t i = 0; i < n->n_eps; i++)
                if (!id_ok(n->eps[i].id))
                        return -EINVAL;
        n->cursor = 0;
        return 0;
}

/* Ends the operation in flight with completion event ev (its action replies). */
static void complete(struct network *n, enum network_event ev, int err)
{
        n->op_err = err;
        network_dispatch(&n->fsm, ev, NULL);
}

/* ---- adding endpoints (setup and reset) -------------------------------------------------- */

/* What a step returns: 1 (FSM_PENDING) a call is in flight, 0 nothing left, <0 failed. */
static int started(int r)
{
        return r < 0 ? r : FSM_PENDING;
}

static int add_step(struct network *n);

static void add_continue(struct network *n)
{
        int r = add_step(n);
        if (r == 0)
                complete(n, n->add_done_ev, 0);
        else if (r < 0)
                complete(n, n->add_failed_ev, r);
}

static void on_guest_nic_added(int r, uint64_t value, void *ud)
{
        struct network *n = ud;
        if (r < 0) {
                n->cursor = n->n_eps; /* stop: the NIC stays tracked for teardown */
                complete(n, n->add_failed_ev, r);
                return;
        }
        n->cursor++;
        add_continue(n);
}

static void on_host_nic_added(int r, void *ud)
{
        struct network *n = ud;
        const struct network_endpoint *ep = &n->eps[n->cursor];
        if (r < 0) { /* not tracked: the VM has no such adapter */
                n->cursor = n->n_eps;
                complete(n, n->add_failed_ev, r);
                return;
        }
        track(n, n->cur_nic, ep, n->add_done_ev == NETWORK_E_RESET_DONE);
        if (!n->ns_supported) {
                n->cursor++;
                add_continue(n);
                return;
        }
        struct guest_conn *g;
        r = guest_of(n, &g);
        if (r >= 0)
                r = guest_nic_add(g, n->cur_ns, n->cur_nic, on_guest_nic_added, n);
        if (r < 0)
                on_guest_nic_added(r, 0, n);
}

static void on_netns_added(int r, uint64_t value, void *ud)
{
        struct network *n = ud;
        if (r < 0 && r != -EEXIST) {
                complete(n, NETWORK_E_SETUP_FAILED, r);
                return;
        }
        add_continue(n);
}

/* Starts the next call of the add sequence: the guest namespace, then per endpoint a host add
 * (whose callback chains the guest add). */
static int add_step(struct network *n)
{
        if (n->netns_todo) {
                struct guest_conn *g;
                n->netns_todo = false;
                int r = guest_of(n, &g);
                return started(r < 0 ? r : guest_netns_add(g, n->ns_id, on_netns_added, n));
        }
        if (n->cursor >= n->n_eps)
                return 0;
        if (n->n_nics == NETWORK_MAX_ENDPOINTS)
                return -ENOSPC;
        int r = ctrl_new_guid(n->cur_nic);
        if (r < 0)
                return r;
        return started(host_nic(n, "Add", n->cur_nic, &n->eps[n->cursor], on_host_nic_added));
}

static void take_call(struct network *n, void *arg)
{
        struct net_call *c = arg;
        n->pending.done = c->done;
        n->pending.userdata = c->userdata;
        c->done = NULL;
}

static int go_pending(struct network *n, void *arg, int r)
{
        if (r == FSM_PENDING)
                take_call(n, arg);
        return r;
}

int network_action_begin_setup(struct network *n, void *arg)
{
        if (!n->ns_id[0])
                return -EINVAL;
        n->ns_supported =
            n->env->guest && guest_protocol(n->env->guest) >= NETWORK_GUEST_NS_PROTOCOL;
        int r = fetch_endpoints(n, n->ns_id);
        if (r < 0)
                return r;
        n->netns_todo = n->ns_supported;
        n->cur_ns = n->ns_id;
        n->add_done_ev = NETWORK_E_SETUP_DONE;
        n->add_failed_ev = NETWORK_E_SETUP_FAILED;
        return go_pending(n, arg, add_step(n));
}

/* ---- removing NICs (teardown and reset) -------------------------------------------------- */

static int teardown_step(struct network *n);

static void teardown_next(struct network *n, int r)
{
        if (r < 0 && !n->op_err)
                n->op_err = r;
        r = teardown_step(n);
        if (r == 0)
                complete(n, n->op_err ? NETWORK_E_TEARDOWN_FAILED : NETWORK_E_TEARDOWN_DONE,
                         n->op_err);
}

static void on_host_nic_removed(int r, void *ud)
{
        struct network *n = ud;
        if (r >= 0 || gone(r))
                untrack(n, n->rm_index);
        teardown_next(n, gone(r) ? 0 : r);
}

static void host_remove(struct network *n)
{
        struct nic *t = &n->nics[n->rm_index];
        int r = host_nic(n, "Remove", t->id, &t->ep, on_host_nic_removed);
        if (r < 0)
                on_host_nic_removed(r == -ENXIO ? -ENOENT : r, n);
}

static void on_guest_nic_removed(int r, uint64_t value, void *ud)
{
        struct network *n = ud;
        if (r < 0 && !gone(r)) { /* the host leg stays: the guest still uses it */
                teardown_next(n, r);
                return;
        }
        host_remove(n);
}

/* Removes the tracked NICs from the last to the first, so untracking (which moves the last one
 * into the freed slot) never skips one; failures are remembered and the walk goes on. */
static int teardown_step(struct network *n)
{
        while (n->cursor > 0) {
                n->rm_index = --n->cursor;
                if (!n->ns_supported) {
                        host_remove(n);
                        return FSM_PENDING;
                }
                struct guest_conn *g;
                struct nic *t = &n->nics[n->rm_index];
                int r = guest_of(n, &g);
                if (r >= 0)
                        r = guest_nic_remove(g, n->ns_id, t->id, on_guest_nic_removed, n);
                if (r >= 0)
                        return FSM_PENDING;
                if (!gone(r)) {
                        if (!n->op_err)
                                n->op_err = r;
                        continue;
                }
                host_remove(n);
                return FSM_PENDING;
        }
        return 0;
}

int network_action_begin_teardown(struct network *n, void *arg)
{
        n->op_err = 0;
        n->cursor = n->n_nics;
        int r = teardown_step(n);
        if (r == FSM_PENDING)
                return go_pending(n, arg, r);
        return n->op_err;
}

int network_action_drop_bindings(struct network *n, void *arg)
{
        n->n_nics = 0;
        n->patched_ns[0] = '\0';
        return 0;
}

/* ---- reset (destination) ----------------------------------------------------------------- */

static int reset_step(struct network *n);

static void reset_continue(struct network *n, int r)
{
        if (r >= 0)
                r = reset_step(n);
        if (r < 0)
                complete(n, NETWORK_E_RESET_FAILED, r);
        else if (r == 0)
                complete(n, NETWORK_E_RESET_DONE, 0);
}

static void on_reset_host_removed(int r, void *ud)
{
        struct network *n = ud;
        if (r >= 0 || gone(r)) {
                untrack(n, n->rm_index);
                r = 0;
        }
        reset_continue(n, r);
}

static void on_reset_guest_removed(int r, uint64_t value, void *ud)
{
        struct network *n = ud;
        struct nic *t = &n->nics[n->rm_index];
        if (r < 0 && !gone(r)) {
                reset_continue(n, r);
                return;
        }
        if (!t->added_by_reset) { /* a source NIC: only its guest leg is ours to remove */
                untrack(n, n->rm_index);
                reset_continue(n, 0);
                return;
        }
        r = host_nic(n, "Remove", t->id, &t->ep, on_reset_host_removed);
        if (r < 0)
                on_reset_host_removed(r, n);
}

/* Removes one NIC left from the source (guest leg only) or from an earlier reset (both legs:
 * the reference removed those guest-side only and leaked their host leg, bug 17). */
static int reset_remove_step(struct network *n)
{
        while (n->n_nics > 0) {
                n->rm_index = n->n_nics - 1;
                struct nic *t = &n->nics[n->rm_index];
                if (n->ns_supported) {
                        struct guest_conn *g;
                        int r = guest_of(n, &g);
                        if (r >= 0)
                                r = guest_nic_remove(g, n->ns_id, t->id, on_reset_guest_removed, n);
                        return started(r);
                }
                if (t->added_by_reset)
                        return started(host_nic(n, "Remove", t->id, &t->ep, on_reset_host_removed));
                untrack(n, n->rm_index);
        }
        return 0;
}

/* Removes what is left of the source's and earlier resets' NICs, then looks the destination
 * namespace up and adds its endpoints into the unchanged guest namespace. */
static int reset_step(struct network *n)
{
        if (n->cur_ns == NULL) { /* removal phase */
                int r = reset_remove_step(n);
                if (r != 0)
                        return r;
                r = fetch_endpoints(n, n->patched_ns);
                if (r < 0)
                        return r;
                n->cur_ns = n->ns_id;
                n->netns_todo = false;
        }
        return add_step(n);
}

int network_action_begin_reset(struct network *n, void *arg)
{
        n->cur_ns = NULL;
        n->op_err = 0;
        n->add_done_ev = NETWORK_E_RESET_DONE;
        n->add_failed_ev = NETWORK_E_RESET_FAILED;
        return go_pending(n, arg, reset_step(n));
}

int network_action_finish_reset(struct network *n, void *arg)
{
        n->patched_ns[0] = '\0';
        for (size_t i = 0; i < n->n_nics; i++)
                n->nics[i].added_by_reset = false;
        ctrl_reply(&n->pending, 0);
        return 0;
}

bool network_guard_has_migrated_namespace(struct network *n, void *arg)
{
        return n->patched_ns[0] != '\0';
}

int network_action_reply_ok(struct network *n, void *arg)
{
        ctrl_reply(&n->pending, 0);
        return 0;
}

int network_action_reply_error(struct network *n, void *arg)
{
        ctrl_reply(&n->pending, n->op_err ? n->op_err : -EIO);
        return 0;
}

/* ---- save, import, patch, resume --------------------------------------------------------- */

int network_action_save_payload(struct network *n, void *arg)
{
        struct net_call *c = arg;
        Ferry__Network__Save__V1__Payload p = FERRY__NETWORK__SAVE__V1__PAYLOAD__INIT;
        Ferry__Network__Save__V1__Payload__VmEndpointsEntry ent[NETWORK_MAX_ENDPOINTS];
        Ferry__Network__Save__V1__Payload__VmEndpointsEntry *entp[NETWORK_MAX_ENDPOINTS];
        Ferry__Network__Save__V1__EndpointBinding bind[NETWORK_MAX_ENDPOINTS];

        for (size_t i = 0; i < n->n_nics; i++) {
                const struct nic *t = &n->nics[i];
                if (!t->ep.id[0])
                        return -EINVAL; /* a NIC with no endpoint: nothing frozen */
                ferry__network__save__v1__payload__vm_endpoints_entry__init(&ent[i]);
                ferry__network__save__v1__endpoint_binding__init(&bind[i]);
                bind[i].endpoint_id = (char *)t->ep.id;
                bind[i].mac_address = (char *)t->ep.mac;
                bind[i].endpoint_name = (char *)t->ep.name;
                ent[i].key = (char *)t->id;
                ent[i].value = &bind[i];
                entp[i] = &ent[i];
        }
        p.schema_version = NETWORK_SCHEMA_VERSION;
        p.namespace_id = n->ns_id;
        p.policy_based_routing = n->pbr;
        p.is_namespace_supported_by_guest = n->ns_supported;
        p.n_vm_endpoints = n->n_nics;
        p.vm_endpoints = entp;
        return ctrl_envelope_pack("network", NETWORK_SCHEMA_VERSION, &p.base, &c->out);
}

static int copy_field(char *dst, size_t size, const char *src, bool required)
{
        if (!src || (required && !*src))
                return -EINVAL;
        return ferry_strscpy(dst, src, size) < 0 ? -EINVAL : 0;
}

/* Decodes p's bindings into nics (ret_n of them); touches nothing else. */
static int import_bindings(const Ferry__Network__Save__V1__Payload *p, struct nic *nics,
                           size_t *ret_n)
{
        if (p->n_vm_endpoints > NETWORK_MAX_ENDPOINTS)
                return -EINVAL;
        for (size_t i = 0; i < p->n_vm_endpoints; i++) {
                const Ferry__Network__Save__V1__Payload__VmEndpointsEntry *e = p->vm_endpoints[i];
                struct nic *t = &nics[i];
                memset(t, 0, sizeof(*t));
                if (!e->value)
                        return -EINVAL; /* a NIC without its binding */
                if (copy_field(t->id, sizeof(t->id), e->key, true) < 0 ||
                    copy_field(t->ep.id, sizeof(t->ep.id), e->value->endpoint_id, true) < 0 ||
                    copy_field(t->ep.mac, sizeof(t->ep.mac), e->value->mac_address, false) < 0 ||
                    copy_field(t->ep.name, sizeof(t->ep.name), e->value->endpoint_name, false) < 0)
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(nics[j].id, t->id) == 0)
                                return -EINVAL;
        }
        *ret_n = p->n_vm_endpoints;
        return 0;
}

int network_action_import_payload(struct network *n, void *arg)
{
        struct net_call *c = arg;
        ProtobufCMessage *m = NULL;
        struct nic nics[NETWORK_MAX_ENDPOINTS];
        char ns[NETWORK_ID_MAX];
        size_t n_nics = 0;

        int r =
            ctrl_envelope_unpack(c->in, "network", NETWORK_SCHEMA_VERSION,
                                 &ferry__network__save__v1__payload__descriptor, &m, NULL, NULL);
        if (r < 0)
                return r;
        const Ferry__Network__Save__V1__Payload *p = (const void *)m;
        if (p->schema_version != ((const ctrl_envelope *)c->in)->schema_version ||
            copy_field(ns, sizeof(ns), p->namespace_id, true) < 0)
                r = -EINVAL;
        if (r >= 0)
                r = import_bindings(p, nics, &n_nics);
        if (r >= 0) { /* commit */
                memcpy(n->ns_id, ns, sizeof(ns));
                n->pbr = p->policy_based_routing;
                n->ns_supported = p->is_namespace_supported_by_guest;
                memcpy(n->nics, nics, n_nics * sizeof(nics[0]));
                n->n_nics = n_nics;
                n->patched_ns[0] = '\0';
        }
        protobuf_c_message_free_unpacked(m, NULL);
        return r;
}

int network_action_record_namespace(struct network *n, void *arg)
{
        const struct net_call *c = arg;
        const char *ns = c->in;
        if (!id_ok(ns))
                return -EINVAL;
        ferry_strscpy(n->patched_ns, ns, sizeof(n->patched_ns));
        return 0;
}

int network_action_bind(struct network *n, void *arg)
{
        /* The live VM and guest are read from the env at every call, so binding is only the
         * state change; the saved namespace capability is kept (the reference does not re-read
         * it either). */
        return 0;
}

/* ---- public calls ------------------------------------------------------------------------ */

/* Dispatches a call event: negative errno when rejected or failed at once; otherwise 0, and the
 * caller's done runs now unless an action took it to reply later. */
static int call(struct network *n, enum network_event ev, struct net_call *c)
{
        int r = network_dispatch(&n->fsm, ev, c); /* an action may take c->done */
        return ctrl_call_end(r, c->done, c->userdata);
}

int network_new(const struct ctrl_env *env, const struct network_options *opts,
                struct network **ret)
{
        if (!env || !opts || !opts->lookup || !ret)
                return -EINVAL;
        if (opts->namespace_id && strlen(opts->namespace_id) >= NETWORK_ID_MAX)
                return -EINVAL;
        struct network *n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->env = env;
        if (opts->namespace_id)
                ferry_strscpy(n->ns_id, opts->namespace_id, sizeof(n->ns_id));
        n->pbr = opts->policy_based_routing;
        n->lookup = opts->lookup;
        n->lookup_userdata = opts->lookup_userdata;
        fsm_init(&n->fsm, &network_machine, n, "network");
        *ret = n;
        return 0;
}

struct network *network_free(struct network *n)
{
        if (!n)
                return NULL;
        assert(!(n->fsm.machine->state_flags[fsm_state(&n->fsm)] & FSM_STATE_INFLIGHT));
        free(n);
        return NULL;
}

int network_setup(struct network *n, ctrl_done_fn done, void *userdata)
{
        struct net_call c = {.done = done, .userdata = userdata};
        return call(n, NETWORK_E_SETUP, &c);
}

int network_teardown(struct network *n, ctrl_done_fn done, void *userdata)
{
        struct net_call c = {.done = done, .userdata = userdata};
        return call(n, NETWORK_E_TEARDOWN, &c);
}

int network_reset(struct network *n, ctrl_done_fn done, void *userdata)
{
        struct net_call c = {.done = done, .userdata = userdata};
        return call(n, NETWORK_E_RESET, &c);
}

int network_save(struct network *n, ctrl_envelope **ret)
{
        struct net_call c = {0};
        int r = call(n, NETWORK_E_SAVE, &c);
        if (r < 0)
                return r;
        if (!c.out)
                return -EBUSY; /* ignored by the spec: nothing was saved */
        *ret = c.out;
        return 0;
}

int network_import(struct network *n, const ctrl_envelope *env_in)
{
        struct net_call c = {.in = env_in};
        return call(n, NETWORK_E_IMPORT, &c);
}

int network_patch(struct network *n, const char *ns_id)
{
        struct net_call c = {.in = ns_id};
        return call(n, NETWORK_E_PATCH, &c);
}

int network_resume(struct network *n)
{
        struct net_call c = {0};
        return call(n, NETWORK_E_RESUME, &c);
}

const char *network_state_name(const struct network *n)
{
        return fsm_state_name(&n->fsm);
}

const struct fsm *network_fsm(const struct network *n)
{
        return &n->fsm;
}

const char *network_namespace_id(const struct network *n)
{
        return n->ns_id;
}

const char *network_patched_namespace_id(const struct network *n)
{
        return n->patched_ns;
}

size_t network_nic_count(const struct network *n)
{
        return n->n_nics;
}

const char *network_nic_id(const struct network *n, size_t i,
                           const struct network_endpoint **ret_ep)
{
        if (i >= n->n_nics)
                return NULL;
        if (ret_ep)
                *ret_ep = &n->nics[i].ep;
        return n->nics[i].id;
}
