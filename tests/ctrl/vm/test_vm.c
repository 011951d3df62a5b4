/* SPDX-License-Identifier: MIT */
/* The VM controller on the sim backend: cold lifecycle, a full live migration between two VM
 * controllers of one process over a socketpair (memory image and guest counters checked),
 * cancel mid-transfer, calls rejected while migrating, host-compute faults landing in the
 * spec's on_error states, and teardown from every resting state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctrl/scsi/scsi.h"
#include "ctrl/vm/vm.h"
#include "guest/guest.h"
#include "hcs/fault.h"
#include "hcs/hash.h"
#include "hcs/sim/sim.h"
#include "hcs/sim/sim_guest.h"
#include "util/util.h"

#include "call.h"
#include "loop.h"
#include "vm_transfer.h"

#define MB 16

/* The result of a guest call (guest_done_fn), recorded like a VM call's. */
static void on_gres(int r, uint64_t value, void *ud)
{
        on_res(r, ud);
}

struct notes {
        unsigned count[HCS_EVENT_MIGRATION_FAILED + 1];
};

static void on_note(struct vm *vm, const struct hcs_notification *n, void *ud)
{
        struct notes *x = ud;
        if ((unsigned)n->event <= HCS_EVENT_MIGRATION_FAILED)
                x->count[n->event]++;
}

/* A compute document: migratable (the reconnecting log forwarder on the kernel command line)
 * or not, with a rootfs disk and a Plan9 share. */
static void make_doc(char *buf, size_t size, bool migratable, uint64_t rate)
{
        ssize_t r = ferry_bprintf(
            buf, size,
            "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{\"KernelCmdLine\":"
            "\"console=hvc0 %s\"}},"
            "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":%u},\"Processor\":{\"Count\":2}},"
            "\"Devices\":{\"Scsi\":{\"0\":{\"Attachments\":{\"0\":{\"Path\":\"/img/rootfs.vhdx\","
            "\"Type\":\"VirtualDisk\",\"ReadOnly\":true}}}},"
            "\"Plan9\":{\"Shares\":[{\"Name\":\"share0\",\"Path\":\"/srv/share0\"}]}},"
            "\"Sim\":{\"DirtyPagesPerSecond\":%llu}}}",
            migratable ? VM_LM_LOG_FORWARDER : "", MB, (unsigned long long)rate);
        assert_true(r > 0);
}

static struct vm *new_vm(const char *name)
{
        struct vm *vm = NULL;
        assert_int_equal(vm_new(loop, backend, name, &vm), 0);
        assert_string_equal(vm_state_name(vm), "not_created");
        return vm;
}

static struct vm *running_vm(const char *id, bool migratable, uint64_t rate)
{
        char doc[2048];
        struct vm *vm = new_vm(id);
        make_doc(doc, sizeof(doc), migratable, rate);
        assert_int_equal(CALL(vm_create, vm, id, doc), 0);
        assert_string_equal(vm_state_name(vm), "created");
        assert_int_equal(CALL(vm_start, vm), 0);
        assert_string_equal(vm_state_name(vm), "running");
        assert_non_null(vm_guest(vm));
        assert_true(guest_protocol(vm_guest(vm)) >= GUEST_PROTOCOL_MIN);
        return vm;
}

/* Terminates vm (from wherever it is) and frees it once every callback has come back. */
static void destroy_vm(struct vm *vm)
{
        bool never = strcmp(vm_state_name(vm), "not_created") == 0;
        assert_int_equal(CALL(vm_terminate, vm), 0);
        assert_string_equal(vm_state_name(vm), never ? "not_created" : "terminated");
        assert_null(vm_system(vm));
        for (int i = 0; i < 1000 && vm_free(vm); i++)
                run_for_ms(2);
}

static struct sim_vm *sim_of(struct vm *vm)
{
        return hcs_system_backend_vm(vm_system(vm));
}

static const char *sim_state(struct vm *vm)
{
        struct sim_vm *s = sim_of(vm);
        static const char *const names[] = {"NotCreated", "Created", "Running", "Paused",
                                            "Stopped"};
        return names[s->state];
}

/* ---- cold lifecycle ----------------------------------------------------------------------- */

static void test_lifecycle(void **state)
{
        struct vm *vm = running_vm("life", false, 1000);
        assert_string_equal(sim_state(vm), "Running");
        /* Idempotent start; start and create are rejected where they do not apply. */
        assert_int_equal(CALL(vm_start, vm), 0);
        char doc[2048];
        make_doc(doc, sizeof(doc), false, 0);
        struct res x = {0};
        assert_int_equal(vm_create(vm, "again", doc, on_res, &x), -EBUSY);
        /* A VM not built for live migration refuses initialize (failed_precondition). */
        assert_int_equal(vm_initialize_source(vm, NULL, on_res, &x), -EBUSY);
        assert_string_equal(vm_state_name(vm), "running");
        assert_false(x.done);
        /* The Plan9 share stays in a non-migratable VM's document. */
        struct json_object *dev = json_object_object_get(
            json_object_object_get(vm_document(vm), "VirtualMachine"), "Devices");
        assert_non_null(json_object_object_get(dev, "Plan9"));

        struct res w = {0};
        assert_int_equal(vm_wait(vm, on_res, &w), 0);
        assert_false(w.done);
        destroy_vm(vm); /* frees it */
        assert_true(w.done);
        assert_int_equal(w.r, 0);
}

static void test_terminate_idempotent_and_exit(void **state)
{
        struct vm *vm = new_vm("idem");
        assert_int_equal(CALL(vm_terminate, vm), 0); /* not_created: ignored */
        assert_string_equal(vm_state_name(vm), "not_created");
        struct res w = {0};
        assert_int_equal(vm_wait(vm, on_res, &w), 0);
        assert_true(w.done); /* no system: at once */
        assert_null(vm_free(vm));

        /* The VM stops on its own: the exit watcher makes it terminated and tells waiters. */
        vm = running_vm("exits", false, 0);
        struct res ex = {0}, w2 = {0};
        vm_on_exit(vm, on_res, &ex);
        assert_int_equal(vm_wait(vm, on_res, &w2), 0);
        struct res hx = {0};
        assert_int_equal(hcs_terminate(vm_system(vm), on_res, &hx), 0);
        run_until(&ex.done, 5000);
        run_until(&hx.done, 5000);
        assert_true(w2.done);
        assert_int_equal(ex.calls, 1);
        assert_string_equal(vm_state_name(vm), "terminated");
        assert_null(vm_guest(vm));
        assert_int_equal(CALL(vm_terminate, vm), 0); /* terminated: ignored */
        for (int i = 0; i < 1000 && vm_free(vm); i++)
                run_for_ms(2);
}

