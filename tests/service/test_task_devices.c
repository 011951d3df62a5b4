/* SPDX-License-Identifier: MIT */
/* A task's devices and execs through the Task and Sandbox services over a real unix socket
 * (docs/shim.md "Devices", "Exec"): the sandbox's network namespace becomes a NIC in the
 * guest, a CreateTask rootfs becomes SCSI layers and a scratch (a bind rootfs a Plan9 share),
 * the bundle's bind mounts Plan9 shares and its windows.devices vPCI devices, all released
 * again at Delete; bad input is INVALID_ARGUMENT naming the field and changes nothing; a failed
 * map releases what was mapped; execs start, are signalled, waited for and deleted; an init's
 * Kill signals its container. */
#include "task_fixture.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctrl/pod/pod.h"
#include "ctrl/scsi/scsi.h"
#include "ctrl/vm/vm.h"
#include "hcs/fault.h"
#include "hcs/sim/sim.h"

static int setup(void **state)
{
        static const struct fixture_options o = {.name = "dev", .sandbox = {.memory_mb = 8}};
        return fixture_setup(state, &o);
}

static struct sandbox *sb_of(struct fixture *f)
{
        return shim_sandbox(f->shim);
}

/* What the sim VM holds: guest mounts by kind, ready vPCI devices, guest NICs, and the host
 * side's SCSI attachments, Plan9 shares, vPCI devices and NICs. */
struct vm_view {
        size_t scsi_mounts, plan9_mounts, vpci_ready, guest_nics, netns;
        size_t scsi_slots, shares, vpci, nics;
};

static size_t named_used(const struct sim_named *t, size_t n)
{
        size_t used = 0;
        for (size_t i = 0; i < n; i++)
                used += t[i].used;
        return used;
}

static struct vm_view view(struct fixture *f)
{
        struct sim_vm *v = fixture_sim(f);
        struct vm_view w = {0};
        assert_non_null(v);
        pthread_mutex_lock(&v->lock);
        for (size_t i = 0; i < v->guest.n_mounts; i++) {
                w.scsi_mounts += v->guest.mounts[i].kind == SIM_MOUNT_SCSI;
                w.plan9_mounts += v->guest.mounts[i].kind == SIM_MOUNT_PLAN9;
        }
        w.vpci_ready = v->guest.n_vpci_ready;
        w.guest_nics = v->guest.n_nics;
        w.netns = v->guest.n_netns;
        for (size_t c = 0; c < SIM_SCSI_CONTROLLERS; c++)
                for (size_t l = 0; l < SIM_SCSI_LUNS; l++)
                        w.scsi_slots += v->scsi[c][l].used;
        w.shares = named_used(v->shares, SIM_MAX_SHARES);
        w.vpci = named_used(v->vpci, SIM_MAX_VPCI);
        w.nics = named_used(v->nics, SIM_MAX_NICS);
        pthread_mutex_unlock(&v->lock);
        return w;
}

/* Writes <dir>/<name>/config.json with the OCI spec members extra (a JSON fragment starting
 * with a comma, or ""); returns the bundle path in ret. */
static void bundle(struct fixture *f, const char *name, const char *extra, char *ret, size_t size)
{
        char path[256];
        assert_true(ferry_bprintf(ret, size, "%s/%s", f->dir, name) > 0);
        assert_true(mkdir(ret, 0700) == 0 || errno == EEXIST);
        assert_true(ferry_bprintf(path, sizeof(path), "%s/config.json", ret) > 0);
        FILE *fp = fopen(path, "we");
        assert_non_null(fp);
        fprintf(fp, "{\"ociVersion\":\"1.1.0\"%s}\n", extra);
        assert_int_equal(fclose(fp), 0);
}

