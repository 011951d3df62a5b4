/* SPDX-License-Identifier: MIT */
/* Tests of the SCSI controller (src/ctrl/scsi) on the real spec tables and handlers, against a
 * created and started sim VM with a connected guest: slots built from the compute document,
 * reference-counted disks and mounts, slot exhaustion and reuse, the freeze after save, save →
 * import → patch → resume across a real sim migration, rejected envelopes, and host and guest
 * failures injected through the fault points. */
#include "fixture.h"

#include <protobuf-c/protobuf-c.h>

#include "ctrl/scsi/scsi.h"
#include "save_scsi.pb-c.h"

static struct ctrl_fixture fx;
static struct scsi_ctrl *ctl;

struct cres {
        bool done;
        int r;
        int calls;
};

static void c_done(int r, void *ud)
{
        struct cres *x = ud;
        x->done = true;
        x->r = r;
        x->calls++;
}

/* Runs a map/unmap to its end: the call's own error, or what done reported. */
#define CSYNC(fn, c, id)                                                                           \
        ({                                                                                         \
                struct cres _x = {0};                                                              \
                int _r = fn(c, id, c_done, &_x);                                                   \
                if (_r == 0) {                                                                     \
                        run_until(&_x.done, 5000);                                                 \
                        assert_int_equal(_x.calls, 1);                                             \
                        _r = _x.r;                                                                 \
                }                                                                                  \
                _r;                                                                                \
        })

static struct scsi_ctrl *new_ctrl(struct ctrl_env *e, struct hcs_system *sys)
{
        char doc[2048];
        struct json_object *j;
        struct scsi_ctrl *c = NULL;

        make_doc(doc, sizeof(doc), 8, 2, 1000, NULL);
        j = json_tokener_parse(doc);
        assert_non_null(j);
        assert_int_equal(scsi_ctrl_new(e, j, &c), 0);
        json_object_put(j);
        (void)sys;
        return c;
}

static int setup(void **state)
{
        setup_loop(state);
        fixture_up(&fx, loop, backend, "svm", 1000, NULL);
        ctl = new_ctrl(&fx.env, fx.vm);
        return 0;
}

static int teardown(void **state)
{
        assert_int_equal(scsi_ctrl_free(ctl), 0);
        ctl = NULL;
        fixture_down(&fx);
        return teardown_loop(state);
}

/* ---- sim inspection ------------------------------------------------------------------------ */

static bool sim_slot_used(struct hcs_system *s, uint32_t c, uint32_t l, char *path, size_t size)
{
        struct sim_vm *v = vm_of(s);
        bool used;

        pthread_mutex_lock(&v->lock);
        used = v->scsi[c][l].used;
        if (path)
                ferry_strscpy(path, v->scsi[c][l].path, size);
        pthread_mutex_unlock(&v->lock);
        return used;
}

static bool sim_mounted(struct hcs_system *s, const char *guest_path)
{
        struct sim_vm *v = vm_of(s);
        bool found = false;

        pthread_mutex_lock(&v->lock);
        for (size_t i = 0; i < v->guest.n_mounts; i++)
                found |= strcmp(v->guest.mounts[i].guest_path, guest_path) == 0;
        pthread_mutex_unlock(&v->lock);
        return found;
}

static bool slot_used(const char *id)
{
        uint32_t c, l;

        assert_int_equal(scsi_slot(ctl, id, &c, &l), 0);
        return sim_slot_used(fx.vm, c, l, NULL, 0);
}

static struct scsi_disk_config dcfg(const char *path)
{
        return (struct scsi_disk_config){.host_path = path};
}

static struct scsi_mount_config mcfg(uint64_t partition)
{
        return (struct scsi_mount_config){.partition = partition};
}

static void reserve_ok(struct scsi_ctrl *c, const char *path, uint64_t partition, char *id)
{
        struct scsi_disk_config d = dcfg(path);
        struct scsi_mount_config m = mcfg(partition);

        assert_int_equal(scsi_reserve(c, &d, &m, id), 0);
}

static uint64_t calls(const char *point)
{
        return hcs_fault_calls(point);
}