/* ---- migration --------------------------------------------------------------------------- */

/* The VM exits while its stop finalize is in flight and the host then fails the finalize:
 * the exit must not be lost (the VM ends terminated, the exit is reported once). */
static void test_exit_during_failed_stop(void **state)
{
        struct vm *vm = running_vm("stopexit", true, 0);
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        assert_string_equal(vm_state_name(vm), "source_migration_initialized");
        struct res ex = {0}, fin = {0}, hx = {0};
        vm_on_exit(vm, on_res, &ex);
        /* the host finalize is held; the system stops meanwhile, so the finalize then fails */
        assert_int_equal(
            hcs_fault_arm("hcs.finalize", &(struct hcs_fault_spec){.nth = 1, .hold = true}), 0);
        assert_int_equal(vm_finalize(vm, false, on_res, &fin), 0);
        assert_string_equal(vm_state_name(vm), "migration_stopping");
        wait_held("hcs.finalize");
        assert_int_equal(hcs_terminate(vm_system(vm), on_res, &hx), 0);
        run_until(&hx.done, 5000);
        for (int i = 0; i < 2500 && strcmp(vm_state_name(vm), "migration_stopping") == 0; i++)
                run_for_ms(2);
        assert_false(fin.done); /* the exit was seen while the finalize was still held */
        assert_string_equal(vm_state_name(vm), "migration_stopping_exited");
        assert_int_equal(hcs_fault_release("hcs.finalize"), 0);
        run_until(&fin.done, 5000);
        assert_true(fin.r < 0); /* the caller hears the host's error ... */
        assert_int_equal(fin.calls, 1);
        assert_string_equal(vm_state_name(vm), "terminated"); /* ... but the exit stays */
        run_until(&ex.done, 5000);
        assert_int_equal(ex.calls, 1);
        assert_null(vm_system(vm));
        assert_null(vm_guest(vm));
        struct res again = {0};
        assert_int_equal(vm_finalize(vm, false, on_res, &again), -EBUSY);
        for (int i = 0; i < 1000 && vm_free(vm); i++)
                run_for_ms(2);
}

struct pair {
        struct vm *src, *dst;
        struct notes ns, nd;
        ctrl_envelope *env;
        uint64_t src_req;
        uint32_t src_port;
};

/* Source running and initialized, saved; destination imported, created, patched. */
static void pair_prepare(struct pair *p, uint64_t rate)
{
        memset(p, 0, sizeof(*p));
        p->src = running_vm("src", true, rate);
        vm_subscribe(p->src, on_note, &p->ns);
        /* The migratable VM's document carries no Plan9 share. */
        struct json_object *dev = json_object_object_get(
            json_object_object_get(vm_document(p->src), "VirtualMachine"), "Devices");
        assert_null(json_object_object_get(dev, "Plan9"));
        /* Guest state that must arrive: a container and raised counters. */
        assert_int_equal(sim_guest_create_container(sim_of(p->src), "c1"), 0);
        struct res fl = {0};
        assert_int_equal(guest_raise_floors(vm_guest(p->src), 5000, 0x40001000, on_gres, &fl), 0);
        run_until(&fl.done, 5000);
        assert_int_equal(fl.r, 0);

        assert_int_equal(CALL(vm_initialize_source, p->src, NULL), 0);
        assert_string_equal(vm_state_name(p->src), "source_migration_initialized");
        assert_true(vm_is_migrating(p->src));
        size_t blob_len = 0;
        vm_compat_blob(p->src, &blob_len);
        assert_true(blob_len > 0);

        assert_int_equal(vm_save(p->src, &p->env), 0);
        assert_string_equal(p->env->type_url, "type.ferry.dev/ferry.vm.save.v1.Payload");
        assert_int_equal(p->env->schema_version, VM_SCHEMA_VERSION);
        assert_int_equal(guest_counters(vm_guest(p->src), &p->src_req, &p->src_port), 0);
        assert_true(p->src_req >= 5000 && p->src_port >= 0x40001000);

        p->dst = new_vm("dst");
        vm_subscribe(p->dst, on_note, &p->nd);
        assert_int_equal(vm_import(p->dst, p->env), 0);
        assert_string_equal(vm_state_name(p->dst), "destination_migration_imported");
        uint64_t req;
        uint32_t port;
        vm_imported_floors(p->dst, &req, &port);
        assert_int_equal(req, p->src_req);
        assert_int_equal(port, p->src_port);
        size_t dst_blob = 0;
        vm_compat_blob(p->dst, &dst_blob);
        assert_int_equal(dst_blob, blob_len);
        /* The destination host keeps its disks elsewhere. */
        assert_int_equal(vm_remap_disk(p->dst, "/img/rootfs.vhdx", "/dst/img/rootfs.vhdx"), 0);
        assert_int_equal(vm_remap_disk(p->dst, "/nowhere", "/dst/x"), -ENOENT);
        assert_int_equal(CALL(vm_create_destination, p->dst, "dst", NULL), 0);
        assert_string_equal(vm_state_name(p->dst), "destination_migration_created");
        assert_int_equal(CALL(vm_patch, p->dst), 0);
        assert_string_equal(vm_state_name(p->dst), "destination_migration_patched");
}

static void pair_start(struct pair *p)
{
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(CALL(vm_start_destination, p->dst, fds[1], 7), 0);
        assert_string_equal(vm_state_name(p->dst), "destination_migration_started");
        assert_int_equal(CALL(vm_start_source, p->src, fds[0], 7), 0);
        assert_string_equal(vm_state_name(p->src), "source_migration_started");
}

static void pair_free(struct pair *p)
{
        ctrl_envelope_free(p->env);
        destroy_vm(p->src);
        destroy_vm(p->dst);
}

/* After a rollback on the source: discards the destination (finalized without resume, it ends
 * terminated) and frees the pair. */
static void pair_drop_destination(struct pair *p)
{
        assert_int_equal(CALL(vm_finalize, p->dst, false), 0);
        assert_string_equal(vm_state_name(p->dst), "terminated");
        ctrl_envelope_free(p->env);
        destroy_vm(p->src);
        for (int i = 0; i < 1000 && vm_free(p->dst); i++)
                run_for_ms(2);
}