/* CreateSandbox (bundle with the network namespace ns, or none) and StartSandbox. */
static enum ferry_code sandbox_up(struct fixture *f, const char *ns_path, char *msg, size_t size)
{
        char b[128], extra[256] = "";
        if (ns_path)
                ferry_bprintf(extra, sizeof(extra),
                              ",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},"
                              "{\"type\":\"network\",\"path\":\"%s\"}]}",
                              ns_path);
        bundle(f, "sandbox", extra, b, sizeof(b));
        Containerd__Runtime__Sandbox__V1__CreateSandboxRequest cr =
            CONTAINERD__RUNTIME__SANDBOX__V1__CREATE_SANDBOX_REQUEST__INIT;
        cr.sandbox_id = "pod";
        cr.bundle_path = b;
        struct reply r;
        call_async(f->c, SANDBOX_SVC, "CreateSandbox", &cr.base,
                   &containerd__runtime__sandbox__v1__create_sandbox_response__descriptor, &r);
        assert_true(uvrun_until(L, &r.done, 10000));
        if (r.resp)
                protobuf_c_message_free_unpacked(r.resp, NULL);
        if (msg)
                ferry_strscpy(msg, r.message, size);
        if (r.code != FERRY_CODE_OK)
                return r.code;
        return sandbox_start_call(L, f->c, "pod", NULL);
}

/* Create with one rootfs mount (type, source, one option; type NULL: no rootfs, or two
 * mounts when two_mounts); the reply's message goes to msg. */
struct rootfs {
        const char *type, *source, *option;
        bool two_mounts;
};

static enum ferry_code create(struct fixture *f, const char *id, const char *bundle_path,
                              const struct rootfs *rf, char *msg, size_t size)
{
        Containerd__Task__V2__CreateTaskRequest req =
            CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
        Containerd__Task__V2__Mount m = CONTAINERD__TASK__V2__MOUNT__INIT, *ms[2] = {&m, &m};
        char *opts[1] = {(char *)(rf && rf->option ? rf->option : "")};
        req.id = (char *)id;
        req.bundle = (char *)(bundle_path ? bundle_path : "");
        if (rf && rf->type) {
                m.type = (char *)rf->type;
                m.source = (char *)rf->source;
                m.n_options = rf->option ? 1 : 0;
                m.options = opts;
                req.n_rootfs = rf->two_mounts ? 2 : 1;
                req.rootfs = ms;
        }
        struct reply r;
        call_async(f->c, TASK_SVC, "Create", &req.base,
                   &containerd__task__v2__create_task_response__descriptor, &r);
        assert_true(uvrun_until(L, &r.done, 10000));
        if (r.resp)
                protobuf_c_message_free_unpacked(r.resp, NULL);
        if (msg)
                ferry_strscpy(msg, r.message, size);
        return r.code;
}

/* The layers of a task: <dir>/<base1>, <dir>/<base2> and the scratch's <dir>/<id>. */
static void layers(struct fixture *f, const char *id, char *src, char *opt, size_t size)
{
        assert_true(ferry_bprintf(src, size, "%s/%s", f->dir, id) > 0);
        assert_true(ferry_bprintf(opt, size, "parentLayerPaths=[\"%s/base1\",\"%s/base2\"]", f->dir,
                                  f->dir) > 0);
}

/* The spec of a task with a shared directory, a shared file and one vPCI device. */
static void device_bundle(struct fixture *f, const char *name, char *ret, size_t size)
{
        char dir[128], file[128], extra[768];
        ferry_bprintf(dir, sizeof(dir), "%s/shared", f->dir);
        ferry_bprintf(file, sizeof(file), "%s/one.conf", f->dir);
        assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
        FILE *fp = fopen(file, "we");
        assert_non_null(fp);
        assert_int_equal(fclose(fp), 0);
        ferry_bprintf(extra, sizeof(extra),
                      ",\"mounts\":[{\"type\":\"proc\",\"source\":\"proc\","
                      "\"destination\":\"/proc\"},"
                      "{\"type\":\"bind\",\"source\":\"%s\",\"destination\":\"/data\","
                      "\"options\":[\"rbind\",\"ro\"]},"
                      "{\"source\":\"%s\",\"destination\":\"/etc/one.conf\","
                      "\"options\":[\"bind\"]},"
                      "{\"type\":\"bind\",\"source\":\"sandbox://tmp\",\"destination\":\"/t\"}],"
                      "\"windows\":{\"devices\":[{\"id\":\"PCI/VEN_1AF4/2\","
                      "\"idType\":\"vpci-instance-id\"}]}",
                      dir, file);
        bundle(f, name, extra, ret, size);
}

