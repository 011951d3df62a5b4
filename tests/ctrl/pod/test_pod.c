/* SPDX-License-Identifier: MIT */
/* The pod controller over real children (network, containers) and real VM controllers on the
 * sim backend: lifecycle, save freezing everything, a failed save rolling back, the full
 * source → destination migration of a pod (import, patch in any order, resume after the VM),
 * source rollback, and teardown of an imported pod reporting its tasks' exits. */
#include "fixture.h"
#include "vm_pair.h"

#include "ctrl/pod/pod.h"

static struct pod_options pod_opts(const char *id, const char *ns, struct events *ev)
{
        return (struct pod_options){.pod_id = id,
                                    .namespace_id = ns,
                                    .lookup = lookup,
                                    .publish = on_publish,
                                    .publish_userdata = ev};
}

static struct container *add_container(struct pod *p, const char *id, bool start)
{
        struct container *c = NULL;
        assert_int_equal(pod_new_container(p, id, &c), 0);
        assert_non_null(c);
        struct container_create_opts o = {.id = id};
        assert_int_equal(CALL(container_create, c, &o), 0);
        if (start)
                assert_true(CALL(container_start, c) > 0);
        return c;
}

/* A pod "sb" with its network up and a sandbox and a workload container running. */
static struct pod *running_pod(struct vm *vm, struct events *ev)
{
        struct pod *p = NULL;
        assert_int_equal(pod_new(vm, "sb", &p), 0);
        struct pod_options o = pod_opts("sb", "ns-src", ev);
        assert_int_equal(pod_create(p, &o), 0);
        assert_string_equal(pod_state_name(p), "active");
        assert_int_equal(CALL(pod_setup_network, p), 0);
        assert_string_equal(network_state_name(pod_network(p)), "configured");
        add_container(p, "w1", true);
        add_container(p, "sb", true);
        return p;
}

static void free_pod(struct pod *p)
{
        for (int i = 0; i < 1000 && pod_free(p); i++)
                run_for_ms(2);
}

/* One host: its VM, the pod on it and the task events the pod published. */
struct side {
        struct vm *vm;
        struct pod *pod;
        struct events ev;
};

/* A running VM vm_id with the pod of running_pod on it; returns the pod. */
static struct pod *side_up(struct side *x, const char *vm_id)
{
        *x = (struct side){0};
        x->vm = running_vm(vm_id);
        x->pod = running_pod(x->vm, &x->ev);
        return x->pod;
}

static void side_down(struct side *x)
{
        free_pod(x->pod);
        destroy_vm(x->vm);
}

/* Saves the source (VM migration initialized, pod and VM saved) and imports its pod on a new
 * destination VM "dst". */
static void save_and_import(struct side *s, struct side *d, ctrl_envelope **penv,
                            ctrl_envelope **venv)
{
        assert_int_equal(CALL(vm_initialize_source, s->vm, NULL), 0);
        assert_int_equal(CALL(pod_save, s->pod, penv), 0);
        assert_int_equal(vm_save(s->vm, venv), 0);
        assert_int_equal(vm_new(loop, backend, "dst", &d->vm), 0);
        assert_int_equal(pod_new(d->vm, "sb", &d->pod), 0);
        struct pod_options o = pod_opts(NULL, NULL, &d->ev);
        assert_int_equal(pod_import(d->pod, &o, *penv), 0);
}

/* A saved pod on a running VM, and a blank pod "p" on a VM "dvm" that is never created: the
 * start of an import. */
struct import_case {
        struct side src;
        ctrl_envelope *penv;
        struct vm *dvm;
        struct pod *p;
        struct pod_options o;
};

static void import_case_up(struct import_case *k, const char *vm_id)
{
        *k = (struct import_case){0};
        side_up(&k->src, vm_id);
        assert_int_equal(CALL(pod_save, k->src.pod, &k->penv), 0);
        assert_int_equal(vm_new(loop, backend, "dvm", &k->dvm), 0);
        assert_int_equal(pod_new(k->dvm, "p", &k->p), 0);
        k->o = pod_opts(NULL, NULL, &k->src.ev);
}

