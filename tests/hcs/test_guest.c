/* SPDX-License-Identifier: MIT */
/* Tests of the guest interface over the sim guest: negotiation, containers, processes and
 * exactly-once exit delivery, IO relay ports, mounts, devices, networking, counter floors,
 * every guest fault point, and a guest that migrates with its VM and is reconnected. */
#include "helpers.h"

#include "guest/guest.h"

static struct hcs_system *vm;
static struct notes vm_notes;
static struct guest_conn *conn;
static uint64_t g_value;

static void g_done(int r, uint64_t v, void *ud)
{
        struct result *x = ud;
        x->done = true;
        x->r = r;
        x->value = v;
        g_value = v;
}

#define GSYNC(fn, ...)                                                                             \
        ({                                                                                         \
                struct result _x = {0};                                                            \
                assert_int_equal(fn(__VA_ARGS__, g_done, &_x), 0);                                 \
                run_until(&_x.done, 5000);                                                         \
                _x.r;                                                                              \
        })

struct waitrec {
        int calls;
        int r;
        int code;
        uint32_t pid;
};

static void on_exit_cb(int r, uint32_t pid, int code, void *ud)
{
        struct waitrec *w = ud;
        w->calls++;
        w->r = r;
        w->code = code;
        w->pid = pid;
}

