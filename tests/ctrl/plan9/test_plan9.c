/* SPDX-License-Identifier: MIT */
/* The Plan9 controller against the real spec/plan9_share.yaml and spec/plan9_mount.yaml tables
 * and handlers on the sim backend: reservations sharing one share and one reference-counted
 * guest mount, the host and guest calls made (once per share), failures at each call landing in
 * the specs' on_error targets and draining, retries, calls refused while in flight, and the
 * save / import / patch / resume of a controller that may only migrate empty. */
#include "fixture.h"

#include <pthread.h>

#include "ctrl/plan9/plan9.h"
#include "save_plan9.pb-c.h"
#include "save_vpci.pb-c.h"

static struct ctrl_fixture fx;
static struct plan9 *p9;

static int setup_policy(bool no_writable)
{
        setup_loop(NULL);
        fixture_up(&fx, loop, backend, "p9vm", 0, NULL);
        assert_int_equal(plan9_new(&fx.env, no_writable, &p9), 0);
        return 0;
}

static int setup(void **state)
{
        return setup_policy(false);
}

static int setup_no_writable(void **state)
{
        return setup_policy(true);
}

static int teardown(void **state)
{
        p9 = plan9_free(p9);
        fixture_down(&fx);
        return teardown_loop(state);
}

#define CALL(fn, id) CTRL_SYNC(fn, p9, id)

static bool host_share(const char *name)
{
        return fixture_host_has(fx.vm, vm_of(fx.vm)->shares, SIM_MAX_SHARES, name);
}

static bool guest_mounted(const char *path)
{
        struct sim_vm *s = vm_of(fx.vm);
        bool found = false;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->guest.n_mounts; i++)
                found |= s->guest.mounts[i].kind == SIM_MOUNT_PLAN9 &&
                         strcmp(s->guest.mounts[i].guest_path, path) == 0;
        pthread_mutex_unlock(&s->lock);
        return found;
}

static const struct plan9_share_config ro_dir = {.host_path = "/srv/a", .read_only = true};

static void test_lifecycle_refcounts(void **state)
{
        char a[PLAN9_ID_LEN], b[PLAN9_ID_LEN], c[PLAN9_ID_LEN];
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_string_equal(plan9_share_name(p9, a), "0");
        assert_string_equal(plan9_share_state(p9, a), "reserved");
        assert_string_equal(plan9_mount_state(p9, a), "reserved");
        assert_int_equal(plan9_mount_refcount(p9, a), 1);

        assert_int_equal(CALL(plan9_mount, a), 0);
        assert_string_equal(plan9_share_state(p9, a), "added");
        assert_string_equal(plan9_mount_state(p9, a), "mounted");
        assert_string_equal(plan9_guest_path(p9, a), "/run/mounts/plan9/0");
        assert_true(host_share("0"));
        assert_true(guest_mounted("/run/mounts/plan9/0"));

        /* a second reservation of the same path shares share and mount: no new calls */
        uint64_t modifies = hcs_fault_calls("hcs.modify");
        uint64_t mounts = hcs_fault_calls("guest.plan9_mount");
        assert_int_equal(plan9_add(p9, &ro_dir, true, b), 0);
        assert_string_not_equal(a, b);
        assert_string_equal(plan9_share_name(p9, b), "0");
        assert_int_equal(plan9_mount_refcount(p9, a), 2);
        assert_int_equal(CALL(plan9_mount, b), 0);
        assert_int_equal(plan9_share_count(p9), 1);
        assert_int_equal(plan9_reservation_count(p9), 2);
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);
        assert_int_equal(hcs_fault_calls("guest.plan9_mount"), mounts);

        /* the first release drops a reference only */
        uint64_t unmounts = hcs_fault_calls("guest.plan9_unmount");
        assert_int_equal(CALL(plan9_unmount, a), 0);
        assert_int_equal(plan9_reservation_count(p9), 1);
        assert_int_equal(plan9_mount_refcount(p9, b), 1);
        assert_true(guest_mounted("/run/mounts/plan9/0"));
        assert_true(host_share("0"));
        assert_int_equal(hcs_fault_calls("guest.plan9_unmount"), unmounts);
        assert_int_equal(plan9_unmount(p9, a, on_done, NULL), -ENOENT);

        /* the last one unmounts in the guest and removes the share */
        assert_int_equal(CALL(plan9_unmount, b), 0);
        assert_false(guest_mounted("/run/mounts/plan9/0"));
        assert_false(host_share("0"));
        assert_int_equal(plan9_share_count(p9), 0);
        assert_int_equal(plan9_reservation_count(p9), 0);

        /* reuse after release: a new share with the next name */
        assert_int_equal(plan9_add(p9, &ro_dir, true, c), 0);
        assert_string_equal(plan9_share_name(p9, c), "1");
        assert_int_equal(CALL(plan9_mount, c), 0);
        assert_true(guest_mounted("/run/mounts/plan9/1"));
        assert_int_equal(CALL(plan9_unmount, c), 0);
        assert_false(host_share("1"));
}

