/* SPDX-License-Identifier: MIT */
/* The network controller against the real spec/network.yaml tables and handlers on the sim
 * backend: setup and teardown with the host adapters and guest NICs they make, failures at each
 * call landing in the spec's on_error targets, rejections while frozen, save -> import -> patch ->
 * resume -> reset, the reset retry of reference bug 17, and refused envelopes. */
#include "fixture.h"

#include <pthread.h>

#include "ctrl/network/network.h"
#include "fsm/fsm.h"
#include "network_fsm.h"
#include "save_network.pb-c.h"
#include "save_vpci.pb-c.h"

static struct ctrl_fixture fx;
static unsigned lookups;

/* Host namespaces: the source's two endpoints (eth0 listed second, set up first), and the
 * destination namespaces of the reset tests. */
static int lookup(const char *ns, struct network_endpoint *eps, size_t max, void *ud)
{
        static const struct network_endpoint src[] = {
            {"ep-a", "00-15-5d-00-00-0a", "pod-eth1"},
            {"ep-b", "00-15-5d-00-00-0b", "pod-eth0"},
        };
        static const struct network_endpoint dst[] = {{"ep-c", "00-15-5d-00-00-0c", "eth0"}};
        static const struct network_endpoint dst2[] = {
            {"ep-d", "00-15-5d-00-00-0d", "eth0"},
            {"ep-e", "00-15-5d-00-00-0e", "eth1"},
        };
        const struct network_endpoint *t;
        size_t n;
        lookups++;
        if (strcmp(ns, "ns-src") == 0)
                t = src, n = ARRAY_SIZE(src);
        else if (strcmp(ns, "ns-dst") == 0)
                t = dst, n = ARRAY_SIZE(dst);
        else if (strcmp(ns, "ns-dst2") == 0)
                t = dst2, n = ARRAY_SIZE(dst2);
        else
                return -ENOENT;
        assert_true(n <= max);
        memcpy(eps, t, n * sizeof(*t));
        return (int)n;
}

static int setup(void **state)
{
        setup_loop(state);
        lookups = 0;
        fixture_up(&fx, loop, backend, "netvm", 0, NULL);
        return 0;
}

static int teardown(void **state)
{
        fixture_down(&fx);
        return teardown_loop(state);
}

static struct network *new_net(const char *ns)
{
        struct network *n = NULL;
        struct network_options o = {.namespace_id = ns, .lookup = lookup};
        assert_int_equal(network_new(&fx.env, &o, &n), 0);
        assert_string_equal(network_state_name(n), "not_configured");
        return n;
}

/* Runs an async call to its done; returns done's result. */
#define CALL CTRL_SYNC

static size_t host_nics(void)
{
        struct sim_vm *s = vm_of(fx.vm);
        size_t c = 0;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < SIM_MAX_NICS; i++)
                c += s->nics[i].used;
        pthread_mutex_unlock(&s->lock);
        return c;
}

static bool host_has_nic(const char *id)
{
        return fixture_host_has(fx.vm, vm_of(fx.vm)->nics, SIM_MAX_NICS, id);
}

/* The guest's NICs; *ns_ok is false when one is outside namespace ns. */
static size_t guest_nics(const char *ns, bool *ns_ok)
{
        struct sim_vm *s = vm_of(fx.vm);
        pthread_mutex_lock(&s->lock);
        size_t c = s->guest.n_nics;
        *ns_ok = true;
        for (size_t i = 0; i < c; i++)
                *ns_ok &= strcmp(s->guest.nics[i].ns, ns) == 0;
        pthread_mutex_unlock(&s->lock);
        return c;
}

static bool guest_has_nic(const char *id)
{
        struct sim_vm *s = vm_of(fx.vm);
        bool found = false;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->guest.n_nics; i++)
                found |= strcmp(s->guest.nics[i].id, id) == 0;
        pthread_mutex_unlock(&s->lock);
        return found;
}

static unsigned fsm_state_flags(const struct network *n)
{
        const struct fsm *m = network_fsm(n);
        return m->machine->state_flags[fsm_state(m)];
}

static struct network *configured_net(void)
{
        struct network *n = new_net("ns-src");
        assert_int_equal(CALL(network_setup, n), 0);
        assert_string_equal(network_state_name(n), "configured");
        return n;
}