static enum ferry_code exec_call(struct fixture *f, const char *id, const char *exec_id,
                                 const char *spec)
{
        Containerd__Task__V2__ExecProcessRequest req =
            CONTAINERD__TASK__V2__EXEC_PROCESS_REQUEST__INIT;
        Containerd__Task__V2__Any any = CONTAINERD__TASK__V2__ANY__INIT;
        req.id = (char *)id;
        req.exec_id = (char *)exec_id;
        if (spec) {
                any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process";
                any.value.data = (uint8_t *)spec;
                any.value.len = strlen(spec);
                req.spec = &any;
        }
        return TASK_CALL(L, f->c, "Exec", req, containerd__task__v2__empty, NULL);
}

static enum ferry_code proc_call(struct fixture *f, const char *method, const char *id,
                                 const char *exec_id, uint32_t sig, uint32_t *ret)
{
        enum ferry_code code;
        if (strcmp(method, "Start") == 0) {
                Containerd__Task__V2__StartRequest q = CONTAINERD__TASK__V2__START_REQUEST__INIT;
                Containerd__Task__V2__StartResponse *r = NULL;
                q.id = (char *)id;
                q.exec_id = (char *)exec_id;
                code = TASK_CALL(L, f->c, "Start", q, containerd__task__v2__start_response, &r);
                if (r && ret)
                        *ret = r->pid;
                if (r)
                        protobuf_c_message_free_unpacked(&r->base, NULL);
        } else if (strcmp(method, "Kill") == 0) {
                Containerd__Task__V2__KillRequest q = CONTAINERD__TASK__V2__KILL_REQUEST__INIT;
                q.id = (char *)id;
                q.exec_id = (char *)exec_id;
                q.signal = sig;
                code = TASK_CALL(L, f->c, "Kill", q, containerd__task__v2__empty, NULL);
        } else if (strcmp(method, "Wait") == 0) {
                Containerd__Task__V2__WaitRequest q = CONTAINERD__TASK__V2__WAIT_REQUEST__INIT;
                Containerd__Task__V2__WaitResponse *r = NULL;
                q.id = (char *)id;
                q.exec_id = (char *)exec_id;
                code = TASK_CALL(L, f->c, "Wait", q, containerd__task__v2__wait_response, &r);
                if (r && ret)
                        *ret = r->exit_status;
                if (r)
                        protobuf_c_message_free_unpacked(&r->base, NULL);
        } else if (strcmp(method, "State") == 0) {
                Containerd__Task__V2__StateRequest q = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
                Containerd__Task__V2__StateResponse *r = NULL;
                q.id = (char *)id;
                q.exec_id = (char *)exec_id;
                code = TASK_CALL(L, f->c, "State", q, containerd__task__v2__state_response, &r);
                if (r) {
                        assert_string_equal(r->id, exec_id && *exec_id ? exec_id : id);
                        if (ret)
                                *ret = r->status;
                        protobuf_c_message_free_unpacked(&r->base, NULL);
                }
        } else {
                Containerd__Task__V2__DeleteRequest q = CONTAINERD__TASK__V2__DELETE_REQUEST__INIT;
                Containerd__Task__V2__DeleteResponse *r = NULL;
                q.id = (char *)id;
                q.exec_id = (char *)exec_id;
                code = TASK_CALL(L, f->c, "Delete", q, containerd__task__v2__delete_response, &r);
                if (r && ret)
                        *ret = r->exit_status;
                if (r)
                        protobuf_c_message_free_unpacked(&r->base, NULL);
        }
        return code;
}

