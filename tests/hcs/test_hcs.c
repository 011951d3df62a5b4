/* SPDX-License-Identifier: MIT */
/* Tests of the host compute interface and the sim backend: lifecycle, devices, the fault
 * registry and every hcs/transfer fault point, and real migrations between two VMs over a
 * socketpair and loopback TCP (checksums and guest state compared), cancel in each phase, a
 * peer closing mid-pass, and a heavy dirty rate converging through the pass limit. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "helpers.h"

#include "hcs/sim/sim_guest.h"

#define MB 32

static void test_backend_open(void **state)
{
        struct hcs_backend *b = NULL;
        assert_int_equal(hcs_backend_open(loop, "qemu-nope", NULL, &b), -ENOENT);
        assert_int_equal(hcs_backend_open(loop, "sim", "[1]", &b), -EINVAL);
        assert_int_equal(hcs_backend_open(loop, "sim", "{\"x\":1}", &b), -EINVAL);
        assert_int_equal(hcs_backend_open(loop, "sim", NULL, &b), 0);
        assert_string_equal(hcs_backend_name(b), "sim");
        assert_null(hcs_backend_free(b));
}

/* A thread that runs one fault check (for holds). */
struct held_check {
        const char *point;
        int r;
        atomic_bool returned;
};

static void *held_check_run(void *arg)
{
        struct held_check *h = arg;
        h->r = hcs_fault_check(h->point);
        atomic_store(&h->returned, true);
        return NULL;
}

static void test_fault_registry(void **state)
{
        /* 13 hcs.*, 4 transfer.*, 17 guest.*: a new point must get a test in test_fault_points_hcs
         * or test_fault_points_guest (the guest one fails on an unknown guest.* name). */
        assert_int_equal(hcs_fault_count(), 35);
        for (size_t i = 0; i < hcs_fault_count(); i++) {
                const char *n = hcs_fault_name(i);
                assert_non_null(n);
                for (size_t k = 0; k < i; k++)
                        assert_string_not_equal(n, hcs_fault_name(k));
        }
        assert_null(hcs_fault_name(hcs_fault_count()));
        struct hcs_fault_spec s = {.nth = 2, .error = -EIO};
        assert_int_equal(hcs_fault_arm("no.such.point", &s), -ENOENT);
        assert_int_equal(hcs_fault_arm("hcs.create", &(struct hcs_fault_spec){0}), -EINVAL);
        assert_int_equal(hcs_fault_arm("hcs.create", &(struct hcs_fault_spec){.error = EIO}),
                         -EINVAL);
        assert_int_equal(hcs_fault_arm("hcs.create", &s), 0);
        assert_int_equal(hcs_fault_check("hcs.create"), 0);
        assert_int_equal(hcs_fault_check("hcs.create"), -EIO);
        assert_int_equal(hcs_fault_check("hcs.create"), 0); /* nth disarms after firing */
        assert_int_equal(hcs_fault_calls("hcs.create"), 3);
        s = (struct hcs_fault_spec){.nth = 0, .error = -ENOSPC};
        assert_int_equal(hcs_fault_arm("hcs.start", &s), 0);
        assert_int_equal(hcs_fault_check("hcs.start"), -ENOSPC);
        assert_int_equal(hcs_fault_check("hcs.start"), -ENOSPC);
        assert_int_equal(hcs_fault_disarm("hcs.start"), 0);
        assert_int_equal(hcs_fault_check("hcs.start"), 0);
        /* Stall only. */
        s = (struct hcs_fault_spec){.nth = 1, .stall_ms = 30};
        assert_int_equal(hcs_fault_arm("hcs.pause", &s), 0);
        uint64_t t0 = ferry_now_us();
        assert_int_equal(hcs_fault_check("hcs.pause"), 0);
        assert_true(ferry_now_us() - t0 >= 30000);
        uint64_t bytes = 0;
        s = (struct hcs_fault_spec){.nth = 1, .drop_after_bytes = 99};
        assert_int_equal(hcs_fault_arm("transfer.source_drop_after_bytes", &s), 0);
        assert_true(hcs_fault_take_drop("transfer.source_drop_after_bytes", &bytes));
        assert_int_equal(bytes, 99);
        assert_false(hcs_fault_take_drop("transfer.source_drop_after_bytes", &bytes));
        /* Hold: the check blocks until released, then fails as armed; a reset releases too. */
        struct held_check h = {.point = "hcs.resume"};
        s = (struct hcs_fault_spec){.nth = 1, .error = -EIO, .hold = true};
        assert_int_equal(hcs_fault_arm("hcs.resume", &s), 0);
        assert_false(hcs_fault_held("hcs.resume"));
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, held_check_run, &h), 0);
        while (!hcs_fault_held("hcs.resume"))
                usleep(1000);
        usleep(20000);
        assert_false(atomic_load(&h.returned));
        assert_int_equal(hcs_fault_release("hcs.resume"), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(h.r, -EIO);
        assert_false(hcs_fault_held("hcs.resume"));
        assert_int_equal(hcs_fault_release("no.such.point"), -ENOENT);
        assert_false(hcs_fault_held("no.such.point"));
        h = (struct held_check){.point = "hcs.resume"};
        assert_int_equal(hcs_fault_arm("hcs.resume", &(struct hcs_fault_spec){.hold = true}), 0);
        assert_int_equal(pthread_create(&th, NULL, held_check_run, &h), 0);
        while (!hcs_fault_held("hcs.resume"))
                usleep(1000);
        hcs_fault_reset();
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(h.r, 0);
        assert_int_equal(hcs_fault_calls("hcs.create"), 0);
}

static void test_bad_documents(void **state)
{
        struct hcs_system *sys = NULL;
        assert_int_equal(
            hcs_system_new(backend, "bad id!", "{\"VirtualMachine\":{}}", NULL, NULL, &sys),
            -EINVAL);
        assert_int_equal(hcs_system_new(backend, "", "{\"VirtualMachine\":{}}", NULL, NULL, &sys),
                         -EINVAL);
        assert_int_equal(hcs_system_new(backend, "a", "not json", NULL, NULL, &sys), -EINVAL);
        assert_int_equal(hcs_system_new(backend, "a", "{}", NULL, NULL, &sys), -EINVAL);
        assert_int_equal(
            hcs_system_new(
                backend, "a",
                "{\"VirtualMachine\":{\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":-1}}}}", NULL,
                NULL, &sys),
            -EINVAL);
        assert_int_equal(hcs_system_new(backend, "a",
                                        "{\"VirtualMachine\":{\"Devices\":{\"Scsi\":{\"7\":{}}}}}",
                                        NULL, NULL, &sys),
                         -EINVAL);
        assert_int_equal(hcs_system_new(backend, "a",
                                        "{\"VirtualMachine\":{\"Devices\":{\"Scsi\":{\"0\":{"
                                        "\"Attachments\":{\"64\":{\"Path\":\"/x\"}}}}}}}",
                                        NULL, NULL, &sys),
                         -EINVAL);
        assert_null(sys);
}