static void arm(const char *point, int error)
{
        struct hcs_fault_spec f = {.nth = 1, .error = error};

        assert_int_equal(hcs_fault_arm(point, &f), 0);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_build_from_doc(void **state)
{
        struct json_object *att = NULL, *c0, *a, *l0, *p, *c1;
        struct scsi_ctrl *c = NULL;
        struct json_object *bad;
        char id[SCSI_ID_LEN];

        assert_int_equal(scsi_controller_count(ctl), 2);
        assert_int_equal(scsi_disk_count(ctl), 1);
        assert_int_equal(scsi_attachments(ctl, &att), 0);
        assert_true(json_object_object_get_ex(att, "0", &c0));
        assert_true(json_object_object_get_ex(c0, "Attachments", &a));
        assert_true(json_object_object_get_ex(a, "0", &l0));
        assert_true(json_object_object_get_ex(l0, "Path", &p));
        assert_string_equal(json_object_get_string(p), "/img/rootfs.vhdx");
        assert_true(json_object_object_get_ex(att, "1", &c1));
        assert_false(json_object_object_get_ex(att, "2", NULL));
        json_object_put(att);

        /* controller 7 does not exist; LUN 64 neither; a relative path is refused */
        bad = json_tokener_parse("{\"VirtualMachine\":{\"Devices\":{\"Scsi\":{\"7\":{}}}}}");
        assert_int_equal(scsi_ctrl_new(&fx.env, bad, &c), -EINVAL);
        json_object_put(bad);
        bad = json_tokener_parse("{\"VirtualMachine\":{\"Devices\":{\"Scsi\":{\"0\":{"
                                 "\"Attachments\":{\"64\":{\"Path\":\"/a\"}}}}}}}");
        assert_int_equal(scsi_ctrl_new(&fx.env, bad, &c), -EINVAL);
        json_object_put(bad);
        bad = json_tokener_parse("{\"VirtualMachine\":{\"Devices\":{\"Scsi\":{\"0\":{"
                                 "\"Attachments\":{\"1\":{\"Path\":\"a.vhdx\"}}}}}}}");
        assert_int_equal(scsi_ctrl_new(&fx.env, bad, &c), -EINVAL);
        json_object_put(bad);
        assert_null(c);

        /* no SCSI section: no slot to give */
        bad = json_tokener_parse("{\"VirtualMachine\":{}}");
        assert_int_equal(scsi_ctrl_new(&fx.env, bad, &c), 0);
        json_object_put(bad);
        assert_int_equal(scsi_controller_count(c), 0);
        struct scsi_disk_config d = dcfg("/vhd/x");
        struct scsi_mount_config m = mcfg(0);
        assert_int_equal(scsi_reserve(c, &d, &m, id), -ENOSPC);
        assert_int_equal(scsi_disk_count(c), 0);
        assert_int_equal(scsi_ctrl_free(c), 0);
}

static void test_lifecycle_refcounts(void **state)
{
        char a[SCSI_ID_LEN], b[SCSI_ID_LEN], c[SCSI_ID_LEN], r[SCSI_ID_LEN];
        uint32_t ca, la, cc, lc;
        uint64_t mod0 = calls("hcs.modify"), mnt0 = calls("guest.scsi_mount");

        /* two reservations share partition 1, a third holds partition 2 of the same disk */
        reserve_ok(ctl, "/vhd/a.vhdx", 1, a);
        reserve_ok(ctl, "/vhd/a.vhdx", 1, b);
        reserve_ok(ctl, "/vhd/a.vhdx", 2, c);
        assert_string_not_equal(a, b);
        assert_int_equal(scsi_slot(ctl, a, &ca, &la), 0);
        assert_int_equal(scsi_slot(ctl, c, &cc, &lc), 0);
        assert_int_equal(ca, 0);
        assert_int_equal(la, 1); /* 0:0 is the rootfs */
        assert_int_equal(cc, ca);
        assert_int_equal(lc, la);
        assert_int_equal(scsi_mount_refs(ctl, a), 2);
        assert_int_equal(scsi_mount_refs(ctl, c), 1);
        assert_string_equal(scsi_disk_state(ctl, a), "reserved");
        assert_string_equal(scsi_mount_state(ctl, a), "reserved");
        assert_int_equal(scsi_disk_count(ctl), 2);

        /* the first map attaches and mounts asynchronously */
        struct cres x = {0};
        assert_int_equal(scsi_map(ctl, a, c_done, &x), 0);
        assert_false(x.done);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_string_equal(scsi_disk_state(ctl, a), "attached");
        assert_string_equal(scsi_mount_state(ctl, a), "mounted");
        assert_string_equal(scsi_guest_path(ctl, a), "/run/mounts/scsi/0_1_1");
        assert_true(slot_used(a));
        assert_true(sim_mounted(fx.vm, "/run/mounts/scsi/0_1_1"));

        /* the second reservation of the partition finds it mounted: done before return */
        struct cres y = {0};
        assert_int_equal(scsi_map(ctl, b, c_done, &y), 0);
        assert_true(y.done);
        assert_int_equal(y.r, 0);
        assert_int_equal(CSYNC(scsi_map, ctl, c), 0);
        assert_true(sim_mounted(fx.vm, "/run/mounts/scsi/0_1_2"));
        assert_int_equal(calls("hcs.modify") - mod0, 1);
        assert_int_equal(calls("guest.scsi_mount") - mnt0, 2);

        /* unmaps: the disk stays until the last partition is released */
        assert_int_equal(CSYNC(scsi_unmap, ctl, a), 0);
        assert_null(scsi_disk_state(ctl, a));
        assert_int_equal(scsi_mount_refs(ctl, b), 1);
        assert_true(sim_mounted(fx.vm, "/run/mounts/scsi/0_1_1"));
        assert_int_equal(CSYNC(scsi_unmap, ctl, c), 0);
        assert_false(sim_mounted(fx.vm, "/run/mounts/scsi/0_1_2"));
        assert_true(slot_used(b));
        assert_string_equal(scsi_disk_state(ctl, b), "attached");
        assert_int_equal(CSYNC(scsi_unmap, ctl, b), 0);
        assert_false(sim_mounted(fx.vm, "/run/mounts/scsi/0_1_1"));
        assert_false(sim_slot_used(fx.vm, 0, 1, NULL, 0));
        assert_int_equal(scsi_disk_count(ctl), 1);
        assert_int_equal(scsi_slot(ctl, b, NULL, NULL), -ENOENT);
        assert_int_equal(scsi_unmap(ctl, b, c_done, &y), -ENOENT);
        assert_int_equal(scsi_map(ctl, b, c_done, &y), -ENOENT);

        /* a reservation on the rootfs shares its slot; the document's disk stays on the bus */
        struct scsi_disk_config root = {.host_path = "/img/rootfs.vhdx", .read_only = true};
        struct scsi_mount_config m = {.partition = 0, .read_only = true};
        assert_int_equal(scsi_reserve(ctl, &root, &m, r), 0);
        assert_int_equal(scsi_slot(ctl, r, &ca, &la), 0);
        assert_int_equal(ca, 0);
        assert_int_equal(la, 0);
        mod0 = calls("hcs.modify");
        assert_int_equal(CSYNC(scsi_map, ctl, r), 0);
        assert_true(sim_mounted(fx.vm, "/run/mounts/scsi/0_0_0"));
        assert_int_equal(CSYNC(scsi_unmap, ctl, r), 0);
        assert_false(sim_mounted(fx.vm, "/run/mounts/scsi/0_0_0"));
        assert_true(sim_slot_used(fx.vm, 0, 0, NULL, 0));
        assert_int_equal(calls("hcs.modify"), mod0);
        assert_int_equal(scsi_disk_count(ctl), 1);
}

static void test_config_mismatch(void **state)
{
        const char *o1[] = {"ro", "noatime"}, *o2[] = {"NOATIME", "Ro"}, *o3[] = {"ro"};
        struct scsi_disk_config d = dcfg("/vhd/a.vhdx");
        struct scsi_mount_config m = {.partition = 1, .options = o1, .n_options = 2};
        char a[SCSI_ID_LEN], b[SCSI_ID_LEN], z[SCSI_ID_LEN] = "";

        assert_int_equal(scsi_reserve(ctl, &d, &m, a), 0);
        m.options = o2; /* same set, other case and order */
        assert_int_equal(scsi_reserve(ctl, &d, &m, b), 0);
        assert_int_equal(scsi_mount_refs(ctl, a), 2);
        m.options = o3;
        m.n_options = 1;
        assert_int_equal(scsi_reserve(ctl, &d, &m, z), -EBUSY);
        m.options = o1;
        m.n_options = 2;
        m.filesystem = "ext4";
        assert_int_equal(scsi_reserve(ctl, &d, &m, z), -EBUSY);
        m.filesystem = NULL;
        d.read_only = true; /* same path, other disk config */
        assert_int_equal(scsi_reserve(ctl, &d, &m, z), -EBUSY);
        d = dcfg("relative.vhdx");
        assert_int_equal(scsi_reserve(ctl, &d, &m, z), -EINVAL);
        /* unbounded or missing options are refused before any comparison */
        d = dcfg("/vhd/a.vhdx");
        m.options = NULL;
        assert_int_equal(scsi_reserve(ctl, &d, &m, z), -EINVAL);
        m.options = o1;
        m.n_options = SCSI_OPTIONS_MAX + 1;
        assert_int_equal(scsi_reserve(ctl, &d, &m, z), -EINVAL);
        assert_string_equal(z, "");
        assert_int_equal(scsi_mount_refs(ctl, a), 2);
        assert_int_equal(scsi_disk_count(ctl), 2);
}

static void test_slot_exhaustion(void **state)
{
        char ids[128][SCSI_ID_LEN], extra[SCSI_ID_LEN], path[64];
        uint64_t mod0 = calls("hcs.modify");
        uint32_t c, l;

        /* controllers 0 and 1, 64 LUNs each, one taken by the rootfs */
        for (int i = 0; i < 127; i++) {
                ferry_bprintf(path, sizeof(path), "/vhd/d%d.vhdx", i);
                reserve_ok(ctl, path, 0, ids[i]);
        }
        assert_int_equal(scsi_slot(ctl, ids[126], &c, &l), 0);
        assert_int_equal(c, 1);
        assert_int_equal(l, 63);
        struct scsi_disk_config d = dcfg("/vhd/one-too-many.vhdx");
        struct scsi_mount_config m = mcfg(0);
        assert_int_equal(scsi_reserve(ctl, &d, &m, extra), -ENOSPC);
        assert_int_equal(scsi_disk_count(ctl), 128);
        /* another partition of a disk already placed needs no slot */
        d = dcfg("/vhd/d3.vhdx");
        m = mcfg(5);
        assert_int_equal(scsi_reserve(ctl, &d, &m, extra), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, extra), 0);
        assert_int_equal(calls("hcs.modify"), mod0);
}