/* Tears the imported pod down and frees both pods; the caller frees dvm, then the source VM. */
static void import_case_down(struct import_case *k)
{
        assert_int_equal(CALL(pod_teardown, k->p), 0);
        ctrl_envelope_free(k->penv);
        free_pod(k->p);
        free_pod(k->src.pod);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_lifecycle(void **state)
{
        struct side s;
        struct pod *p = side_up(&s, "life");
        struct container *c = NULL;
        assert_int_equal(pod_new_container(p, "w1", &c), -EEXIST);
        assert_int_equal(pod_delete_container(p, "nope"), -ENOENT);
        assert_int_equal(pod_container_count(p), 2);
        assert_non_null(pod_container(p, "sb"));
        struct pod_options o = pod_opts("x", NULL, &s.ev);
        assert_int_equal(pod_create(p, &o), -EBUSY);
        struct res x = {0};
        assert_int_equal(pod_patch_container(p, "w1", NULL, NULL, on_res, &x), -EBUSY);
        assert_int_equal(CALL(pod_resume, p), 0); /* active: idempotent */
        /* A created (never started) container can be deleted from the map. */
        add_container(p, "w2", false);
        assert_int_equal(pod_delete_container(p, "w2"), 0);
        assert_null(pod_container(p, "w2"));
        assert_int_equal(CALL(pod_teardown, p), 0);
        assert_string_equal(pod_state_name(p), "terminated");
        assert_string_equal(network_state_name(pod_network(p)), "torn_down");
        assert_int_equal(CALL(pod_teardown, p), 0); /* idempotent */
        side_down(&s);
}

static void test_save_freezes_and_rolls_back(void **state)
{
        struct side s;
        struct pod *p = side_up(&s, "save");
        ctrl_envelope *env = NULL;
        assert_int_equal(CALL(pod_save, p, &env), 0);
        assert_non_null(env);
        assert_string_equal(env->type_url, "type.ferry.dev/ferry.pod.save.v1.Payload");
        assert_string_equal(pod_state_name(p), "source_migrating");
        assert_true(pod_is_migrating(p));
        assert_true(container_is_frozen(pod_container(p, "sb")));
        assert_true(container_is_frozen(pod_container(p, "w1")));
        assert_string_equal(network_state_name(pod_network(p)), "source_migrating");
        /* New containers and network changes are rejected while frozen. */
        struct container *c = NULL;
        assert_int_equal(pod_new_container(p, "late", &c), -EBUSY);
        struct res x = {0};
        assert_int_equal(pod_setup_network(p, on_res, &x), -EBUSY);
        assert_int_equal(pod_delete_container(p, "w1"), -EBUSY);
        assert_int_equal(pod_container_count(p), 2);
        /* Save again is allowed (re-serializes). */
        ctrl_envelope *env2 = NULL;
        assert_int_equal(CALL(pod_save, p, &env2), 0);
        ctrl_envelope_free(env2);
        /* Resume requires the VM resumed (running) first. */
        assert_int_equal(CALL(vm_initialize_source, s.vm, NULL), 0);
        assert_int_equal(pod_resume(p, on_res, &x), -EBUSY);
        assert_string_equal(pod_state_name(p), "source_migrating");
        assert_int_equal(CALL(vm_finalize, s.vm, true), 0);
        assert_int_equal(CALL(vm_resume, s.vm), 0);
        /* Source rollback. */
        assert_int_equal(CALL(pod_resume, p), 0);
        assert_string_equal(pod_state_name(p), "active");
        assert_false(container_is_frozen(pod_container(p, "sb")));
        assert_string_equal(container_state_name(pod_container(p, "w1")), "running");
        assert_string_equal(network_state_name(pod_network(p)), "configured");
        assert_int_equal(s.ev.exit, 0);
        ctrl_envelope_free(env);
        side_down(&s);
}

static void test_partial_save_leaves_nothing_frozen(void **state)
{
        struct side s;
        struct pod *p = side_up(&s, "partial");
        /* "zz" sorts last and is not running: its save fails after "sb" and "w1" froze. */
        add_container(p, "zz", false);
        ctrl_envelope *env = NULL;
        struct res x = {0};
        int r = pod_save(p, &env, on_res, &x);
        assert_int_equal(r, 0);
        assert_string_equal(pod_state_name(p), "save_rolling_back");
        struct container *late = NULL;
        assert_int_equal(pod_new_container(p, "late", &late), -ENOTCONN);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, -EBUSY);
        assert_null(env);
        assert_string_equal(pod_state_name(p), "active");
        for (size_t i = 0; i < pod_container_count(p); i++)
                assert_false(container_is_frozen(pod_container_at(p, i)));
        assert_string_equal(container_state_name(pod_container(p, "sb")), "running");
        assert_string_equal(network_state_name(pod_network(p)), "configured");
        /* The pod works as before: a new container is accepted. */
        add_container(p, "late", false);
        side_down(&s);
}