static int setup(void **state)
{
        setup_loop(state);
        memset(&vm_notes, 0, sizeof(vm_notes));
        vm = running_system("gvm", 8, 1000, &vm_notes);
        struct result x = {0};
        assert_int_equal(guest_connect(loop, vm, 4, g_done, &x, &conn), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        return 0;
}

static int teardown(void **state)
{
        guest_close(conn);
        conn = NULL;
        run_for_ms(1);
        close_system(vm);
        vm = NULL;
        return teardown_loop(state);
}

static void test_negotiation(void **state)
{
        assert_int_equal(guest_protocol(conn), 4);
        struct guest_conn *other = NULL;
        struct result x = {0};
        assert_int_equal(guest_connect(loop, vm, 4, g_done, &x, &other), -EEXIST);
        assert_int_equal(GSYNC(guest_reconnect, conn, vm, 2), 0);
        assert_int_equal(g_value, 2);
        assert_int_equal(guest_protocol(conn), 2);
        assert_int_equal(GSYNC(guest_reconnect, conn, vm, 99), 0);
        assert_int_equal(g_value, SIM_GUEST_PROTOCOL_MAX);
        assert_int_equal(GSYNC(guest_reconnect, conn, vm, 0), -EPROTO);
        assert_int_equal(guest_protocol(conn), 0);
        assert_int_equal(GSYNC(guest_create_container, conn, "c"), -ENOTCONN);
        assert_int_equal(GSYNC(guest_reconnect, conn, vm, 3), 0);
        assert_int_equal(GSYNC(guest_create_container, conn, "c"), 0);
}

static void test_containers_and_processes(void **state)
{
        assert_int_equal(GSYNC(guest_create_container, conn, "c1"), 0);
        assert_int_equal(GSYNC(guest_create_container, conn, "c1"), -EEXIST);
        assert_int_equal(GSYNC(guest_create_container, conn, ""), -EINVAL);
        assert_int_equal(GSYNC(guest_start_container, conn, "nope"), -ENOENT);
        assert_int_equal(GSYNC(guest_start_process, conn, "c1"), -EBUSY); /* not started */
        assert_int_equal(GSYNC(guest_start_container, conn, "c1"), 0);
        uint32_t init = (uint32_t)g_value;
        assert_true(init > 0);
        assert_int_equal(GSYNC(guest_start_container, conn, "c1"), -EBUSY);
        assert_int_equal(GSYNC(guest_delete_container, conn, "c1"), -EBUSY);
        assert_int_equal(GSYNC(guest_start_process, conn, "c1"), 0);
        uint32_t pid = (uint32_t)g_value;
        assert_true(pid != init);
        assert_int_equal(GSYNC(guest_start_process, conn, "nope"), -ENOENT);

        /* Two waiters before the exit, one after: each completes exactly once. */
        struct waitrec w1 = {0}, w2 = {0}, w3 = {0}, winit = {0};
        assert_int_equal(guest_wait_process(conn, pid, on_exit_cb, &w1), 0);
        assert_int_equal(guest_wait_process(conn, pid, on_exit_cb, &w2), 0);
        assert_int_equal(guest_wait_process(conn, init, on_exit_cb, &winit), 0);
        run_for_ms(5);
        assert_int_equal(w1.calls, 0);
        assert_int_equal(GSYNC(guest_signal_process, conn, pid, SIGHUP), 0); /* not fatal */
        run_for_ms(5);
        assert_int_equal(w1.calls, 0);
        assert_int_equal(guest_sim_exit_process(conn, pid, 5), 0);
        assert_int_equal(guest_sim_exit_process(conn, pid, 6), -EALREADY);
        run_for_ms(5);
        assert_int_equal(w1.calls, 1);
        assert_int_equal(w1.code, 5);
        assert_int_equal(w1.pid, pid);
        assert_int_equal(w2.calls, 1);
        assert_int_equal(w2.code, 5);
        assert_int_equal(guest_wait_process(conn, pid, on_exit_cb, &w3), 0);
        run_for_ms(5);
        assert_int_equal(w3.calls, 1);
        assert_int_equal(w3.code, 5);
        assert_int_equal(GSYNC(guest_signal_process, conn, pid, SIGKILL), -EALREADY);
        struct waitrec wbad = {0};
        assert_int_equal(guest_wait_process(conn, 99999, on_exit_cb, &wbad), 0);
        run_for_ms(5);
        assert_int_equal(wbad.r, -ENOENT);

        /* SIGTERM to the container ends its init (128+15) and stops it. */
        assert_int_equal(GSYNC(guest_signal_container, conn, "c1", SIGTERM), 0);
        run_for_ms(5);
        assert_int_equal(winit.calls, 1);
        assert_int_equal(winit.code, 128 + SIGTERM);
        assert_int_equal(GSYNC(guest_signal_container, conn, "c1", SIGTERM), -EBUSY);
        assert_int_equal(GSYNC(guest_start_process, conn, "c1"), -EBUSY);
        assert_int_equal(GSYNC(guest_delete_container, conn, "c1"), 0);
        assert_int_equal(GSYNC(guest_delete_container, conn, "c1"), -ENOENT);
        run_for_ms(5);
        assert_int_equal(w1.calls + w2.calls + w3.calls + winit.calls, 4);

        /* Killing one process of a container whose init runs leaves the container running. */
        assert_int_equal(GSYNC(guest_create_container, conn, "c2"), 0);
        assert_int_equal(GSYNC(guest_start_container, conn, "c2"), 0);
        uint32_t init2 = (uint32_t)g_value;
        assert_int_equal(GSYNC(guest_start_process, conn, "c2"), 0);
        uint32_t p2 = (uint32_t)g_value;
        struct waitrec wp2 = {0}, winit2 = {0};
        assert_int_equal(guest_wait_process(conn, p2, on_exit_cb, &wp2), 0);
        assert_int_equal(guest_wait_process(conn, init2, on_exit_cb, &winit2), 0);
        assert_int_equal(GSYNC(guest_signal_process, conn, p2, SIGKILL), 0);
        run_for_ms(5);
        assert_int_equal(wp2.code, 128 + SIGKILL);
        assert_int_equal(winit2.calls, 0);
        /* A VM that stops ends every process; waiters hear it once. */
        assert_int_equal(SYNC(hcs_terminate, vm), 0);
        run_for_ms(5);
        assert_int_equal(winit2.calls, 1);
        assert_int_equal(winit2.code, 128 + SIGKILL);
        assert_int_equal(wp2.calls, 1);
        assert_int_equal(GSYNC(guest_start_process, conn, "c2"), -ENOTCONN);
}

static void test_io_relay(void **state)
{
        assert_int_equal(GSYNC(guest_create_container, conn, "c"), 0);
        assert_int_equal(GSYNC(guest_start_container, conn, "c"), 0);
        uint32_t pid = (uint32_t)g_value;
        assert_int_equal(GSYNC(guest_io_relay, conn, pid), 0);
        uint64_t p1 = g_value;
        assert_int_equal(GSYNC(guest_io_relay, conn, pid), 0);
        assert_int_equal(g_value, p1 + 3);
        assert_int_equal(GSYNC(guest_io_relay, conn, 4242), -ENOENT);
        assert_int_equal(guest_sim_exit_process(conn, pid, 0), 0);
        assert_int_equal(GSYNC(guest_io_relay, conn, pid), -EBUSY);
}

static void test_storage_devices_network(void **state)
{
        assert_int_equal(GSYNC(guest_scsi_mount, conn, 0, 0, "/run/rootfs"), 0);
        assert_int_equal(GSYNC(guest_scsi_mount, conn, 0, 0, "/run/rootfs"), -EEXIST);
        assert_int_equal(GSYNC(guest_scsi_mount, conn, 0, 5, "/run/d5"), -ENOENT);
        assert_int_equal(GSYNC(guest_scsi_mount, conn, 9, 0, "/run/x"), -ERANGE);
        assert_int_equal(GSYNC(guest_scsi_mount, conn, 0, 0, "relative"), -EINVAL);
        assert_int_equal(GSYNC(guest_scsi_unmount, conn, "/run/rootfs"), 0);
        assert_int_equal(GSYNC(guest_scsi_unmount, conn, "/run/rootfs"), -ENOENT);

        assert_int_equal(GSYNC(guest_plan9_mount, conn, "share0", "/mnt/s"), 0);
        assert_int_equal(GSYNC(guest_plan9_mount, conn, "nope", "/mnt/n"), -ENOENT);
        assert_int_equal(GSYNC(guest_plan9_mount, conn, "share0", "/mnt/s"), -EEXIST);

        assert_int_equal(GSYNC(guest_vpci_ready, conn, "gpu0"), -ENOENT);
        assert_int_equal(SYNC(hcs_modify, vm,
                              "{\"ResourcePath\":\"VirtualMachine/Devices/VirtualPci/gpu0\","
                              "\"RequestType\":\"Add\",\"Settings\":{}}"),
                         0);
        assert_int_equal(GSYNC(guest_vpci_ready, conn, "gpu0"), 0);
        assert_int_equal(GSYNC(guest_vpci_ready, conn, "gpu0"), -EEXIST);

        assert_int_equal(GSYNC(guest_nic_add, conn, "ns0", "nic0"), -ENOENT); /* no namespace */
        assert_int_equal(GSYNC(guest_netns_add, conn, "ns0"), 0);
        assert_int_equal(GSYNC(guest_netns_add, conn, "ns0"), -EEXIST);
        assert_int_equal(GSYNC(guest_nic_add, conn, "ns0", "nicX"), -ENOENT); /* no host NIC */
        assert_int_equal(GSYNC(guest_nic_add, conn, "ns0", "nic0"), 0);
        assert_int_equal(GSYNC(guest_nic_add, conn, "ns0", "nic0"), -EEXIST);
        assert_int_equal(GSYNC(guest_nic_remove, conn, "ns0", "nic0"), 0);
        assert_int_equal(GSYNC(guest_nic_remove, conn, "ns0", "nic0"), -ENOENT);
}

static void test_counters_and_paused_vm(void **state)
{
        uint64_t req0, req1;
        uint32_t port0, port1;
        assert_int_equal(guest_counters(conn, &req0, &port0), 0);
        assert_int_equal(GSYNC(guest_create_container, conn, "c"), 0);
        assert_int_equal(guest_counters(conn, &req1, &port1), 0);
        assert_int_equal(req1, req0 + 1); /* every call takes a request id */
        assert_int_equal(GSYNC(guest_raise_floors, conn, 100000, 0x50000000), 0);
        assert_int_equal(GSYNC(guest_raise_floors, conn, 5, 5), 0); /* lower: ignored */
        assert_int_equal(guest_counters(conn, &req1, &port1), 0);
        assert_int_equal(req1, 100000);
        assert_int_equal(port1, 0x50000000);

        assert_int_equal(SYNC(hcs_pause, vm), 0);
        assert_int_equal(GSYNC(guest_create_container, conn, "d"), -ENOTCONN);
        assert_int_equal(SYNC(hcs_resume, vm), 0);
        assert_int_equal(GSYNC(guest_create_container, conn, "d"), 0);
}

/* Every guest.* point: the call fails with the armed error, the VM runs on, and the next call
 * succeeds. */
static void test_fault_points_guest(void **state)
{
        size_t seen = 0;
        assert_int_equal(GSYNC(guest_create_container, conn, "base"), 0);
        assert_int_equal(GSYNC(guest_start_container, conn, "base"), 0);
        uint32_t init = (uint32_t)g_value;
        assert_int_equal(GSYNC(guest_netns_add, conn, "nsb"), 0);
        for (size_t i = 0; i < hcs_fault_count(); i++) {
                const char *pt = hcs_fault_name(i);
                if (strncmp(pt, "guest.", 6) != 0)
                        continue;
                seen++;
                assert_int_equal(
                    hcs_fault_arm(pt, &(struct hcs_fault_spec){.nth = 1, .error = -EIO}), 0);
                int r = 0, again = 0;
                if (strcmp(pt, "guest.connect") == 0) {
                        r = GSYNC(guest_reconnect, conn, vm, 4);
                        again = GSYNC(guest_reconnect, conn, vm, 4);
                } else if (strcmp(pt, "guest.raise_floors") == 0) {
                        r = GSYNC(guest_raise_floors, conn, 10, 10);
                        again = GSYNC(guest_raise_floors, conn, 10, 10);
                } else if (strcmp(pt, "guest.create_container") == 0) {
                        r = GSYNC(guest_create_container, conn, "fc");
                        again = GSYNC(guest_create_container, conn, "fc");
                } else if (strcmp(pt, "guest.start_container") == 0) {
                        r = GSYNC(guest_start_container, conn, "fc");
                        again = GSYNC(guest_start_container, conn, "fc");
                } else if (strcmp(pt, "guest.signal_container") == 0) {
                        r = GSYNC(guest_signal_container, conn, "fc", SIGKILL);
                        again = GSYNC(guest_signal_container, conn, "fc", SIGKILL);
                } else if (strcmp(pt, "guest.delete_container") == 0) {
                        r = GSYNC(guest_delete_container, conn, "fc");
                        again = GSYNC(guest_delete_container, conn, "fc");
                } else if (strcmp(pt, "guest.start_process") == 0) {
                        r = GSYNC(guest_start_process, conn, "base");
                        again = GSYNC(guest_start_process, conn, "base");
                } else if (strcmp(pt, "guest.signal_process") == 0) {
                        r = GSYNC(guest_signal_process, conn, (uint32_t)g_value, SIGKILL);
                        assert_int_equal(GSYNC(guest_start_process, conn, "base"), 0);
                        again = GSYNC(guest_signal_process, conn, (uint32_t)g_value, SIGKILL);
                } else if (strcmp(pt, "guest.wait_process") == 0) {
                        struct waitrec w = {0}, w2 = {0};
                        assert_int_equal(guest_wait_process(conn, init, on_exit_cb, &w), 0);
                        run_for_ms(5);
                        r = w.r;
                        assert_int_equal(w.calls, 1);
                        assert_int_equal(guest_wait_process(conn, init, on_exit_cb, &w2), 0);
                        run_for_ms(5);
                        assert_int_equal(w2.calls, 0); /* registered, init still runs */
                        again = 0;
                } else if (strcmp(pt, "guest.io_relay") == 0) {
                        r = GSYNC(guest_io_relay, conn, init);
                        again = GSYNC(guest_io_relay, conn, init);
                } else if (strcmp(pt, "guest.scsi_mount") == 0) {
                        r = GSYNC(guest_scsi_mount, conn, 0, 0, "/run/f");
                        again = GSYNC(guest_scsi_mount, conn, 0, 0, "/run/f");
                } else if (strcmp(pt, "guest.scsi_unmount") == 0) {
                        r = GSYNC(guest_scsi_unmount, conn, "/run/f");
                        again = GSYNC(guest_scsi_unmount, conn, "/run/f");
                } else if (strcmp(pt, "guest.plan9_mount") == 0) {
                        r = GSYNC(guest_plan9_mount, conn, "share0", "/mnt/f");
                        again = GSYNC(guest_plan9_mount, conn, "share0", "/mnt/f");
                } else if (strcmp(pt, "guest.plan9_unmount") == 0) {
                        r = GSYNC(guest_plan9_unmount, conn, "/mnt/f");
                        again = GSYNC(guest_plan9_unmount, conn, "/mnt/f");
                } else if (strcmp(pt, "guest.vpci_ready") == 0) {
                        assert_int_equal(
                            SYNC(hcs_modify, vm,
                                 "{\"ResourcePath\":\"VirtualMachine/Devices/VirtualPci/f\","
                                 "\"RequestType\":\"Add\",\"Settings\":{}}"),
                            0);
                        r = GSYNC(guest_vpci_ready, conn, "f");
                        again = GSYNC(guest_vpci_ready, conn, "f");
                } else if (strcmp(pt, "guest.netns_add") == 0) {
                        r = GSYNC(guest_netns_add, conn, "nsf");
                        again = GSYNC(guest_netns_add, conn, "nsf");
                } else if (strcmp(pt, "guest.nic_add") == 0) {
                        r = GSYNC(guest_nic_add, conn, "nsb", "nic0");
                        again = GSYNC(guest_nic_add, conn, "nsb", "nic0");
                } else if (strcmp(pt, "guest.nic_remove") == 0) {
                        r = GSYNC(guest_nic_remove, conn, "nsb", "nic0");
                        again = GSYNC(guest_nic_remove, conn, "nsb", "nic0");
                } else {
                        fail_msg("guest fault point %s has no test", pt);
                }
                if (r != -EIO)
                        fail_msg("%s: got %d", pt, r);
                if (again != 0)
                        fail_msg("%s: retry got %d", pt, again);
                assert_runs(vm, true);
        }
        assert_int_equal(seen, 18);
}

/* The guest migrates with its VM: a connection moved to the destination sees the same
 * containers, processes, exit codes and counters. */
static void test_guest_migrates(void **state)
{
        assert_int_equal(GSYNC(guest_create_container, conn, "web"), 0);
        assert_int_equal(GSYNC(guest_start_container, conn, "web"), 0);
        uint32_t init = (uint32_t)g_value;
        assert_int_equal(GSYNC(guest_start_process, conn, "web"), 0);
        uint32_t done_pid = (uint32_t)g_value;
        assert_int_equal(guest_sim_exit_process(conn, done_pid, 42), 0);
        assert_int_equal(GSYNC(guest_raise_floors, conn, 7777, 0x40002000), 0);
        struct waitrec wold = {0};
        assert_int_equal(guest_wait_process(conn, init, on_exit_cb, &wold), 0);

        char data[512];
        compat_b64(vm, data, sizeof(data));
        struct notes nd = {0};
        struct hcs_system *dst = new_system("gdst", 8, 1000, data, &nd);
        assert_int_equal(SYNC(hcs_create, dst), 0);
        int rs, rd;
        lm_transfer_pair(vm, dst, 3, 20000, &rs, &rd);
        assert_int_equal(rs, 0);
        assert_int_equal(rd, 0);
        assert_int_equal(SYNC(hcs_lm_finalize, dst, true), 0);

        /* Move the bridge before the source stops, so its waits end as cancelled, not as
         * exits. */
        assert_int_equal(GSYNC(guest_reconnect, conn, dst, 3), 0);
        assert_int_equal(g_value, 3);
        run_for_ms(5);
        assert_int_equal(wold.calls, 1);
        assert_int_equal(wold.r, -ECANCELED);
        assert_int_equal(SYNC(hcs_lm_finalize, vm, false), 0);
        run_for_ms(5);
        assert_int_equal(wold.calls, 1);

        uint64_t req;
        uint32_t port;
        assert_int_equal(guest_counters(conn, &req, &port), 0);
        assert_true(req >= 7777);
        assert_true(port >= 0x40002000);
        struct waitrec wd = {0}, wi = {0};
        assert_int_equal(guest_wait_process(conn, done_pid, on_exit_cb, &wd), 0);
        assert_int_equal(guest_wait_process(conn, init, on_exit_cb, &wi), 0);
        run_for_ms(5);
        assert_int_equal(wd.calls, 1);
        assert_int_equal(wd.code, 42);
        assert_int_equal(wi.calls, 0);
        assert_int_equal(GSYNC(guest_create_container, conn, "web"), -EEXIST);
        assert_int_equal(guest_sim_exit_process(conn, init, 0), 0);
        run_for_ms(5);
        assert_int_equal(wi.calls, 1);
        assert_int_equal(wi.code, 0);

        guest_close(conn);
        conn = NULL;
        run_for_ms(1);
        close_system(dst);
}

static void test_close_cancels_waits(void **state)
{
        assert_int_equal(GSYNC(guest_create_container, conn, "c"), 0);
        assert_int_equal(GSYNC(guest_start_container, conn, "c"), 0);
        struct waitrec w = {0};
        assert_int_equal(guest_wait_process(conn, (uint32_t)g_value, on_exit_cb, &w), 0);
        guest_close(conn);
        conn = NULL;
        run_for_ms(5);
        assert_int_equal(w.calls, 1);
        assert_int_equal(w.r, -ECANCELED);
        /* The VM is free for a new connection. */
        struct result x = {0};
        assert_int_equal(guest_connect(loop, vm, 1, g_done, &x, &conn), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_int_equal(x.value, 1);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_negotiation, setup, teardown),
            cmocka_unit_test_setup_teardown(test_containers_and_processes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_io_relay, setup, teardown),
            cmocka_unit_test_setup_teardown(test_storage_devices_network, setup, teardown),
            cmocka_unit_test_setup_teardown(test_counters_and_paused_vm, setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_points_guest, setup, teardown),
            cmocka_unit_test_setup_teardown(test_guest_migrates, setup, teardown),
            cmocka_unit_test_setup_teardown(test_close_cancels_waits, setup, teardown),
        };
        return cmocka_run_group_tests_name("guest", tests, NULL, NULL);
}