static void test_migrate(void **state)
{
        struct pair p;
        pair_prepare(&p, 3000);
        pair_start(&p);

        struct res rs = {0}, rd = {0};
        assert_int_equal(vm_transfer(p.src, on_res, &rs), 0);
        assert_int_equal(vm_transfer(p.dst, on_res, &rd), 0);
        assert_string_equal(vm_state_name(p.src), "source_migration_transferring");
        /* While the transfer runs, other calls wait their turn (unavailable). */
        struct res no = {0};
        assert_int_equal(vm_finalize(p.src, true, on_res, &no), -ENOTCONN);
        run_until(&rs.done, 30000);
        run_until(&rd.done, 30000);
        assert_int_equal(rs.r, 0);
        assert_int_equal(rd.r, 0);
        assert_string_equal(vm_state_name(p.src), "migration_transfer_completed");
        assert_string_equal(vm_state_name(p.dst), "migration_transfer_completed");
        /* The source is in its blackout, so its image is final and the destination's equal. */
        struct sim_vm *s = sim_of(p.src), *d = sim_of(p.dst);
        assert_int_equal(hcs_hash64(s->mem, s->mem_size, 1), hcs_hash64(d->mem, d->mem_size, 1));

        assert_int_equal(CALL(vm_finalize, p.dst, true), 0);
        assert_string_equal(vm_state_name(p.dst), "migration_finalized");
        assert_int_equal(CALL(vm_finalize, p.src, false), 0);
        assert_string_equal(vm_state_name(p.src), "terminated");
        assert_null(vm_system(p.src));

        /* Before resume no guest bridge exists on the destination. */
        assert_null(vm_guest(p.dst));
        assert_int_equal(CALL(vm_resume, p.dst), 0);
        assert_string_equal(vm_state_name(p.dst), "running");
        assert_false(vm_is_migrating(p.dst));
        assert_true(guest_protocol(vm_guest(p.dst)) >= GUEST_PROTOCOL_MIN);
        assert_int_equal(CALL(vm_resume, p.dst), 0); /* idempotent */
        /* The floors were raised: ids issued now are at or above the source's counters. */
        uint64_t req;
        uint32_t port;
        assert_int_equal(guest_counters(vm_guest(p.dst), &req, &port), 0);
        assert_true(req >= p.src_req);
        assert_true(port >= p.src_port);
        assert_int_equal(sim_guest_container_count(sim_of(p.dst)), 1);
        assert_string_equal(sim_state(p.dst), "Running");
        /* Notifications were forwarded on both sides. */
        run_for_ms(5);
        assert_true(p.ns.count[HCS_EVENT_TRANSFER_IN_PROGRESS] >= 1);
        assert_int_equal(p.ns.count[HCS_EVENT_MIGRATION_DONE], 1);
        assert_int_equal(p.nd.count[HCS_EVENT_MIGRATION_DONE], 1);
        assert_int_equal(p.ns.count[HCS_EVENT_MIGRATION_FAILED], 0);
        pair_free(&p);
}

static void test_rejected_while_migrating(void **state)
{
        struct pair p;
        pair_prepare(&p, 0);
        char doc[2048];
        make_doc(doc, sizeof(doc), true, 0);
        struct res x = {0};
        /* Source: every non-migration call is failed_precondition and changes nothing. */
        assert_int_equal(vm_create(p.src, "x", doc, on_res, &x), -EBUSY);
        assert_int_equal(vm_start(p.src, on_res, &x), -EBUSY);
        assert_int_equal(vm_initialize_source(p.src, NULL, on_res, &x), -EBUSY);
        assert_int_equal(vm_import(p.src, p.env), -EBUSY);
        assert_int_equal(vm_transfer(p.src, on_res, &x), -EBUSY); /* not started yet */
        assert_int_equal(vm_resume(p.src, on_res, &x), -EBUSY);
        assert_string_equal(vm_state_name(p.src), "source_migration_initialized");
        /* Save is repeatable. */
        ctrl_envelope *again = NULL;
        assert_int_equal(vm_save(p.src, &again), 0);
        ctrl_envelope_free(again);
        /* Destination: out-of-order calls. */
        assert_int_equal(vm_create(p.dst, "x", doc, on_res, &x), -EBUSY);
        assert_int_equal(vm_save(p.dst, &again), -EBUSY);
        assert_int_equal(vm_patch(p.dst, on_res, &x), -EBUSY); /* already patched */
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        /* A rejected start_source still takes (closes) its fd. */
        assert_int_equal(vm_start_source(p.dst, fds[0], 1, on_res, &x), -EBUSY);
        assert_int_equal(send(fds[1], "x", 1, MSG_NOSIGNAL), -1);
        close(fds[1]);
        assert_string_equal(vm_state_name(p.dst), "destination_migration_patched");
        assert_false(x.done);
        /* A second import into an imported VM is refused. */
        struct vm *other = new_vm("other");
        assert_int_equal(vm_import(other, NULL), -EINVAL);
        assert_string_equal(vm_state_name(other), "not_created");
        assert_null(vm_free(other));
        /* The source still runs under all this. */
        assert_string_equal(sim_state(p.src), "Running");
        pair_free(&p);
}

struct cancel_ctx {
        struct vm *vm;
        struct res res;
        bool issued;
};

static void cancel_on_progress(struct vm *vm, const struct hcs_notification *n, void *ud)
{
        struct cancel_ctx *c = ud;
        if (n->event == HCS_EVENT_TRANSFER_IN_PROGRESS && !c->issued) {
                c->issued = true;
                assert_int_equal(vm_cancel(vm, on_res, &c->res), 0);
        }
}

static void test_cancel_mid_transfer(void **state)
{
        struct pair p;
        /* A busy workload keeps the transfer in brownout long enough to cancel it. */
        pair_prepare(&p, 400000);
        pair_start(&p);
        struct cancel_ctx c = {.vm = p.src};
        vm_subscribe(p.src, cancel_on_progress, &c);
        /* Every pass stalls for a second (at its end, see src/hcs/fault.h), so the cancel lands
         * in the brownout even on a loaded machine. */
        struct hcs_fault_spec stall = {.nth = 0, .stall_ms = 1000};
        assert_int_equal(hcs_fault_arm("transfer.pass", &stall), 0);
        int rs, rd;
        vm_transfer_both(p.src, p.dst, &rs, &rd);
        run_until(&c.res.done, 5000);
        assert_true(c.issued);
        assert_int_equal(c.res.r, 0);
        assert_int_equal(rs, -ECANCELED);
        assert_true(rd < 0);
        /* A failed transfer leaves both sides where they were. */
        assert_string_equal(vm_state_name(p.src), "source_migration_started");
        assert_string_equal(vm_state_name(p.dst), "destination_migration_started");
        /* The source keeps running; roll it back; discard the destination. */
        assert_string_equal(sim_state(p.src), "Running");
        assert_int_equal(CALL(vm_finalize, p.src, true), 0);
        assert_int_equal(CALL(vm_resume, p.src), 0);
        assert_string_equal(vm_state_name(p.src), "running");
        assert_string_equal(sim_state(p.src), "Running");
        assert_int_equal(sim_of(p.src)->lm, SIM_LM_NONE);
        /* The bridge was reused: guest calls work. */
        struct res g = {0};
        assert_int_equal(guest_create_container(vm_guest(p.src), "c2", on_gres, &g), 0);
        run_until(&g.done, 5000);
        assert_int_equal(g.r, 0);
        pair_drop_destination(&p);
}