static void test_reserve_then_unmap_frees_slot(void **state)
{
        char a[SCSI_ID_LEN], b[SCSI_ID_LEN], n[SCSI_ID_LEN];
        uint64_t mod0 = calls("hcs.modify"), un0 = calls("guest.scsi_unmount");
        uint32_t c, l;

        reserve_ok(ctl, "/vhd/a.vhdx", 0, a); /* 0:1 */
        reserve_ok(ctl, "/vhd/b.vhdx", 0, b); /* 0:2 */
        /* released before it was ever mapped: slot and path are free again, without calls */
        assert_int_equal(CSYNC(scsi_unmap, ctl, a), 0);
        assert_int_equal(scsi_disk_count(ctl), 2);
        assert_int_equal(calls("hcs.modify"), mod0);
        assert_int_equal(calls("guest.scsi_unmount"), un0);
        reserve_ok(ctl, "/vhd/c.vhdx", 0, n);
        assert_int_equal(scsi_slot(ctl, n, &c, &l), 0);
        assert_int_equal(l, 1); /* the lowest free slot, reused */
        reserve_ok(ctl, "/vhd/a.vhdx", 0, a);
        assert_int_equal(scsi_slot(ctl, a, &c, &l), 0);
        assert_int_equal(l, 3);
}

/* Everything observable about one reservation, to prove a rejected call changed nothing. */
struct snap {
        char disk[32], mount[32];
        uint32_t refs;
        size_t disks;
        bool on_bus, mounted;
        uint64_t modify, mount_calls, unmount_calls;
};

