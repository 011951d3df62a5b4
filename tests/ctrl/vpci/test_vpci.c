/* SPDX-License-Identifier: MIT */
/* The vPCI controller against the real spec/vpci.yaml tables and handlers on the sim backend:
 * reserve / assign / remove with reference counts and the host and guest calls they make,
 * failures landing in the spec's on_error targets, calls refused while an operation is in
 * flight, and the save / import / patch / resume of a controller that may only migrate empty. */
#include "fixture.h"

#include <pthread.h>

#include "ctrl/vpci/vpci.h"
#include "fsm/fsm.h"
#include "vpci_fsm.h"
#include "save_plan9.pb-c.h"
#include "save_vpci.pb-c.h"

static struct ctrl_fixture fx;
static struct vpci *v;

static int setup(void **state)
{
        setup_loop(state);
        fixture_up(&fx, loop, backend, "pcivm", 0, NULL);
        assert_int_equal(vpci_new(&fx.env, &v), 0);
        return 0;
}

static int teardown(void **state)
{
        v = vpci_free(v);
        fixture_down(&fx);
        return teardown_loop(state);
}

#define CALL(fn, guid) CTRL_SYNC(fn, v, guid)

static bool host_has(const char *guid)
{
        return fixture_host_has(fx.vm, vm_of(fx.vm)->vpci, SIM_MAX_VPCI, guid);
}

static bool guest_ready(const char *guid)
{
        struct sim_vm *s = vm_of(fx.vm);
        bool found = false;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->guest.n_vpci_ready; i++)
                found |= strcmp(s->guest.vpci_ready[i], guid) == 0;
        pthread_mutex_unlock(&s->lock);
        return found;
}

static void test_reserve_assign_remove_refcounts(void **state)
{
        char g[VPCI_GUID_LEN], same[VPCI_GUID_LEN], vf[VPCI_GUID_LEN], again[VPCI_GUID_LEN];
        assert_int_equal(vpci_reserve(v, "PCIP\\VEN_1414", 0, g), 0);
        assert_int_equal(strlen(g), 36);
        assert_string_equal(vpci_state_name(v, g), "reserved");
        assert_int_equal(vpci_reserve(v, "PCIP\\VEN_1414", 0, same), 0);
        assert_string_equal(same, g);
        assert_int_equal(vpci_reserve(v, "PCIP\\VEN_1414", 1, vf), 0);
        assert_string_not_equal(vf, g);
        assert_int_equal(vpci_device_count(v), 2);

        assert_int_equal(CALL(vpci_assign, g), 0);
        assert_string_equal(vpci_state_name(v, g), "ready");
        assert_int_equal(vpci_refcount(v, g), 1);
        assert_true(host_has(g));
        assert_true(guest_ready(g));

        uint64_t modifies = hcs_fault_calls("hcs.modify");
        uint64_t readies = hcs_fault_calls("guest.vpci_ready");
        assert_int_equal(CALL(vpci_assign, g), 0);
        assert_int_equal(vpci_refcount(v, g), 2);
        assert_int_equal(CALL(vpci_remove, g), 0);
        assert_int_equal(vpci_refcount(v, g), 1);
        assert_string_equal(vpci_state_name(v, g), "ready");
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);
        assert_int_equal(hcs_fault_calls("guest.vpci_ready"), readies);

        assert_int_equal(CALL(vpci_remove, g), 0); /* the last reference */
        assert_null(vpci_state_name(v, g));
        assert_false(host_has(g));
        assert_int_equal(vpci_device_count(v), 1);
        assert_int_equal(vpci_remove(v, g, on_done, NULL), -ENOENT);
        assert_int_equal(vpci_assign(v, g, on_done, NULL), -ENOENT);

        /* a device forgotten gets a fresh GUID */
        assert_int_equal(vpci_reserve(v, "PCIP\\VEN_1414", 0, again), 0);
        assert_string_not_equal(again, g);

        /* reserved but never assigned: untracked without a host call */
        modifies = hcs_fault_calls("hcs.modify");
        assert_int_equal(CALL(vpci_remove, vf), 0);
        assert_int_equal(CALL(vpci_remove, again), 0);
        assert_int_equal(vpci_device_count(v), 0);
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);
        assert_int_equal(vpci_reserve(v, "", 0, g), -EINVAL);
}