/* The host refuses the cancel (fault hcs.cancel): the caller hears it, no state changes, the
 * transfer runs to its end, and the source can still roll back (finalize resume + resume). */
static void test_cancel_fails(void **state)
{
        struct pair p;
        pair_prepare(&p, 3000);
        pair_start(&p);
        struct cancel_ctx c = {.vm = p.src};
        vm_subscribe(p.src, cancel_on_progress, &c);
        /* The transfer is held in the blackout, after the first pass's progress, so the cancel
         * that progress triggers lands while the transfer runs, however late it comes. */
        struct hcs_fault_spec hold = {.nth = 1, .hold = true};
        struct hcs_fault_spec refuse = {.nth = 1, .error = -EIO};
        assert_int_equal(hcs_fault_arm("transfer.corrupt_checksum", &hold), 0);
        assert_int_equal(hcs_fault_arm("hcs.cancel", &refuse), 0);
        uint64_t cancels = hcs_fault_calls("hcs.cancel");
        struct res rs = {0}, rd = {0};
        assert_int_equal(vm_transfer(p.src, on_res, &rs), 0);
        assert_int_equal(vm_transfer(p.dst, on_res, &rd), 0);
        run_until(&c.res.done, 30000);
        assert_true(c.issued);
        assert_int_equal(c.res.r, -EIO);
        assert_int_equal(c.res.calls, 1);
        assert_int_equal(hcs_fault_calls("hcs.cancel"), cancels + 1);
        wait_held("transfer.corrupt_checksum");
        assert_false(rs.done);
        assert_int_equal(hcs_fault_release("transfer.corrupt_checksum"), 0);
        run_until(&rs.done, 30000);
        run_until(&rd.done, 30000);
        assert_int_equal(rs.r, 0);
        assert_int_equal(rd.r, 0);
        assert_string_equal(vm_state_name(p.src), "migration_transfer_completed");
        /* Nothing left to abort now. */
        assert_int_equal(CALL(vm_cancel, p.src), -EALREADY);
        /* The source rolls back even after a complete transfer; the destination is dropped. */
        assert_int_equal(CALL(vm_finalize, p.src, true), 0);
        assert_int_equal(CALL(vm_resume, p.src), 0);
        assert_string_equal(vm_state_name(p.src), "running");
        assert_string_equal(sim_state(p.src), "Running");
        pair_drop_destination(&p);
}

/* The SCSI controller travels inside the VM envelope: frozen by save, imported frozen,
 * repointed on the destination, stamped into the destination's document at the same slot,
 * and resumed by the VM's resume (after the floors). */
static void test_migrate_scsi(void **state)
{
        struct vm *src = running_vm("src", true, 1000);
        struct scsi_ctrl *ss = NULL;
        assert_int_equal(vm_scsi(src, &ss), 0);
        struct scsi_disk_config disk = {.host_path = "/src/layer.vhd", .read_only = true};
        struct scsi_mount_config mnt = {.partition = 0, .read_only = true};
        char id[SCSI_ID_LEN];
        assert_int_equal(scsi_reserve(ss, &disk, &mnt, id), 0);
        assert_int_equal(CALL(scsi_map, ss, id), 0);
        uint32_t ctl, lun;
        assert_int_equal(scsi_slot(ss, id, &ctl, &lun), 0);
        assert_string_equal(scsi_disk_state(ss, id), "attached");

        assert_int_equal(CALL(vm_initialize_source, src, NULL), 0);
        ctrl_envelope *env = NULL;
        assert_int_equal(vm_save(src, &env), 0);
        assert_string_equal(scsi_disk_state(ss, id), "source_migrating");

        struct vm *dst = new_vm("dst");
        assert_int_equal(vm_import(dst, env), 0);
        struct scsi_ctrl *ds = NULL;
        assert_int_equal(vm_scsi(dst, &ds), 0);
        assert_string_equal(scsi_disk_state(ds, id), "destination_migrating");
        assert_int_equal(scsi_patch(ds, id, "/dst/layer.vhd"), 0);
        assert_int_equal(CALL(vm_create_destination, dst, "dst", NULL), 0);
        struct sim_vm *d = sim_of(dst);
        assert_true(d->scsi[ctl][lun].used);
        assert_string_equal(d->scsi[ctl][lun].path, "/dst/layer.vhd");
        assert_int_equal(CALL(vm_patch, dst), 0);

        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(CALL(vm_start_destination, dst, fds[1], 11), 0);
        assert_int_equal(CALL(vm_start_source, src, fds[0], 11), 0);
        int rs, rd;
        vm_transfer_both(src, dst, &rs, &rd);
        assert_int_equal(rs, 0);
        assert_int_equal(rd, 0);
        assert_int_equal(CALL(vm_finalize, dst, true), 0);
        assert_int_equal(CALL(vm_finalize, src, false), 0);
        assert_int_equal(CALL(vm_resume, dst), 0);
        assert_string_equal(scsi_disk_state(ds, id), "attached");
        /* The disk is usable on the destination: its reservation releases through the VM. */
        assert_int_equal(CALL(scsi_unmap, ds, id), 0);
        ctrl_envelope_free(env);
        destroy_vm(src);
        destroy_vm(dst);
}

/* A vPCI device cannot follow the VM: save fails before anything is frozen. */
static void test_save_refuses_vpci(void **state)
{
        char doc[2048];
        ssize_t n = ferry_bprintf(
            doc, sizeof(doc),
            "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{\"KernelCmdLine\":"
            "\"%s\"}},\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":%u}},"
            "\"Devices\":{\"Scsi\":{\"0\":{}},\"VirtualPci\":{\"gpu0\":{}}}}}",
            VM_LM_LOG_FORWARDER, MB);
        assert_true(n > 0);
        struct vm *vm = new_vm("vpci");
        assert_int_equal(CALL(vm_create, vm, "vpci", doc), 0);
        assert_int_equal(CALL(vm_start, vm), 0);
        struct scsi_ctrl *sc = NULL;
        assert_int_equal(vm_scsi(vm, &sc), 0);
        struct scsi_disk_config disk = {.host_path = "/src/d.vhd"};
        struct scsi_mount_config mnt = {0};
        char id[SCSI_ID_LEN];
        assert_int_equal(scsi_reserve(sc, &disk, &mnt, id), 0);
        assert_int_equal(CALL(scsi_map, sc, id), 0);
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        ctrl_envelope *env = NULL;
        assert_int_equal(vm_save(vm, &env), -EBUSY);
        assert_null(env);
        assert_string_equal(scsi_disk_state(sc, id), "attached");
        assert_string_equal(vm_state_name(vm), "source_migration_initialized");
        /* Roll back: the VM and its disk work as before. */
        assert_int_equal(CALL(vm_finalize, vm, true), 0);
        assert_int_equal(CALL(vm_resume, vm), 0);
        assert_int_equal(CALL(scsi_unmap, sc, id), 0);
        destroy_vm(vm);
}