static void snap(const char *id, struct snap *s)
{
        const char *m = scsi_mount_state(ctl, id);

        memset(s, 0, sizeof(*s));
        ferry_strscpy(s->disk, scsi_disk_state(ctl, id), sizeof(s->disk));
        ferry_strscpy(s->mount, m ? m : "-", sizeof(s->mount));
        s->refs = scsi_mount_refs(ctl, id);
        s->disks = scsi_disk_count(ctl);
        s->on_bus = slot_used(id);
        s->mounted = scsi_guest_path(ctl, id) && sim_mounted(fx.vm, scsi_guest_path(ctl, id));
        s->modify = calls("hcs.modify");
        s->mount_calls = calls("guest.scsi_mount");
        s->unmount_calls = calls("guest.scsi_unmount");
}

static void assert_same(const struct snap *a, const struct snap *b)
{
        assert_string_equal(a->disk, b->disk);
        assert_string_equal(a->mount, b->mount);
        assert_int_equal(a->refs, b->refs);
        assert_int_equal(a->disks, b->disks);
        assert_int_equal(a->on_bus, b->on_bus);
        assert_int_equal(a->mounted, b->mounted);
        assert_int_equal(a->modify, b->modify);
        assert_int_equal(a->mount_calls, b->mount_calls);
        assert_int_equal(a->unmount_calls, b->unmount_calls);
}

static void test_frozen_rejects(void **state)
{
        char a[SCSI_ID_LEN], b[SCSI_ID_LEN], z[SCSI_ID_LEN];
        ctrl_envelope *e = NULL, *e2 = NULL;
        struct snap sa, sb, now;
        struct cres x = {0};

        reserve_ok(ctl, "/vhd/a.vhdx", 0, a);
        assert_int_equal(CSYNC(scsi_map, ctl, a), 0);
        reserve_ok(ctl, "/vhd/b.vhdx", 0, b);
        assert_int_equal(scsi_save(ctl, &e), 0);
        assert_string_equal(scsi_disk_state(ctl, a), "source_migrating");
        assert_string_equal(scsi_mount_state(ctl, b), "source_migrating");
        snap(a, &sa);
        snap(b, &sb);

        struct scsi_disk_config d = dcfg("/vhd/new.vhdx");
        struct scsi_mount_config m = mcfg(0);
        assert_int_equal(scsi_reserve(ctl, &d, &m, z), -EBUSY);
        d = dcfg("/vhd/a.vhdx"); /* another reference on a frozen mount */
        assert_int_equal(scsi_reserve(ctl, &d, &m, z), -EBUSY);
        assert_int_equal(scsi_map(ctl, a, c_done, &x), -EBUSY);
        assert_int_equal(scsi_map(ctl, b, c_done, &x), -EBUSY);
        assert_int_equal(scsi_unmap(ctl, a, c_done, &x), -EBUSY);
        assert_int_equal(scsi_unmap(ctl, b, c_done, &x), -EBUSY);
        assert_int_equal(scsi_patch(ctl, a, "/elsewhere/a.vhdx"), -EBUSY);
        run_for_ms(5);
        assert_false(x.done);
        snap(a, &now);
        assert_same(&sa, &now);
        snap(b, &now);
        assert_same(&sb, &now);

        /* saving again is safe and says the same */
        assert_int_equal(scsi_save(ctl, &e2), 0);
        assert_int_equal(e2->value.len, e->value.len);
        assert_memory_equal(e2->value.data, e->value.data, e->value.len);
        ctrl_envelope_free(e);
        ctrl_envelope_free(e2);

        /* rollback: each machine goes back to where it was saved from */
        assert_int_equal(scsi_resume(ctl), 0);
        assert_string_equal(scsi_disk_state(ctl, a), "attached");
        assert_string_equal(scsi_mount_state(ctl, a), "mounted");
        assert_string_equal(scsi_disk_state(ctl, b), "reserved");
        assert_string_equal(scsi_mount_state(ctl, b), "reserved");
        assert_int_equal(scsi_resume(ctl), 0); /* nothing frozen: nothing to do */
        assert_int_equal(CSYNC(scsi_map, ctl, b), 0);
        assert_true(sim_mounted(fx.vm, scsi_guest_path(ctl, b)));
        assert_int_equal(CSYNC(scsi_unmap, ctl, b), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, a), 0);
        assert_int_equal(scsi_disk_count(ctl), 1);
}

static void test_save_failure_freezes_nothing(void **state)
{
        char a[SCSI_ID_LEN], b[SCSI_ID_LEN], z[SCSI_ID_LEN];
        ctrl_envelope *e = NULL;
        uint64_t un0;

        reserve_ok(ctl, "/vhd/a.vhdx", 0, a);
        assert_int_equal(CSYNC(scsi_map, ctl, a), 0);
        reserve_ok(ctl, "/vhd/b.vhdx", 0, b);
        arm("guest.scsi_mount", -EIO);
        assert_int_equal(CSYNC(scsi_map, ctl, b), -EIO);
        assert_string_equal(scsi_mount_state(ctl, b), "invalid");
        assert_string_equal(scsi_disk_state(ctl, b), "attached");

        assert_int_equal(scsi_save(ctl, &e), -EBUSY);
        assert_null(e);
        assert_string_equal(scsi_disk_state(ctl, a), "attached");
        assert_string_equal(scsi_mount_state(ctl, a), "mounted");
        reserve_ok(ctl, "/vhd/c.vhdx", 0, z);

        /* the failed mount's reservation releases without a guest call and the disk leaves */
        un0 = calls("guest.scsi_unmount");
        assert_int_equal(CSYNC(scsi_unmap, ctl, b), 0);
        assert_int_equal(calls("guest.scsi_unmount"), un0);
        assert_false(sim_slot_used(fx.vm, 0, 2, NULL, 0));
        assert_int_equal(CSYNC(scsi_unmap, ctl, a), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, z), 0);
        assert_int_equal(scsi_disk_count(ctl), 1);
}