/* The guest container id's state (0: none). */
static int guest_container_state(struct fixture *f, const char *id)
{
        struct sim_vm *v = fixture_sim(f);
        int st = 0;
        pthread_mutex_lock(&v->lock);
        for (size_t i = 0; i < v->guest.n_containers; i++)
                if (strcmp(v->guest.containers[i].id, id) == 0)
                        st = (int)v->guest.containers[i].state;
        pthread_mutex_unlock(&v->lock);
        return st;
}

/* The sandbox's namespace is a NIC in the guest; a task's rootfs, bind mounts and devices are
 * in the guest while it lives and released at its Delete; the NIC goes at StopSandbox. */
static void test_devices_lifecycle(void **state)
{
        struct fixture *f = *state;
        char b[128], src[128], opt[256];
        uint32_t pid = 0, code = 0;

        assert_int_equal(sandbox_up(f, "/var/run/netns/tenant-a", NULL, 0), FERRY_CODE_OK);
        struct vm_view w = view(f);
        assert_int_equal(w.netns, 1);
        assert_int_equal(w.guest_nics, 1);
        assert_int_equal(w.nics, 1);
        struct network *n = pod_network(sandbox_pod(sb_of(f)));
        assert_non_null(n);
        assert_string_equal(network_namespace_id(n), "tenant-a");
        assert_int_equal(network_nic_count(n), 1);

        device_bundle(f, "app", b, sizeof(b));
        layers(f, "app", src, opt, sizeof(src));
        struct rootfs rf = {"lcow-layer", src, opt, false};
        assert_int_equal(create(f, "app", b, &rf, NULL, 0), FERRY_CODE_OK);
        w = view(f);
        assert_int_equal(w.scsi_mounts, 3); /* two layers and the scratch */
        assert_int_equal(w.scsi_slots, 3);
        assert_int_equal(w.plan9_mounts, 2); /* the directory and the file's directory */
        assert_int_equal(w.shares, 2);
        assert_int_equal(w.vpci, 1);
        assert_int_equal(w.vpci_ready, 1);
        assert_int_equal(sandbox_device_count(sb_of(f), "app"), 6);
        struct container *c = pod_container(sandbox_pod(sb_of(f)), "app");
        struct container_disk d;
        enum container_disk_kind k;
        assert_true(container_disk_at(c, 1, &k, &d));
        assert_int_equal(k, CONTAINER_DISK_LAYER);
        ferry_bprintf(opt, sizeof(opt), "%s/base2/layer.vhd", f->dir);
        assert_string_equal(d.host_path, opt);
        assert_true(container_disk_at(c, 2, &k, &d));
        assert_int_equal(k, CONTAINER_DISK_SCRATCH);
        ferry_bprintf(opt, sizeof(opt), "%s/app/sandbox.vhdx", f->dir);
        assert_string_equal(d.host_path, opt);
        assert_false(container_disk_at(c, 3, NULL, NULL));

        /* a second task shares the read-only layers (one attachment each) */
        layers(f, "app2", src, opt, sizeof(src));
        struct rootfs rf2 = {"lcow-layer", src, opt, false};
        assert_int_equal(create(f, "app2", NULL, &rf2, NULL, 0), FERRY_CODE_OK);
        assert_int_equal(view(f).scsi_slots, 4);

        assert_int_equal(task_start(L, f->c, "app", &pid), FERRY_CODE_OK);
        uint64_t sigs = hcs_fault_calls("guest.signal_container");
        assert_int_equal(task_kill(L, f->c, "app", SIGTERM), FERRY_CODE_OK);
        /* the init's signal goes to its container */
        assert_int_equal(hcs_fault_calls("guest.signal_container"), sigs + 1);
        assert_int_equal(proc_call(f, "Wait", "app", NULL, 0, &code), FERRY_CODE_OK);
        assert_int_equal(code, 128 + SIGTERM);
        assert_int_equal(guest_container_state(f, "app"), SIM_CT_STOPPED);

        assert_int_equal(task_delete(L, f->c, "app", &code), FERRY_CODE_OK);
        assert_int_equal(guest_container_state(f, "app"), 0);
        w = view(f);
        assert_int_equal(w.scsi_mounts, 3); /* app2's layers and scratch stay */
        assert_int_equal(w.scsi_slots, 3);
        assert_int_equal(w.plan9_mounts, 0);
        assert_int_equal(w.shares, 0);
        assert_int_equal(w.vpci, 0);
        assert_int_equal(sandbox_device_count(sb_of(f), "app"), 0);
        assert_int_equal(task_delete(L, f->c, "app2", NULL), FERRY_CODE_OK);
        w = view(f);
        assert_int_equal(w.scsi_mounts, 0);
        assert_int_equal(w.scsi_slots, 0);

        uint64_t removes = hcs_fault_calls("guest.nic_remove");
        assert_int_equal(sandbox_stop_call(L, f->c, "pod"), FERRY_CODE_OK);
        assert_int_equal(hcs_fault_calls("guest.nic_remove"), removes + 1);
        assert_int_equal(network_nic_count(n), 0);
}