static void test_setup_teardown(void **state)
{
        size_t before = host_nics(); /* the document's own adapter */
        struct network *n = configured_net();
        bool ns_ok;
        const struct network_endpoint *ep;

        assert_int_equal(network_nic_count(n), 2);
        const char *first = network_nic_id(n, 0, &ep);
        assert_string_equal(ep->id, "ep-b"); /* eth0 first */
        assert_true(host_has_nic(first));
        assert_true(guest_has_nic(first));
        assert_int_equal(host_nics(), before + 2);
        assert_int_equal(guest_nics("ns-src", &ns_ok), 2);
        assert_true(ns_ok);

        assert_int_equal(CALL(network_teardown, n), 0);
        assert_string_equal(network_state_name(n), "torn_down");
        assert_int_equal(network_nic_count(n), 0);
        assert_int_equal(host_nics(), before);
        assert_int_equal(guest_nics("ns-src", &ns_ok), 0);
        /* idempotent once torn down, and setup is over */
        assert_int_equal(CALL(network_teardown, n), 0);
        assert_int_equal(network_setup(n, on_done, NULL), -EBUSY);
        assert_string_equal(network_state_name(n), "torn_down");
        network_free(n);
}

static void test_rejections_outside_setup(void **state)
{
        struct network *n = new_net("ns-src");
        ctrl_envelope *e = NULL;
        /* not_configured: teardown is a no-op that stays there; save, patch, resume refused */
        assert_int_equal(CALL(network_teardown, n), 0);
        assert_string_equal(network_state_name(n), "not_configured");
        assert_int_equal(network_save(n, &e), -EBUSY);
        assert_null(e);
        assert_int_equal(network_patch(n, "ns-dst"), -EBUSY);
        assert_int_equal(network_resume(n), -EBUSY);
        assert_string_equal(network_state_name(n), "not_configured");

        assert_int_equal(CALL(network_setup, n), 0);
        /* a second setup is refused and changes nothing; resume is idempotent; reset without a
         * patched namespace is a no-op */
        assert_int_equal(network_setup(n, on_done, NULL), -EBUSY);
        assert_int_equal(network_resume(n), 0);
        assert_int_equal(CALL(network_reset, n), 0);
        assert_string_equal(network_state_name(n), "configured");
        assert_int_equal(network_nic_count(n), 2);

        /* an operation in flight: every call is aborted */
        struct result x = {0};
        assert_int_equal(network_teardown(n, on_done, &x), 0);
        assert_string_equal(network_state_name(n), "tearing_down");
        assert_int_equal(network_setup(n, on_done, NULL), -ESTALE);
        assert_int_equal(network_save(n, &e), -ESTALE);
        assert_int_equal(network_resume(n), -ESTALE);
        assert_int_equal(network_teardown(n, on_done, NULL), -ESTALE);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_string_equal(network_state_name(n), "torn_down");
        network_free(n);
}

static void test_setup_empty_namespace_invalid(void **state)
{
        struct network *n = new_net("");
        struct result x = {0};
        assert_int_equal(network_setup(n, on_done, &x), -EINVAL);
        assert_false(x.done);
        assert_string_equal(network_state_name(n), "invalid");
        assert_int_equal(CALL(network_teardown, n), 0);
        assert_string_equal(network_state_name(n), "torn_down");
        network_free(n);

        n = new_net("ns-unknown");
        assert_int_equal(network_setup(n, on_done, &x), -ENOENT);
        assert_string_equal(network_state_name(n), "invalid");
        network_free(n);
}

static void test_setup_host_add_fails(void **state)
{
        size_t before = host_nics();
        struct network *n = new_net("ns-src");
        fixture_fault("hcs.modify", 2, -EIO); /* the second endpoint's host add */
        assert_int_equal(CALL(network_setup, n), -EIO);
        assert_string_equal(network_state_name(n), "invalid");
        assert_int_equal(network_nic_count(n), 1); /* the failed one is not tracked */
        assert_int_equal(host_nics(), before + 1);
        assert_int_equal(network_setup(n, on_done, NULL), -EBUSY);

        assert_int_equal(CALL(network_teardown, n), 0);
        assert_string_equal(network_state_name(n), "torn_down");
        assert_int_equal(host_nics(), before);
        network_free(n);
}