static void test_host_add_fails(void **state)
{
        char g[VPCI_GUID_LEN];
        assert_int_equal(vpci_reserve(v, "dev0", 0, g), 0);
        fixture_fault("hcs.modify", 1, -EIO);
        assert_int_equal(CALL(vpci_assign, g), -EIO);
        assert_string_equal(vpci_state_name(v, g), "removed");
        assert_false(host_has(g));
        uint64_t modifies = hcs_fault_calls("hcs.modify");
        assert_int_equal(vpci_assign(v, g, on_done, NULL), -EBUSY);
        assert_string_equal(vpci_state_name(v, g), "removed");
        assert_int_equal(CALL(vpci_remove, g), 0); /* no host call: nothing was assigned */
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);
        assert_int_equal(vpci_device_count(v), 0);
}

static void test_guest_fails_then_remove(void **state)
{
        char g[VPCI_GUID_LEN], same[VPCI_GUID_LEN];
        assert_int_equal(vpci_reserve(v, "dev0", 0, g), 0);
        fixture_fault("guest.vpci_ready", 1, -EIO);
        assert_int_equal(CALL(vpci_assign, g), -EIO);
        assert_string_equal(vpci_state_name(v, g), "assigned_invalid");
        assert_true(host_has(g));
        assert_int_equal(vpci_assign(v, g, on_done, NULL), -EBUSY);
        assert_int_equal(vpci_reserve(v, "dev0", 0, same), 0);
        assert_string_equal(same, g);
        assert_int_equal(CALL(vpci_remove, g), 0);
        assert_false(host_has(g));
        assert_int_equal(vpci_device_count(v), 0);
}

static void test_host_remove_fails_then_retry(void **state)
{
        char g[VPCI_GUID_LEN];
        assert_int_equal(vpci_reserve(v, "dev0", 0, g), 0);
        assert_int_equal(CALL(vpci_assign, g), 0);
        fixture_fault("hcs.modify", 1, -EIO);
        assert_int_equal(CALL(vpci_remove, g), -EIO);
        assert_string_equal(vpci_state_name(v, g), "assigned_invalid");
        assert_int_equal(vpci_refcount(v, g), 0);
        assert_true(host_has(g));
        assert_int_equal(CALL(vpci_remove, g), 0);
        assert_false(host_has(g));
        assert_int_equal(vpci_device_count(v), 0);
}

static void test_in_flight_aborts(void **state)
{
        char g[VPCI_GUID_LEN], same[VPCI_GUID_LEN];
        ctrl_envelope *e = NULL;
        struct result x = {0};
        assert_int_equal(vpci_reserve(v, "dev0", 0, g), 0);
        assert_int_equal(vpci_assign(v, g, on_done, &x), 0);
        assert_string_equal(vpci_state_name(v, g), "adding");
        assert_int_equal(vpci_assign(v, g, on_done, NULL), -ESTALE);
        assert_int_equal(vpci_remove(v, g, on_done, NULL), -ESTALE);
        assert_int_equal(vpci_reserve(v, "dev0", 0, same), -ESTALE);
        /* save: the spec refuses it for any tracked device, in flight or not */
        assert_int_equal(vpci_save(v, &e), -EBUSY);
        assert_null(e);
        assert_string_equal(vpci_state_name(v, g), "adding");
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_string_equal(vpci_state_name(v, g), "ready");
        assert_int_equal(vpci_refcount(v, g), 1);
        assert_int_equal(CALL(vpci_remove, g), 0);
}

static void test_save_refused_while_tracked(void **state)
{
        char g[VPCI_GUID_LEN];
        ctrl_envelope *e = NULL;
        assert_int_equal(vpci_reserve(v, "dev0", 0, g), 0);
        assert_int_equal(vpci_save(v, &e), -EBUSY);
        assert_null(e);
        assert_string_equal(vpci_state_name(v, g), "reserved");
        assert_int_equal(CALL(vpci_assign, g), 0);
        assert_int_equal(vpci_save(v, &e), -EBUSY);
        assert_null(e);
        assert_string_equal(vpci_state_name(v, g), "ready");
        assert_int_equal(vpci_refcount(v, g), 1);
        assert_int_equal(vpci_resume(v), -EBUSY);
        assert_int_equal(CALL(vpci_remove, g), 0);
        assert_int_equal(vpci_save(v, &e), 0);
        ctrl_envelope_free(e);
}