/* A bind rootfs, as containerd's native snapshotter sends it (`ctr run --snapshotter native`):
 * the snapshot directory is shared into the guest over Plan9 and is the container's rootfs, with
 * no SCSI layer; the task runs, and its Delete releases the share. */
static void test_devices_bind_rootfs(void **state)
{
        struct fixture *f = *state;
        char snap[128];
        uint32_t pid = 0, code = 0;

        assert_int_equal(sandbox_up(f, NULL, NULL, 0), FERRY_CODE_OK);
        ferry_bprintf(snap, sizeof(snap), "%s/snapshots", f->dir);
        assert_int_equal(mkdir(snap, 0700), 0);
        struct rootfs rf = {"bind", snap, "rbind", false};
        assert_int_equal(create(f, "native", NULL, &rf, NULL, 0), FERRY_CODE_OK);
        struct vm_view w = view(f);
        assert_int_equal(w.shares, 1);
        assert_int_equal(w.plan9_mounts, 1);
        assert_int_equal(w.scsi_slots + w.scsi_mounts, 0);
        assert_int_equal(sandbox_device_count(sb_of(f), "native"), 1);
        struct container *c = pod_container(sandbox_pod(sb_of(f)), "native");
        assert_non_null(c);
        assert_false(container_disk_at(c, 0, NULL, NULL)); /* no layer, no scratch */

        assert_int_equal(task_start(L, f->c, "native", &pid), FERRY_CODE_OK);
        assert_true(pid > 0);
        assert_int_equal(guest_container_state(f, "native"), SIM_CT_RUNNING);
        assert_int_equal(task_kill(L, f->c, "native", SIGKILL), FERRY_CODE_OK);
        assert_int_equal(proc_call(f, "Wait", "native", NULL, 0, &code), FERRY_CODE_OK);
        assert_int_equal(code, 128 + SIGKILL);
        assert_int_equal(task_delete(L, f->c, "native", NULL), FERRY_CODE_OK);
        w = view(f);
        assert_int_equal(w.shares + w.plan9_mounts, 0);
        assert_int_equal(sandbox_device_count(sb_of(f), "native"), 0);
}

/* Each bad input is INVALID_ARGUMENT naming the field, and leaves nothing behind: no task, no
 * device, the id free for a good Create. */