static void test_setup_guest_add_fails_teardown_unwinds_host(void **state)
{
        size_t before = host_nics();
        bool ns_ok;
        struct network *n = new_net("ns-src");
        fixture_fault("guest.nic_add", 1, -EIO);
        assert_int_equal(CALL(network_setup, n), -EIO);
        assert_string_equal(network_state_name(n), "invalid");
        assert_int_equal(network_nic_count(n), 1); /* host leg done: tracked */
        assert_int_equal(host_nics(), before + 1);
        assert_int_equal(guest_nics("ns-src", &ns_ok), 0);

        assert_int_equal(CALL(network_teardown, n), 0);
        assert_string_equal(network_state_name(n), "torn_down");
        assert_int_equal(host_nics(), before);
        network_free(n);
}

static void test_teardown_partial_failure_retries(void **state)
{
        size_t before = host_nics();
        struct network *n = configured_net();
        fixture_fault("guest.nic_remove", 1, -EIO);
        assert_int_equal(CALL(network_teardown, n), -EIO);
        assert_string_equal(network_state_name(n), "invalid");
        assert_int_equal(network_nic_count(n), 1); /* the other one went */
        assert_int_equal(host_nics(), before + 1);

        fixture_fault("hcs.modify", 1, -EIO); /* host removal fails on the retry */
        assert_int_equal(CALL(network_teardown, n), -EIO);
        assert_string_equal(network_state_name(n), "invalid");
        assert_int_equal(network_nic_count(n), 1);

        assert_int_equal(CALL(network_teardown, n), 0);
        assert_string_equal(network_state_name(n), "torn_down");
        assert_int_equal(host_nics(), before);
        network_free(n);
}

static void test_frozen_source(void **state)
{
        struct network *n = configured_net();
        ctrl_envelope *e = NULL, *again = NULL;
        assert_int_equal(network_save(n, &e), 0);
        assert_non_null(e);
        assert_string_equal(e->type_url, "type.ferry.dev/ferry.network.save.v1.Payload");
        assert_int_equal(e->schema_version, 1);
        assert_string_equal(network_state_name(n), "source_migrating");
        assert_true(fsm_is_frozen(network_fsm(n)));

        /* every mutating call is refused with failed_precondition and changes nothing */
        uint64_t modifies = hcs_fault_calls("hcs.modify");
        assert_int_equal(network_setup(n, on_done, NULL), -EBUSY);
        assert_int_equal(network_reset(n, on_done, NULL), -EBUSY);
        assert_int_equal(network_patch(n, "ns-dst"), -EBUSY);
        assert_int_equal(network_import(n, e), -EBUSY);
        assert_string_equal(network_state_name(n), "source_migrating");
        assert_int_equal(network_nic_count(n), 2);
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);

        /* save again re-serializes the same content */
        assert_int_equal(network_save(n, &again), 0);
        assert_int_equal(again->value.len, e->value.len);
        assert_memory_equal(again->value.data, e->value.data, e->value.len);
        ctrl_envelope_free(again);

        /* rollback: resume rebinds and unfreezes */
        assert_int_equal(network_resume(n), 0);
        assert_string_equal(network_state_name(n), "configured");
        assert_int_equal(network_nic_count(n), 2);

        /* frozen again, the VM dies: teardown drops the bindings without a call */
        assert_int_equal(network_save(n, &again), 0);
        ctrl_envelope_free(again);
        uint64_t removes = hcs_fault_calls("guest.nic_remove");
        assert_int_equal(CALL(network_teardown, n), 0);
        assert_string_equal(network_state_name(n), "torn_down");
        assert_int_equal(network_nic_count(n), 0);
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);
        assert_int_equal(hcs_fault_calls("guest.nic_remove"), removes);
        ctrl_envelope_free(e);
        network_free(n);
}