static void test_save_import_patch_resume(void **state)
{
        ctrl_envelope *e = NULL, *bad = NULL;
        struct vpci *dst = NULL;
        char g[VPCI_GUID_LEN];
        assert_int_equal(vpci_save(v, &e), 0);
        assert_string_equal(e->type_url, "type.ferry.dev/ferry.vpci.save.v1.Payload");
        assert_int_equal(e->schema_version, 1);

        assert_int_equal(vpci_new(&fx.env, &dst), 0);
        /* refused: nothing, foreign, future, corrupt, inner version mismatch */
        assert_int_equal(vpci_import(dst, NULL), -EINVAL);
        Ferry__Plan9__Save__V1__Payload pp = FERRY__PLAN9__SAVE__V1__PAYLOAD__INIT;
        pp.schema_version = 1;
        assert_int_equal(ctrl_envelope_pack("plan9", 1, &pp.base, &bad), 0);
        assert_int_equal(vpci_import(dst, bad), -EINVAL);
        ctrl_envelope_free(bad);
        assert_int_equal(ctrl_envelope_dup(e, &bad), 0);
        bad->schema_version = 2;
        assert_int_equal(vpci_import(dst, bad), -EINVAL);
        ctrl_envelope_free(bad);
        static uint8_t junk[] = {0xff, 0xff, 0xff};
        ctrl_envelope corrupt = *e;
        corrupt.value.data = junk;
        corrupt.value.len = sizeof(junk);
        assert_int_equal(vpci_import(dst, &corrupt), -EBADMSG);
        Ferry__Vpci__Save__V1__Payload vp = FERRY__VPCI__SAVE__V1__PAYLOAD__INIT;
        vp.schema_version = 9;
        assert_int_equal(ctrl_envelope_pack("vpci", 1, &vp.base, &bad), 0);
        assert_int_equal(vpci_import(dst, bad), -EINVAL);
        ctrl_envelope_free(bad);
        assert_int_equal(vpci_device_count(dst), 0);

        /* import into a controller that tracks a device: refused, the device untouched */
        assert_int_equal(vpci_reserve(dst, "dev0", 0, g), 0);
        assert_int_equal(vpci_import(dst, e), -EBUSY);
        assert_string_equal(vpci_state_name(dst, g), "reserved");
        struct result x = {0};
        assert_int_equal(vpci_remove(dst, g, on_done, &x), 0);
        assert_true(x.done);

        assert_int_equal(vpci_import(dst, e), 0);
        assert_int_equal(vpci_patch(dst, "dev0", "dev1"), -ENOENT);
        assert_int_equal(vpci_patch(dst, "", "dev1"), -EINVAL);
        assert_int_equal(vpci_resume(dst), 0);
        /* the resumed controller works */
        assert_int_equal(vpci_reserve(dst, "dev0", 0, g), 0);
        assert_int_equal(vpci_assign(dst, g, on_done, &x), 0);
        x.done = false;
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_string_equal(vpci_state_name(dst, g), "ready");
        vpci_free(dst);
        ctrl_envelope_free(e);
}

/* Actions that fail at once (no VM, no guest) land in their on_error targets. */
static void test_actions_fail_at_once(void **state)
{
        char g[VPCI_GUID_LEN];
        struct result x = {0};
        assert_int_equal(vpci_reserve(v, "dev0", 0, g), 0);
        fx.env.sys = NULL; /* host add refused at once */
        assert_int_equal(vpci_assign(v, g, on_done, &x), -ENXIO);
        assert_false(x.done);
        assert_string_equal(vpci_state_name(v, g), "reserved");
        fx.env.sys = fx.vm;

        fx.env.guest = NULL; /* the guest step fails at once, after the host add */
        assert_int_equal(CALL(vpci_assign, g), -ENOTCONN);
        assert_string_equal(vpci_state_name(v, g), "assigned_invalid");
        fx.env.guest = fx.conn;
        assert_true(host_has(g));

        fx.env.sys = NULL; /* host removal refused at once: stays assigned_invalid */
        assert_int_equal(vpci_remove(v, g, on_done, &x), -ENXIO);
        assert_string_equal(vpci_state_name(v, g), "assigned_invalid");
        fx.env.sys = fx.vm;
        assert_int_equal(CALL(vpci_remove, g), 0);
        assert_false(host_has(g));

        assert_int_equal(vpci_reserve(v, "dev1", 0, g), 0);
        assert_int_equal(CALL(vpci_assign, g), 0);
        fx.env.sys = NULL; /* the last reference's removal refused at once */
        assert_int_equal(vpci_remove(v, g, on_done, &x), -ENXIO);
        assert_string_equal(vpci_state_name(v, g), "assigned_invalid");
        assert_int_equal(vpci_refcount(v, g), 0);
        fx.env.sys = fx.vm;
        assert_int_equal(CALL(vpci_remove, g), 0);
        assert_false(x.done);
        assert_int_equal(vpci_device_count(v), 0);
}

/* ---- every call in every state obeys the spec's table ------------------------------------ */