static void exit_cb(int r, void *ud)
{
        struct result *x = ud;
        x->done = true;
        x->r = r;
}

static void test_lifecycle(void **state)
{
        struct notes n = {0};
        struct hcs_system *sys = new_system("vm1", 8, 1000, NULL, &n);
        assert_string_equal(hcs_system_id(sys), "vm1");
        assert_int_equal(SYNC(hcs_start, sys), -EBUSY);
        assert_int_equal(SYNC(hcs_terminate, sys), -EBUSY);
        assert_int_equal(SYNC(hcs_create, sys), 0);
        assert_int_equal(SYNC(hcs_create, sys), -EEXIST);
        struct json_object *p = properties(sys);
        assert_string_equal(prop_str(p, "State"), "Created");
        json_object_put(p);
        assert_int_equal(SYNC(hcs_start, sys), 0);
        assert_int_equal(SYNC(hcs_start, sys), -EBUSY);
        assert_runs(sys, true);
        p = properties(sys);
        struct json_object *ci = NULL;
        assert_true(json_object_object_get_ex(p, "CompatibilityInfo", &ci));
        assert_int_equal(json_object_get_int(json_object_object_get(p, "MemorySizeInMB")), 8);
        json_object_put(p);

        assert_int_equal(SYNC(hcs_resume, sys), -EBUSY);
        assert_int_equal(SYNC(hcs_pause, sys), 0);
        assert_int_equal(SYNC(hcs_pause, sys), -EBUSY);
        p = properties(sys);
        assert_string_equal(prop_str(p, "State"), "Paused");
        int64_t d0 = stat_i64(p, "PagesDirtied");
        json_object_put(p);
        run_for_ms(20);
        p = properties(sys);
        assert_int_equal(stat_i64(p, "PagesDirtied"), d0); /* paused: no writes */
        json_object_put(p);
        assert_int_equal(SYNC(hcs_resume, sys), 0);
        assert_runs(sys, true);

        struct result w1 = {0}, w2 = {0};
        assert_int_equal(hcs_wait(sys, exit_cb, &w1), 0);
        run_for_ms(5);
        assert_false(w1.done);
        assert_int_equal(SYNC(hcs_terminate, sys), 0);
        run_until(&w1.done, 5000);
        assert_int_equal(w1.r, 0);
        assert_int_equal(hcs_wait(sys, exit_cb, &w2), 0); /* after exit: completes at once */
        run_until(&w2.done, 5000);
        assert_int_equal(SYNC(hcs_terminate, sys), -EALREADY);
        assert_int_equal(SYNC(hcs_start, sys), -EBUSY);
        p = properties(sys);
        assert_string_equal(prop_str(p, "State"), "Stopped");
        json_object_put(p);
        close_system(sys);
}

/* The Queries form: {"Queries":{…}} → *ret_json (NULL on error); returns the result. */
static int query(struct hcs_system *sys, const char *q, struct json_object **ret_json)
{
        struct result x = {0};
        int r = hcs_properties_query(sys, q, on_json, &x);
        if (r < 0)
                return r;
        run_until(&x.done, 5000);
        *ret_json = x.json;
        return x.r;
}

static struct json_object *response(struct json_object *o, const char *name)
{
        struct json_object *pr = NULL, *v = NULL;
        assert_true(json_object_object_get_ex(o, "PropertyResponses", &pr));
        return json_object_object_get_ex(pr, name, &v) ? v : NULL;
}

static void test_properties_query(void **state)
{
        struct notes n = {0};
        struct hcs_system *sys = new_system("q1", 8, 1000, NULL, &n);
        struct json_object *o = NULL;

        /* malformed requests are refused before anything runs */
        assert_int_equal(hcs_properties_query(sys, "{", on_json, &(struct result){0}), -EINVAL);
        assert_int_equal(hcs_properties_query(sys, NULL, on_json, &(struct result){0}), -EINVAL);
        assert_int_equal(SYNC(hcs_create, sys), 0);
        /* created, not running: no compatibility blob to give */
        assert_int_equal(query(sys, "{\"Queries\":{\"CompatibilityInfo\":null}}", &o), 0);
        assert_null(response(o, "CompatibilityInfo"));
        json_object_put(o);

        assert_int_equal(SYNC(hcs_start, sys), 0);
        assert_int_equal(query(sys,
                               "{\"Queries\":{\"Statistics\":null,\"Memory\":null,"
                               "\"CompatibilityInfo\":null}}",
                               &o),
                         0);
        struct json_object *ci = response(o, "CompatibilityInfo"), *data = NULL;
        assert_non_null(ci);
        assert_true(json_object_object_get_ex(ci, "Data", &data));
        assert_true(json_object_get_string_len(data) > 0);
        struct json_object *mem = response(o, "Memory"), *vmm = NULL, *assigned = NULL;
        assert_non_null(mem);
        assert_true(json_object_object_get_ex(mem, "VirtualMachineMemory", &vmm));
        assert_true(json_object_object_get_ex(vmm, "AssignedMemory", &assigned));
        assert_int_equal(json_object_get_int64(assigned), 8 * 256); /* 8 MiB in 4 KiB pages */
        assert_non_null(response(o, "Statistics"));
        json_object_put(o);

        /* only the names asked for come back */
        assert_int_equal(query(sys, "{\"Queries\":{\"Memory\":null}}", &o), 0);
        assert_null(response(o, "Statistics"));
        assert_non_null(response(o, "Memory"));
        json_object_put(o);

        /* an unknown name or a request without Queries: -EINVAL, and the system runs on */
        o = NULL;
        assert_int_equal(query(sys, "{\"Queries\":{\"Nonsense\":null}}", &o), -EINVAL);
        assert_null(o);
        assert_int_equal(query(sys, "{\"PropertyTypes\":[]}", &o), -EINVAL);
        assert_null(o);
        assert_runs(sys, true);
        close_system(sys);
}