static void test_reserve_rules(void **state)
{
        char a[PLAN9_ID_LEN], b[PLAN9_ID_LEN];
        const char *names[] = {"Cfg.json", "b.txt"}, *names2[] = {"B.TXT", "cfg.json"};
        struct plan9_share_config file = {.host_path = "/srv/f",
                                          .read_only = true,
                                          .restrict_access = true,
                                          .allowed_names = names,
                                          .n_allowed = 2};
        struct plan9_share_config same = file, other = file;
        same.allowed_names = names2; /* equal: case- and order-insensitive */
        other.read_only = false;

        assert_int_equal(plan9_add(p9, &file, true, a), 0);
        assert_int_equal(plan9_add(p9, &same, true, b), 0);
        assert_string_equal(plan9_share_name(p9, b), plan9_share_name(p9, a));
        assert_int_equal(plan9_add(p9, &other, true, b), -EBUSY);
        /* a different mount read-only flag: refused by the mount's guard, nothing recorded */
        assert_int_equal(plan9_add(p9, &file, false, b), -EBUSY);
        assert_int_equal(plan9_mount_refcount(p9, a), 2);
        assert_int_equal(plan9_reservation_count(p9), 2);
        assert_int_equal(plan9_share_count(p9), 1);

        struct plan9_share_config rel = {.host_path = "srv/rel"};
        assert_int_equal(plan9_add(p9, &rel, false, b), -EINVAL);
        assert_int_equal(plan9_add(p9, NULL, false, b), -EINVAL);
        assert_int_equal(plan9_mount(p9, "nope", on_done, NULL), -ENOENT);
        assert_int_equal(plan9_reservation_count(p9), 2);
}

static void test_writable_denied_by_policy(void **state)
{
        char a[PLAN9_ID_LEN];
        struct plan9_share_config rw = {.host_path = "/srv/rw"};
        assert_int_equal(plan9_add(p9, &rw, false, a), -EPERM);
        assert_int_equal(plan9_share_count(p9), 0);
        assert_int_equal(plan9_reservation_count(p9), 0);
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_string_equal(plan9_share_name(p9, a), "0"); /* no name was consumed */
}

static void test_host_add_fails_all_drain(void **state)
{
        char a[PLAN9_ID_LEN], b[PLAN9_ID_LEN];
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_int_equal(plan9_add(p9, &ro_dir, true, b), 0);
        uint64_t mounts = hcs_fault_calls("guest.plan9_mount");
        fixture_fault("hcs.modify", 1, -EIO);
        assert_int_equal(CALL(plan9_mount, a), -EIO);
        assert_string_equal(plan9_share_state(p9, a), "invalid");
        assert_int_equal(hcs_fault_calls("guest.plan9_mount"), mounts); /* no guest mount */
        /* refused at once: the share is not usable */
        assert_int_equal(plan9_mount(p9, b, on_done, NULL), -EBUSY);
        char c[PLAN9_ID_LEN];
        assert_int_equal(plan9_add(p9, &ro_dir, true, c), -EBUSY);

        uint64_t modifies = hcs_fault_calls("hcs.modify");
        assert_int_equal(CALL(plan9_unmount, a), 0);
        assert_int_equal(plan9_share_count(p9), 1);
        assert_int_equal(CALL(plan9_unmount, b), 0);
        assert_int_equal(plan9_share_count(p9), 0);
        assert_int_equal(plan9_reservation_count(p9), 0);
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies); /* nothing on the VM */
}