static void test_devices_bad_input(void **state)
{
        struct fixture *f = *state;
        char msg[256], b[128], src[128], opt[256];

        assert_int_equal(sandbox_up(f, "run/netns/x", msg, sizeof(msg)),
                         FERRY_CODE_INVALID_ARGUMENT);
        assert_non_null(strstr(msg, "linux.namespaces[1].path"));
        assert_string_equal(sandbox_id(sb_of(f)), "");
        assert_int_equal(sandbox_up(f,
                                    "/var/run/netns/"
                                    "0123456789012345678901234567890123456789"
                                    "012345678901234567890123456789",
                                    msg, sizeof(msg)),
                         FERRY_CODE_INVALID_ARGUMENT);
        assert_non_null(strstr(msg, "linux.namespaces[1].path"));
        assert_int_equal(sandbox_up(f, NULL, NULL, 0), FERRY_CODE_OK);
        assert_null(pod_network(sandbox_pod(sb_of(f)))); /* no namespace: no network */

        layers(f, "t", src, opt, sizeof(src));
        static const struct {
                struct rootfs rf;
                const char *field;
        } bad_rootfs[] = {
            {{"overlay", "/x", NULL, false}, "rootfs[0].type"},
            {{"lcow-layer", "rel/dir", NULL, false}, "rootfs[0].source"},
            {{"lcow-layer", "/x", "parentLayerPaths=[not json", false}, "rootfs[0].options"},
            {{"lcow-layer", "/x", "parentLayerPaths=[\"rel\"]", false}, "rootfs[0].options"},
            {{"lcow-layer", "/x", NULL, true}, "rootfs"},
            {{"bind", "rel/dir", "rbind", false}, "rootfs[0].source"},
            {{"bind", "/no/such/snapshot", "rbind", false}, "rootfs[0].source"},
            {{"bind", "/dev/null", "rbind", false}, "rootfs[0].source"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad_rootfs); i++) {
                assert_int_equal(create(f, "t", NULL, &bad_rootfs[i].rf, msg, sizeof(msg)),
                                 FERRY_CODE_INVALID_ARGUMENT);
                assert_non_null(strstr(msg, bad_rootfs[i].field));
        }
        static const struct {
                const char *spec, *field;
        } bad_spec[] = {
            {",\"mounts\":[{\"type\":\"bind\",\"source\":\"/no/such/dir\",\"destination\":\"/d\"}]",
             "mounts[0].source"},
            {",\"mounts\":[{\"type\":\"tmpfs\",\"source\":\"t\",\"destination\":\"/t\"},"
             "{\"type\":\"bind\",\"source\":\"/tmp\",\"destination\":\"d\"}]",
             "mounts[1].destination"},
            {",\"windows\":{\"devices\":[{\"id\":\"PCI/X\",\"idType\":\"class\"}]}",
             "windows.devices[0].idType"},
            {",\"windows\":{\"devices\":[{\"idType\":\"vpci\"}]}", "windows.devices[0].id"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad_spec); i++) {
                bundle(f, "bad", bad_spec[i].spec, b, sizeof(b));
                struct rootfs rf = {"lcow-layer", src, opt, false};
                assert_int_equal(create(f, "t", b, &rf, msg, sizeof(msg)),
                                 FERRY_CODE_INVALID_ARGUMENT);
                assert_non_null(strstr(msg, bad_spec[i].field));
        }
        struct vm_view w = view(f);
        assert_int_equal(w.scsi_slots + w.shares + w.vpci, 0);
        assert_int_equal(sandbox_device_count(sb_of(f), "t"), 0);
        assert_int_equal(task_state(L, f->c, "t", NULL, NULL), FERRY_CODE_NOT_FOUND);
        struct rootfs rf = {"lcow-layer", src, opt, false};
        assert_int_equal(create(f, "t", NULL, &rf, NULL, 0), FERRY_CODE_OK);
}

/* A device that fails to map fails the Create and releases what was mapped before it; the
 * retry succeeds. A Delete whose release fails keeps what is left, and a retried Delete
 * finishes it. */