/* ---- faults ------------------------------------------------------------------------------- */

static void arm(const char *point, int error)
{
        struct hcs_fault_spec f = {.nth = 1, .error = error};
        assert_int_equal(hcs_fault_arm(point, &f), 0);
}

/* An owner may free an invalid VM without terminating it: its system is closed, and nothing
 * is left behind once the loop ran (the teardown checks the backend has no system). */
static void test_free_invalid(void **state)
{
        char doc[2048];
        make_doc(doc, sizeof(doc), true, 0);
        struct vm *vm = new_vm("inv");
        assert_int_equal(CALL(vm_create, vm, "inv", doc), 0);
        arm("hcs.start", -EIO);
        assert_int_equal(CALL(vm_start, vm), -EIO);
        assert_string_equal(vm_state_name(vm), "invalid");
        assert_non_null(vm_system(vm));
        assert_null(vm_free(vm));
        run_for_ms(20);
}

static void test_faults_cold(void **state)
{
        char doc[2048];
        make_doc(doc, sizeof(doc), true, 0);
        struct vm *vm = new_vm("f");
        arm("hcs.create", -EIO);
        assert_int_equal(CALL(vm_create, vm, "f", doc), -EIO);
        assert_string_equal(vm_state_name(vm), "not_created");
        assert_null(vm_system(vm));
        assert_int_equal(CALL(vm_create, vm, "f", doc), 0); /* retriable */
        arm("hcs.start", -EIO);
        assert_int_equal(CALL(vm_start, vm), -EIO);
        assert_string_equal(vm_state_name(vm), "invalid");
        struct res x = {0};
        assert_int_equal(vm_start(vm, on_res, &x), -EBUSY);
        destroy_vm(vm);

        vm = new_vm("g");
        assert_int_equal(CALL(vm_create, vm, "g", doc), 0);
        arm("guest.connect", -ETIMEDOUT);
        assert_int_equal(CALL(vm_start, vm), -ETIMEDOUT);
        assert_string_equal(vm_state_name(vm), "invalid");
        arm("hcs.terminate", -EIO);
        assert_int_equal(CALL(vm_terminate, vm), -EIO);
        assert_string_equal(vm_state_name(vm), "invalid");
        destroy_vm(vm); /* retried */
}

static void test_faults_source(void **state)
{
        struct vm *vm = running_vm("fs", true, 1000);
        arm("hcs.lm_initialize", -EIO);
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), -EIO);
        assert_string_equal(vm_state_name(vm), "running");
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        arm("hcs.lm_start_source", -EIO);
        assert_int_equal(CALL(vm_start_source, vm, fds[0], 3), -EIO);
        assert_string_equal(vm_state_name(vm), "source_migration_initialized");
        close(fds[1]);
        arm("hcs.finalize", -EIO);
        assert_int_equal(CALL(vm_finalize, vm, true), -EIO);
        assert_string_equal(vm_state_name(vm), "source_migration_initialized");
        arm("hcs.finalize", -EIO);
        assert_int_equal(CALL(vm_finalize, vm, false), -EIO);
        assert_string_equal(vm_state_name(vm), "source_migration_initialized");
        assert_int_equal(CALL(vm_finalize, vm, true), 0);
        arm("guest.raise_floors", -EIO);
        assert_int_equal(CALL(vm_resume, vm), -EIO);
        assert_string_equal(vm_state_name(vm), "migration_finalized");
        assert_int_equal(CALL(vm_resume, vm), 0);
        assert_string_equal(vm_state_name(vm), "running");
        assert_string_equal(sim_state(vm), "Running");
        destroy_vm(vm);
}

static void test_faults_destination(void **state)
{
        struct pair p;
        pair_prepare(&p, 0);
        /* Faults after the point where the destination was created. */
        arm("hcs.transfer", -EIO);
        pair_start(&p);
        struct res rs = {0}, rd = {0};
        assert_int_equal(vm_transfer(p.src, on_res, &rs), 0);
        assert_int_equal(vm_transfer(p.dst, on_res, &rd), 0);
        run_until(&rs.done, 30000);
        run_until(&rd.done, 30000);
        assert_true(rs.r < 0 || rd.r < 0);
        /* Each side that failed stays started; the source still runs. */
        if (rs.r < 0)
                assert_string_equal(vm_state_name(p.src), "source_migration_started");
        assert_string_equal(sim_state(p.src), "Running");
        assert_int_equal(CALL(vm_finalize, p.src, true), 0);
        assert_int_equal(CALL(vm_resume, p.src), 0);
        assert_string_equal(vm_state_name(p.src), "running");
        pair_free(&p);

        /* create_destination and start_destination faults. */
        pair_prepare(&p, 0);
        destroy_vm(p.dst);
        p.dst = new_vm("dst2");
        assert_int_equal(vm_import(p.dst, p.env), 0);
        arm("hcs.create", -ENOMEM);
        assert_int_equal(CALL(vm_create_destination, p.dst, "dst2", NULL), -ENOMEM);
        assert_string_equal(vm_state_name(p.dst), "destination_migration_imported");
        assert_null(vm_system(p.dst));
        assert_int_equal(CALL(vm_create_destination, p.dst, "dst2", "{\"Origin\":\"Destination\"}"),
                         0);
        assert_int_equal(CALL(vm_patch, p.dst), 0);
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        arm("hcs.lm_start_destination", -EIO);
        assert_int_equal(CALL(vm_start_destination, p.dst, fds[1], 9), -EIO);
        assert_string_equal(vm_state_name(p.dst), "destination_migration_patched");
        close(fds[0]);
        pair_free(&p);
}