static void test_guest_mount_fails_then_cleanup(void **state)
{
        char a[PLAN9_ID_LEN], b[PLAN9_ID_LEN];
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_int_equal(plan9_add(p9, &ro_dir, true, b), 0);
        fixture_fault("guest.plan9_mount", 1, -EIO);
        assert_int_equal(CALL(plan9_mount, a), -EIO);
        assert_string_equal(plan9_share_state(p9, a), "added");
        assert_string_equal(plan9_mount_state(p9, a), "invalid");
        assert_true(host_share("0"));
        /* a retry reaches the invalid mount: failed_precondition */
        assert_int_equal(CALL(plan9_mount, b), -EBUSY);

        uint64_t unmounts = hcs_fault_calls("guest.plan9_unmount");
        assert_int_equal(CALL(plan9_unmount, a), 0);
        assert_int_equal(CALL(plan9_unmount, b), 0);
        assert_int_equal(hcs_fault_calls("guest.plan9_unmount"), unmounts);
        assert_false(host_share("0")); /* the VM removal was issued */
        assert_int_equal(plan9_share_count(p9), 0);
        assert_int_equal(plan9_reservation_count(p9), 0);
}

static void test_guest_unmount_fails_retryable(void **state)
{
        char a[PLAN9_ID_LEN];
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_int_equal(CALL(plan9_mount, a), 0);
        fixture_fault("guest.plan9_unmount", 1, -EIO);
        assert_int_equal(CALL(plan9_unmount, a), -EIO);
        assert_int_equal(plan9_reservation_count(p9), 1);
        assert_string_equal(plan9_mount_state(p9, a), "mounted");
        assert_int_equal(plan9_mount_refcount(p9, a), 1);
        assert_true(guest_mounted("/run/mounts/plan9/0"));
        assert_int_equal(CALL(plan9_unmount, a), 0);
        assert_false(guest_mounted("/run/mounts/plan9/0"));
        assert_false(host_share("0"));
        assert_int_equal(plan9_reservation_count(p9), 0);
}

static void test_host_remove_fails_retry_skips_unmount(void **state)
{
        char a[PLAN9_ID_LEN];
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_int_equal(CALL(plan9_mount, a), 0);
        fixture_fault("hcs.modify", 1, -EIO);
        assert_int_equal(CALL(plan9_unmount, a), -EIO);
        assert_int_equal(plan9_reservation_count(p9), 1);
        assert_string_equal(plan9_share_state(p9, a), "added");
        assert_null(plan9_mount_state(p9, a)); /* the mount is gone */
        assert_false(guest_mounted("/run/mounts/plan9/0"));
        assert_true(host_share("0"));
        /* released: mount is refused, unmount retries the removal only */
        assert_int_equal(plan9_mount(p9, a, on_done, NULL), -EBUSY);
        uint64_t unmounts = hcs_fault_calls("guest.plan9_unmount");
        assert_int_equal(CALL(plan9_unmount, a), 0);
        assert_int_equal(hcs_fault_calls("guest.plan9_unmount"), unmounts);
        assert_false(host_share("0"));
        assert_int_equal(plan9_share_count(p9), 0);
        assert_int_equal(plan9_reservation_count(p9), 0);
}

/* Our decision beyond the reference (spec/plan9_share.yaml): releasing one reservation of a
 * share never added keeps the share for the others. */