static const char *modify_req(char *buf, size_t size, const char *path, const char *type,
                              const char *settings)
{
        ferry_bprintf(buf, size, "{\"ResourcePath\":\"%s\",\"RequestType\":\"%s\",\"Settings\":%s}",
                      path, type, settings ? settings : "{}");
        return buf;
}

static int modify(struct hcs_system *sys, const char *path, const char *type, const char *settings)
{
        char req[512];
        return SYNC(hcs_modify, sys, modify_req(req, sizeof(req), path, type, settings));
}

static void test_modify_devices(void **state)
{
        struct notes n = {0};
        struct hcs_system *sys = running_system("vm2", 8, 0, &n);
        const char *disk = "{\"Path\":\"/img/d1.vhdx\",\"Type\":\"VirtualDisk\"}";
        /* SCSI: controller 0 LUN 0 is the rootfs from the document. */
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/0", "Add", disk),
                         -EEXIST);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/1", "Add", disk),
                         0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/1", "Add", disk),
                         -EEXIST);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/1/Attachments/5", "Add", disk),
                         0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/2/Attachments/0", "Add", disk),
                         -ENOENT);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/64", "Add", disk),
                         -ERANGE);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/4/Attachments/0", "Add", disk),
                         -ERANGE);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/x", "Add", disk),
                         -EINVAL);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/2", "Add", "{}"),
                         -EINVAL);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/9", "Remove", NULL),
                         -ENOENT);
        /* A disk the guest has mounted cannot be pulled. */
        assert_int_equal(sim_guest_scsi_mount(vm_of(sys), 0, 1, "/run/d1"), 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/1", "Remove", NULL),
                         -EBUSY);
        assert_int_equal(sim_guest_scsi_unmount(vm_of(sys), "/run/d1"), 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/1", "Remove", NULL),
                         0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Scsi/0/Attachments/1", "Remove", NULL),
                         -ENOENT);

        /* Plan9. */
        const char *share = "{\"Path\":\"/srv/s1\",\"ReadOnly\":true}";
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Plan9/Shares/share0", "Add", share),
                         -EEXIST);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Plan9/Shares/s1", "Add", share), 0);
        assert_int_equal(sim_guest_plan9_mount(vm_of(sys), "s1", "/mnt/s1"), 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Plan9/Shares/s1", "Remove", NULL),
                         -EBUSY);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Plan9/Shares/nope", "Remove", NULL),
                         -ENOENT);
        /* VPCI. */
        assert_int_equal(modify(sys, "VirtualMachine/Devices/VirtualPci/gpu0", "Add", "{}"), 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/VirtualPci/gpu0", "Add", "{}"),
                         -EEXIST);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/VirtualPci/gpu0", "Remove", NULL), 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/VirtualPci/gpu0", "Remove", NULL),
                         -ENOENT);
        /* NICs: one in use by the guest cannot be removed. */
        assert_int_equal(modify(sys, "VirtualMachine/Devices/NetworkAdapters/nic0", "Add", "{}"),
                         -EEXIST);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/NetworkAdapters/nic1", "Add", "{}"),
                         0);
        assert_int_equal(sim_guest_netns_add(vm_of(sys), "ns1"), 0);
        assert_int_equal(sim_guest_nic_add(vm_of(sys), "ns1", "nic1"), 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/NetworkAdapters/nic1", "Remove", NULL),
                         -EBUSY);
        assert_int_equal(sim_guest_nic_remove(vm_of(sys), "ns1", "nic1"), 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/NetworkAdapters/nic1", "Remove", NULL),
                         0);
        /* Malformed requests. */
        assert_int_equal(modify(sys, "VirtualMachine/Devices/Floppy/0", "Add", "{}"), -EINVAL);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/VirtualPci/gpu0", "Update", "{}"),
                         -EINVAL);
        struct result x = {0};
        assert_int_equal(hcs_modify(sys, "nope", on_done, &x), -EINVAL);

        struct json_object *p = properties(sys);
        struct json_object *dev = json_object_object_get(p, "Devices");
        struct json_object *scsi1 = json_object_object_get(
            json_object_object_get(json_object_object_get(dev, "Scsi"), "1"), "Attachments");
        assert_non_null(json_object_object_get(scsi1, "5"));
        json_object_put(p);
        /* While migrating the VM refuses device changes. */
        struct result ri = {0};
        assert_int_equal(hcs_lm_initialize(sys, NULL, on_blob, &ri), 0);
        run_until(&ri.done, 5000);
        assert_int_equal(ri.r, 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/VirtualPci/gpu1", "Add", "{}"),
                         -EBUSY);
        assert_int_equal(SYNC(hcs_lm_cancel, sys), 0);
        assert_int_equal(modify(sys, "VirtualMachine/Devices/VirtualPci/gpu1", "Add", "{}"), 0);
        close_system(sys);
}

/* ---- migration -------------------------------------------------------------------------- */

struct mig {
        struct hcs_system *src, *dst;
        struct notes ns, nd;
        struct result rs, rd;
        bool tcp;
        int probe[2]; /* duplicates of the two transport ends, to read their socket options */
};

/* probe: keep duplicates of the transport ends (they hold the sockets open, so not for tests
 * where one side's close must reach the other) */
static void mig_setup_probed(struct mig *m, unsigned mb, uint64_t rate, bool tcp,
                             const char *init_opts, bool probe)
{
        memset(m, 0, sizeof(*m));
        m->probe[0] = m->probe[1] = -1;
        m->tcp = tcp;
        m->src = running_system("src", mb, rate, &m->ns);
        char data[512];
        compat_b64(m->src, data, sizeof(data));
        m->dst = new_system("dst", mb, rate, data, &m->nd);
        assert_int_equal(SYNC(hcs_create, m->dst), 0);
        assert_int_equal(SYNC(hcs_start, m->dst), -EBUSY); /* incoming: only migration start */
        struct result ri = {0};
        assert_int_equal(hcs_lm_initialize(m->src, init_opts, on_blob, &ri), 0);
        run_until(&ri.done, 5000);
        assert_int_equal(ri.r, 0);
        assert_true(ri.blob_size > 0);
        int fds[2];
        if (tcp)
                tcp_pair(fds);
        else
                socket_pair(fds);
        if (probe) {
                m->probe[0] = dup(fds[0]);
                m->probe[1] = dup(fds[1]);
                assert_true(m->probe[0] >= 0 && m->probe[1] >= 0);
        }
        assert_int_equal(SYNC(hcs_lm_start_source, m->src, fds[0], 42), 0);
        assert_int_equal(SYNC(hcs_lm_start_destination, m->dst, fds[1], 42), 0);
        wait_note(&m->ns, HCS_EVENT_SETUP_DONE, 1);
        wait_note(&m->nd, HCS_EVENT_SETUP_DONE, 1);
        assert_int_equal(m->ns.count[HCS_EVENT_SETUP_DONE], 1);
        assert_int_equal(m->nd.count[HCS_EVENT_SETUP_DONE], 1);
}