static void test_import_checks(void **state)
{
        struct pair p;
        pair_prepare(&p, 0);
        struct vm *vm = new_vm("imp");
        /* A payload whose document is not JSON is refused atomically. */
        ctrl_envelope bad = *p.env;
        bad.type_url = (char *)"type.ferry.dev/ferry.pod.save.v1.Payload";
        assert_int_equal(vm_import(vm, &bad), -EINVAL);
        bad = *p.env;
        bad.schema_version = 99;
        assert_int_equal(vm_import(vm, &bad), -EINVAL);
        assert_string_equal(vm_state_name(vm), "not_created");
        assert_null(vm_document(vm));
        assert_int_equal(vm_import(vm, p.env), 0);
        assert_non_null(vm_document(vm));
        /* Teardown of an imported VM: no system, nothing to stop. */
        assert_int_equal(CALL(vm_terminate, vm), 0);
        assert_string_equal(vm_state_name(vm), "terminated");
        assert_null(vm_document(vm));
        assert_null(vm_free(vm));
        pair_free(&p);
}

/* ---- teardown from every resting state --------------------------------------------------- */

static void test_teardown_every_state(void **state)
{
        static const char *const states[] = {"not_created",
                                             "created",
                                             "running",
                                             "invalid",
                                             "source_migration_initialized",
                                             "source_migration_started",
                                             "destination_migration_imported",
                                             "destination_migration_created",
                                             "destination_migration_patched",
                                             "destination_migration_started",
                                             "migration_transfer_completed",
                                             "migration_finalized"};
        char doc[2048];
        make_doc(doc, sizeof(doc), true, 0);
        for (size_t i = 0; i < ARRAY_SIZE(states); i++) {
                const char *want = states[i];
                struct vm *vm = NULL;
                struct pair p = {0};
                bool is_pair = strstr(want, "migration") != NULL;
                if (!is_pair) {
                        vm = new_vm("t");
                        if (strcmp(want, "not_created") != 0)
                                assert_int_equal(CALL(vm_create, vm, "t", doc), 0);
                        if (strcmp(want, "running") == 0)
                                assert_int_equal(CALL(vm_start, vm), 0);
                        if (strcmp(want, "invalid") == 0) {
                                arm("hcs.start", -EIO);
                                assert_int_equal(CALL(vm_start, vm), -EIO);
                        }
                } else {
                        pair_prepare(&p, 0);
                        vm = strncmp(want, "source", 6) == 0 ? p.src : p.dst;
                        if (strcmp(want, "destination_migration_imported") == 0) {
                                destroy_vm(p.dst);
                                p.dst = vm = new_vm("imp");
                                assert_int_equal(vm_import(vm, p.env), 0);
                        } else if (strcmp(want, "destination_migration_created") == 0) {
                                destroy_vm(p.dst);
                                p.dst = vm = new_vm("cr");
                                assert_int_equal(vm_import(vm, p.env), 0);
                                assert_int_equal(CALL(vm_create_destination, vm, "cr", NULL), 0);
                        } else if (strcmp(want, "source_migration_initialized") != 0 &&
                                   strcmp(want, "destination_migration_patched") != 0) {
                                pair_start(&p);
                        }
                        if (strncmp(want, "migration_", 10) == 0) {
                                struct res rs = {0}, rd = {0};
                                assert_int_equal(vm_transfer(p.src, on_res, &rs), 0);
                                assert_int_equal(vm_transfer(p.dst, on_res, &rd), 0);
                                run_until(&rs.done, 30000);
                                run_until(&rd.done, 30000);
                                vm = p.dst;
                        }
                        if (strcmp(want, "migration_finalized") == 0)
                                assert_int_equal(CALL(vm_finalize, vm, true), 0);
                }
                assert_string_equal(vm_state_name(vm), want);
                destroy_vm(vm);
                if (is_pair) {
                        ctrl_envelope_free(p.env);
                        struct vm *other = vm == p.src ? p.dst : p.src;
                        destroy_vm(other);
                }
        }
}

/* ---- fault sweep over the migration ------------------------------------------------------- */

struct sweep {
        struct vm *src, *dst;
        ctrl_envelope *env;
        int fds[2];
};

static int sw_initialize(struct sweep *w)
{
        return CALL(vm_initialize_source, w->src, NULL);
}

static int sw_save(struct sweep *w)
{
        return vm_save(w->src, &w->env);
}

static int sw_import(struct sweep *w)
{
        return vm_import(w->dst, w->env);
}

static int sw_create(struct sweep *w)
{
        return CALL(vm_create_destination, w->dst, "dst", NULL);
}

static int sw_patch(struct sweep *w)
{
        return CALL(vm_patch, w->dst);
}

static int sw_start_destination(struct sweep *w)
{
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->fds), 0);
        int r = CALL(vm_start_destination, w->dst, w->fds[1], 21);
        if (r < 0)
                close(w->fds[0]);
        return r;
}

static int sw_start_source(struct sweep *w)
{
        return CALL(vm_start_source, w->src, w->fds[0], 21);
}

static int sw_transfer(struct sweep *w)
{
        struct res rs = {0}, rd = {0};
        assert_int_equal(vm_transfer(w->src, on_res, &rs), 0);
        assert_int_equal(vm_transfer(w->dst, on_res, &rd), 0);
        run_until(&rs.done, 30000);
        run_until(&rd.done, 30000);
        /* A failed transfer leaves each side where it was. */
        if (rs.r < 0)
                assert_string_equal(vm_state_name(w->src), "source_migration_started");
        if (rd.r < 0)
                assert_string_equal(vm_state_name(w->dst), "destination_migration_started");
        /* The injected error on one side; the peer then sees the stream break. */
        if (rs.r == -EIO || rd.r == -EIO)
                return -EIO;
        return rs.r < 0 ? rs.r : rd.r;
}

static int sw_finalize_destination(struct sweep *w)
{
        return CALL(vm_finalize, w->dst, true);
}

static int sw_finalize_source(struct sweep *w)
{
        return CALL(vm_finalize, w->src, false);
}

static int sw_resume(struct sweep *w)
{
        return CALL(vm_resume, w->dst);
}

/* Injects a failure at one host-compute or guest point during a whole migration. Before the
 * destination took over, a failed call leaves its VM in the state it was in and the source
 * rolls back and runs; from the destination's finalize on, the failed call is retried. */
