/* SPDX-License-Identifier: MIT */
/*
 * The model-based cases generated from spec/network.yaml (docs/testing.md), run against the
 * REAL network handlers (network.c is included) and the real generated tables, then against
 * mutants of the tables (one arm's target, error, kind, failure or in-flight state changed at a
 * time): every mutant must make some case fail.
 *
 * Steering, from outside the handlers (arrange), per step:
 *   - the namespace lookup (the test's) answers no endpoint (setup or reset done at once), one
 *     endpoint (a host NIC add goes in flight) or an error (the action fails);
 *   - the tracked NICs: none (teardown done at once), one (its removal goes in flight; save
 *     serializes it) or one without an endpoint (save fails); a teardown fails for real when the
 *     guest refuses the NIC removal with an error that is not "already gone";
 *   - import gets a good envelope or none; patch a namespace id or an empty one;
 *   - has_migrated_namespace reads the recorded destination namespace, which arrange sets;
 *   - a completion carries the completion's error as complete() would.
 * Doubles: the host modify and guest NIC calls the actions make are checked and held: the
 * runner dispatches the completion itself, so a sim completion arriving after the step would
 * only race it (the sim path is test_network.c's).
 *
 *   test_network_mbt [--trace FILE]
 */
#include "fixture.h"
#include "mbt.h"

static int dbl_hcs_modify(struct hcs_system *sys, const char *req, hcs_done_fn done, void *ud);
static int dbl_guest_nic_remove(struct guest_conn *c, const char *ns, const char *nic,
                                guest_done_fn done, void *ud);
#define hcs_modify                           dbl_hcs_modify
#define guest_nic_remove                     dbl_guest_nic_remove
#define network_action_begin_setup           real_begin_setup
#define network_action_reply_ok              real_reply_ok
#define network_action_reply_error           real_reply_error
#define network_action_begin_teardown        real_begin_teardown
#define network_action_drop_bindings         real_drop_bindings
#define network_action_save_payload          real_save_payload
#define network_action_import_payload        real_import_payload
#define network_action_record_namespace      real_record_namespace
#define network_action_bind                  real_bind
#define network_action_begin_reset           real_begin_reset
#define network_action_finish_reset          real_finish_reset
#define network_guard_has_migrated_namespace real_has_migrated_namespace
#include "network.c"
#undef hcs_modify
#undef guest_nic_remove
#undef network_action_begin_setup
#undef network_action_reply_ok
#undef network_action_reply_error
#undef network_action_begin_teardown
#undef network_action_drop_bindings
#undef network_action_save_payload
#undef network_action_import_payload
#undef network_action_record_namespace
#undef network_action_bind
#undef network_action_begin_reset
#undef network_action_finish_reset
#undef network_guard_has_migrated_namespace

extern const struct mbt_suite network_mbt;

static struct ctrl_fixture fx;
static struct ctrl_env env; /* the network's env: arrange takes the guest away for setup */
static ctrl_envelope *good_env;
static struct net_call call_arg;
static int lookup_result; /* <0: the lookup fails; else how many endpoints it finds */
static unsigned held;     /* host and guest calls taken and held */

static bool step_action(const char *action, enum mbt_act act)
{
        const struct mbt_step *st = mbt_current_step();
        return st && st->action && st->act == act && strcmp(st->action, action) == 0;
}

static int dbl_hcs_modify(struct hcs_system *sys, const char *req, hcs_done_fn done, void *ud)
{
        if (!sys || !done || !strstr(req, "NetworkAdapters") || !strstr(req, "RequestType"))
                return -EPROTO; /* the action fails: the case fails */
        held++;
        return 0;
}

static int dbl_guest_nic_remove(struct guest_conn *c, const char *ns, const char *nic,
                                guest_done_fn done, void *ud)
{
        if (!c || !done || !nic || !*nic)
                return -EPROTO;
        if (step_action("begin_teardown", MBT_ACT_FAIL))
                return -EIO; /* not "already gone": the NIC stays, teardown fails */
        held++;
        return 0;
}

static int lookup(const char *ns, struct network_endpoint *ret_eps, size_t max, void *userdata)
{
        if (lookup_result < 0)
                return lookup_result;
        for (int i = 0; i < lookup_result && (size_t)i < max; i++)
                ret_eps[i] = (struct network_endpoint){
                    .id = "ep-mbt", .mac = "00-15-5d-00-00-01", .name = "mbt-eth0"};
        return lookup_result;
}