/* Runs the VM migration from src to dst (dst imported from venv) up to finalized. */
static void migrate_vms(struct side *src, struct side *dst, const ctrl_envelope *venv,
                        bool finalize_to_dst)
{
        assert_int_equal(vm_import(dst->vm, venv), 0);
        migrate_vm_pair(src->vm, dst->vm, 5, finalize_to_dst);
}

/* Frees both sides of a migration and the envelopes it carried. */
static void free_sides(struct side *s, struct side *d, ctrl_envelope *penv, ctrl_envelope *venv)
{
        ctrl_envelope_free(penv);
        ctrl_envelope_free(venv);
        free_pod(s->pod);
        free_pod(d->pod);
        destroy_vm(s->vm);
        destroy_vm(d->vm);
}

static void test_migrate_pod(void **state)
{
        struct side s = {0}, d = {0};
        side_up(&s, "src");
        int64_t w1_pid = container_pid(pod_container(s.pod, "w1"));

        ctrl_envelope *penv = NULL, *venv = NULL;
        save_and_import(&s, &d, &penv, &venv);

        assert_string_equal(pod_state_name(d.pod), "destination_migrating");
        assert_int_equal(pod_container_count(d.pod), 2);
        assert_string_equal(pod_id(d.pod), "sb");
        struct container *c = NULL;
        assert_int_equal(pod_new_container(d.pod, "x", &c), -EBUSY);
        struct res x = {0};
        assert_int_equal(pod_resume(d.pod, on_res, &x), -EBUSY); /* nothing patched yet */

        /* Patch the workload first, then the sandbox: order does not matter. */
        struct container_patch_opts pw = {.id = "w1-dst", .bundle = "/dst/w1"};
        assert_int_equal(CALL(pod_patch_container, d.pod, "w1", &pw, NULL), 0);
        assert_non_null(pod_container(d.pod, "w1-dst"));
        assert_null(pod_container(d.pod, "w1"));
        assert_string_equal(pod_id(d.pod), "sb");
        assert_int_equal(pod_resume(d.pod, on_res, &x), -EBUSY); /* sandbox unpatched */
        struct container_patch_opts ps = {.id = "w1-dst"};
        /* A new id taken by another container, or a sandbox without namespace: refused. */
        assert_int_equal(pod_patch_container(d.pod, "sb", &ps, "ns-dst", on_res, &x), -EEXIST);
        ps.id = "sb-dst";
        assert_int_equal(pod_patch_container(d.pod, "sb", &ps, NULL, on_res, &x), -EINVAL);
        assert_int_equal(pod_patch_container(d.pod, "nope", &ps, NULL, on_res, &x), -ENOENT);
        assert_false(x.done);
        assert_string_equal(pod_id(d.pod), "sb");
        assert_int_equal(CALL(pod_patch_container, d.pod, "sb", &ps, "ns-dst"), 0);
        assert_string_equal(pod_id(d.pod), "sb-dst");
        assert_string_equal(network_patched_namespace_id(pod_network(d.pod)), "ns-dst");

        /* The pod waits for the VM. */
        assert_int_equal(pod_resume(d.pod, on_res, &x), -EBUSY);
        migrate_vms(&s, &d, venv, true);
        assert_int_equal(pod_resume(d.pod, on_res, &x), -EBUSY); /* VM finalized, not resumed */
        assert_int_equal(CALL(vm_resume, d.vm), 0);
        assert_int_equal(CALL(pod_resume, d.pod), 0);
        assert_string_equal(pod_state_name(d.pod), "active");
        assert_false(pod_is_migrating(d.pod));
        struct container *w1 = pod_container(d.pod, "w1-dst");
        assert_string_equal(container_state_name(w1), "running");
        assert_int_equal(container_pid(w1), w1_pid);
        assert_string_equal(container_state_name(pod_container(d.pod, "sb-dst")), "running");
        /* TaskCreate (and start) were republished for both tasks; the NIC moved. */
        assert_int_equal(d.ev.create, 2);
        assert_string_equal(network_state_name(pod_network(d.pod)), "configured");
        assert_int_equal(network_nic_count(pod_network(d.pod)), 1);
        const struct network_endpoint *ep = NULL;
        assert_non_null(network_nic_id(pod_network(d.pod), 0, &ep));
        assert_string_equal(ep->id, "ep-c");

        /* The workload's init exits on the destination: its exit is reported once. */
        assert_int_equal(guest_sim_exit_process(vm_guest(d.vm), (uint32_t)w1_pid, 3), 0);
        run_for_ms(20);
        assert_int_equal(d.ev.exit, 1);
        assert_non_null(strstr(d.ev.last_exit, "w1-dst"));

        /* The source pod is discarded: frozen, its VM gone; its tasks' exits are reported. */
        assert_int_equal(CALL(pod_teardown, s.pod), 0);
        assert_string_equal(pod_state_name(s.pod), "terminated");
        assert_int_equal(s.ev.exit, 2);

        free_sides(&s, &d, penv, venv);
}