static void test_round_trip_and_reset(void **state)
{
        struct network *src = configured_net();
        ctrl_envelope *e = NULL;
        char src_nic[NETWORK_ID_MAX];
        bool ns_ok;
        ferry_strscpy(src_nic, network_nic_id(src, 0, NULL), sizeof(src_nic));
        assert_int_equal(network_save(src, &e), 0);

        /* the envelope crosses as bytes */
        ctrl_envelope *wire = fixture_through_bytes(e);

        struct network *dst = new_net(NULL);
        assert_int_equal(network_import(dst, wire), 0);
        assert_string_equal(network_state_name(dst), "destination_migrating");
        assert_string_equal(network_namespace_id(dst), "ns-src");
        assert_int_equal(network_nic_count(dst), 2);
        const struct network_endpoint *ep;
        assert_string_equal(network_nic_id(dst, 0, &ep), src_nic);
        assert_string_equal(ep->id, "ep-b");
        assert_string_equal(ep->mac, "00-15-5d-00-00-0b");
        /* a second import is refused */
        assert_int_equal(network_import(dst, wire), -EBUSY);

        /* frozen on the destination too */
        uint64_t modifies = hcs_fault_calls("hcs.modify");
        assert_int_equal(network_setup(dst, on_done, NULL), -EBUSY);
        assert_int_equal(network_reset(dst, on_done, NULL), -EBUSY);
        assert_int_equal(network_patch(dst, ""), -EINVAL);
        assert_string_equal(network_state_name(dst), "destination_migrating");
        assert_string_equal(network_patched_namespace_id(dst), "");
        assert_int_equal(network_patch(dst, "ns-dst"), 0);
        assert_string_equal(network_patched_namespace_id(dst), "ns-dst");
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);

        assert_int_equal(network_resume(dst), 0);
        assert_string_equal(network_state_name(dst), "configured");
        /* here one sim VM plays both sides: the guest still has the source's NICs, as a
         * migrated guest would */
        assert_int_equal(guest_nics("ns-src", &ns_ok), 2);

        assert_int_equal(CALL(network_reset, dst), 0);
        assert_string_equal(network_state_name(dst), "configured");
        assert_string_equal(network_patched_namespace_id(dst), "");
        assert_int_equal(network_nic_count(dst), 1);
        const char *nic = network_nic_id(dst, 0, &ep);
        assert_string_equal(ep->id, "ep-c");
        assert_true(host_has_nic(nic));
        assert_true(guest_has_nic(nic));
        assert_int_equal(guest_nics("ns-src", &ns_ok), 1);
        assert_true(ns_ok); /* the guest namespace id is unchanged */
        /* reset again: nothing to swap */
        assert_int_equal(CALL(network_reset, dst), 0);
        assert_int_equal(network_nic_count(dst), 1);

        /* source NICs: removed guest-side only; their host leg is the source VM's */
        assert_false(guest_has_nic(src_nic));
        assert_true(host_has_nic(src_nic));

        assert_int_equal(CALL(network_teardown, dst), 0);
        assert_false(host_has_nic(nic));
        network_free(dst);
        /* the frozen source ends with its VM: its bindings are dropped without a call */
        assert_int_equal(CALL(network_teardown, src), 0);
        assert_string_equal(network_state_name(src), "torn_down");
        network_free(src);
        ctrl_envelope_free(wire);
        ctrl_envelope_free(e);
}

/* Reference bug 17: a reset retried after a partial failure removed the NICs it had added
 * guest-side only, leaking their host adapters. */
static void test_reset_retry_removes_added_nics_on_both_legs(void **state)
{
        struct network *src = configured_net();
        ctrl_envelope *e = NULL;
        bool ns_ok;
        assert_int_equal(network_save(src, &e), 0);
        struct network *dst = new_net(NULL);
        assert_int_equal(network_import(dst, e), 0);
        assert_int_equal(network_patch(dst, "ns-dst2"), 0);
        assert_int_equal(network_resume(dst), 0);
        size_t host_before = host_nics(); /* document's + the source's two */

        /* the second destination endpoint fails guest-side */
        fixture_fault("guest.nic_add", 2, -EIO);
        assert_int_equal(CALL(network_reset, dst), -EIO);
        assert_string_equal(network_state_name(dst), "configured");
        assert_string_equal(network_patched_namespace_id(dst), "ns-dst2"); /* kept for retry */
        assert_int_equal(network_nic_count(dst), 2); /* both destination NICs have a host leg */
        char added[2][NETWORK_ID_MAX];
        for (size_t i = 0; i < 2; i++)
                ferry_strscpy(added[i], network_nic_id(dst, i, NULL), NETWORK_ID_MAX);
        assert_int_equal(host_nics(), host_before + 2);

        assert_int_equal(CALL(network_reset, dst), 0);
        assert_int_equal(network_nic_count(dst), 2);
        /* the first attempt's NICs are gone from the host too: only the new two were added */
        assert_int_equal(host_nics(), host_before + 2);
        for (size_t i = 0; i < 2; i++) {
                assert_false(host_has_nic(added[i]));
                assert_false(guest_has_nic(added[i]));
        }
        assert_int_equal(guest_nics("ns-src", &ns_ok), 2);
        assert_true(ns_ok);

        assert_int_equal(CALL(network_teardown, dst), 0);
        network_free(dst);
        assert_int_equal(CALL(network_teardown, src), 0);
        network_free(src);
        ctrl_envelope_free(e);
}