#define ACTION(name)                                                                               \
        int network_action_##name(struct network *n, void *arg);                                   \
        int network_action_##name(struct network *n, void *arg)                                    \
        {                                                                                          \
                mbt_note_action(#name);                                                            \
                return real_##name(n, arg);                                                        \
        }

ACTION(begin_setup)
ACTION(reply_ok)
ACTION(reply_error)
ACTION(begin_teardown)
ACTION(drop_bindings)
ACTION(save_payload)
ACTION(import_payload)
ACTION(record_namespace)
ACTION(bind)
ACTION(begin_reset)
ACTION(finish_reset)

static unsigned guard_id(const char *name)
{
        for (unsigned i = 0; i < network_machine.n_guards; i++)
                if (strcmp(network_machine.guard_names[i], name) == 0)
                        return i;
        return UINT16_MAX;
}

bool network_guard_has_migrated_namespace(struct network *n, void *arg);
bool network_guard_has_migrated_namespace(struct network *n, void *arg)
{
        bool v = real_has_migrated_namespace(n, arg);
        mbt_note_guard(guard_id("has_migrated_namespace"), v);
        return v;
}

static bool wants_guard(const struct mbt_step *st, const char *name, bool *ret_value)
{
        for (unsigned i = 0; i < st->n_guards; i++)
                if (st->guards[i].guard == guard_id(name)) {
                        *ret_value = st->guards[i].value;
                        return true;
                }
        return false;
}

/* The one tracked NIC of a teardown or save that has something to do. */
static void track_one(struct network *n, bool with_endpoint)
{
        n->n_nics = 1;
        n->nics[0] = (struct nic){.id = "nic-mbt"};
        if (with_endpoint)
                n->nics[0].ep = (struct network_endpoint){.id = "ep-mbt", .name = "mbt-eth0"};
}

static void arrange_nics(struct network *n, const struct mbt_step *st)
{
        if (step_action("begin_teardown", MBT_ACT_OK) || step_action("begin_reset", MBT_ACT_OK) ||
            step_action("begin_reset", MBT_ACT_PENDING) || step_action("begin_reset", MBT_ACT_FAIL))
                n->n_nics = 0;
        if (step_action("begin_teardown", MBT_ACT_PENDING) ||
            step_action("begin_teardown", MBT_ACT_FAIL)) {
                track_one(n, true);
                /* the guest leg first (and refused) only when namespaces are supported */
                n->ns_supported = step_action("begin_teardown", MBT_ACT_FAIL);
        }
        if (step_action("save_payload", MBT_ACT_OK) || step_action("save_payload", MBT_ACT_FAIL))
                track_one(n, st->act == MBT_ACT_OK);
}

static int arrange(void *userdata, struct fsm *m, const struct mbt_step *st)
{
        struct network *n = m->ctx;
        bool v;

        ctrl_envelope_free(call_arg.out); /* a case may save twice */
        call_arg = (struct net_call){.in = good_env};
        env = fx.env;
        if (st->event == NETWORK_E_SETUP)
                env.guest = NULL; /* no guest namespace: the NIC adds are the whole setup */

        lookup_result = st->act == MBT_ACT_FAIL ? -EIO : st->act == MBT_ACT_PENDING ? 1 : 0;
        arrange_nics(n, st);
        if (step_action("import_payload", MBT_ACT_FAIL))
                call_arg.in = NULL;
        if (st->event == NETWORK_E_PATCH)
                call_arg.in = step_action("record_namespace", MBT_ACT_FAIL) ? "" : "ns-dst";
        if (wants_guard(st, "has_migrated_namespace", &v))
                ferry_strscpy(n->patched_ns, v ? "ns-dst" : "", sizeof(n->patched_ns));
        n->op_err = st->event == NETWORK_E_SETUP_FAILED || st->event == NETWORK_E_TEARDOWN_FAILED ||
                            st->event == NETWORK_E_RESET_FAILED
                        ? -EIO
                        : 0;
        return 0;
}

static void *event_arg(void *userdata, const struct mbt_step *st)
{
        /* completions come from complete(), which passes no argument */
        bool completion =
            st->event == NETWORK_E_SETUP_DONE || st->event == NETWORK_E_SETUP_FAILED ||
            st->event == NETWORK_E_TEARDOWN_DONE || st->event == NETWORK_E_TEARDOWN_FAILED ||
            st->event == NETWORK_E_RESET_DONE || st->event == NETWORK_E_RESET_FAILED;
        return completion ? NULL : &call_arg;
}

static int make(void *userdata, struct fsm **ret_fsm)
{
        struct network_options o = {.namespace_id = "ns-pod", .lookup = lookup};
        struct network *n = NULL;
        int r = network_new(&env, &o, &n);
        if (r == 0)
                *ret_fsm = &n->fsm;
        return r;
}

/* The network may be in flight (its completion held): free it here, not with network_free. */
static void destroy(void *userdata, struct fsm *m)
{
        free(m->ctx);
        ctrl_envelope_free(call_arg.out);
        call_arg.out = NULL;
}

static const struct mbt_ops ops = {
    .make = make, .destroy = destroy, .arrange = arrange, .event_arg = event_arg};

int main(int argc, char **argv)
{
        setup_loop(NULL);
        fixture_up(&fx, loop, backend, "mbtvm", 0, NULL);
        env = fx.env;

        Ferry__Network__Save__V1__Payload p = FERRY__NETWORK__SAVE__V1__PAYLOAD__INIT;
        Ferry__Network__Save__V1__EndpointBinding b =
            FERRY__NETWORK__SAVE__V1__ENDPOINT_BINDING__INIT;
        Ferry__Network__Save__V1__Payload__VmEndpointsEntry e =
            FERRY__NETWORK__SAVE__V1__PAYLOAD__VM_ENDPOINTS_ENTRY__INIT;
        Ferry__Network__Save__V1__Payload__VmEndpointsEntry *ep = &e;
        b.endpoint_id = "ep-src";
        b.mac_address = "00-15-5d-00-00-02";
        b.endpoint_name = "src-eth0";
        e.key = "nic-src";
        e.value = &b;
        p.schema_version = NETWORK_SCHEMA_VERSION;
        p.namespace_id = "ns-src";
        p.n_vm_endpoints = 1;
        p.vm_endpoints = &ep;
        assert_int_equal(ctrl_envelope_pack("network", NETWORK_SCHEMA_VERSION, &p.base, &good_env),
                         0);

        int status = mbt_main(&network_mbt, &ops, argc, argv);
        if (status == 0 && held == 0) {
                fprintf(stderr, "no host or guest call was ever made\n");
                status = 1;
        }

        ctrl_envelope_free(good_env);
        fixture_down(&fx);
        teardown_loop(NULL);
        return status;
}