static void test_devices_failures(void **state)
{
        struct fixture *f = *state;
        char b[128], src[128], opt[256];
        struct hcs_fault_spec once = {.nth = 1, .error = -EIO};

        assert_int_equal(sandbox_up(f, NULL, NULL, 0), FERRY_CODE_OK);
        device_bundle(f, "app", b, sizeof(b));
        layers(f, "app", src, opt, sizeof(src));
        struct rootfs rf = {"lcow-layer", src, opt, false};
        assert_int_equal(hcs_fault_arm("guest.vpci_ready", &once), 0);
        assert_int_not_equal(create(f, "app", b, &rf, NULL, 0), FERRY_CODE_OK);
        struct vm_view w = view(f);
        assert_int_equal(w.scsi_slots + w.scsi_mounts + w.shares + w.plan9_mounts + w.vpci, 0);
        assert_int_equal(sandbox_device_count(sb_of(f), "app"), 0);
        assert_int_equal(task_state(L, f->c, "app", NULL, NULL), FERRY_CODE_NOT_FOUND);

        assert_int_equal(create(f, "app", b, &rf, NULL, 0), FERRY_CODE_OK);
        assert_int_equal(hcs_fault_arm("guest.scsi_unmount", &once), 0);
        assert_int_not_equal(task_delete(L, f->c, "app", NULL), FERRY_CODE_OK);
        assert_true(sandbox_device_count(sb_of(f), "app") > 0);
        assert_int_equal(guest_container_state(f, "app"), 0); /* the guest part is done */
        assert_int_equal(task_delete(L, f->c, "app", NULL), FERRY_CODE_OK);
        w = view(f);
        assert_int_equal(w.scsi_slots + w.scsi_mounts + w.shares + w.plan9_mounts + w.vpci, 0);
        assert_int_equal(task_state(L, f->c, "app", NULL, NULL), FERRY_CODE_NOT_FOUND);
}

static void on_done(int result, void *ud)
{
        int *r = ud;
        *r = result;
}

/* A Plan9 share or an assigned device cannot follow the VM (controllers.md §8.7, §9.5): the
 * export of a pod holding one is FAILED_PRECONDITION and freezes nothing (the demo deletes
 * the task that holds them before it migrates; e2e covers that export). */
static void test_devices_block_migration(void **state)
{
        struct fixture *f = *state;
        char b[128], src[128], opt[256];
        uint8_t *snap = NULL;
        size_t len = 0;
        int done = 1;

        assert_int_equal(sandbox_up(f, "/var/run/netns/tenant-b", NULL, 0), FERRY_CODE_OK);
        layers(f, "web", src, opt, sizeof(src));
        struct rootfs rf = {"lcow-layer", src, opt, false};
        assert_int_equal(create(f, "web", NULL, &rf, NULL, 0), FERRY_CODE_OK);
        assert_int_equal(task_start(L, f->c, "web", NULL), FERRY_CODE_OK);
        device_bundle(f, "job", b, sizeof(b));
        assert_int_equal(create(f, "job", b, NULL, NULL, 0), FERRY_CODE_OK);

        struct sandbox *sb = sb_of(f);
        assert_int_equal(sandbox_mig_ops.initialize(sb, NULL, on_done, &done), 0);
        for (int i = 0; i < 200 && done == 1; i++)
                uv_run(L, UV_RUN_ONCE);
        assert_int_equal(done, 0);
        assert_int_equal(sandbox_mig_ops.export_state(sb, &snap, &len), -EBUSY);
        assert_null(snap);
        assert_false(pod_is_migrating(sandbox_pod(sb)));
        assert_string_equal(network_state_name(pod_network(sandbox_pod(sb))), "configured");
        struct container *web = pod_container(sandbox_pod(sb), "web");
        struct container_disk d;
        struct scsi_ctrl *scsi = NULL;
        assert_int_equal(vm_scsi(sandbox_vm(sb), &scsi), 0);
        assert_true(container_disk_at(web, 0, NULL, &d));
        assert_string_equal(scsi_disk_state(scsi, d.reservation_id), "attached");
        assert_false(container_is_frozen(web));
}