static void sweep_point(const char *point)
{
        static const struct {
                const char *name;
                int (*fn)(struct sweep *w);
                bool on_source;
        } steps[] = {
            {"initialize", sw_initialize, true},
            {"save", sw_save, true},
            {"import", sw_import, false},
            {"create_destination", sw_create, false},
            {"patch", sw_patch, false},
            {"start_destination", sw_start_destination, false},
            {"start_source", sw_start_source, true},
            {"transfer", sw_transfer, true},
            {"finalize_destination", sw_finalize_destination, false},
            {"finalize_source", sw_finalize_source, true},
            {"resume", sw_resume, false},
        };
        const size_t committed = 8; /* from finalize_destination on, the destination owns it */
        struct sweep w = {0};
        w.src = running_vm("src", true, 2000);
        w.dst = new_vm("dst");
        arm(point, -EIO);
        unsigned failures = 0;
        size_t i = 0;
        for (; i < ARRAY_SIZE(steps); i++) {
                struct vm *vm = steps[i].on_source ? w.src : w.dst;
                char before[64];
                ferry_strscpy(before, vm_state_name(vm), sizeof(before));
                int r = steps[i].fn(&w);
                if (r == 0)
                        continue;
                failures++;
                assert_int_equal(r, -EIO);
                if (i != 7) /* the transfer checked its sides itself */
                        assert_string_equal(vm_state_name(vm), before);
                if (i >= committed) {
                        assert_int_equal(steps[i].fn(&w), 0); /* retriable */
                        continue;
                }
                break;
        }
        /* The point was reached and failed exactly one call. */
        assert_int_equal(failures, 1);
        if (i < ARRAY_SIZE(steps)) {
                /* Rolled back: the source runs as before. */
                if (vm_is_migrating(w.src)) {
                        assert_int_equal(CALL(vm_finalize, w.src, true), 0);
                        assert_int_equal(CALL(vm_resume, w.src), 0);
                }
                assert_string_equal(vm_state_name(w.src), "running");
                assert_string_equal(sim_state(w.src), "Running");
                assert_int_equal(sim_of(w.src)->lm, SIM_LM_NONE);
        } else {
                assert_string_equal(vm_state_name(w.dst), "running");
                assert_string_equal(sim_state(w.dst), "Running");
                assert_string_equal(vm_state_name(w.src), "terminated");
        }
        hcs_fault_reset();
        ctrl_envelope_free(w.env);
        destroy_vm(w.src);
        if (strcmp(vm_state_name(w.dst), "not_created") == 0)
                assert_null(vm_free(w.dst));
        else
                destroy_vm(w.dst);
}

/* ---- stats, pause and resume, the compatibility blob --------------------------------------- */

/* vm_stats on a running VM: the host's counters, then its rejections elsewhere. */
static void test_stats(void **state)
{
        struct vm *vm = running_vm("stats", true, 2000);
        struct vm_stats s1 = {0}, s2 = {0};
        uint64_t before = hcs_fault_calls("hcs.properties");
        assert_int_equal(CALL(vm_stats, vm, &s1), 0);
        assert_int_equal(hcs_fault_calls("hcs.properties"), before + 1);
        /* MB MiB committed: every 4 KiB page assigned, the working set is all of it. */
        assert_int_equal(s1.assigned_memory, (uint64_t)MB << 8);
        assert_int_equal(s1.working_set_bytes, (uint64_t)MB << 20);
        assert_int_equal(s1.available_memory, MB);
        assert_int_equal(s1.virtual_node_count, 1);
        assert_false(s1.balancing_enabled);
        /* The busy workload is the VM's processor time; it only grows. */
        run_for_ms(100);
        assert_int_equal(CALL(vm_stats, vm, &s2), 0);
        assert_true(s2.total_runtime_ns > 0);
        assert_true(s2.total_runtime_ns >= s1.total_runtime_ns);
        assert_string_equal(vm_state_name(vm), "running");

        /* A host failure reaches the caller; the VM keeps running and *ret is untouched. */
        struct hcs_fault_spec f = {.nth = 1, .error = -EIO};
        assert_int_equal(hcs_fault_arm("hcs.properties", &f), 0);
        struct vm_stats s3 = {.assigned_memory = 77};
        assert_int_equal(CALL(vm_stats, vm, &s3), -EIO);
        assert_int_equal(s3.assigned_memory, 77);
        assert_string_equal(vm_state_name(vm), "running");

        /* Running only: paused, migrating and terminated refuse it (failed_precondition). */
        struct res x = {0};
        assert_int_equal(vm_stats(vm, NULL, on_res, &x), -EINVAL);
        assert_int_equal(CALL(vm_pause, vm), 0);
        assert_int_equal(vm_stats(vm, &s3, on_res, &x), -EBUSY);
        assert_int_equal(CALL(vm_resume, vm), 0);
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        assert_int_equal(vm_stats(vm, &s3, on_res, &x), -EBUSY);
        assert_int_equal(CALL(vm_finalize, vm, true), 0);
        assert_int_equal(vm_stats(vm, &s3, on_res, &x), -EBUSY); /* migration_finalized */
        assert_int_equal(CALL(vm_resume, vm), 0);
        assert_int_equal(CALL(vm_stats, vm, &s3), 0);
        assert_false(x.done);
        destroy_vm(vm);
        struct vm *gone = new_vm("gone");
        assert_int_equal(vm_stats(gone, &s3, on_res, &x), -EBUSY); /* not_created */
        assert_null(vm_free(gone));
}

/* A stats query in flight when the VM is terminated still answers its caller once. */
static void test_stats_overtaken(void **state)
{
        struct vm *vm = running_vm("statsterm", false, 0);
        struct hcs_fault_spec f = {.nth = 1, .stall_ms = 50};
        assert_int_equal(hcs_fault_arm("hcs.properties", &f), 0);
        struct vm_stats s = {0};
        struct res q = {0};
        assert_int_equal(vm_stats(vm, &s, on_res, &q), 0);
        struct res t = {0};
        assert_int_equal(vm_terminate(vm, on_res, &t), 0);
        run_until(&t.done, 5000);
        run_until(&q.done, 5000);
        assert_int_equal(t.r, 0);
        assert_int_equal(q.calls, 1);
        assert_string_equal(vm_state_name(vm), "terminated");
        assert_null(vm_system(vm));
        for (int i = 0; i < 1000 && vm_free(vm); i++)
                run_for_ms(2);
}