static void reimport_refused(struct network *n, const ctrl_envelope *e, int err)
{
        assert_int_equal(network_import(n, e), err);
        assert_string_equal(network_state_name(n), "not_configured");
        assert_int_equal(network_nic_count(n), 0);
        assert_string_equal(network_namespace_id(n), "ns-keep");
}

static void test_import_rejects(void **state)
{
        struct network *src = configured_net();
        ctrl_envelope *good = NULL, *bad = NULL;
        assert_int_equal(network_save(src, &good), 0);
        struct network *n = new_net("ns-keep");

        reimport_refused(n, NULL, -EINVAL);

        Ferry__Vpci__Save__V1__Payload vp = FERRY__VPCI__SAVE__V1__PAYLOAD__INIT;
        vp.schema_version = 1;
        assert_int_equal(ctrl_envelope_pack("vpci", 1, &vp.base, &bad), 0);
        reimport_refused(n, bad, -EINVAL); /* foreign */
        ctrl_envelope_free(bad);

        assert_int_equal(ctrl_envelope_dup(good, &bad), 0);
        bad->schema_version = 2; /* from the future */
        reimport_refused(n, bad, -EINVAL);
        bad->schema_version = 1;
        for (size_t i = 0; i < bad->value.len; i++)
                bad->value.data[i] = 0xff; /* corrupt */
        reimport_refused(n, bad, -EBADMSG);
        ctrl_envelope_free(bad);

        /* a payload with an empty NIC key, and one whose inner version disagrees */
        Ferry__Network__Save__V1__Payload p = FERRY__NETWORK__SAVE__V1__PAYLOAD__INIT;
        Ferry__Network__Save__V1__EndpointBinding b =
            FERRY__NETWORK__SAVE__V1__ENDPOINT_BINDING__INIT;
        Ferry__Network__Save__V1__Payload__VmEndpointsEntry ent =
            FERRY__NETWORK__SAVE__V1__PAYLOAD__VM_ENDPOINTS_ENTRY__INIT;
        Ferry__Network__Save__V1__Payload__VmEndpointsEntry *entp = &ent;
        b.endpoint_id = "ep-x";
        ent.key = "";
        ent.value = &b;
        p.schema_version = 1;
        p.namespace_id = "ns-src";
        p.n_vm_endpoints = 1;
        p.vm_endpoints = &entp;
        assert_int_equal(ctrl_envelope_pack("network", 1, &p.base, &bad), 0);
        reimport_refused(n, bad, -EINVAL);
        ctrl_envelope_free(bad);
        ent.key = "nic-x";
        ent.value = NULL;
        assert_int_equal(ctrl_envelope_pack("network", 1, &p.base, &bad), 0);
        reimport_refused(n, bad, -EINVAL);
        ctrl_envelope_free(bad);
        ent.value = &b;
        p.schema_version = 7;
        assert_int_equal(ctrl_envelope_pack("network", 1, &p.base, &bad), 0);
        reimport_refused(n, bad, -EINVAL);
        ctrl_envelope_free(bad);

        /* the good one still goes in */
        assert_int_equal(network_import(n, good), 0);
        assert_string_equal(network_namespace_id(n), "ns-src");
        network_free(n);
        assert_int_equal(CALL(network_teardown, src), 0);
        network_free(src);
        ctrl_envelope_free(good);
}

/* An action that fails at once lands in its on_error target: a reset whose destination namespace
 * cannot be looked up stays configured with the namespace kept for a retry. */