static void test_faults(void **state)
{
        char x[SCSI_ID_LEN], y[SCSI_ID_LEN], z[SCSI_ID_LEN], p[SCSI_ID_LEN], q[SCSI_ID_LEN];
        uint64_t mod0, un0;
        struct cres r1 = {0}, r2 = {0};

        /* host attach fails: the disk never got on the bus (detached); unmap frees the slot */
        reserve_ok(ctl, "/vhd/x.vhdx", 0, x);
        arm("hcs.modify", -EIO);
        assert_int_equal(CSYNC(scsi_map, ctl, x), -EIO);
        assert_string_equal(scsi_disk_state(ctl, x), "detached");
        assert_false(slot_used(x));
        assert_int_equal(scsi_map(ctl, x, c_done, &r1), -EBUSY);
        mod0 = calls("hcs.modify");
        assert_int_equal(CSYNC(scsi_unmap, ctl, x), 0);
        assert_int_equal(calls("hcs.modify"), mod0);
        assert_int_equal(scsi_disk_count(ctl), 1);

        /* guest unmount fails: the reference stays, the retry unmounts and detaches */
        reserve_ok(ctl, "/vhd/y.vhdx", 0, y);
        assert_int_equal(CSYNC(scsi_map, ctl, y), 0);
        arm("guest.scsi_unmount", -EIO);
        assert_int_equal(CSYNC(scsi_unmap, ctl, y), -EIO);
        assert_string_equal(scsi_mount_state(ctl, y), "mounted");
        assert_int_equal(scsi_mount_refs(ctl, y), 1);
        assert_true(sim_mounted(fx.vm, scsi_guest_path(ctl, y)));
        assert_true(slot_used(y));
        assert_int_equal(CSYNC(scsi_unmap, ctl, y), 0);
        assert_false(sim_slot_used(fx.vm, 0, 1, NULL, 0));

        /* host removal fails: the disk stays attached, the retry only removes */
        reserve_ok(ctl, "/vhd/z.vhdx", 0, z);
        assert_int_equal(CSYNC(scsi_map, ctl, z), 0);
        arm("hcs.modify", -EIO);
        assert_int_equal(CSYNC(scsi_unmap, ctl, z), -EIO);
        assert_string_equal(scsi_disk_state(ctl, z), "attached");
        assert_null(scsi_mount_state(ctl, z));
        assert_true(slot_used(z));
        un0 = calls("guest.scsi_unmount");
        assert_int_equal(CSYNC(scsi_unmap, ctl, z), 0);
        assert_int_equal(calls("guest.scsi_unmount"), un0);
        assert_false(sim_slot_used(fx.vm, 0, 1, NULL, 0));
        assert_int_equal(scsi_disk_count(ctl), 1);

        /* the host call cannot be queued (no VM): the attach's on_error keeps the disk
         * reserved; no guest (not queued either): the mount's on_error keeps it reserved */
        char s1[SCSI_ID_LEN];
        struct cres r0 = {0};
        reserve_ok(ctl, "/vhd/s.vhdx", 0, s1);
        fx.env.sys = NULL;
        assert_int_equal(scsi_map(ctl, s1, c_done, &r0), -ENOTCONN);
        fx.env.sys = fx.vm;
        assert_string_equal(scsi_disk_state(ctl, s1), "reserved");
        assert_false(slot_used(s1));
        fx.env.guest = NULL;
        assert_int_equal(CSYNC(scsi_map, ctl, s1), -ENOTCONN);
        fx.env.guest = fx.conn;
        assert_string_equal(scsi_disk_state(ctl, s1), "attached");
        assert_string_equal(scsi_mount_state(ctl, s1), "reserved");
        assert_int_equal(CSYNC(scsi_map, ctl, s1), 0);
        assert_true(sim_mounted(fx.vm, scsi_guest_path(ctl, s1)));
        assert_int_equal(CSYNC(scsi_unmap, ctl, s1), 0);
        assert_false(r0.done);

        /* a call meeting the disk's attach in flight is aborted, nothing changes */
        reserve_ok(ctl, "/vhd/p.vhdx", 1, p);
        reserve_ok(ctl, "/vhd/p.vhdx", 2, q);
        assert_int_equal(scsi_map(ctl, p, c_done, &r1), 0);
        assert_int_equal(scsi_map(ctl, q, c_done, &r2), -ESTALE);
        assert_int_equal(scsi_unmap(ctl, q, c_done, &r2), -ESTALE);
        ctrl_envelope *e = NULL;
        assert_int_equal(scsi_save(ctl, &e), -ESTALE);
        assert_int_equal(scsi_ctrl_free(ctl), -EBUSY);
        run_until(&r1.done, 5000);
        assert_int_equal(r1.r, 0);
        assert_false(r2.done);
        assert_string_equal(scsi_disk_state(ctl, q), "attached");
        assert_int_equal(CSYNC(scsi_map, ctl, q), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, p), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, q), 0);
        assert_int_equal(scsi_disk_count(ctl), 1);
}

/* Moves the running source VM to a new destination VM built from doc_scsi (its SCSI section). */
static struct hcs_system *migrate(struct json_object *doc_scsi)
{
        char data[512], doc[2048];
        struct json_object *j, *v, *dev;
        struct hcs_system *dst = NULL;
        struct result ri = {0}, rs = {0}, rd = {0};
        int fds[2];