static void mig_setup(struct mig *m, unsigned mb, uint64_t rate, bool tcp, const char *init_opts)
{
        mig_setup_probed(m, mb, rate, tcp, init_opts, false);
}

static void mig_transfer_start(struct mig *m)
{
        assert_int_equal(hcs_lm_transfer(m->src, on_done, &m->rs), 0);
        assert_int_equal(hcs_lm_transfer(m->dst, on_done, &m->rd), 0);
}

static void mig_transfer_wait(struct mig *m)
{
        run_until(&m->rs.done, 30000);
        run_until(&m->rd.done, 30000);
        run_for_ms(1); /* drain notifications */
}

static void mig_close(struct mig *m)
{
        for (int i = 0; i < 2; i++)
                if (m->probe[i] >= 0)
                        close(m->probe[i]);
        close_system(m->src);
        close_system(m->dst);
}

/* Guest content for the source: two containers, processes, one exited with a code, mounts,
 * a network namespace with a NIC, raised counters. */
static void populate_guest(struct hcs_system *sys, uint32_t *ret_live_pid, uint32_t *ret_dead_pid)
{
        struct sim_vm *vm = vm_of(sys);
        uint32_t init1, init2, p1, p2;
        assert_int_equal(sim_guest_create_container(vm, "c1"), 0);
        assert_int_equal(sim_guest_create_container(vm, "c2"), 0);
        assert_int_equal(sim_guest_start_container(vm, "c1", &init1), 0);
        assert_int_equal(sim_guest_start_container(vm, "c2", &init2), 0);
        assert_int_equal(sim_guest_start_process(vm, "c1", &p1), 0);
        assert_int_equal(sim_guest_start_process(vm, "c1", &p2), 0);
        uint32_t ports[3];
        assert_int_equal(sim_guest_io_relay(vm, p1, ports), 0);
        assert_int_equal(sim_guest_exit_process(vm, p2, 7), 0);
        assert_int_equal(sim_guest_scsi_mount(vm, 0, 0, "/run/rootfs"), 0);
        assert_int_equal(sim_guest_plan9_mount(vm, "share0", "/mnt/share0"), 0);
        assert_int_equal(sim_guest_netns_add(vm, "ns0"), 0);
        assert_int_equal(sim_guest_nic_add(vm, "ns0", "nic0"), 0);
        assert_int_equal(sim_guest_raise_floors(vm, 5000, 0x40001000), 0);
        *ret_live_pid = p1;
        *ret_dead_pid = p2;
}

static void assert_guest_equal(struct hcs_system *a, struct hcs_system *b)
{
        struct sim_vm *va = vm_of(a), *vb = vm_of(b);
        pthread_mutex_lock(&va->lock);
        struct json_object *ja = sim_guest_to_json_locked(&va->guest);
        pthread_mutex_unlock(&va->lock);
        pthread_mutex_lock(&vb->lock);
        struct json_object *jb = sim_guest_to_json_locked(&vb->guest);
        pthread_mutex_unlock(&vb->lock);
        if (!json_object_equal(ja, jb))
                fail_msg("guest state differs:\n%s\n%s", json_object_to_json_string(ja),
                         json_object_to_json_string(jb));
        json_object_put(ja);
        json_object_put(jb);
}