/* Exec, Start, State, Kill, Wait and Delete of an exec id, and their rejections. */
static void test_exec(void **state)
{
        struct fixture *f = *state;
        static const char spec[] = "{\"args\":[\"/bin/sh\",\"-c\",\"true\"],\"cwd\":\"/\"}";
        uint32_t pid = 0, init = 0, v = 0;

        assert_int_equal(sandbox_up(f, NULL, NULL, 0), FERRY_CODE_OK);
        assert_int_equal(task_create(L, f->c, "app", NULL), FERRY_CODE_OK);
        /* a task that does not run takes no exec */
        assert_int_equal(exec_call(f, "app", "e1", spec), FERRY_CODE_FAILED_PRECONDITION);
        assert_int_equal(task_start(L, f->c, "app", &init), FERRY_CODE_OK);
        assert_int_equal(exec_call(f, "app", "", spec), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(exec_call(f, "app", "bad/id", spec), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(exec_call(f, "app", "e1", "[1,2]"), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(exec_call(f, "nope", "e1", spec), FERRY_CODE_NOT_FOUND);
        assert_int_equal(proc_call(f, "Start", "app", "e1", 0, NULL), FERRY_CODE_NOT_FOUND);

        assert_int_equal(exec_call(f, "app", "e1", spec), FERRY_CODE_OK);
        assert_int_equal(exec_call(f, "app", "e1", spec), FERRY_CODE_ALREADY_EXISTS);
        assert_int_equal(proc_call(f, "State", "app", "e1", 0, &v), FERRY_CODE_OK);
        assert_int_equal(v, CONTAINERD__TASK__V2__STATUS__CREATED);
        uint64_t starts = hcs_fault_calls("guest.start_process");
        assert_int_equal(proc_call(f, "Start", "app", "e1", 0, &pid), FERRY_CODE_OK);
        assert_int_equal(hcs_fault_calls("guest.start_process"), starts + 1);
        assert_true(pid > 0 && pid != init);
        assert_int_equal(proc_call(f, "State", "app", "e1", 0, &v), FERRY_CODE_OK);
        assert_int_equal(v, CONTAINERD__TASK__V2__STATUS__RUNNING);
        assert_int_equal(proc_call(f, "Delete", "app", "e1", 0, NULL),
                         FERRY_CODE_FAILED_PRECONDITION);

        uint64_t sigs = hcs_fault_calls("guest.signal_process");
        assert_int_equal(proc_call(f, "Kill", "app", "e1", SIGKILL, NULL), FERRY_CODE_OK);
        assert_int_equal(hcs_fault_calls("guest.signal_process"), sigs + 1);
        assert_int_equal(proc_call(f, "Wait", "app", "e1", 0, &v), FERRY_CODE_OK);
        assert_int_equal(v, 128 + SIGKILL);
        assert_int_equal(proc_call(f, "Kill", "app", "e1", SIGKILL, NULL), FERRY_CODE_NOT_FOUND);
        /* the init runs on */
        Containerd__Task__V2__Status st;
        assert_int_equal(task_state(L, f->c, "app", &st, NULL), FERRY_CODE_OK);
        assert_int_equal(st, CONTAINERD__TASK__V2__STATUS__RUNNING);
        assert_int_equal(proc_call(f, "Delete", "app", "e1", 0, &v), FERRY_CODE_OK);
        assert_int_equal(v, 128 + SIGKILL);
        assert_int_equal(proc_call(f, "State", "app", "e1", 0, NULL), FERRY_CODE_NOT_FOUND);

        /* an exec never started is deleted with 0; the id is free again */
        assert_int_equal(exec_call(f, "app", "e1", NULL), FERRY_CODE_OK);
        assert_int_equal(proc_call(f, "Delete", "app", "e1", 0, &v), FERRY_CODE_OK);
        assert_int_equal(v, 0);
        assert_int_equal(exec_call(f, "app", "e1", spec), FERRY_CODE_OK);
        assert_int_equal(proc_call(f, "Start", "app", "e1", 0, &pid), FERRY_CODE_OK);
        /* killing the init ends its execs with it */
        assert_int_equal(task_kill(L, f->c, "app", SIGKILL), FERRY_CODE_OK);
        assert_int_equal(proc_call(f, "Wait", "app", "e1", 0, &v), FERRY_CODE_OK);
        assert_int_equal(proc_call(f, "Wait", "app", NULL, 0, &v), FERRY_CODE_OK);
        assert_int_equal(v, 128 + SIGKILL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            FIXTURE_TEST(test_devices_lifecycle),
            FIXTURE_TEST(test_devices_bind_rootfs),
            FIXTURE_TEST(test_devices_bad_input),
            FIXTURE_TEST(test_devices_failures),
            FIXTURE_TEST(test_devices_block_migration),
            FIXTURE_TEST(test_exec),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