static void test_remove_keeps_reserved_share_with_other_reservations(void **state)
{
        char a[PLAN9_ID_LEN], b[PLAN9_ID_LEN];
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_int_equal(plan9_add(p9, &ro_dir, true, b), 0);
        uint64_t modifies = hcs_fault_calls("hcs.modify");
        assert_int_equal(CALL(plan9_unmount, a), 0); /* never mapped: no VM or guest call */
        assert_int_equal(hcs_fault_calls("hcs.modify"), modifies);
        assert_int_equal(plan9_share_count(p9), 1);
        assert_string_equal(plan9_share_state(p9, b), "reserved");
        assert_int_equal(plan9_mount_refcount(p9, b), 1);
        assert_int_equal(CALL(plan9_mount, b), 0);
        assert_true(guest_mounted("/run/mounts/plan9/0"));
        assert_int_equal(CALL(plan9_unmount, b), 0);
        assert_int_equal(plan9_share_count(p9), 0);
}

static void test_in_flight_aborts(void **state)
{
        char a[PLAN9_ID_LEN], b[PLAN9_ID_LEN], c[PLAN9_ID_LEN];
        ctrl_envelope *e = NULL;
        struct result x = {0};
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_int_equal(plan9_add(p9, &ro_dir, true, b), 0);
        assert_int_equal(plan9_mount(p9, a, on_done, &x), 0);
        assert_string_equal(plan9_share_state(p9, a), "adding");
        assert_int_equal(plan9_mount(p9, a, on_done, NULL), -ESTALE);
        assert_int_equal(plan9_unmount(p9, a, on_done, NULL), -ESTALE);
        assert_int_equal(plan9_mount(p9, b, on_done, NULL), -ESTALE);
        assert_int_equal(plan9_unmount(p9, b, on_done, NULL), -ESTALE);
        assert_int_equal(plan9_add(p9, &ro_dir, true, c), -ESTALE);
        assert_int_equal(plan9_save(p9, &e), -EBUSY);
        assert_null(e);
        assert_int_equal(plan9_reservation_count(p9), 2);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_string_equal(plan9_mount_state(p9, a), "mounted");
        assert_int_equal(CALL(plan9_unmount, a), 0);
        assert_int_equal(CALL(plan9_unmount, b), 0);
        assert_int_equal(plan9_share_count(p9), 0);
}

static void test_save_import_patch_resume(void **state)
{
        char a[PLAN9_ID_LEN];
        ctrl_envelope *e = NULL, *bad = NULL;
        struct plan9 *dst = NULL;

        /* a share makes save fail, whatever its state, and changes nothing */
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        assert_int_equal(plan9_save(p9, &e), -EBUSY);
        assert_null(e);
        assert_int_equal(CALL(plan9_mount, a), 0);
        assert_int_equal(plan9_save(p9, &e), -EBUSY);
        assert_null(e);
        assert_string_equal(plan9_share_state(p9, a), "added");
        assert_string_equal(plan9_mount_state(p9, a), "mounted");
        assert_int_equal(plan9_resume(p9), -EBUSY);
        assert_int_equal(CALL(plan9_unmount, a), 0);

        assert_int_equal(plan9_save(p9, &e), 0);
        assert_string_equal(e->type_url, "type.ferry.dev/ferry.plan9.save.v1.Payload");
        assert_int_equal(plan9_new(&fx.env, false, &dst), 0);
        assert_int_equal(plan9_import(dst, NULL), -EINVAL);
        Ferry__Vpci__Save__V1__Payload vp = FERRY__VPCI__SAVE__V1__PAYLOAD__INIT;
        vp.schema_version = 1;
        assert_int_equal(ctrl_envelope_pack("vpci", 1, &vp.base, &bad), 0);
        assert_int_equal(plan9_import(dst, bad), -EINVAL);
        ctrl_envelope_free(bad);
        assert_int_equal(ctrl_envelope_dup(e, &bad), 0);
        bad->schema_version = 2;
        assert_int_equal(plan9_import(dst, bad), -EINVAL);
        ctrl_envelope_free(bad);
        static uint8_t junk[] = {0xff, 0xff, 0xff};
        ctrl_envelope corrupt = *e;
        corrupt.value.data = junk;
        corrupt.value.len = sizeof(junk);
        assert_int_equal(plan9_import(dst, &corrupt), -EBADMSG);

        /* into a controller that has a share: refused, the share untouched */
        assert_int_equal(plan9_add(dst, &ro_dir, true, a), 0);
        assert_int_equal(plan9_import(dst, e), -EBUSY);
        assert_string_equal(plan9_share_state(dst, a), "reserved");
        struct result x = {0};
        assert_int_equal(plan9_unmount(dst, a, on_done, &x), 0);
        assert_true(x.done);
        assert_int_equal(x.r, 0);

        assert_int_equal(plan9_import(dst, e), 0);
        assert_int_equal(plan9_patch(dst, "/srv/a", "/srv/b"), -ENOENT);
        assert_int_equal(plan9_patch(dst, NULL, "/srv/b"), -EINVAL);
        assert_int_equal(plan9_resume(dst), 0);
        plan9_free(dst);
        ctrl_envelope_free(e);
}

