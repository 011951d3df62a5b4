/* SPDX-License-Identifier: MIT */
/* The pod controller over real children (network, containers) and real VM controllers on the
 * sim backend: lifecycle, save freezing everything, a failed save rolling back, the full
 * source → destination migration of a pod (import, patch in any order, resume after the VM),
 * source rollback, and teardown of an imported pod reporting its tasks' exits. */
#include "fixture.h"

#include "ctrl/pod/pod.h"
#include "ctrl/vm/vm.h"

struct res {
        bool done;
        int r;
        unsigned calls;
};

static void on_res(int r, void *ud)
{
        struct res *x = ud;
        x->done = true;
        x->r = r;
        x->calls++;
}

#define CALL(fn, ...)                                                                              \
        ({                                                                                         \
                struct res _x = {0};                                                               \
                assert_int_equal(fn(__VA_ARGS__, on_res, &_x), 0);                                 \
                run_until(&_x.done, 30000);                                                        \
                assert_int_equal(_x.calls, 1);                                                     \
                _x.r;                                                                              \
        })

/* Task events published by one side's containers. */
struct events {
        unsigned create, start, exit;
        char last_exit[256];
};

static void on_publish(const char *topic, const char *json, void *ud)
{
        struct events *e = ud;
        if (strcmp(topic, "/tasks/create") == 0)
                e->create++;
        else if (strcmp(topic, "/tasks/start") == 0)
                e->start++;
        else if (strcmp(topic, "/tasks/exit") == 0) {
                e->exit++;
                ferry_strscpy(e->last_exit, json, sizeof(e->last_exit));
        }
}

static int lookup(const char *ns, struct network_endpoint *eps, size_t max, void *ud)
{
        static const struct network_endpoint src = {"ep-a", "00-15-5d-00-00-0a", "eth0"};
        static const struct network_endpoint dst = {"ep-c", "00-15-5d-00-00-0c", "eth0"};
        if (strcmp(ns, "ns-src") == 0)
                eps[0] = src;
        else if (strcmp(ns, "ns-dst") == 0)
                eps[0] = dst;
        else
                return -ENOENT;
        return max >= 1 ? 1 : -ENOSPC;
}

static void vm_doc(char *buf, size_t size)
{
        ssize_t r = ferry_bprintf(
            buf, size,
            "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{\"KernelCmdLine\":"
            "\"console=hvc0 %s\"}},"
            "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":16},\"Processor\":{\"Count\":2}},"
            "\"Devices\":{\"Scsi\":{\"0\":{}}},\"Sim\":{\"DirtyPagesPerSecond\":2000}}}",
            VM_LM_LOG_FORWARDER);
        assert_true(r > 0);
}

static struct vm *running_vm(const char *id)
{
        char doc[1024];
        struct vm *vm = NULL;
        vm_doc(doc, sizeof(doc));
        assert_int_equal(vm_new(loop, backend, id, &vm), 0);
        assert_int_equal(CALL(vm_create, vm, id, doc), 0);
        assert_int_equal(CALL(vm_start, vm), 0);
        return vm;
}

static void destroy_vm(struct vm *vm)
{
        assert_int_equal(CALL(vm_terminate, vm), 0);
        for (int i = 0; i < 1000 && vm_free(vm); i++)
                run_for_ms(2);
}

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

/* ---- tests ------------------------------------------------------------------------------ */

static void test_lifecycle(void **state)
{
        struct events ev = {0};
        struct vm *vm = running_vm("life");
        struct pod *p = running_pod(vm, &ev);
        struct container *c = NULL;
        assert_int_equal(pod_new_container(p, "w1", &c), -EEXIST);
        assert_int_equal(pod_delete_container(p, "nope"), -ENOENT);
        assert_int_equal(pod_container_count(p), 2);
        assert_non_null(pod_container(p, "sb"));
        struct pod_options o = pod_opts("x", NULL, &ev);
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
        free_pod(p);
        destroy_vm(vm);
}

static void test_save_freezes_and_rolls_back(void **state)
{
        struct events ev = {0};
        struct vm *vm = running_vm("save");
        struct pod *p = running_pod(vm, &ev);
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
        assert_int_equal(CALL(vm_initialize_source, vm, NULL), 0);
        assert_int_equal(pod_resume(p, on_res, &x), -EBUSY);
        assert_string_equal(pod_state_name(p), "source_migrating");
        assert_int_equal(CALL(vm_finalize, vm, true), 0);
        assert_int_equal(CALL(vm_resume, vm), 0);
        /* Source rollback. */
        assert_int_equal(CALL(pod_resume, p), 0);
        assert_string_equal(pod_state_name(p), "active");
        assert_false(container_is_frozen(pod_container(p, "sb")));
        assert_string_equal(container_state_name(pod_container(p, "w1")), "running");
        assert_string_equal(network_state_name(pod_network(p)), "configured");
        assert_int_equal(ev.exit, 0);
        ctrl_envelope_free(env);
        free_pod(p);
        destroy_vm(vm);
}

static void test_partial_save_leaves_nothing_frozen(void **state)
{
        struct events ev = {0};
        struct vm *vm = running_vm("partial");
        struct pod *p = running_pod(vm, &ev);
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
        free_pod(p);
        destroy_vm(vm);
}

struct side {
        struct vm *vm;
        struct pod *pod;
        struct events ev;
};