static void test_reset_lookup_fails_at_once(void **state)
{
        Ferry__Network__Save__V1__Payload p = FERRY__NETWORK__SAVE__V1__PAYLOAD__INIT;
        ctrl_envelope *e = NULL;
        p.schema_version = 1;
        p.namespace_id = "ns-src";
        p.is_namespace_supported_by_guest = true;
        assert_int_equal(ctrl_envelope_pack("network", 1, &p.base, &e), 0);
        struct network *n = new_net(NULL);
        assert_int_equal(network_import(n, e), 0);
        assert_int_equal(network_patch(n, "ns-gone"), 0);
        assert_int_equal(network_resume(n), 0);
        struct result x = {0};
        assert_int_equal(network_reset(n, on_done, &x), -ENOENT);
        assert_false(x.done);
        assert_string_equal(network_state_name(n), "configured");
        assert_string_equal(network_patched_namespace_id(n), "ns-gone");
        /* patch is taken only while imported; a reset retry fails the same way */
        assert_int_equal(network_patch(n, "ns-dst"), -EBUSY);
        assert_int_equal(network_reset(n, on_done, &x), -ENOENT);
        assert_string_equal(network_state_name(n), "configured");
        network_free(n);

        /* an imported network never resumed is torn down by dropping its bindings */
        n = new_net(NULL);
        assert_int_equal(network_import(n, e), 0);
        uint64_t modifies = hcs_fault_calls("hcs.modify");
        assert_int_equal(CALL(network_teardown, n), 0);
        assert_string_equal(network_state_name(n), "torn_down");
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);
        network_free(n);
        ctrl_envelope_free(e);
}

/* A guest without network namespaces (or none connected): the NICs are hot-added on the host
 * only, and the capability read at setup travels in the save. */
static void test_setup_without_guest_namespaces(void **state)
{
        size_t before = host_nics();
        bool ns_ok;
        fx.env.guest = NULL;
        struct network *n = configured_net();
        assert_int_equal(network_nic_count(n), 2);
        assert_int_equal(host_nics(), before + 2);
        assert_int_equal(guest_nics("ns-src", &ns_ok), 0);

        ctrl_envelope *e = NULL;
        assert_int_equal(network_save(n, &e), 0);
        Ferry__Network__Save__V1__Payload *p = NULL;
        assert_int_equal(ctrl_envelope_unpack(e, "network", 1,
                                              &ferry__network__save__v1__payload__descriptor,
                                              (ProtobufCMessage **)&p, NULL, NULL),
                         0);
        assert_false(p->is_namespace_supported_by_guest);
        assert_int_equal(p->n_vm_endpoints, 2);
        protobuf_c_message_free_unpacked(&p->base, NULL);
        ctrl_envelope_free(e);
        assert_int_equal(network_resume(n), 0);

        uint64_t removes = hcs_fault_calls("guest.nic_remove");
        assert_int_equal(CALL(network_teardown, n), 0);
        assert_int_equal(host_nics(), before);
        assert_int_equal(hcs_fault_calls("guest.nic_remove"), removes);
        network_free(n);
        fx.env.guest = fx.conn;
}

/* ---- every call in every state obeys the spec's table ------------------------------------ */

static ctrl_envelope *table_env; /* a good envelope for import */

/* Makes the public call for event ev; returns its result. */
static int public_call(struct network *n, unsigned ev, struct result *x)
{
        ctrl_envelope *e = NULL;
        int r;
        switch (ev) { /* the event -> API map of this test, not a lifecycle decision */
        case NETWORK_E_SETUP:
                return network_setup(n, on_done, x);
        case NETWORK_E_TEARDOWN:
                return network_teardown(n, on_done, x);
        case NETWORK_E_SAVE:
                r = network_save(n, &e);
                ctrl_envelope_free(e);
                return r;
        case NETWORK_E_IMPORT:
                return network_import(n, table_env);
        case NETWORK_E_PATCH:
                return network_patch(n, "ns-dst");
        case NETWORK_E_RESUME:
                return network_resume(n);
        default:
                return network_reset(n, on_done, x);
        }
}