static void test_rollback_after_transfer(void **state)
{
        struct side s = {0}, d = {0};
        side_up(&s, "src");
        ctrl_envelope *penv = NULL, *venv = NULL;
        save_and_import(&s, &d, &penv, &venv);
        /* Finalize resume on the source: everything runs there as before. */
        migrate_vms(&s, &d, venv, false);
        assert_int_equal(CALL(vm_resume, s.vm), 0);
        assert_int_equal(CALL(pod_resume, s.pod), 0);
        assert_string_equal(pod_state_name(s.pod), "active");
        assert_string_equal(container_state_name(pod_container(s.pod, "w1")), "running");
        struct container *c = NULL;
        assert_int_equal(pod_new_container(s.pod, "after", &c), 0);
        assert_int_equal(s.ev.exit, 0);
        /* The destination pod never resumed: teardown reports an exit per task. */
        assert_int_equal(CALL(pod_teardown, d.pod), 0);
        assert_string_equal(pod_state_name(d.pod), "terminated");
        assert_int_equal(d.ev.exit, 2);
        free_sides(&s, &d, penv, venv);
}

static void test_import_is_atomic(void **state)
{
        struct import_case k;
        import_case_up(&k, "imp");
        struct pod *p = k.p;
        assert_int_equal(pod_import(p, &k.o, NULL), -EINVAL);
        ctrl_envelope foreign = *k.penv;
        foreign.type_url = (char *)"type.ferry.dev/ferry.vm.save.v1.Payload";
        assert_int_equal(pod_import(p, &k.o, &foreign), -EINVAL);
        ctrl_envelope corrupt = *k.penv;
        uint8_t junk[] = {0xff, 0xff, 0xff};
        corrupt.value = (ProtobufCBinaryData){.len = sizeof(junk), .data = junk};
        assert_int_equal(pod_import(p, &k.o, &corrupt), -EBADMSG);
        assert_string_equal(pod_state_name(p), "not_created");
        assert_int_equal(pod_container_count(p), 0);
        assert_null(pod_network(p));
        assert_int_equal(pod_import(p, &k.o, k.penv), 0);
        assert_int_equal(pod_container_count(p), 2);
        import_case_down(&k);
        for (int i = 0; i < 100 && vm_free(k.dvm); i++)
                run_for_ms(2);
        destroy_vm(k.src.vm);
}

/* A caller may issue its next call from the done callback of the previous one. */
struct chain {
        struct pod *pod;
        struct container_patch_opts sb;
        struct res second;
        int second_ret;
};

static void chain_first_done(int r, void *ud)
{
        struct chain *c = ud;
        assert_int_equal(r, 0);
        c->second_ret = pod_patch_container(c->pod, "sb", &c->sb, "ns-dst", on_res, &c->second);
}

static void test_patch_chained_from_done(void **state)
{
        struct import_case k;
        import_case_up(&k, "chain");
        struct chain c = {.pod = k.p, .sb = {.id = "sb2"}};
        assert_int_equal(pod_import(c.pod, &k.o, k.penv), 0);
        struct container_patch_opts w = {.id = "w2"};
        assert_int_equal(pod_patch_container(c.pod, "w1", &w, NULL, chain_first_done, &c), 0);
        run_until(&c.second.done, 5000);
        assert_int_equal(c.second_ret, 0);
        assert_int_equal(c.second.r, 0);
        assert_int_equal(c.second.calls, 1);
        assert_string_equal(pod_id(c.pod), "sb2");
        assert_non_null(pod_container(c.pod, "w2"));
        import_case_down(&k);
        assert_null(vm_free(k.dvm));
        destroy_vm(k.src.vm);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            CTRL_LOOP_TEST(test_lifecycle),
            CTRL_LOOP_TEST(test_save_freezes_and_rolls_back),
            CTRL_LOOP_TEST(test_partial_save_leaves_nothing_frozen),
            CTRL_LOOP_TEST(test_migrate_pod),
            CTRL_LOOP_TEST(test_rollback_after_transfer),
            CTRL_LOOP_TEST(test_import_is_atomic),
            CTRL_LOOP_TEST(test_patch_chained_from_done),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