        compat_b64(fx.vm, data, sizeof(data));
        make_doc(doc, sizeof(doc), 8, 2, 1000, data);
        j = json_tokener_parse(doc);
        assert_true(json_object_object_get_ex(j, "VirtualMachine", &v));
        assert_true(json_object_object_get_ex(v, "Devices", &dev));
        json_object_object_add(dev, "Scsi", json_object_get(doc_scsi));
        assert_int_equal(
            hcs_system_new(backend, "sdst", json_object_to_json_string(j), NULL, NULL, &dst), 0);
        json_object_put(j);
        assert_int_equal(SYNC(hcs_create, dst), 0);
        assert_int_equal(hcs_lm_initialize(fx.vm, NULL, on_blob, &ri), 0);
        run_until(&ri.done, 5000);
        assert_int_equal(ri.r, 0);
        socket_pair(fds);
        assert_int_equal(SYNC(hcs_lm_start_source, fx.vm, fds[0], 9), 0);
        assert_int_equal(SYNC(hcs_lm_start_destination, dst, fds[1], 9), 0);
        assert_int_equal(hcs_lm_transfer(fx.vm, on_done, &rs), 0);
        assert_int_equal(hcs_lm_transfer(dst, on_done, &rd), 0);
        run_until(&rs.done, 20000);
        run_until(&rd.done, 20000);
        assert_int_equal(rs.r, 0);
        assert_int_equal(rd.r, 0);
        assert_int_equal(SYNC(hcs_lm_finalize, dst, true), 0);
        return dst;
}

static void test_round_trip_save_import_patch_resume(void **state)
{
        char a[SCSI_ID_LEN], a2[SCSI_ID_LEN], b[SCSI_ID_LEN], r[SCSI_ID_LEN], z[SCSI_ID_LEN];
        struct ctrl_env denv = {.loop = loop};
        struct scsi_ctrl *dst = NULL;
        ctrl_envelope *e = NULL, *back = NULL;
        struct json_object *att = NULL, *c0, *as;
        uint32_t sc, sl, dc, dl, rc, rl;
        char path[256];

        reserve_ok(ctl, "/src/a.vhdx", 0, a);
        reserve_ok(ctl, "/src/a.vhdx", 0, a2);
        assert_int_equal(CSYNC(scsi_map, ctl, a), 0);
        assert_int_equal(CSYNC(scsi_map, ctl, a2), 0);
        reserve_ok(ctl, "/src/b.vhdx", 1, b);
        assert_int_equal(CSYNC(scsi_map, ctl, b), 0);
        reserve_ok(ctl, "/src/r.vhdx", 0, r); /* reserved, never mapped */
        assert_int_equal(scsi_slot(ctl, r, &rc, &rl), 0);

        assert_int_equal(scsi_save(ctl, &e), 0);
        back = fixture_through_bytes(e);
        assert_string_equal(back->type_url, "type.ferry.dev/ferry.scsi.save.v1.Payload");
        assert_int_equal(scsi_import(&denv, back, &dst), 0);
        ctrl_envelope_free(back);
        ctrl_envelope_free(e);

        /* imported: same slots, references and states frozen */
        assert_int_equal(scsi_slot(ctl, a, &sc, &sl), 0);
        assert_int_equal(scsi_slot(dst, a, &dc, &dl), 0);
        assert_int_equal(sc, dc);
        assert_int_equal(sl, dl);
        assert_int_equal(scsi_mount_refs(dst, a), 2);
        assert_int_equal(scsi_disk_count(dst), 4);
        assert_string_equal(scsi_disk_state(dst, a), "destination_migrating");
        assert_string_equal(scsi_mount_state(dst, r), "destination_migrating");
        struct scsi_disk_config d = dcfg("/dst/new.vhdx");
        struct scsi_mount_config m = mcfg(0);
        assert_int_equal(scsi_reserve(dst, &d, &m, z), -EBUSY);
        struct cres x = {0};
        assert_int_equal(scsi_map(dst, a, c_done, &x), -EBUSY);
        assert_int_equal(scsi_resume(dst), -EINVAL); /* no VM or guest yet: still frozen */
        assert_string_equal(scsi_disk_state(dst, a), "destination_migrating");

        /* patch: new host paths, same slots */
        assert_int_equal(scsi_patch(dst, a, "/dst/a.vhdx"), 0);
        assert_int_equal(scsi_patch(dst, a2, "/dst/a.vhdx"), 0); /* same disk: no-op */
        assert_int_equal(scsi_patch(dst, b, "/dst/a.vhdx"), -EEXIST);
        assert_int_equal(scsi_patch(dst, b, "dst/b.vhdx"), -EINVAL);
        assert_int_equal(scsi_patch(dst, "00000000-0000-4000-8000-000000000000", "/dst/x"),
                         -ENOENT);
        assert_int_equal(scsi_patch(dst, b, "/dst/b.vhdx"), 0);
        assert_int_equal(scsi_patch(dst, r, "/dst/r.vhdx"), 0);
        assert_string_equal(scsi_host_path(dst, a), "/dst/a.vhdx");
        assert_int_equal(scsi_slot(dst, a, &dc, &dl), 0);
        assert_int_equal(dl, sl);

        /* the destination's document lists the disks that were on the bus, patched */
        assert_int_equal(scsi_attachments(dst, &att), 0);
        assert_true(json_object_object_get_ex(att, "0", &c0));
        assert_true(json_object_object_get_ex(c0, "Attachments", &as));
        assert_int_equal(json_object_object_length(as), 3); /* rootfs, a, b */
        ferry_bprintf(path, sizeof(path), "%u", rl);
        assert_false(json_object_object_get_ex(as, path, NULL));

        /* a real sim migration to a VM built from that document */
        struct hcs_system *dvm = migrate(att);
        json_object_put(att);
        assert_true(sim_slot_used(dvm, sc, sl, path, sizeof(path)));
        assert_string_equal(path, "/dst/a.vhdx");
        assert_true(sim_mounted(dvm, "/run/mounts/scsi/0_1_0"));

        /* source: the VM stops, its frozen controller is torn down; unmaps make no calls */
        struct result gr = {0};
        assert_int_equal(guest_reconnect(fx.conn, dvm, 4, fixture_guest_done, &gr), 0);
        run_until(&gr.done, 5000);
        assert_int_equal(gr.r, 0);
        assert_int_equal(SYNC(hcs_lm_finalize, fx.vm, false), 0);
        assert_int_equal(scsi_teardown(ctl), 0);
        assert_int_equal(scsi_map(ctl, a, c_done, &x), -EBUSY);
        uint64_t mod0 = calls("hcs.modify"), un0 = calls("guest.scsi_unmount");
        assert_int_equal(CSYNC(scsi_unmap, ctl, a), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, a2), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, b), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, r), 0);
        assert_int_equal(scsi_disk_count(ctl), 0);
        assert_int_equal(calls("hcs.modify"), mod0);
        assert_int_equal(calls("guest.scsi_unmount"), un0);

        /* destination: resume binds the live VM and guest; states as saved */
        denv.sys = dvm;
        denv.guest = fx.conn;
        assert_int_equal(scsi_resume(dst), 0);
        assert_string_equal(scsi_disk_state(dst, a), "attached");
        assert_string_equal(scsi_mount_state(dst, a), "mounted");
        assert_string_equal(scsi_disk_state(dst, r), "reserved");
        assert_string_equal(scsi_mount_state(dst, r), "reserved");
        assert_int_equal(scsi_patch(dst, a, "/dst/again.vhdx"), -EBUSY);

        /* and works on the destination VM */
        assert_int_equal(CSYNC(scsi_unmap, dst, a), 0);
        assert_true(sim_mounted(dvm, "/run/mounts/scsi/0_1_0"));
        assert_int_equal(CSYNC(scsi_unmap, dst, a2), 0);
        assert_false(sim_mounted(dvm, "/run/mounts/scsi/0_1_0"));
        assert_false(sim_slot_used(dvm, sc, sl, NULL, 0));
        assert_int_equal(CSYNC(scsi_map, dst, r), 0);
        assert_true(sim_slot_used(dvm, rc, rl, path, sizeof(path)));
        assert_string_equal(path, "/dst/r.vhdx");
        assert_int_equal(CSYNC(scsi_unmap, dst, r), 0);
        assert_int_equal(CSYNC(scsi_unmap, dst, b), 0);
        assert_int_equal(scsi_disk_count(dst), 1);
        assert_int_equal(scsi_ctrl_free(dst), 0);

        guest_close(fx.conn);
        fx.conn = NULL;
        run_for_ms(1);
        close_system(dvm);
}