static void migrate_and_check(bool tcp)
{
        struct mig m;
        mig_setup_probed(&m, MB, 5000, tcp, NULL, true);
        uint32_t live, dead;
        populate_guest(m.src, &live, &dead);
        mig_transfer_start(&m);
        mig_transfer_wait(&m);
        assert_int_equal(m.rs.r, 0);
        assert_int_equal(m.rd.r, 0);

        /* The source is in blackout (workload stopped), so its image is final. */
        assert_int_equal(image_hash(m.src), image_hash(m.dst));
        assert_guest_equal(m.src, m.dst);
        assert_true(m.ns.max_pass >= 2);
        assert_int_equal(m.ns.count[HCS_EVENT_BLACKOUT_STARTED], 1);
        assert_int_equal(m.ns.count[HCS_EVENT_BLACKOUT_EXITED], 1);
        assert_int_equal(m.ns.count[HCS_EVENT_MIGRATION_DONE], 1);
        assert_int_equal(m.ns.count[HCS_EVENT_MIGRATION_FAILED], 0);
        assert_int_equal(m.nd.count[HCS_EVENT_BLACKOUT_STARTED], 1);
        assert_true(m.nd.count[HCS_EVENT_TRANSFER_IN_PROGRESS] >= 2);
        assert_true(m.ns.bytes >= (uint64_t)MB << 20);
        /* Over TCP both ends send without Nagle: the blackout's last small records would
         * otherwise wait 40 ms on the peer's delayed ACK. */
        for (int i = 0; tcp && i < 2; i++) {
                int on = 0;
                socklen_t len = sizeof(on);
                assert_int_equal(getsockopt(m.probe[i], IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
                assert_int_equal(on, 1);
        }
        /* A cancel after the commit finds nothing to abort. */
        assert_int_equal(SYNC(hcs_lm_cancel, m.src), -EALREADY);

        struct result ws = {0};
        assert_int_equal(hcs_wait(m.src, exit_cb, &ws), 0);
        assert_int_equal(SYNC(hcs_lm_finalize, m.src, false), 0);
        run_until(&ws.done, 5000);
        assert_int_equal(SYNC(hcs_lm_finalize, m.dst, true), 0);
        wait_note(&m.nd, HCS_EVENT_MIGRATION_DONE, 1);
        assert_int_equal(m.nd.count[HCS_EVENT_MIGRATION_DONE], 1);
        assert_int_equal(m.nd.count[HCS_EVENT_BLACKOUT_EXITED], 1);
        assert_true(m.nd.blackout_us > 0);
        assert_runs(m.dst, true);
        struct json_object *p = properties(m.src);
        assert_string_equal(prop_str(p, "State"), "Stopped");
        json_object_put(p);
        /* The destination's guest carries on: the dead process keeps its code, the live one
         * still runs and can exit there. */
        bool exited;
        int code;
        assert_int_equal(sim_guest_process_status(vm_of(m.dst), dead, &exited, &code), 0);
        assert_true(exited);
        assert_int_equal(code, 7);
        assert_int_equal(sim_guest_process_status(vm_of(m.dst), live, &exited, &code), 0);
        assert_false(exited);
        assert_int_equal(sim_guest_exit_process(vm_of(m.dst), live, 3), 0);
        assert_int_equal(sim_guest_container_count(vm_of(m.dst)), 2);
        uint64_t req;
        uint32_t port;
        assert_int_equal(sim_guest_counters(vm_of(m.dst), &req, &port), 0);
        assert_true(req >= 5000 && port >= 0x40001000);
        mig_close(&m);
}

static void test_migrate_socketpair(void **state)
{
        migrate_and_check(false);
}

static void test_migrate_tcp(void **state)
{
        migrate_and_check(true);
}

static void test_heavy_dirty_converges_by_pass_limit(void **state)
{
        struct mig m;
        /* 32 MiB = 8192 pages, dirtied at 400k pages/s: never under the threshold. */
        mig_setup(&m, MB, 400000, false,
                  "{\"MemoryTransferThrottleParams\":{\"MaximumNumberOfBrownoutTransferPasses\":4},"
                  "\"Sim\":{\"DirtyPageThreshold\":16}}");
        /* A pass can finish between two workload ticks and see nothing dirty; stalling every
         * pass for several ticks makes "never under the threshold" hold on any machine. */
        struct hcs_fault_spec stall = {.nth = 0, .stall_ms = 5};
        assert_int_equal(hcs_fault_arm("transfer.pass", &stall), 0);
        mig_transfer_start(&m);
        mig_transfer_wait(&m);
        hcs_fault_disarm("transfer.pass");
        assert_int_equal(m.rs.r, 0);
        assert_int_equal(m.rd.r, 0);
        assert_int_equal(image_hash(m.src), image_hash(m.dst));
        /* 4 brownout passes and the blackout pass. */
        assert_int_equal(vm_of(m.src)->last_passes, 5);
        assert_int_equal(m.ns.max_pass, 5);
        assert_int_equal(SYNC(hcs_lm_finalize, m.dst, true), 0);
        assert_runs(m.dst, true);
        /* The source may also be rolled back after a completed transfer. */
        assert_int_equal(SYNC(hcs_lm_finalize, m.src, true), 0);
        assert_runs(m.src, true);
        mig_close(&m);
}

/* After any failure or cancel the source runs on, and a finalize(resume) is harmless. */
static void assert_source_recovered(struct mig *m)
{
        assert_runs(m->src, true);
        assert_int_equal(m->ns.count[HCS_EVENT_RECOVERY_DONE], 1);
        assert_int_equal(SYNC(hcs_lm_finalize, m->src, true), 0);
        assert_runs(m->src, true);
}

static void test_cancel_after_initialize(void **state)
{
        struct notes n = {0};
        struct hcs_system *sys = running_system("src", 8, 5000, &n);
        struct result ri = {0};
        assert_int_equal(hcs_lm_initialize(sys, NULL, on_blob, &ri), 0);
        run_until(&ri.done, 5000);
        assert_int_equal(SYNC(hcs_pause, sys), -EBUSY);
        assert_int_equal(SYNC(hcs_lm_cancel, sys), 0);
        wait_note(&n, HCS_EVENT_RECOVERY_DONE, 1);
        assert_int_equal(n.count[HCS_EVENT_MIGRATION_FAILED], 1);
        assert_int_equal(n.fail_result, HCS_RESULT_CANCELLED);
        assert_int_equal(n.count[HCS_EVENT_RECOVERY_DONE], 1);
        assert_runs(sys, true);
        assert_int_equal(SYNC(hcs_lm_cancel, sys), -EALREADY);
        close_system(sys);
}

static void test_cancel_after_start(void **state)
{
        struct mig m;
        mig_setup(&m, 8, 5000, false, NULL);
        assert_int_equal(SYNC(hcs_lm_cancel, m.src), 0);
        assert_int_equal(SYNC(hcs_lm_transfer, m.src), -EBUSY);
        assert_int_equal(SYNC(hcs_lm_cancel, m.dst), 0);
        assert_int_equal(SYNC(hcs_lm_transfer, m.dst), -EBUSY);
        wait_note(&m.nd, HCS_EVENT_MIGRATION_FAILED, 1);
        assert_int_equal(m.nd.fail_result, HCS_RESULT_CANCELLED);
        assert_source_recovered(&m);
        assert_int_equal(SYNC(hcs_lm_finalize, m.dst, true), -EBUSY);
        assert_int_equal(SYNC(hcs_lm_finalize, m.dst, false), 0);
        mig_close(&m);
}

/* Arms point to hold the transfer at its nth check, so that the test's call lands inside the
 * step whatever the machine's load (a timed stall lost that race on a loaded machine). The
 * first pass's end is the brownout's one sure point: a second pass needs the workload to have
 * dirtied a page meanwhile, which a loaded machine may not schedule it to do. */
static void hold_at(const char *point, uint32_t nth)
{
        assert_int_equal(hcs_fault_arm(point, &(struct hcs_fault_spec){.nth = nth, .hold = true}),
                         0);
}

static void test_cancel_source_during_brownout(void **state)
{
        struct mig m;
        mig_setup(&m, MB, 20000, false, NULL);
        /* The first pass is held at its end, so the cancel lands in the brownout. */
        hold_at("transfer.pass", 1);
        mig_transfer_start(&m);
        wait_held("transfer.pass");
        assert_int_equal(SYNC(hcs_lm_cancel, m.src), 0);
        assert_int_equal(hcs_fault_release("transfer.pass"), 0);
        mig_transfer_wait(&m);
        assert_int_equal(m.rs.r, -ECANCELED);
        assert_true(m.rd.r == -ECONNRESET || m.rd.r == -EPIPE);
        assert_int_equal(m.ns.fail_result, HCS_RESULT_CANCELLED);
        assert_int_equal(m.nd.count[HCS_EVENT_MIGRATION_FAILED], 1);
        assert_source_recovered(&m);
        mig_close(&m);
}

static void test_cancel_destination_during_transfer(void **state)
{
        struct mig m;
        mig_setup(&m, MB, 20000, true, NULL);
        /* held at the first pass's end: the destination has taken that pass's pages, so it
         * is inside its transfer */
        hold_at("transfer.pass", 1);
        mig_transfer_start(&m);
        wait_held("transfer.pass");
        assert_int_equal(SYNC(hcs_lm_cancel, m.dst), 0);
        assert_int_equal(hcs_fault_release("transfer.pass"), 0);
        mig_transfer_wait(&m);
        assert_int_equal(m.rd.r, -ECANCELED);
        assert_true(m.rs.r == -EPIPE || m.rs.r == -ECONNRESET);
        assert_int_equal(m.ns.fail_result, HCS_RESULT_SOURCE_FAILED);
        assert_source_recovered(&m);
        mig_close(&m);
}

static void test_cancel_during_blackout(void **state)
{
        struct mig m;
        mig_setup(&m, MB, 5000, false, NULL);
        /* The source stalls inside the blackout, just before it sends the checksum. */
        hold_at("transfer.corrupt_checksum", 1);
        mig_transfer_start(&m);
        wait_held("transfer.corrupt_checksum");
        /* emitted before the hold: its delivery on the loop is all that is left to wait for */
        run_until_cond(m.ns.count[HCS_EVENT_BLACKOUT_STARTED] > 0, 5000);
        assert_int_equal(SYNC(hcs_lm_cancel, m.src), 0);
        assert_int_equal(hcs_fault_release("transfer.corrupt_checksum"), 0);
        mig_transfer_wait(&m);
        assert_int_equal(m.rs.r, -ECANCELED);
        assert_true(m.rd.r < 0); /* no commit: the destination never owns the VM */
        assert_source_recovered(&m);
        assert_int_equal(SYNC(hcs_lm_finalize, m.dst, true), -EBUSY);
        mig_close(&m);
}

static void test_terminate_during_transfer(void **state)
{
        struct mig m;
        mig_setup(&m, MB, 20000, false, NULL);
        /* held at the first pass's end: the destination has taken that pass's pages, so it
         * is inside its transfer */
        hold_at("transfer.pass", 1);
        mig_transfer_start(&m);
        wait_held("transfer.pass");
        assert_int_equal(SYNC(hcs_terminate, m.dst), 0);
        assert_int_equal(hcs_fault_release("transfer.pass"), 0);
        mig_transfer_wait(&m);
        assert_int_equal(m.rd.r, -ECANCELED);
        assert_true(m.rs.r < 0);
        assert_source_recovered(&m);
        mig_close(&m);
}

static void drop_test(const char *point, uint64_t bytes, bool tcp)
{
        struct mig m;
        mig_setup(&m, MB, 5000, tcp, NULL);
        assert_int_equal(
            hcs_fault_arm(point, &(struct hcs_fault_spec){.nth = 1, .drop_after_bytes = bytes}), 0);
        mig_transfer_start(&m);
        mig_transfer_wait(&m);
        assert_true(m.rs.r == -EPIPE || m.rs.r == -ECONNRESET);
        assert_true(m.rd.r == -EPIPE || m.rd.r == -ECONNRESET);
        assert_int_equal(m.ns.count[HCS_EVENT_MIGRATION_FAILED], 1);
        assert_int_equal(m.nd.count[HCS_EVENT_MIGRATION_FAILED], 1);
        assert_int_equal(m.ns.fail_origin, HCS_ORIGIN_SOURCE);
        assert_source_recovered(&m);
        mig_close(&m);
}

static void test_source_drops_mid_pass(void **state)
{
        drop_test("transfer.source_drop_after_bytes", 10u << 20, false);
}

static void test_destination_drops_mid_pass(void **state)
{
        drop_test("transfer.destination_drop_after_bytes", (10u << 20) + 123, true);
}

static void test_checksum_mismatch(void **state)
{
        struct mig m;
        mig_setup(&m, MB, 5000, false, NULL);
        assert_int_equal(hcs_fault_arm("transfer.corrupt_checksum",
                                       &(struct hcs_fault_spec){.nth = 1, .error = -EBADMSG}),
                         0);
        mig_transfer_start(&m);
        mig_transfer_wait(&m);
        assert_int_equal(m.rs.r, -EBADMSG);
        assert_int_equal(m.rd.r, -EBADMSG);
        assert_int_equal(m.ns.fail_result, HCS_RESULT_DESTINATION_FAILED);
        assert_string_equal(m.ns.fail_reason, "destination checksum mismatch");
        assert_source_recovered(&m);
        mig_close(&m);
}

static void test_migrate_without_checksum(void **state)
{
        struct mig m;
        mig_setup(&m, MB, 20000, false, "{\"ChecksumVerification\":false}");
        mig_transfer_start(&m);
        mig_transfer_wait(&m);
        assert_int_equal(m.rs.r, 0);
        assert_int_equal(m.rd.r, 0);
        assert_int_equal(image_hash(m.src), image_hash(m.dst));
        assert_int_equal(SYNC(hcs_lm_finalize, m.dst, true), 0);
        assert_runs(m.dst, true);
        mig_close(&m);
}

/* A destination fed by a hostile or broken peer fails cleanly with -EPROTO. */
static void feed_destination(const void *bytes, size_t len, bool valid_hello, int expect)
{
        struct notes nd = {0};
        struct result rd = {0};
        int peer;
        struct hcs_system *dst = peer_destination(&nd, &rd, &peer);
        if (valid_hello)
                assert_int_equal(send_hello(dst, peer, 0), 0);
        assert_int_equal(write(peer, bytes, len), (ssize_t)len);
        run_until(&rd.done, 5000);
        assert_int_equal(rd.r, expect);
        close(peer);
        wait_note(&nd, HCS_EVENT_MIGRATION_FAILED, 1);
        assert_int_equal(nd.count[HCS_EVENT_MIGRATION_FAILED], 1);
        assert_int_equal(SYNC(hcs_lm_finalize, dst, true), -EBUSY);
        close_system(dst);
}

static void test_destination_rejects_bad_streams(void **state)
{
        char garbage[64];
        memset(garbage, 'x', sizeof(garbage));
        feed_destination(garbage, sizeof(garbage), false, -EPROTO);
        /* Records: {u32 type, pass, nruns, npages; u64 payload_len}. */
        uint32_t too_many_runs[6] = {1, 1, 100000, 1, 4096, 0};
        feed_destination(too_many_runs, sizeof(too_many_runs), true, -EPROTO);
        struct {
                uint32_t type, pass, nruns, npages;
                uint64_t payload_len;
                uint64_t first, count;
        } out_of_image = {1, 1, 1, 1, 4096, 1u << 30, 1};
        feed_destination(&out_of_image, sizeof(out_of_image), true, -EPROTO);
        uint32_t unknown_type[6] = {99, 1, 0, 0, 0, 0};
        feed_destination(unknown_type, sizeof(unknown_type), true, -EPROTO);
        /* Guest state before the blackout. */
        uint32_t early_state[6] = {5, 1, 0, 0, 2, 0};
        feed_destination(early_state, sizeof(early_state), true, -EPROTO);
        /* Commit without a checksum exchange. */
        uint32_t early_commit[6] = {7, 1, 0, 0, 0, 0};
        feed_destination(early_commit, sizeof(early_commit), true, -EPROTO);
}

static void test_compat_mismatch(void **state)
{
        /* A destination built with another processor count refuses the handshake. */
        struct notes ns = {0}, nd = {0};
        struct hcs_system *src = running_system("src", 8, 1000, &ns);
        char doc[2048];
        make_doc(doc, sizeof(doc), 8, 4, 1000, "");
        struct hcs_system *dst = NULL;
        assert_int_equal(hcs_system_new(backend, "dst", doc, on_note, &nd, &dst), 0);
        assert_int_equal(SYNC(hcs_create, dst), 0);
        int rs, rd;
        lm_transfer_pair(src, dst, 1, 10000, &rs, &rd);
        assert_int_equal(rs, -EINVAL);
        assert_int_equal(rd, -EINVAL);
        wait_note(&ns, HCS_EVENT_MIGRATION_FAILED, 1);
        assert_int_equal(ns.fail_result, HCS_RESULT_DESTINATION_FAILED);
        assert_runs(src, true);
        close_system(src);
        close_system(dst);
}

static void test_start_refuses_bad_socket(void **state)
{
        struct notes n = {0};
        struct hcs_system *sys = running_system("src", 8, 0, &n);
        struct result ri = {0};
        assert_int_equal(hcs_lm_start_source(sys, -1, 1, on_done, &ri), -EINVAL);
        /* Before initialize: wrong state. */
        int fds[2];
        socket_pair(fds);
        assert_int_equal(SYNC(hcs_lm_start_source, sys, fds[0], 1), -EBUSY);
        assert_int_equal(hcs_lm_initialize(sys,
                                           "{\"MemoryTransferThrottleParams\":{"
                                           "\"MaximumNumberOfBrownoutTransferPasses\":0}}",
                                           on_blob, &ri),
                         0);
        run_until(&ri.done, 5000);
        assert_int_equal(ri.r, -EINVAL);
        ri = (struct result){0};
        assert_int_equal(hcs_lm_initialize(sys, NULL, on_blob, &ri), 0);
        run_until(&ri.done, 5000);
        assert_int_equal(ri.r, 0);
        /* Not a socket; a datagram socket; an unconnected stream socket. */
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        close(p[1]);
        assert_int_equal(SYNC(hcs_lm_start_source, sys, p[0], 1), -ENOTSOCK);
        int d[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, d), 0);
        close(d[1]);
        assert_int_equal(SYNC(hcs_lm_start_source, sys, d[0], 1), -EINVAL);
        int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(SYNC(hcs_lm_start_source, sys, u, 1), -ENOTCONN);
        int ok[2];
        socket_pair(ok);
        assert_int_equal(SYNC(hcs_lm_start_source, sys, ok[0], 1), 0);
        close(ok[1]);
        close(fds[1]);
        assert_int_equal(SYNC(hcs_lm_cancel, sys), 0);
        assert_runs(sys, false);
        close_system(sys);
}

/* Every hcs.* point: the call fails with the armed error and a running source is unharmed. */
static void test_fault_points_hcs(void **state)
{
        static const char *const lifecycle[] = {"hcs.create",    "hcs.start",     "hcs.pause",
                                                "hcs.resume",    "hcs.terminate", "hcs.modify",
                                                "hcs.properties"};
        struct notes n = {0};
        for (size_t i = 0; i < ARRAY_SIZE(lifecycle); i++) {
                struct hcs_system *sys = new_system("f", 8, 2000, NULL, &n);
                const char *pt = lifecycle[i];
                struct hcs_fault_spec s = {.nth = 1, .error = -EIO};
                if (strcmp(pt, "hcs.create") == 0) {
                        assert_int_equal(hcs_fault_arm(pt, &s), 0);
                        assert_int_equal(SYNC(hcs_create, sys), -EIO);
                }
                assert_int_equal(SYNC(hcs_create, sys), 0);
                if (strcmp(pt, "hcs.start") == 0) {
                        assert_int_equal(hcs_fault_arm(pt, &s), 0);
                        assert_int_equal(SYNC(hcs_start, sys), -EIO);
                }
                assert_int_equal(SYNC(hcs_start, sys), 0);
                assert_int_equal(hcs_fault_arm(pt, &s), 0);
                if (strcmp(pt, "hcs.pause") == 0) {
                        assert_int_equal(SYNC(hcs_pause, sys), -EIO);
                } else if (strcmp(pt, "hcs.resume") == 0) {
                        assert_int_equal(hcs_fault_disarm(pt), 0);
                        assert_int_equal(SYNC(hcs_pause, sys), 0);
                        assert_int_equal(hcs_fault_arm(pt, &s), 0);
                        assert_int_equal(SYNC(hcs_resume, sys), -EIO);
                        assert_int_equal(SYNC(hcs_resume, sys), 0);
                } else if (strcmp(pt, "hcs.terminate") == 0) {
                        assert_int_equal(SYNC(hcs_terminate, sys), -EIO);
                } else if (strcmp(pt, "hcs.modify") == 0) {
                        assert_int_equal(
                            modify(sys, "VirtualMachine/Devices/VirtualPci/g", "Add", "{}"), -EIO);
                        assert_int_equal(
                            modify(sys, "VirtualMachine/Devices/VirtualPci/g", "Add", "{}"), 0);
                } else if (strcmp(pt, "hcs.properties") == 0) {
                        struct result x = {0};
                        assert_int_equal(hcs_properties(sys, on_json, &x), 0);
                        run_until(&x.done, 5000);
                        assert_int_equal(x.r, -EIO);
                        assert_null(x.json);
                }
                hcs_fault_reset();
                assert_runs(sys, true);
                close_system(sys);
        }

        /* Migration calls, each on a fresh pair. */
        static const char *const lm[] = {
            "hcs.lm_initialize", "hcs.lm_start_source", "hcs.lm_start_destination",
            "hcs.transfer",      "hcs.finalize",        "hcs.cancel",
            "transfer.pass"};
        for (size_t i = 0; i < ARRAY_SIZE(lm); i++) {
                const char *pt = lm[i];
                struct hcs_fault_spec s = {.nth = 1, .error = -ETIMEDOUT};
                struct notes ns = {0}, nd = {0};
                struct hcs_system *src = running_system("src", 8, 2000, &ns);
                char data[512];
                compat_b64(src, data, sizeof(data));
                struct hcs_system *dst = new_system("dst", 8, 2000, data, &nd);
                assert_int_equal(SYNC(hcs_create, dst), 0);
                struct result ri = {0};
                if (strcmp(pt, "hcs.lm_initialize") == 0) {
                        assert_int_equal(hcs_fault_arm(pt, &s), 0);
                        assert_int_equal(hcs_lm_initialize(src, NULL, on_blob, &ri), 0);
                        run_until(&ri.done, 5000);
                        assert_int_equal(ri.r, -ETIMEDOUT);
                        ri = (struct result){0};
                }
                assert_int_equal(hcs_lm_initialize(src, NULL, on_blob, &ri), 0);
                run_until(&ri.done, 5000);
                assert_int_equal(ri.r, 0);
                int fds[2];
                socket_pair(fds);
                if (strcmp(pt, "hcs.lm_start_source") == 0 ||
                    strcmp(pt, "hcs.lm_start_destination") == 0) {
                        int extra[2];
                        socket_pair(extra);
                        assert_int_equal(hcs_fault_arm(pt, &s), 0);
                        if (strcmp(pt, "hcs.lm_start_source") == 0)
                                assert_int_equal(SYNC(hcs_lm_start_source, src, extra[0], 9),
                                                 -ETIMEDOUT);
                        else
                                assert_int_equal(SYNC(hcs_lm_start_destination, dst, extra[0], 9),
                                                 -ETIMEDOUT);
                        /* The fd was taken and closed. */
                        char c;
                        assert_int_equal(read(extra[1], &c, 1), 0);
                        close(extra[1]);
                }
                assert_int_equal(SYNC(hcs_lm_start_source, src, fds[0], 9), 0);
                assert_int_equal(SYNC(hcs_lm_start_destination, dst, fds[1], 9), 0);
                if (strcmp(pt, "hcs.cancel") == 0) {
                        assert_int_equal(hcs_fault_arm(pt, &s), 0);
                        assert_int_equal(SYNC(hcs_lm_cancel, src), -ETIMEDOUT);
                        assert_int_equal(SYNC(hcs_lm_cancel, src), 0);
                        assert_int_equal(SYNC(hcs_lm_cancel, dst), 0);
                } else if (strcmp(pt, "hcs.transfer") == 0 || strcmp(pt, "transfer.pass") == 0) {
                        assert_int_equal(hcs_fault_arm(pt, &s), 0);
                        struct result rs = {0}, rd = {0};
                        uint64_t checks = hcs_fault_calls(pt);
                        assert_int_equal(hcs_lm_transfer(src, on_done, &rs), 0);
                        /* both sides check hcs.transfer, at the top of the call: the
                         * destination starts once the source has met the fault, so that it is
                         * the source's (transfer.pass is the source's alone) */
                        if (strcmp(pt, "hcs.transfer") == 0)
                                run_until_cond(hcs_fault_calls(pt) > checks, 10000);
                        assert_int_equal(hcs_lm_transfer(dst, on_done, &rd), 0);
                        run_until(&rs.done, 10000);
                        assert_int_equal(rs.r, -ETIMEDOUT);
                        run_until(&rd.done, 10000);
                        assert_true(rd.r == -ECONNRESET || rd.r == -EPIPE);
                        wait_note(&ns, HCS_EVENT_MIGRATION_FAILED, 1);
                        assert_int_equal(ns.count[HCS_EVENT_MIGRATION_FAILED], 1);
                        assert_int_equal(ns.fail_error, -ETIMEDOUT);
                } else if (strcmp(pt, "hcs.finalize") == 0) {
                        struct result rs = {0}, rd = {0};
                        assert_int_equal(hcs_lm_transfer(src, on_done, &rs), 0);
                        assert_int_equal(hcs_lm_transfer(dst, on_done, &rd), 0);
                        run_until(&rs.done, 10000);
                        run_until(&rd.done, 10000);
                        assert_int_equal(rs.r, 0);
                        assert_int_equal(hcs_fault_arm(pt, &s), 0);
                        assert_int_equal(SYNC(hcs_lm_finalize, src, true), -ETIMEDOUT);
                        assert_int_equal(SYNC(hcs_lm_finalize, src, true), 0);
                } else {
                        assert_int_equal(SYNC(hcs_lm_cancel, src), 0);
                }
                hcs_fault_reset();
                assert_runs(src, true);
                close_system(src);
                close_system(dst);
        }
}

static void test_close_busy(void **state)
{
        struct notes n = {0};
        struct hcs_system *sys = running_system("vm", 8, 0, &n);
        struct result x = {0};
        assert_int_equal(hcs_pause(sys, on_done, &x), 0);
        assert_int_equal(hcs_system_close(sys, NULL, NULL), -EBUSY);
        run_until(&x.done, 5000);
        /* Closing a running VM stops it. */
        close_system(sys);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            LOOP_TEST(test_backend_open),
            LOOP_TEST(test_fault_registry),
            LOOP_TEST(test_bad_documents),
            LOOP_TEST(test_lifecycle),
            LOOP_TEST(test_modify_devices),
            LOOP_TEST(test_properties_query),
            LOOP_TEST(test_close_busy),
            LOOP_TEST(test_start_refuses_bad_socket),
            LOOP_TEST(test_migrate_socketpair),
            LOOP_TEST(test_migrate_tcp),
            LOOP_TEST(test_heavy_dirty_converges_by_pass_limit),
            LOOP_TEST(test_cancel_after_initialize),
            LOOP_TEST(test_cancel_after_start),
            LOOP_TEST(test_cancel_source_during_brownout),
            LOOP_TEST(test_cancel_destination_during_transfer),
            LOOP_TEST(test_cancel_during_blackout),
            LOOP_TEST(test_terminate_during_transfer),
            LOOP_TEST(test_source_drops_mid_pass),
            LOOP_TEST(test_destination_drops_mid_pass),
            LOOP_TEST(test_checksum_mismatch),
            LOOP_TEST(test_compat_mismatch),
            LOOP_TEST(test_migrate_without_checksum),
            LOOP_TEST(test_destination_rejects_bad_streams),
            LOOP_TEST(test_fault_points_hcs),
        };
        return cmocka_run_group_tests_name("hcs", tests, NULL, NULL);
}