/* Runs the VM migration from src to dst (dst imported from venv) up to resumed. */
static void migrate_vms(struct side *src, struct side *dst, const ctrl_envelope *venv,
                        bool finalize_to_dst)
{
        assert_int_equal(vm_import(dst->vm, venv), 0);
        assert_int_equal(CALL(vm_create_destination, dst->vm, "dst", NULL), 0);
        assert_int_equal(CALL(vm_patch, dst->vm), 0);
        int fds[2];
        socket_pair(fds);
        assert_int_equal(CALL(vm_start_destination, dst->vm, fds[1], 5), 0);
        assert_int_equal(CALL(vm_start_source, src->vm, fds[0], 5), 0);
        struct res rs = {0}, rd = {0};
        assert_int_equal(vm_transfer(src->vm, on_res, &rs), 0);
        assert_int_equal(vm_transfer(dst->vm, on_res, &rd), 0);
        run_until(&rs.done, 30000);
        run_until(&rd.done, 30000);
        assert_int_equal(rs.r, 0);
        assert_int_equal(rd.r, 0);
        struct vm *keep = finalize_to_dst ? dst->vm : src->vm;
        struct vm *drop = finalize_to_dst ? src->vm : dst->vm;
        assert_int_equal(CALL(vm_finalize, keep, true), 0);
        assert_int_equal(CALL(vm_finalize, drop, false), 0);
        assert_string_equal(vm_state_name(drop), "terminated");
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
        s.vm = running_vm("src");
        s.pod = running_pod(s.vm, &s.ev);
        int64_t w1_pid = container_pid(pod_container(s.pod, "w1"));

        assert_int_equal(CALL(vm_initialize_source, s.vm, NULL), 0);
        ctrl_envelope *penv = NULL, *venv = NULL;
        assert_int_equal(CALL(pod_save, s.pod, &penv), 0);
        assert_int_equal(vm_save(s.vm, &venv), 0);

        assert_int_equal(vm_new(loop, backend, "dst", &d.vm), 0);
        assert_int_equal(pod_new(d.vm, "sb", &d.pod), 0);
        struct pod_options o = pod_opts(NULL, NULL, &d.ev);
        assert_int_equal(pod_import(d.pod, &o, penv), 0);
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
        s.vm = running_vm("src");
        s.pod = running_pod(s.vm, &s.ev);
        assert_int_equal(CALL(vm_initialize_source, s.vm, NULL), 0);
        ctrl_envelope *penv = NULL, *venv = NULL;
        assert_int_equal(CALL(pod_save, s.pod, &penv), 0);
        assert_int_equal(vm_save(s.vm, &venv), 0);
        assert_int_equal(vm_new(loop, backend, "dst", &d.vm), 0);
        assert_int_equal(pod_new(d.vm, "sb", &d.pod), 0);
        struct pod_options o = pod_opts(NULL, NULL, &d.ev);
        assert_int_equal(pod_import(d.pod, &o, penv), 0);
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
        struct events ev = {0};
        struct vm *vm = running_vm("imp");
        struct pod *src = running_pod(vm, &ev);
        ctrl_envelope *penv = NULL;
        assert_int_equal(CALL(pod_save, src, &penv), 0);
        struct vm *dvm = NULL;
        assert_int_equal(vm_new(loop, backend, "dvm", &dvm), 0);
        struct pod *p = NULL;
        assert_int_equal(pod_new(dvm, "p", &p), 0);
        struct pod_options o = pod_opts(NULL, NULL, &ev);
        assert_int_equal(pod_import(p, &o, NULL), -EINVAL);
        ctrl_envelope foreign = *penv;
        foreign.type_url = (char *)"type.ferry.dev/ferry.vm.save.v1.Payload";
        assert_int_equal(pod_import(p, &o, &foreign), -EINVAL);
        ctrl_envelope corrupt = *penv;
        uint8_t junk[] = {0xff, 0xff, 0xff};
        corrupt.value = (ProtobufCBinaryData){.len = sizeof(junk), .data = junk};
        assert_int_equal(pod_import(p, &o, &corrupt), -EBADMSG);
        assert_string_equal(pod_state_name(p), "not_created");
        assert_int_equal(pod_container_count(p), 0);
        assert_null(pod_network(p));
        assert_int_equal(pod_import(p, &o, penv), 0);
        assert_int_equal(pod_container_count(p), 2);
        assert_int_equal(CALL(pod_teardown, p), 0);
        ctrl_envelope_free(penv);
        free_pod(p);
        free_pod(src);
        for (int i = 0; i < 100 && vm_free(dvm); i++)
                run_for_ms(2);
        destroy_vm(vm);
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
        struct events ev = {0};
        struct vm *vm = running_vm("chain");
        struct pod *src = running_pod(vm, &ev);
        ctrl_envelope *penv = NULL;
        assert_int_equal(CALL(pod_save, src, &penv), 0);
        struct vm *dvm = NULL;
        assert_int_equal(vm_new(loop, backend, "dvm", &dvm), 0);
        struct chain c = {.sb = {.id = "sb2"}};
        assert_int_equal(pod_new(dvm, "p", &c.pod), 0);
        struct pod_options o = pod_opts(NULL, NULL, &ev);
        assert_int_equal(pod_import(c.pod, &o, penv), 0);
        struct container_patch_opts w = {.id = "w2"};
        assert_int_equal(pod_patch_container(c.pod, "w1", &w, NULL, chain_first_done, &c), 0);
        run_until(&c.second.done, 5000);
        assert_int_equal(c.second_ret, 0);
        assert_int_equal(c.second.r, 0);
        assert_int_equal(c.second.calls, 1);
        assert_string_equal(pod_id(c.pod), "sb2");
        assert_non_null(pod_container(c.pod, "w2"));
        assert_int_equal(CALL(pod_teardown, c.pod), 0);
        ctrl_envelope_free(penv);
        free_pod(c.pod);
        free_pod(src);
        assert_null(vm_free(dvm));
        destroy_vm(vm);
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