static void test_reserved_mount_round_trips_reserved(void **state)
{
        char a[SCSI_ID_LEN];
        struct scsi_ctrl *dst = NULL;
        ctrl_envelope *e = NULL;
        uint64_t un0 = calls("guest.scsi_unmount"), mod0;

        /* imported into an env with the live VM and guest: the same VM plays the destination */
        reserve_ok(ctl, "/vhd/a.vhdx", 3, a);
        assert_int_equal(scsi_save(ctl, &e), 0);
        assert_int_equal(scsi_import(&fx.env, e, &dst), 0);
        ctrl_envelope_free(e);
        assert_int_equal(scsi_resume(dst), 0);
        assert_string_equal(scsi_mount_state(dst, a), "reserved");
        assert_string_equal(scsi_disk_state(dst, a), "reserved");
        assert_int_equal(scsi_mount_refs(dst, a), 1);
        /* unmap of a never-mounted partition makes no guest call (the reference's would) */
        mod0 = calls("hcs.modify");
        assert_int_equal(CSYNC(scsi_unmap, dst, a), 0);
        assert_int_equal(calls("guest.scsi_unmount"), un0);
        assert_int_equal(calls("hcs.modify"), mod0);
        assert_int_equal(scsi_ctrl_free(dst), 0);
        assert_int_equal(scsi_teardown(ctl), 0);
        assert_int_equal(CSYNC(scsi_unmap, ctl, a), 0);
}

/* Repacks the payload of a saved controller after edit() changed it. */
static ctrl_envelope *edited(const ctrl_envelope *good,
                             void (*edit)(Ferry__Scsi__Save__V1__Payload *p, void *ud), void *ud)
{
        Ferry__Scsi__Save__V1__Payload *p =
            ferry__scsi__save__v1__payload__unpack(NULL, good->value.len, good->value.data);
        ctrl_envelope *out = NULL;

        assert_non_null(p);
        edit(p, ud);
        assert_int_equal(ctrl_envelope_pack("scsi", 1, &p->base, &out), 0);
        ferry__scsi__save__v1__payload__free_unpacked(p, NULL);
        return out;
}