static int public_call(unsigned ev, const char *g, struct result *x)
{
        char again[VPCI_GUID_LEN];
        ctrl_envelope *e = NULL;
        int r;
        switch (ev) { /* the event -> API map of this test, not a lifecycle decision */
        case VPCI_E_RESERVE:
                r = vpci_reserve(v, "dev0", 0, again);
                if (r == 0)
                        assert_string_equal(again, g);
                return r;
        case VPCI_E_ADD:
                return vpci_assign(v, g, on_done, x);
        case VPCI_E_REMOVE:
                return vpci_remove(v, g, on_done, x);
        default:
                r = vpci_save(v, &e);
                ctrl_envelope_free(e);
                return r;
        }
}

static void run_while(const char *g, const char *state)
{
        uint64_t deadline = ferry_now_us() + 5000000;
        while (vpci_state_name(v, g) && strcmp(vpci_state_name(v, g), state) == 0 &&
               ferry_now_us() < deadline)
                uv_run(loop, UV_RUN_ONCE);
}

/* One device in state name, reached through the public calls. */
static void reach(const char *state, char g[VPCI_GUID_LEN], struct result *x)
{
        assert_int_equal(vpci_reserve(v, "dev0", 0, g), 0);
        if (strcmp(state, "removed") == 0)
                fixture_fault("hcs.modify", 1, -EIO);
        if (strcmp(state, "assigned_invalid") == 0)
                fixture_fault("guest.vpci_ready", 1, -EIO);
        if (strcmp(state, "reserved") != 0)
                assert_int_equal(vpci_assign(v, g, on_done, x), 0);
        if (strcmp(state, "ready") == 0 || strcmp(state, "removing") == 0 ||
            strcmp(state, "removed") == 0 || strcmp(state, "assigned_invalid") == 0)
                run_until(&x->done, 5000);
        if (strcmp(state, "removing") == 0)
                assert_int_equal(vpci_remove(v, g, on_done, x), 0);
        assert_string_equal(vpci_state_name(v, g), state);
}

static void test_calls_follow_the_table(void **state)
{
        unsigned checked = 0;
        for (unsigned st = 0; st < vpci_machine.n_states; st++) {
                const char *name = vpci_machine.state_names[st];
                /* untracked: forgotten, the controller answers -ENOENT; assigned: the sim's
                 * guest answers in the loop turn the host add completes in, so no call can
                 * meet it from outside */
                if (strcmp(name, "untracked") == 0 || strcmp(name, "assigned") == 0)
                        continue;
                for (unsigned ev = 0; ev < vpci_machine.n_events; ev++) {
                        if (vpci_machine.event_kinds[ev] != FSM_EVENT_CALL)
                                continue;
                        const struct fsm_arm *a = fsm_cell_arm(&vpci_machine, st, ev, NULL);
                        if (a->kind == FSM_TRANSITION || a->guard)
                                continue;
                        char g[VPCI_GUID_LEN];
                        struct result x = {0}, y = {0};
                        reach(name, g, &x);
                        uint32_t refs = vpci_refcount(v, g);
                        int r = public_call(ev, g, &y);
                        if (a->kind == FSM_REJECT && r != a->err)
                                fail_msg("%s x %s: %d, spec says %d", name,
                                         vpci_machine.event_names[ev], r, a->err);
                        if (a->kind == FSM_IGNORE)
                                assert_int_equal(r, 0);
                        assert_false(y.done && a->kind == FSM_REJECT);
                        assert_string_equal(vpci_state_name(v, g), name);
                        assert_int_equal(vpci_refcount(v, g), refs);
                        checked++;
                        /* settle and clean up */
                        run_while(g, "adding");
                        run_while(g, "assigned");
                        run_while(g, "removing");
                        if (vpci_state_name(v, g)) {
                                uint32_t n = vpci_refcount(v, g);
                                do
                                        assert_int_equal(CALL(vpci_remove, g), 0);
                                while (n-- > 1);
                        }
                        assert_int_equal(vpci_device_count(v), 0);
                }
        }
        assert_true(checked >= 12);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            CTRL_TEST(test_reserve_assign_remove_refcounts),
            CTRL_TEST(test_host_add_fails),
            CTRL_TEST(test_guest_fails_then_remove),
            CTRL_TEST(test_host_remove_fails_then_retry),
            CTRL_TEST(test_in_flight_aborts),
            CTRL_TEST(test_save_refused_while_tracked),
            CTRL_TEST(test_save_import_patch_resume),
            CTRL_TEST(test_actions_fail_at_once),
            CTRL_TEST(test_calls_follow_the_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