/* Actions that fail at once (no VM, no guest) land in their on_error targets. */
static void test_actions_fail_at_once(void **state)
{
        char a[PLAN9_ID_LEN], b[PLAN9_ID_LEN];
        struct result x = {0};
        assert_int_equal(plan9_add(p9, &ro_dir, true, a), 0);
        fx.env.sys = NULL; /* host add refused at once: the first step, so the call fails */
        assert_int_equal(plan9_mount(p9, a, on_done, &x), -ENXIO);
        assert_false(x.done);
        assert_string_equal(plan9_share_state(p9, a), "reserved");
        fx.env.sys = fx.vm;

        fx.env.guest = NULL; /* the guest mount fails at once after the share was added */
        assert_int_equal(CALL(plan9_mount, a), -ENOTCONN);
        assert_string_equal(plan9_share_state(p9, a), "added");
        assert_string_equal(plan9_mount_state(p9, a), "reserved");
        fx.env.guest = fx.conn;
        assert_int_equal(CALL(plan9_mount, a), 0);
        assert_string_equal(plan9_mount_state(p9, a), "mounted");

        /* a reservation with another read-only flag on an added share: nothing recorded */
        assert_int_equal(plan9_add(p9, &ro_dir, false, b), -EBUSY);
        assert_int_equal(plan9_reservation_count(p9), 1);
        assert_string_equal(plan9_share_state(p9, a), "added");

        fx.env.guest = NULL; /* the guest unmount fails at once: still mounted */
        assert_int_equal(plan9_unmount(p9, a, on_done, &x), -ENOTCONN);
        assert_string_equal(plan9_mount_state(p9, a), "mounted");
        assert_int_equal(plan9_mount_refcount(p9, a), 1);
        fx.env.guest = fx.conn;

        fx.env.sys = NULL; /* unmounted, then the host removal fails at once */
        assert_int_equal(CALL(plan9_unmount, a), -ENXIO);
        assert_string_equal(plan9_share_state(p9, a), "added");
        assert_null(plan9_mount_state(p9, a));
        fx.env.sys = fx.vm;
        assert_int_equal(CALL(plan9_unmount, a), 0);
        assert_false(host_share("0"));
        assert_int_equal(plan9_share_count(p9), 0);
        assert_false(x.done);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            CTRL_TEST(test_lifecycle_refcounts),
            CTRL_TEST(test_reserve_rules),
            cmocka_unit_test_setup_teardown(test_writable_denied_by_policy, setup_no_writable,
                                            teardown),
            CTRL_TEST(test_host_add_fails_all_drain),
            CTRL_TEST(test_guest_mount_fails_then_cleanup),
            CTRL_TEST(test_guest_unmount_fails_retryable),
            CTRL_TEST(test_host_remove_fails_retry_skips_unmount),
            CTRL_TEST(test_remove_keeps_reserved_share_with_other_reservations),
            CTRL_TEST(test_in_flight_aborts),
            CTRL_TEST(test_save_import_patch_resume),
            CTRL_TEST(test_actions_fail_at_once),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