/* A network in state name, reached through the public calls (in-flight states left in flight). */
static struct network *reach(const char *state)
{
        struct network *n = new_net(strcmp(state, "invalid") == 0 ? "" : "ns-src");
        struct result x = {0};
        if (strcmp(state, "configuring") == 0) {
                assert_int_equal(network_setup(n, on_done, &x), 0);
        } else if (strcmp(state, "invalid") == 0) {
                assert_int_equal(network_setup(n, on_done, &x), -EINVAL);
        } else if (strcmp(state, "configured") == 0 || strcmp(state, "torn_down") == 0 ||
                   strcmp(state, "tearing_down") == 0 || strcmp(state, "source_migrating") == 0) {
                assert_int_equal(CALL(network_setup, n), 0);
                if (strcmp(state, "torn_down") == 0)
                        assert_int_equal(CALL(network_teardown, n), 0);
                if (strcmp(state, "tearing_down") == 0)
                        assert_int_equal(network_teardown(n, on_done, &x), 0);
                if (strcmp(state, "source_migrating") == 0)
                        assert_int_equal(public_call(n, NETWORK_E_SAVE, &x), 0);
        } else if (strcmp(state, "destination_migrating") == 0 || strcmp(state, "resetting") == 0) {
                assert_int_equal(network_import(n, table_env), 0);
                if (strcmp(state, "resetting") == 0) {
                        assert_int_equal(network_patch(n, "ns-dst"), 0);
                        assert_int_equal(network_resume(n), 0);
                        assert_int_equal(network_reset(n, on_done, &x), 0);
                }
        }
        assert_string_equal(network_state_name(n), state);
        return n;
}

/* Lets an operation in flight end, then frees n (and what it left on the VM). */
static void settle_free(struct network *n)
{
        while (fsm_state_flags(n) & FSM_STATE_INFLIGHT)
                run_for_ms(1);
        if (strcmp(network_state_name(n), "configured") == 0 ||
            strcmp(network_state_name(n), "invalid") == 0)
                assert_int_equal(CALL(network_teardown, n), 0);
        network_free(n);
}

static void test_calls_follow_the_table(void **state)
{
        struct network *src = configured_net();
        assert_int_equal(network_save(src, &table_env), 0);
        unsigned checked = 0;
        for (unsigned st = 0; st < network_machine.n_states; st++) {
                const char *name = network_machine.state_names[st];
                for (unsigned ev = 0; ev < network_machine.n_events; ev++) {
                        if (network_machine.event_kinds[ev] != FSM_EVENT_CALL)
                                continue;
                        const struct fsm_arm *arm = fsm_cell_arm(&network_machine, st, ev, NULL);
                        if (arm->kind == FSM_TRANSITION || arm->guard)
                                continue;
                        struct network *n = reach(name);
                        size_t nics = network_nic_count(n);
                        struct result x = {0};
                        int r = public_call(n, ev, &x);
                        if (arm->kind == FSM_REJECT) {
                                if (r != arm->err)
                                        fail_msg("%s x %s: %d, spec says %d", name,
                                                 network_machine.event_names[ev], r, arm->err);
                                assert_false(x.done);
                        } else { /* ignore: taken, nothing happens */
                                assert_int_equal(r, 0);
                        }
                        assert_string_equal(network_state_name(n), name);
                        assert_int_equal(network_nic_count(n), nics);
                        checked++;
                        settle_free(n);
                }
        }
        assert_true(checked >= 30);
        ctrl_envelope_free(table_env);
        table_env = NULL;
        assert_int_equal(CALL(network_teardown, src), 0);
        network_free(src);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            CTRL_TEST(test_setup_teardown),
            CTRL_TEST(test_rejections_outside_setup),
            CTRL_TEST(test_setup_empty_namespace_invalid),
            CTRL_TEST(test_setup_host_add_fails),
            CTRL_TEST(test_setup_guest_add_fails_teardown_unwinds_host),
            CTRL_TEST(test_teardown_partial_failure_retries),
            CTRL_TEST(test_frozen_source),
            CTRL_TEST(test_round_trip_and_reset),
            CTRL_TEST(test_reset_retry_removes_added_nics_on_both_legs),
            CTRL_TEST(test_import_rejects),
            CTRL_TEST(test_reset_lookup_fails_at_once),
            CTRL_TEST(test_setup_without_guest_namespaces),
            CTRL_TEST(test_calls_follow_the_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