static void test_pause_resume(void **state)
{
        struct vm *vm = running_vm("pause", true, 2000);
        assert_int_equal(CALL(vm_pause, vm), 0);
        assert_string_equal(vm_state_name(vm), "paused");
        assert_string_equal(sim_state(vm), "Paused");
        assert_false(vm_is_migrating(vm));
        assert_int_equal(CALL(vm_pause, vm), 0); /* idempotent */
        assert_string_equal(sim_state(vm), "Paused");
        /* The workload is frozen: no page is dirtied while paused. */
        uint64_t writes = atomic_load(&sim_of(vm)->wl_writes);
        run_for_ms(50);
        assert_int_equal(atomic_load(&sim_of(vm)->wl_writes), writes);

        /* No migration call is taken from a paused VM, and nothing changes. */
        struct res x = {0};
        ctrl_envelope *env = NULL;
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(vm_initialize_source(vm, NULL, on_res, &x), -EBUSY);
        assert_int_equal(vm_save(vm, &env), -EBUSY);
        assert_int_equal(vm_start_source(vm, fds[0], 1, on_res, &x), -EBUSY);
        close(fds[1]);
        assert_int_equal(vm_transfer(vm, on_res, &x), -EBUSY);
        assert_int_equal(vm_finalize(vm, true, on_res, &x), -EBUSY);
        assert_int_equal(vm_cancel(vm, on_res, &x), -EBUSY);
        assert_int_equal(vm_import(vm, NULL), -EBUSY);
        assert_int_equal(vm_start(vm, on_res, &x), -EBUSY);
        assert_false(x.done);
        assert_null(env);
        assert_string_equal(vm_state_name(vm), "paused");
        assert_string_equal(sim_state(vm), "Paused");

        /* A failed host resume leaves it paused; a retry thaws it. */
        struct hcs_fault_spec f = {.nth = 1, .error = -EIO};
        assert_int_equal(hcs_fault_arm("hcs.resume", &f), 0);
        assert_int_equal(CALL(vm_resume, vm), -EIO);
        assert_string_equal(vm_state_name(vm), "paused");
        assert_string_equal(sim_state(vm), "Paused");
        assert_int_equal(CALL(vm_resume, vm), 0);
        assert_string_equal(vm_state_name(vm), "running");
        assert_string_equal(sim_state(vm), "Running");
        for (int i = 0; i < 200 && atomic_load(&sim_of(vm)->wl_writes) == writes; i++)
                run_for_ms(10);
        assert_true(atomic_load(&sim_of(vm)->wl_writes) > writes); /* thawed */

        /* A failed host pause leaves it running. */
        assert_int_equal(hcs_fault_arm("hcs.pause", &f), 0);
        assert_int_equal(CALL(vm_pause, vm), -EIO);
        assert_string_equal(vm_state_name(vm), "running");
        assert_string_equal(sim_state(vm), "Running");

        /* Resumed, it migrates as before (initialize is taken again). */
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        assert_int_equal(vm_pause(vm, on_res, &x), -EBUSY); /* migrating */
        assert_int_equal(CALL(vm_finalize, vm, true), 0);
        assert_int_equal(CALL(vm_resume, vm), 0);
        assert_string_equal(vm_state_name(vm), "running");

        /* Terminate from paused. */
        assert_int_equal(CALL(vm_pause, vm), 0);
        destroy_vm(vm);
        assert_int_equal(vm_pause(vm = new_vm("np"), on_res, &x), -EBUSY);
        assert_int_equal(vm_resume(vm, on_res, &x), -EBUSY);
        assert_null(vm_free(vm));
}

/* The paused VM's system stops on its own: the exit is noted as from any state. */
static void test_exit_while_paused(void **state)
{
        struct vm *vm = running_vm("pexit", false, 0);
        assert_int_equal(CALL(vm_pause, vm), 0);
        struct res ex = {0}, hx = {0};
        vm_on_exit(vm, on_res, &ex);
        assert_int_equal(hcs_terminate(vm_system(vm), on_res, &hx), 0);
        run_until(&ex.done, 5000);
        run_until(&hx.done, 5000);
        assert_string_equal(vm_state_name(vm), "terminated");
        for (int i = 0; i < 1000 && vm_free(vm); i++)
                run_for_ms(2);
}

/* Initialize asks the host's CompatibilityInfo property for the blob; without one save fails
 * and nothing is frozen, so the source rolls back and runs on. */
static void test_compat_from_properties(void **state)
{
        struct vm *vm = running_vm("compat", true, 0);
        uint64_t before = hcs_fault_calls("hcs.properties");
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        assert_int_equal(hcs_fault_calls("hcs.properties"), before + 1);
        uint8_t want[SIM_COMPAT_MAX];
        size_t want_len = sim_compat_blob(sim_of(vm), want), got_len = 0;
        const uint8_t *got = vm_compat_blob(vm, &got_len);
        assert_true(want_len > 0);
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, want, want_len);
        ctrl_envelope *env = NULL;
        assert_int_equal(vm_save(vm, &env), 0);
        ctrl_envelope_free(env);
        env = NULL;
        assert_int_equal(CALL(vm_finalize, vm, true), 0);
        assert_int_equal(CALL(vm_resume, vm), 0);

        /* The query fails: initialize still succeeds (the host is initialized), save fails. */
        struct hcs_fault_spec f = {.nth = 1, .error = -EIO};
        assert_int_equal(hcs_fault_arm("hcs.properties", &f), 0);
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        assert_string_equal(vm_state_name(vm), "source_migration_initialized");
        vm_compat_blob(vm, &got_len);
        assert_int_equal(got_len, 0);
        assert_int_equal(vm_save(vm, &env), -EIO);
        assert_null(env);
        assert_int_equal(vm_save(vm, &env), -EIO); /* remembered until the next initialize */
        assert_string_equal(vm_state_name(vm), "source_migration_initialized");
        assert_int_equal(CALL(vm_finalize, vm, true), 0);
        assert_int_equal(CALL(vm_resume, vm), 0);
        assert_string_equal(vm_state_name(vm), "running");
        assert_string_equal(sim_state(vm), "Running");

        /* The next initialize asks again and save works. */
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        assert_int_equal(vm_save(vm, &env), 0);
        ctrl_envelope_free(env);
        destroy_vm(vm);
}

static void test_fault_sweep(void **state)
{
        static const char *const points[] = {
            "hcs.lm_initialize",   "hcs.create",         "hcs.lm_start_destination",
            "hcs.lm_start_source", "hcs.transfer",       "hcs.finalize",
            "guest.connect",       "guest.raise_floors",
        };
        for (size_t i = 0; i < ARRAY_SIZE(points); i++)
                sweep_point(points[i]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            LOOP_TEST(test_lifecycle),
            LOOP_TEST(test_terminate_idempotent_and_exit),
            LOOP_TEST(test_exit_during_failed_stop),
            LOOP_TEST(test_migrate),
            LOOP_TEST(test_migrate_scsi),
            LOOP_TEST(test_save_refuses_vpci),
            LOOP_TEST(test_rejected_while_migrating),
            LOOP_TEST(test_cancel_mid_transfer),
            LOOP_TEST(test_cancel_fails),
            LOOP_TEST(test_faults_cold),
            LOOP_TEST(test_free_invalid),
            LOOP_TEST(test_faults_source),
            LOOP_TEST(test_faults_destination),
            LOOP_TEST(test_import_checks),
            LOOP_TEST(test_stats),
            LOOP_TEST(test_stats_overtaken),
            LOOP_TEST(test_pause_resume),
            LOOP_TEST(test_exit_while_paused),
            LOOP_TEST(test_compat_from_properties),
            LOOP_TEST(test_fault_sweep),
            LOOP_TEST(test_teardown_every_state),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