static void set_disk_slot(Ferry__Scsi__Save__V1__Payload *p, void *ud)
{
        ctrl_envelope *last = p->disks[p->n_disks - 1]; /* disks[0] is the rootfs at slot 0 */
        Ferry__Scsi__Save__V1__DiskPayload *d =
            ferry__scsi__save__v1__disk_payload__unpack(NULL, last->value.len, last->value.data);
        ctrl_envelope *repacked = NULL;

        assert_non_null(d);
        d->slot = *(uint32_t *)ud;
        assert_int_equal(ctrl_envelope_pack("scsi_disk", 1, &d->base, &repacked), 0);
        ferry__scsi__save__v1__disk_payload__free_unpacked(d, NULL);
        /* swap the bytes: both sides allocate with malloc (protobuf-c's default allocator) */
        free(last->value.data);
        last->value.data = malloc(repacked->value.len);
        assert_non_null(last->value.data);
        memcpy(last->value.data, repacked->value.data, repacked->value.len);
        last->value.len = repacked->value.len;
        ctrl_envelope_free(repacked);
}

static void set_res_id(Ferry__Scsi__Save__V1__Payload *p, void *ud)
{
        p->reservations[0]->id[3] = 'x';
}

static void set_res_slot(Ferry__Scsi__Save__V1__Payload *p, void *ud)
{
        p->reservations[0]->slot = 999;
}

static void drop_res(Ferry__Scsi__Save__V1__Payload *p, void *ud)
{
        /* the mount still counts two */
        ferry__scsi__save__v1__reservation__free_unpacked(p->reservations[--p->n_reservations],
                                                          NULL);
}

static void dup_controller(Ferry__Scsi__Save__V1__Payload *p, void *ud)
{
        p->controllers[1] = p->controllers[0];
}

static void set_version(Ferry__Scsi__Save__V1__Payload *p, void *ud)
{
        p->schema_version = 7;
}

static void test_import_rejects_bad_payloads(void **state)
{
        char a[SCSI_ID_LEN], b[SCSI_ID_LEN];
        struct scsi_ctrl *const sentinel = (struct scsi_ctrl *)0x1;
        struct scsi_ctrl *dst = sentinel;
        ctrl_envelope *good = NULL, *bad = NULL;
        uint32_t slot;

        reserve_ok(ctl, "/vhd/a.vhdx", 0, a);
        reserve_ok(ctl, "/vhd/a.vhdx", 0, b);
        assert_int_equal(scsi_save(ctl, &good), 0);

        assert_int_equal(scsi_import(&fx.env, NULL, &dst), -EINVAL);
        /* foreign: a disk's envelope where the controller's belongs */
        Ferry__Scsi__Save__V1__Payload p = FERRY__SCSI__SAVE__V1__PAYLOAD__INIT;
        p.schema_version = 1;
        assert_int_equal(ctrl_envelope_pack("scsi_disk", 1, &p.base, &bad), 0);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        /* corrupt bytes */
        assert_int_equal(ctrl_envelope_dup(good, &bad), 0);
        memset(bad->value.data, 0xff, bad->value.len);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EBADMSG);
        ctrl_envelope_free(bad);
        /* a future schema version, outside and inside */
        assert_int_equal(ctrl_envelope_dup(good, &bad), 0);
        bad->schema_version = 2;
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        bad = edited(good, set_version, NULL);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        /* slots out of range, on an absent controller, or taken twice */
        slot = 300;
        bad = edited(good, set_disk_slot, &slot);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        slot = 2 * 64 + 1;
        bad = edited(good, set_disk_slot, &slot);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        slot = 0; /* the rootfs's slot */
        bad = edited(good, set_disk_slot, &slot);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        /* reservations: a malformed id, a slot holding no disk, counts that disagree */
        bad = edited(good, set_res_id, NULL);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        bad = edited(good, set_res_slot, NULL);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        bad = edited(good, drop_res, NULL);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        bad = edited(good, dup_controller, NULL);
        assert_int_equal(scsi_import(&fx.env, bad, &dst), -EINVAL);
        ctrl_envelope_free(bad);
        assert_ptr_equal(dst, sentinel); /* nothing was handed out */

        /* the good one imports; never resumed, it is torn down and released without calls */
        assert_int_equal(scsi_import(&fx.env, good, &dst), 0);
        ctrl_envelope_free(good);
        assert_int_equal(scsi_teardown(dst), 0);
        assert_int_equal(scsi_teardown(dst), 0);
        assert_int_equal(scsi_resume(dst), -EBUSY);
        uint64_t mod0 = calls("hcs.modify"), un0 = calls("guest.scsi_unmount");
        assert_int_equal(CSYNC(scsi_unmap, dst, a), 0);
        assert_int_equal(CSYNC(scsi_unmap, dst, b), 0);
        assert_int_equal(scsi_disk_count(dst), 0);
        assert_int_equal(calls("hcs.modify"), mod0);
        assert_int_equal(calls("guest.scsi_unmount"), un0);
        assert_int_equal(scsi_ctrl_free(dst), 0);
        assert_int_equal(scsi_resume(ctl), 0);
        assert_string_equal(scsi_disk_state(ctl, a), "reserved");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            CTRL_TEST(test_build_from_doc),
            CTRL_TEST(test_lifecycle_refcounts),
            CTRL_TEST(test_config_mismatch),
            CTRL_TEST(test_slot_exhaustion),
            CTRL_TEST(test_reserve_then_unmap_frees_slot),
            CTRL_TEST(test_frozen_rejects),
            CTRL_TEST(test_save_failure_freezes_nothing),
            CTRL_TEST(test_faults),
            CTRL_TEST(test_round_trip_save_import_patch_resume),
            CTRL_TEST(test_reserved_mount_round_trips_reserved),
            CTRL_TEST(test_import_rejects_bad_payloads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
