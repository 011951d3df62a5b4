/* SPDX-License-Identifier: MIT */
/* The sandbox: the shim's one VM and its one pod, the Sandbox service over them, and the
 * migration session's sandbox operations.
 *
 * The VM controller (src/ctrl/vm, spec/vm.yaml) owns the VM's lifecycle and the pod controller
 * (src/ctrl/pod, spec/pod.yaml) the pod's, whose containers are the Task service's tasks; this
 * file only maps the VM's states to the Sandbox API's names, keeps the exit (status, time,
 * waiters) that WaitSandbox reports, and sequences the controllers' calls for a migration. */
#include "service/sandbox.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctrl/common/envelope.h"
#include "ctrl/network/network.h"
#include "ctrl/plan9/plan9.h"
#include "ctrl/pod/pod.h"
#include "ctrl/scsi/scsi.h"
#include "ctrl/vm/vm.h"
#include "ctrl/vpci/vpci.h"
#include "migration/vm_ops.h"
#include "guest/guest.h"
#include "hcs/hcs.h"
#include "rpc/ttrpc.h"
#include "sandbox.pb-c.h"
#include "save_container.pb-c.h"
#include "save_pod.pb-c.h"
#include "service/events.h"
#include "service/wire.h"
#include "util/later.h"
#include "util/util.h"

/* The snapshot's envelope is type.ferry.dev/ferry.migration.save.v1.Payload (issue 5 item 4). */
#define SANDBOX_SAVE_NAME "migration"
/* 3: a list of pod envelopes replaced schema 2's one pod (proto/sandbox.proto) */
#define SANDBOX_SCHEMA_VERSION 3u
/* Container ids a snapshot may carry across its pods (the duplicate check's bound). */
#define SANDBOX_IMPORT_IDS_MAX 1024

struct exit_waiter {
        sandbox_exit_fn fn;
        void *userdata;
        bool permanent;
        struct exit_waiter *next;
};

struct attachment;

struct sandbox {
        uv_loop_t *loop;
        struct hcs_backend *backend;
        struct shim_events *events;
        struct sandbox_options opts;
        struct vm *vm;   /* the VM controller owns the lifecycle (spec/vm.yaml) */
        struct pod *pod; /* its containers are the tasks (spec/pod.yaml) */
        struct mig_session *mig;
        char id[TTRPC_ID_MAX + 1]; /* "" until create or import */
        char *bundle;
        struct ctrl_env env;
        struct ctrl_pending pending; /* the one create/start/stop in flight */
        char error[256];             /* the last -EINVAL's message, naming the field */
        /* devices (docs/shim.md "Devices") */
        char netns[NETWORK_ID_MAX];       /* the pod's host network namespace; "" = none */
        struct container_devices devices; /* the containers' hooks into the VM's SCSI */
        struct plan9 *p9;
        struct vpci *vpci;
        struct attachment *atts; /* each container's devices */
        unsigned dev_inflight;   /* device calls whose done has not come yet */
        uint64_t created_at_ns;
        uint64_t exited_at_ns;
        uint32_t exit_status;
        bool exited;
        struct exit_waiter *waiters;
        /* migration: the VM's steps are src/migration/vm_ops.c's (mig_vm_ops) */
        struct mig_vm_sandbox *vm_steps;
        /* close */
        uv_timer_t retry;
        bool closing;
        bool terminating;
        unsigned close_tries;
        sandbox_done_fn close_done;
        void *close_userdata;
};

static void on_vm_exit(int result, void *userdata);
static int hook_repoint(void *userdata, const char *reservation_id, const char *host_path);
static int hook_release(void *userdata, const char *reservation_id);
static void atts_free_all(struct sandbox *sb);

int sandbox_new(uv_loop_t *loop, struct hcs_backend *b, struct shim_events *events,
                const struct sandbox_options *opts, struct sandbox **ret)
{
        struct sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return -ENOMEM;
        sb->loop = loop;
        sb->backend = b;
        sb->events = events;
        if (opts)
                sb->opts = *opts;
        if (!sb->opts.memory_mb)
                sb->opts.memory_mb = 256;
        if (!sb->opts.processors)
                sb->opts.processors = 2;
        int r = vm_new(loop, b, "sandbox", &sb->vm);
        if (r == 0) {
                r = pod_new(sb->vm, "sandbox", &sb->pod);
                if (r == 0)
                        r = mig_vm_sandbox_new(loop, sb->vm, &sb->vm_steps);
                if (r == 0)
                        r = plan9_new(&sb->env, false, &sb->p9);
                if (r == 0)
                        r = vpci_new(&sb->env, &sb->vpci);
                if (r < 0) {
                        sb->vpci = vpci_free(sb->vpci);
                        sb->p9 = plan9_free(sb->p9);
                        if (sb->vm_steps)
                                mig_vm_sandbox_free(sb->vm_steps);
                        sb->pod = pod_free(sb->pod);
                        sb->vm = vm_free(sb->vm);
                }
        }
        if (r < 0) {
                free(sb);
                return r;
        }
        sb->devices = (struct container_devices){hook_repoint, hook_release, sb};
        vm_on_exit(sb->vm, on_vm_exit, sb);
        uv_timer_init(loop, &sb->retry);
        sb->retry.data = sb;
        *ret = sb;
        return 0;
}

/* The endpoints of host namespace ns. The sim host has no host network service to ask, so
 * each namespace has one endpoint, "eth0", whose id and MAC are derived from the namespace id
 * (stable across hosts and runs); a real host's endpoint enumeration plugs in here. */
static int netns_lookup(const char *ns, struct network_endpoint *eps, size_t max, void *userdata)
{
        uint32_t h = 2166136261u; /* FNV-1a */
        for (const char *c = ns; *c; c++)
                h = (h ^ (uint8_t)*c) * 16777619u;
        if (!max)
                return -ENOSPC;
        memset(&eps[0], 0, sizeof(eps[0]));
        ferry_bprintf(eps[0].id, sizeof(eps[0].id), "ep-%08x", h);
        ferry_bprintf(eps[0].mac, sizeof(eps[0].mac), "00-15-5d-%02x-%02x-%02x", (h >> 16) & 0xff,
                      (h >> 8) & 0xff, h & 0xff);
        ferry_strscpy(eps[0].name, "eth0", sizeof(eps[0].name));
        return 1;
}

/* The pod's host-side hooks: its containers publish through the shim's events, its network
 * is the sandbox's namespace, and its containers' disks are the VM's SCSI controller's. */
static struct pod_options pod_opts(const struct sandbox *sb)
{
        return (struct pod_options){.pod_id = sb->id,
                                    .namespace_id = sb->netns,
                                    .lookup = netns_lookup,
                                    .publish = sb->events ? shim_events_publish : NULL,
                                    .publish_userdata = sb->events,
                                    .devices = &sb->devices};
}

const char *sandbox_error(const struct sandbox *sb)
{
        return sb->error;
}

/* Records why a request is refused, naming the field; returns -EINVAL. */
static int bad_field(struct sandbox *sb, const char *field, const char *why)
{
        ferry_bprintf(sb->error, sizeof(sb->error), "%s: %s", field, why);
        return -EINVAL;
}

#define CONFIG_JSON_MAX (1u << 20)

/* <bundle>/config.json (the OCI spec) as json, in *ret (NULL when there is no bundle or no
 * file: nothing to derive). -EINVAL (sandbox_error says why) for one that does not parse. */
static int read_config(struct sandbox *sb, const char *bundle, struct json_object **ret)
{
        char path[TTRPC_PATH_MAX + 16];
        struct stat st;
        *ret = NULL;
        if (!bundle || !*bundle)
                return 0;
        if (ferry_bprintf(path, sizeof(path), "%s/config.json", bundle) < 0)
                return bad_field(sb, "bundle", "path too long");
        if (stat(path, &st) < 0)
                return 0;
        if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_JSON_MAX)
                return bad_field(sb, "config.json", "not a regular file of at most 1 MiB");
        *ret = json_object_from_file(path);
        return *ret ? 0 : bad_field(sb, "config.json", "not valid JSON");
}

static const char *json_str(struct json_object *o, const char *key)
{
        struct json_object *v = NULL;
        if (!o || !json_object_object_get_ex(o, key, &v) ||
            !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static struct json_object *json_get(struct json_object *o, const char *key, json_type type)
{
        struct json_object *v = NULL;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
                return NULL;
        return v;
}

/* The pod's network namespace from the sandbox's OCI spec: windows.network.networkNamespace
 * (the reference's field), else the path of linux.namespaces' "network" entry, whose last
 * element is the namespace id (/var/run/netns/<id>). "" when the spec has neither. */
static int parse_netns(struct sandbox *sb, struct json_object *cfg, char *ret, size_t size)
{
        const char *ns = json_str(
            json_get(json_get(cfg, "windows", json_type_object), "network", json_type_object),
            "networkNamespace");
        const char *field = "windows.network.networkNamespace";
        char f[64];
        struct json_object *nss =
            json_get(json_get(cfg, "linux", json_type_object), "namespaces", json_type_array);
        ret[0] = '\0';
        for (size_t i = 0; !ns && nss && i < json_object_array_length(nss); i++) {
                struct json_object *e = json_object_array_get_idx(nss, i);
                const char *type = json_str(e, "type"), *path = json_str(e, "path");
                if (!type || strcmp(type, "network") != 0 || !path)
                        continue;
                ferry_bprintf(f, sizeof(f), "linux.namespaces[%zu].path", i);
                field = f;
                if (!*path || wire_check_opt_path(path) < 0)
                        return bad_field(sb, f, "not an absolute path");
                ns = strrchr(path, '/') + 1;
        }
        if (!ns)
                return 0;
        if (wire_check_id(ns) < 0 || strlen(ns) >= size)
                return bad_field(sb, field, "not a valid namespace id (at most 63 characters)");
        ferry_strscpy(ret, ns, size);
        return 0;
}

/* The sandbox's devices from its bundle (may be NULL): today its network namespace. */
static int sandbox_config(struct sandbox *sb, const char *bundle, char *ret_ns, size_t size)
{
        struct json_object *cfg = NULL;
        int r = read_config(sb, bundle, &cfg);
        ret_ns[0] = '\0';
        if (r == 0)
                r = parse_netns(sb, cfg, ret_ns, size);
        json_object_put(cfg);
        return r;
}

struct pod *sandbox_pod(struct sandbox *sb)
{
        return sb->pod;
}

bool sandbox_exited(const struct sandbox *sb, uint64_t *ret_exited_at_ns)
{
        if (sb->exited && ret_exited_at_ns)
                *ret_exited_at_ns = sb->exited_at_ns;
        return sb->exited;
}

void sandbox_set_migration(struct sandbox *sb, struct mig_session *s)
{
        sb->mig = s;
        /* the VM's host-compute notifications go to the session */
        mig_vm_sandbox_bind(sb->vm_steps, s);
}

static bool vm_in(const struct sandbox *sb, const char *state)
{
        return strcmp(vm_state_name(sb->vm), state) == 0;
}

/* The Sandbox API's coarse names for the VM controller's states. */
const char *sandbox_state_name(const struct sandbox *sb)
{
        static const struct {
                const char *vm, *name;
        } map[] = {
            {"not_created", "notready"}, {"creating", "creating"},    {"created", "created"},
            {"starting", "starting"},    {"running", "ready"},        {"updating", "ready"},
            {"invalid", "stopped"},      {"terminating", "stopping"}, {"terminated", "stopped"},
            {"pausing", "pausing"},      {"paused", "paused"},        {"resuming", "resuming"},
        };
        const char *v = vm_state_name(sb->vm);
        for (size_t i = 0; i < ARRAY_SIZE(map); i++)
                if (strcmp(v, map[i].vm) == 0)
                        return map[i].name;
        return "migrating"; /* every other state is a migration state */
}

bool sandbox_running(const struct sandbox *sb)
{
        return vm_in(sb, "running") || vm_in(sb, "updating");
}

const char *sandbox_id(const struct sandbox *sb)
{
        return sb->id;
}

struct guest_conn *sandbox_guest(const struct sandbox *sb)
{
        return sandbox_running(sb) ? vm_guest(sb->vm) : NULL;
}

struct ctrl_env *sandbox_env(struct sandbox *sb)
{
        vm_env(sb->vm, &sb->env); /* the VM swaps system and guest across a migration */
        sb->env.publish = sb->events ? shim_events_publish : NULL;
        sb->env.publish_userdata = sb->events;
        return &sb->env;
}

struct vm *sandbox_vm(struct sandbox *sb)
{
        return sb->vm;
}

uint64_t sandbox_created_at_ns(const struct sandbox *sb)
{
        return sb->created_at_ns;
}

static void finish(struct sandbox *sb, int result)
{
        ctrl_reply(&sb->pending, result);
}

/* Fires every one-shot waiter and each permanent one; permanent ones stay. */
static void fire_waiters(struct sandbox *sb)
{
        struct exit_waiter *list = sb->waiters, *keep = NULL;
        sb->waiters = NULL;
        while (list) {
                struct exit_waiter *w = list;
                list = w->next;
                w->fn(sb->exit_status, sb->exited_at_ns, w->userdata);
                if (w->permanent) {
                        w->next = keep;
                        keep = w;
                } else {
                        free(w);
                }
        }
        while (keep) { /* back in front of any added meanwhile */
                struct exit_waiter *w = keep;
                keep = w->next;
                w->next = sb->waiters;
                sb->waiters = w;
        }
}

static void mark_exited(struct sandbox *sb, int result)
{
        if (sb->exited || !sb->id[0])
                return;
        sb->exited = true;
        sb->exit_status = result == 0 || result == -EALREADY ? 0 : 255;
        sb->exited_at_ns = ferry_wall_ns();
        fire_waiters(sb);
}

static void on_vm_exit(int result, void *userdata)
{
        mark_exited(userdata, result);
}

static void on_created(int result, void *userdata)
{
        struct sandbox *sb = userdata;
        if (result == 0) {
                struct pod_options o = pod_opts(sb);
                result = pod_create(sb->pod, &o);
        }
        if (result < 0)
                sb->id[0] = sb->netns[0] =
                    '\0'; /* the VM controller is invalid or back in not_created */
        else
                sb->created_at_ns = ferry_wall_ns();
        finish(sb, result);
}

/* The compute document of a new sandbox VM: built for live migration (the reconnecting log
 * forwarder on the kernel command line, no Plan9), one SCSI controller. */
static int make_doc(const struct sandbox *sb, char *doc, size_t size)
{
        return ferry_bprintf(doc, size,
                             "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":"
                             "{\"KernelCmdLine\":\"console=hvc0 %s\"}},"
                             "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":%u},"
                             "\"Processor\":{\"Count\":%u}},\"Devices\":{\"Scsi\":{\"0\":{}}},"
                             "\"Sim\":{\"DirtyPagesPerSecond\":%llu}}}",
                             VM_LM_LOG_FORWARDER, sb->opts.memory_mb, sb->opts.processors,
                             (unsigned long long)sb->opts.dirty_pages_rate) < 0
                   ? -E2BIG
                   : 0;
}

int sandbox_create(struct sandbox *sb, const char *id, const char *bundle, sandbox_done_fn done,
                   void *userdata)
{
        sb->error[0] = '\0';
        int r = wire_check_id(id);
        if (r < 0)
                return r;
        if (strlen(id) > VM_ID_MAX)
                return -EINVAL;
        r = wire_check_opt_path(bundle);
        if (r < 0)
                return r;
        if (sb->id[0] || sb->closing)
                return -EEXIST;
        char doc[1024], ns[NETWORK_ID_MAX];
        r = sandbox_config(sb, bundle, ns, sizeof(ns));
        if (r < 0)
                return r;
        r = make_doc(sb, doc, sizeof(doc));
        if (r < 0)
                return r;
        /* the controller may complete before it returns: be ready for that first */
        ferry_strscpy(sb->id, id, sizeof(sb->id));
        ferry_strscpy(sb->netns, ns, sizeof(sb->netns));
        sb->pending = (struct ctrl_pending){done, userdata};
        r = vm_create(sb->vm, id, doc, on_created, sb);
        if (r < 0) {
                sb->id[0] = '\0';
                sb->netns[0] = '\0';
                sb->pending = (struct ctrl_pending){0};
                return r;
        }
        free(sb->bundle);
        sb->bundle = bundle && *bundle ? strdup(bundle) : NULL;
        return 0;
}

static void on_network_up(int result, void *userdata)
{
        finish(userdata, result);
}

/* The VM runs: the pod's network comes up in it (namespace, NICs), when it has one. */
static void on_started(int result, void *userdata)
{
        struct sandbox *sb = userdata;
        if (result == 0 && sb->netns[0]) {
                result = pod_setup_network(sb->pod, on_network_up, sb);
                if (result == 0)
                        return;
        }
        finish(sb, result);
}

int sandbox_start(struct sandbox *sb, sandbox_done_fn done, void *userdata)
{
        if (!sb->id[0])
                return -ENOENT;
        if (sb->pending.done)
                return -EAGAIN;
        sb->pending = (struct ctrl_pending){done, userdata};
        int r = vm_start(sb->vm, on_started, sb);
        if (r < 0)
                sb->pending = (struct ctrl_pending){0};
        return r;
}

static void on_terminated(int result, void *userdata)
{
        struct sandbox *sb = userdata;
        if (result == -EALREADY)
                result = 0;
        mark_exited(sb, result);
        finish(sb, result);
}

static void on_network_down(int result, void *userdata)
{
        struct sandbox *sb = userdata;
        int r = vm_terminate(sb->vm, on_terminated, sb);
        if (r < 0)
                finish(sb, r);
}

int sandbox_stop(struct sandbox *sb, sandbox_done_fn done, void *userdata)
{
        if (!sb->id[0])
                return -ENOENT;
        if (sb->pending.done)
                return -EAGAIN;
        if (sb->exited) {
                done(0, userdata);
                return 0;
        }
        sb->pending = (struct ctrl_pending){done, userdata};
        /* the NICs leave the guest and the VM first; a pod that refuses (frozen, no network)
         * or fails goes down with the VM all the same */
        if (sb->netns[0] && sandbox_running(sb) &&
            pod_teardown_network(sb->pod, on_network_down, sb) == 0)
                return 0;
        int r = vm_terminate(sb->vm, on_terminated, sb);
        if (r < 0)
                sb->pending = (struct ctrl_pending){0};
        return r;
}

static int add_waiter(struct sandbox *sb, sandbox_exit_fn fn, void *userdata, bool permanent)
{
        struct exit_waiter *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct exit_waiter){fn, userdata, permanent, sb->waiters};
        sb->waiters = w;
        return 0;
}

int sandbox_wait(struct sandbox *sb, sandbox_exit_fn fn, void *userdata)
{
        if (!sb->id[0])
                return -ENOENT;
        if (sb->exited) {
                fn(sb->exit_status, sb->exited_at_ns, userdata);
                return 0;
        }
        return add_waiter(sb, fn, userdata, false);
}

int sandbox_unwait(struct sandbox *sb, sandbox_exit_fn fn, void *userdata)
{
        for (struct exit_waiter **pp = &sb->waiters; *pp; pp = &(*pp)->next) {
                struct exit_waiter *w = *pp;
                if (!w->permanent && w->fn == fn && w->userdata == userdata) {
                        *pp = w->next;
                        free(w);
                        return 0;
                }
        }
        return -ENOENT;
}

int sandbox_on_exit(struct sandbox *sb, sandbox_exit_fn fn, void *userdata)
{
        return add_waiter(sb, fn, userdata, true);
}

/* -- ensure running: create then start, for the first task -- */

struct ensure {
        struct sandbox *sb;
        sandbox_done_fn done;
        void *userdata;
};

static void ensure_started(int result, void *userdata)
{
        struct ensure *e = userdata;
        e->done(result, e->userdata);
        free(e);
}

static void ensure_created(int result, void *userdata)
{
        struct ensure *e = userdata;
        if (result == 0)
                result = sandbox_start(e->sb, ensure_started, e);
        if (result < 0)
                ensure_started(result, e);
}

int sandbox_ensure_running(struct sandbox *sb, const char *id, const char *bundle,
                           sandbox_done_fn done, void *userdata)
{
        if (sandbox_running(sb)) {
                done(0, userdata);
                return 0;
        }
        if (sb->pending.done || vm_in(sb, "creating") || vm_in(sb, "starting"))
                return -EAGAIN; /* a boot is under way: retry */
        bool fresh = !sb->id[0] && vm_in(sb, "not_created");
        if (!fresh && !vm_in(sb, "created"))
                return -EBUSY; /* stopped, or migrating */
        struct ensure *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        *e = (struct ensure){sb, done, userdata};
        int r = fresh ? sandbox_create(sb, id, bundle, ensure_created, e)
                      : sandbox_start(sb, ensure_started, e);
        if (r < 0)
                free(e);
        return r;
}

/* -- close -- */

static void free_sandbox(uv_handle_t *h)
{
        struct sandbox *sb = h->data;
        sandbox_done_fn done = sb->close_done;
        void *ud = sb->close_userdata;
        while (sb->waiters) {
                struct exit_waiter *w = sb->waiters;
                sb->waiters = w->next;
                free(w);
        }
        if (!sb->dev_inflight) /* else a device's late completion still holds one */
                atts_free_all(sb);
        free(sb->bundle);
        free(sb);
        if (done)
                done(0, ud);
}

static void try_close(struct sandbox *sb);

static void retry_close(uv_timer_t *t)
{
        try_close(t->data);
}

static void close_terminated(int result, void *userdata)
{
        struct sandbox *sb = userdata;
        sb->terminating = false;
        if (result < 0) /* e.g. a failed terminate: try again a little later */
                uv_timer_start(&sb->retry, retry_close, 5, 0);
        else
                try_close(sb);
}

/* How long a closing sandbox keeps trying to terminate and free its VM (5 ms apart) before it
 * lets go of it, so a host that never answers (or a failing terminate) cannot wedge the
 * shim's exit. */
#define SANDBOX_CLOSE_TRIES 400

/* Terminates the VM (from any state, invalid included: it may still hold a running system),
 * then frees it once no host call is in flight. */
static void try_close(struct sandbox *sb)
{
        if (++sb->close_tries > SANDBOX_CLOSE_TRIES) {
                /* give up on the VM: detach it from this sandbox and leave it to process exit */
                vm_subscribe(sb->vm, NULL, NULL);
                vm_on_exit(sb->vm, NULL, NULL);
                sb->vm = NULL;
                sb->pod = NULL; /* they borrow the VM: left with it */
                sb->vm_steps = NULL;
                sb->p9 = NULL;
                sb->vpci = NULL;
                uv_close((uv_handle_t *)&sb->retry, free_sandbox);
                return;
        }
        bool down = vm_in(sb, "not_created") || vm_in(sb, "terminated");
        if (!down && !sb->terminating) {
                sb->terminating = true;
                int r = vm_terminate(sb->vm, close_terminated, sb);
                if (r < 0) { /* a call is in flight that terminate cannot abort yet */
                        sb->terminating = false;
                        uv_timer_start(&sb->retry, retry_close, 5, 0);
                }
                return;
        }
        if (!down) /* terminate is on its way */
                return;
        /* the VM's borrowers first; each refuses while one of its calls is in flight */
        if (mig_vm_sandbox_free(sb->vm_steps) == 0)
                sb->vm_steps = NULL;
        if (!sb->vm_steps)
                sb->pod = pod_free(sb->pod);
        if (!sb->dev_inflight) { /* the device controllers assert nothing is in flight */
                sb->p9 = plan9_free(sb->p9);
                sb->vpci = vpci_free(sb->vpci);
        }
        if (sb->vm_steps || sb->pod || sb->p9) {
                uv_timer_start(&sb->retry, retry_close, 5, 0);
                return;
        }
        sb->vm = vm_free(sb->vm);
        if (sb->vm) { /* its last host completion is still on its way */
                uv_timer_start(&sb->retry, retry_close, 5, 0);
                return;
        }
        uv_close((uv_handle_t *)&sb->retry, free_sandbox);
}

void sandbox_close(struct sandbox *sb, sandbox_done_fn done, void *userdata)
{
        if (!sb) {
                if (done)
                        done(0, userdata);
                return;
        }
        if (sb->closing)
                return;
        sb->closing = true;
        sb->close_done = done;
        sb->close_userdata = userdata;
        mark_exited(sb, sandbox_running(sb) ? -ECANCELED : 0);
        try_close(sb);
}

/* ---------------------------------------------------------------------------------------- */
/* migration: the session's sandbox operations: the VM's steps are mig_vm_ops (src/migration/
 * vm_ops.c) over the same VM controller; the pod's calls are sequenced around them */

/* A completion delivered on a later loop turn, so no caller is called back before it
 * returns. */
static int later_done(struct sandbox *sb, int result, mig_done_fn done, void *userdata)
{
        return ferry_later_done(sb->loop, NULL, result, done, userdata);
}

/* ---------------------------------------------------------------------------------------- */
/* a container's devices: derived from its CreateTask (rootfs) and OCI spec (bind mounts,
 * windows.devices) as the reference's container create does (controllers.md §4.4), reserved
 * and mapped through the VM's SCSI controller, the Plan9 controller and the vPCI controller */

#define ATT_SHARES_MAX  16 /* bind mounts per container */
#define ATT_DEVICES_MAX 8  /* assigned devices per container */
#define ATT_MAX         (CONTAINER_LAYERS_MAX + 1 + ATT_SHARES_MAX + ATT_DEVICES_MAX)
#define LCOW_LAYER_TYPE "lcow-layer"
#define BIND_TYPE       "bind"
#define PARENT_LAYERS   "parentLayerPaths="

_Static_assert(SCSI_ID_LEN == PLAN9_ID_LEN && SCSI_ID_LEN == VPCI_GUID_LEN,
               "one buffer holds every reservation id");

enum att_kind { ATT_SCSI, ATT_PLAN9, ATT_VPCI };

/* One device of a container: what to reserve and, once reserved, its reservation id. */
struct att_res {
        enum att_kind kind;
        bool reserved;
        bool read_only, scratch;
        char id[SCSI_ID_LEN]; /* SCSI or Plan9 reservation id, vPCI GUID */
        char *path;           /* SCSI: the disk; Plan9: the shared directory; vPCI: instance */
        char *allowed;        /* Plan9 share of one file: its name; else NULL */
        uint32_t vf;          /* vPCI virtual function */
};

struct attachment {
        struct sandbox *sb;
        struct attachment *next;
        char id[TTRPC_ID_MAX + 1];
        struct att_res res[ATT_MAX];
        size_t n, n_ro, cur; /* cur: attach's next device; release's count still to visit */
        bool busy, unwinding, has_scratch;
        bool bind_rootfs; /* res[0] is the rootfs directory's Plan9 share */
        int result;
        sandbox_attach_fn attach_done;
        sandbox_done_fn detach_done;
        void *userdata;
};

static struct attachment *att_find(const struct sandbox *sb, const char *id)
{
        for (struct attachment *a = sb->atts; a; a = a->next)
                if (strcmp(a->id, id) == 0)
                        return a;
        return NULL;
}

static struct attachment *att_free(struct attachment *a)
{
        if (!a)
                return NULL;
        for (size_t i = 0; i < a->n; i++) {
                free(a->res[i].path);
                free(a->res[i].allowed);
        }
        free(a);
        return NULL;
}

static void atts_free_all(struct sandbox *sb)
{
        while (sb->atts) {
                struct attachment *a = sb->atts;
                sb->atts = a->next;
                att_free(a);
        }
}

static void att_unlist(struct attachment *a)
{
        for (struct attachment **pp = &a->sb->atts; *pp; pp = &(*pp)->next) {
                if (*pp == a) {
                        *pp = a->next;
                        break;
                }
        }
}

static struct att_res *att_add(struct attachment *a, enum att_kind kind, char *path)
{
        if (!path || a->n >= ATT_MAX) {
                free(path);
                return NULL;
        }
        struct att_res *x = &a->res[a->n++];
        *x = (struct att_res){.kind = kind, .path = path};
        return x;
}

static char *path_join(const char *dir, const char *name)
{
        char buf[SCSI_PATH_MAX];
        if (ferry_bprintf(buf, sizeof(buf), "%s/%s", dir, name) < 0)
                return NULL;
        return strdup(buf);
}

static bool abs_path(const char *s)
{
        return s && *s && wire_check_opt_path(s) == 0;
}

/* A bind rootfs, what containerd's native snapshotter mounts: the host directory, shared into
 * the guest over Plan9, is the container's rootfs as it is (no layer disk, no scratch). */
static int parse_bind_rootfs(struct attachment *a, const struct sandbox_mount *m)
{
        struct stat st;
        if (!abs_path(m->source) || strlen(m->source) >= PLAN9_PATH_MAX)
                return bad_field(a->sb, "rootfs[0].source",
                                 "not an absolute path (at most 255 characters)");
        if (stat(m->source, &st) < 0 || !S_ISDIR(st.st_mode))
                return bad_field(a->sb, "rootfs[0].source", "not a directory");
        struct att_res *x = att_add(a, ATT_PLAN9, strdup(m->source));
        if (!x)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_options; i++)
                x->read_only |= m->options[i] && strcmp(m->options[i], "ro") == 0;
        a->bind_rootfs = true;
        return 0;
}

/* The rootfs: no mount (no layers), one bind mount (parse_bind_rootfs), or one lcow-layer
 * mount whose options carry parentLayerPaths=["/layer/dir", ...] (stack order; each holds
 * layer.vhd) and whose source holds the scratch (sandbox.vhdx), as hcsshim's ParseLCOWLayers
 * reads it. */
static int parse_rootfs(struct attachment *a, const struct sandbox_mount *m, size_t n)
{
        struct sandbox *sb = a->sb;
        const char *layers = NULL;
        if (n == 0)
                return 0;
        if (n > 1)
                return bad_field(sb, "rootfs", "one lcow-layer or bind mount at most");
        if (m->type && strcmp(m->type, BIND_TYPE) == 0)
                return parse_bind_rootfs(a, m);
        if (!m->type || strcmp(m->type, LCOW_LAYER_TYPE) != 0)
                return bad_field(sb, "rootfs[0].type", "not " LCOW_LAYER_TYPE " or " BIND_TYPE);
        if (!abs_path(m->source))
                return bad_field(sb, "rootfs[0].source", "not an absolute path");
        for (size_t i = 0; i < m->n_options; i++)
                if (m->options[i] &&
                    strncmp(m->options[i], PARENT_LAYERS, strlen(PARENT_LAYERS)) == 0)
                        layers = m->options[i] + strlen(PARENT_LAYERS);
        struct json_object *arr = layers ? json_tokener_parse(layers) : NULL;
        int r = 0;
        if (layers && (!arr || !json_object_is_type(arr, json_type_array)))
                r = bad_field(sb, "rootfs[0].options", PARENT_LAYERS "is not a JSON list");
        size_t nl = arr && r == 0 ? json_object_array_length(arr) : 0;
        if (nl > CONTAINER_LAYERS_MAX)
                r = bad_field(sb, "rootfs[0].options", "too many parent layers");
        for (size_t i = 0; r == 0 && i < nl; i++) {
                const char *dir = json_object_get_string(json_object_array_get_idx(arr, i));
                if (!abs_path(dir) ||
                    !json_object_is_type(json_object_array_get_idx(arr, i), json_type_string))
                        r = bad_field(sb, "rootfs[0].options",
                                      PARENT_LAYERS "holds a path that is not absolute");
                struct att_res *x =
                    r == 0 ? att_add(a, ATT_SCSI, path_join(dir, "layer.vhd")) : NULL;
                if (r == 0 && !x)
                        r = bad_field(sb, "rootfs[0].options", "layer path too long");
                if (x)
                        x->read_only = true;
        }
        json_object_put(arr);
        if (r < 0)
                return r;
        a->n_ro = a->n;
        struct att_res *x = att_add(a, ATT_SCSI, path_join(m->source, "sandbox.vhdx"));
        if (!x)
                return bad_field(sb, "rootfs[0].source", "path too long");
        x->scratch = a->has_scratch = true;
        return 0;
}

static bool has_option(struct json_object *opts, const char *want)
{
        for (size_t i = 0; opts && i < json_object_array_length(opts); i++) {
                const char *o = json_object_get_string(json_object_array_get_idx(opts, i));
                if (o && strcasecmp(o, want) == 0)
                        return true;
        }
        return false;
}

/* Sources the guest resolves itself (controllers.md §4.4 b): passed through, not shared. */
static bool guest_source(const char *src)
{
        static const char *const prefixes[] = {"sandbox://", "sandbox-tmp://", "uvm://",
                                               "hugepages://"};
        for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
                if (strncmp(src, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

/* One OCI bind mount: a Plan9 share of its source directory, or of a file's directory with
 * access restricted to the file. */
static int parse_bind(struct attachment *a, struct json_object *m, size_t i)
{
        struct sandbox *sb = a->sb;
        char f[64];
        struct stat st;
        const char *src = json_str(m, "source"), *dst = json_str(m, "destination");
        if (src && guest_source(src))
                return 0;
        ferry_bprintf(f, sizeof(f), "mounts[%zu].source", i);
        if (!abs_path(src) || strlen(src) >= PLAN9_PATH_MAX)
                return bad_field(sb, f, "not an absolute path (at most 255 characters)");
        if (stat(src, &st) < 0)
                return bad_field(sb, f, strerror(errno));
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                return bad_field(sb, f, "neither a directory nor a regular file");
        ferry_bprintf(f, sizeof(f), "mounts[%zu].destination", i);
        if (!abs_path(dst))
                return bad_field(sb, f, "not an absolute path");
        if (a->n >= ATT_MAX || a->n - a->n_ro - a->has_scratch - a->bind_rootfs >= ATT_SHARES_MAX)
                return bad_field(sb, "mounts", "too many bind mounts (at most 16)");
        char *dir = strdup(src), *name = NULL;
        if (dir && S_ISREG(st.st_mode)) {
                char *slash = strrchr(dir, '/');
                name = strdup(slash + 1);
                slash[slash == dir ? 1 : 0] = '\0';
        }
        struct att_res *x = att_add(a, ATT_PLAN9, dir);
        if (!x || (S_ISREG(st.st_mode) && !name)) {
                free(name);
                return -ENOMEM;
        }
        x->allowed = name;
        x->read_only = has_option(json_get(m, "options", json_type_array), "ro");
        return 0;
}

/* One windows.devices entry: a vPCI device "<instance id>[/<vf index>]". */
static int parse_device(struct attachment *a, struct json_object *d, size_t i)
{
        struct sandbox *sb = a->sb;
        char f[64];
        const char *type = json_str(d, "idType"), *id = json_str(d, "id");
        ferry_bprintf(f, sizeof(f), "windows.devices[%zu].idType", i);
        if (!type || (strcmp(type, "vpci-instance-id") != 0 && strcmp(type, "vpci") != 0 &&
                      strcmp(type, "gpu") != 0))
                return bad_field(sb, f, "not vpci-instance-id, vpci or gpu");
        ferry_bprintf(f, sizeof(f), "windows.devices[%zu].id", i);
        if (!id || !*id || strlen(id) >= VPCI_INSTANCE_MAX)
                return bad_field(sb, f, "empty or longer than 199 characters");
        if (a->n >= ATT_MAX)
                return bad_field(sb, "windows.devices", "too many devices (at most 8)");
        char *inst = strdup(id);
        uint32_t vf = 0;
        char *slash = inst ? strrchr(inst, '/') : NULL;
        if (slash && slash[1] && strspn(slash + 1, "0123456789") == strlen(slash + 1) &&
            strlen(slash + 1) <= 9) {
                vf = (uint32_t)strtoul(slash + 1, NULL, 10);
                *slash = '\0';
        }
        struct att_res *x = att_add(a, ATT_VPCI, inst);
        if (!x)
                return -ENOMEM;
        x->vf = vf;
        return 0;
}

/* The bundle's bind mounts and devices (other mount types are the guest's business). */
static int parse_spec(struct attachment *a, const char *bundle)
{
        struct json_object *cfg = NULL;
        int r = read_config(a->sb, bundle, &cfg);
        struct json_object *ms = json_get(cfg, "mounts", json_type_array);
        for (size_t i = 0; r == 0 && ms && i < json_object_array_length(ms); i++) {
                struct json_object *m = json_object_array_get_idx(ms, i);
                struct json_object *opts = json_get(m, "options", json_type_array);
                const char *type = json_str(m, "type");
                if ((type && strcmp(type, "bind") == 0) || has_option(opts, "bind") ||
                    has_option(opts, "rbind"))
                        r = parse_bind(a, m, i);
        }
        struct json_object *ds =
            json_get(json_get(cfg, "windows", json_type_object), "devices", json_type_array);
        size_t n_dev = ds ? json_object_array_length(ds) : 0;
        if (r == 0 && n_dev > ATT_DEVICES_MAX)
                r = bad_field(a->sb, "windows.devices", "too many devices (at most 8)");
        for (size_t i = 0; r == 0 && i < n_dev; i++)
                r = parse_device(a, json_object_array_get_idx(ds, i), i);
        json_object_put(cfg);
        return r;
}

static int res_reserve(struct sandbox *sb, struct att_res *x)
{
        struct scsi_ctrl *scsi = NULL;
        switch (x->kind) {
        case ATT_SCSI: {
                struct scsi_disk_config disk = {.host_path = x->path, .read_only = x->read_only};
                struct scsi_mount_config mnt = {.read_only = x->read_only,
                                                .ensure_filesystem = x->scratch,
                                                .filesystem = x->scratch ? "ext4" : NULL};
                int r = vm_scsi(sb->vm, &scsi);
                return r < 0 ? r : scsi_reserve(scsi, &disk, &mnt, x->id);
        }
        case ATT_PLAN9: {
                const char *const names[1] = {x->allowed};
                struct plan9_share_config cfg = {.host_path = x->path,
                                                 .read_only = x->read_only,
                                                 .restrict_access = x->allowed != NULL,
                                                 .allowed_names = x->allowed ? names : NULL,
                                                 .n_allowed = x->allowed ? 1 : 0};
                return plan9_add(sb->p9, &cfg, x->read_only, x->id);
        }
        case ATT_VPCI:
                return vpci_reserve(sb->vpci, x->path, x->vf, x->id);
        }
        return -EINVAL;
}

static int res_map(struct sandbox *sb, struct att_res *x, ctrl_done_fn done, void *ud)
{
        struct scsi_ctrl *scsi = NULL;
        sandbox_env(sb); /* the device controllers read the live system and guest from it */
        switch (x->kind) {
        case ATT_SCSI:
                return vm_scsi(sb->vm, &scsi) < 0 ? -ENOTCONN : scsi_map(scsi, x->id, done, ud);
        case ATT_PLAN9:
                return plan9_mount(sb->p9, x->id, done, ud);
        case ATT_VPCI:
                return vpci_assign(sb->vpci, x->id, done, ud);
        }
        return -EINVAL;
}

/* -ENOENT: the controller no longer knows it (released already, or the VM took it). */
static int res_release(struct sandbox *sb, struct att_res *x, ctrl_done_fn done, void *ud)
{
        struct scsi_ctrl *scsi = NULL;
        sandbox_env(sb);
        switch (x->kind) {
        case ATT_SCSI:
                return vm_scsi(sb->vm, &scsi) < 0 ? -ENOENT : scsi_unmap(scsi, x->id, done, ud);
        case ATT_PLAN9:
                return plan9_unmount(sb->p9, x->id, done, ud);
        case ATT_VPCI:
                return vpci_remove(sb->vpci, x->id, done, ud);
        }
        return -EINVAL;
}

static void rel_next(struct attachment *a);

/* The release of every reserved device has ended (or one failed, a->result): an unwinding
 * attach reports its own error; a detach that released everything forgets the container. */
static void rel_end(struct attachment *a)
{
        void *ud = a->userdata;
        int r = a->result;
        a->busy = false;
        if (a->unwinding) {
                sandbox_attach_fn done = a->attach_done;
                att_unlist(a);
                att_free(a);
                done(r, NULL, ud);
                return;
        }
        sandbox_done_fn done = a->detach_done;
        if (r == 0) {
                att_unlist(a);
                att_free(a);
        }
        done(r, ud);
}

/* A device controller's done may run inside its own transition, where a call back into it
 * would be refused or lost: the chains go on from a later loop turn. */
static void dev_later(struct sandbox *sb, int r, mig_done_fn fn, void *userdata)
{
        if (later_done(sb, r, fn, userdata) < 0)
                fn(r, userdata);
}

static void rel_done_later(int r, void *userdata);

static void rel_done(int r, void *userdata)
{
        struct attachment *a = userdata;
        dev_later(a->sb, r, rel_done_later, a);
}

static void rel_done_later(int r, void *userdata)
{
        struct attachment *a = userdata;
        a->sb->dev_inflight--;
        if (r < 0 && r != -ENOENT && !a->unwinding) {
                a->result = r; /* kept: a retry resumes here */
                rel_end(a);
                return;
        }
        a->res[--a->cur].reserved = false;
        rel_next(a);
}

/* Releases the reserved devices, last first. */
static void rel_next(struct attachment *a)
{
        while (a->cur > 0) {
                struct att_res *x = &a->res[a->cur - 1];
                if (!x->reserved) {
                        a->cur--;
                        continue;
                }
                a->sb->dev_inflight++;
                int r = res_release(a->sb, x, rel_done, a);
                if (r == 0)
                        return;
                a->sb->dev_inflight--;
                if (r != -ENOENT && !a->unwinding) {
                        a->result = r;
                        rel_end(a);
                        return;
                }
                x->reserved = false;
                a->cur--;
        }
        rel_end(a);
}

/* Every device is in the guest: the container's disks go to its create. */
static void att_ready(struct attachment *a)
{
        struct container_disk disks[CONTAINER_LAYERS_MAX + 1];
        struct scsi_ctrl *scsi = NULL;
        char rootfs[TTRPC_ID_MAX + 32];
        size_t n = a->n_ro + a->has_scratch;
        (void)vm_scsi(a->sb->vm, &scsi);
        for (size_t i = 0; i < n; i++)
                disks[i] = (struct container_disk){
                    a->res[i].id, scsi ? scsi_guest_path(scsi, a->res[i].id) : "", a->res[i].path};
        ferry_bprintf(rootfs, sizeof(rootfs), "/run/gcs/c/%s/rootfs", a->id);
        const char *path = n ? rootfs : NULL;
        if (a->bind_rootfs)
                path = plan9_guest_path(a->sb->p9, a->res[0].id);
        struct sandbox_disks d = {.rootfs_path = path,
                                  .ro_layers = disks,
                                  .n_ro_layers = a->n_ro,
                                  .scratch = a->has_scratch ? &disks[a->n_ro] : NULL};
        a->busy = false;
        a->attach_done(0, &d, a->userdata);
}

static void att_next(struct attachment *a);

static void att_mapped_later(int r, void *userdata);

static void att_mapped(int r, void *userdata)
{
        struct attachment *a = userdata;
        dev_later(a->sb, r, att_mapped_later, a);
}

static void att_mapped_later(int r, void *userdata)
{
        struct attachment *a = userdata;
        a->sb->dev_inflight--;
        if (r < 0) {
                a->result = r;
                a->unwinding = true;
                rel_next(a); /* cur is the failed one's index + 1: it is released too */
                return;
        }
        att_next(a);
}

/* Reserves and maps the next device; a failure releases what was reserved (the failed one
 * included: its reservation is kept by its controller until released). */
static void att_next(struct attachment *a)
{
        if (a->cur == a->n) {
                att_ready(a);
                return;
        }
        struct att_res *x = &a->res[a->cur++];
        int r = res_reserve(a->sb, x);
        if (r == 0) {
                x->reserved = true;
                a->sb->dev_inflight++;
                r = res_map(a->sb, x, att_mapped, a);
                if (r == 0)
                        return;
                a->sb->dev_inflight--;
        }
        a->result = r;
        a->unwinding = true;
        rel_next(a);
}

int sandbox_attach(struct sandbox *sb, const char *id, const char *bundle,
                   const struct sandbox_mount *rootfs, size_t n_rootfs, sandbox_attach_fn done,
                   void *userdata)
{
        sb->error[0] = '\0';
        if (wire_check_id(id) < 0)
                return bad_field(sb, "id", "invalid task id");
        if (att_find(sb, id))
                return -EEXIST;
        struct attachment *a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        *a = (struct attachment){.sb = sb, .attach_done = done, .userdata = userdata};
        ferry_strscpy(a->id, id, sizeof(a->id));
        int r = parse_rootfs(a, rootfs, n_rootfs);
        if (r == 0)
                r = parse_spec(a, bundle);
        if (r == 0 && !sandbox_running(sb))
                r = -ENOTCONN;
        if (r < 0) {
                att_free(a);
                return r;
        }
        a->busy = true;
        a->next = sb->atts;
        sb->atts = a;
        att_next(a);
        return 0;
}

/* Tracks a reservation container c holds that no attachment knows of (a migrated
 * container's: the source attached it). */
int sandbox_adopt(struct sandbox *sb, const struct container *c)
{
        struct attachment *a = att_find(sb, container_id(c));
        struct container_disk d;
        if (!a) {
                a = calloc(1, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                *a = (struct attachment){.sb = sb};
                ferry_strscpy(a->id, container_id(c), sizeof(a->id));
                a->next = sb->atts;
                sb->atts = a;
        }
        for (size_t i = 0; container_disk_at(c, i, NULL, &d); i++) {
                bool known = false;
                for (size_t j = 0; j < a->n && !known; j++)
                        known = strcmp(a->res[j].id, d.reservation_id) == 0;
                if (known)
                        continue;
                struct att_res *x = att_add(a, ATT_SCSI, strdup(d.host_path));
                if (!x)
                        return -ENOMEM;
                ferry_strscpy(x->id, d.reservation_id, sizeof(x->id));
                x->reserved = true;
        }
        return 0;
}

static void detach_nothing(int result, void *userdata)
{
        struct attachment *a = userdata;
        sandbox_done_fn done = a->detach_done;
        void *ud = a->userdata;
        att_free(a);
        done(result, ud);
}

int sandbox_detach(struct sandbox *sb, const char *id, sandbox_done_fn done, void *userdata)
{
        struct attachment *a = att_find(sb, id);
        if (a && a->busy)
                return -ESTALE;
        if (a)
                att_unlist(a);
        else if (!(a = calloc(1, sizeof(*a))))
                return -ENOMEM;
        a->sb = sb;
        a->detach_done = done;
        a->userdata = userdata;
        /* nothing held, or the VM is gone and took every device with it */
        if (a->n == 0 || sb->exited || !sandbox_running(sb))
                return later_done(sb, 0, detach_nothing, a) < 0 ? (att_free(a), -ENOMEM) : 0;
        a->next = sb->atts;
        sb->atts = a;
        a->busy = true;
        a->unwinding = false;
        a->result = 0;
        a->cur = a->n;
        rel_next(a);
        return 0;
}

size_t sandbox_device_count(const struct sandbox *sb, const char *id)
{
        const struct attachment *a = att_find(sb, id);
        size_t n = 0;
        for (size_t i = 0; a && i < a->n; i++)
                n += a->res[i].reserved;
        return n;
}

/* The containers' hooks into the VM's SCSI controller. A destination patch repoints a disk;
 * a container's release hands its reservation to sandbox_detach, which the Task service
 * calls once the guest container is gone (and which can report and retry a failure, which
 * this synchronous hook could not). */
static int hook_repoint(void *userdata, const char *reservation_id, const char *host_path)
{
        struct sandbox *sb = userdata;
        struct scsi_ctrl *scsi = NULL;
        int r = vm_scsi(sb->vm, &scsi);
        return r < 0 ? r : scsi_patch(scsi, reservation_id, host_path);
}

static int hook_release(void *userdata, const char *reservation_id)
{
        return 0;
}

/* One migration step in flight: what to call when it ends. */
struct step {
        struct sandbox *sb;
        mig_done_fn done;
        void *userdata;
        bool resume;    /* the VM runs again after it: the pod resumes */
        bool terminate; /* a terminate: -EALREADY (already down) is success */
};

static struct step *step_new(struct sandbox *sb, mig_done_fn done, void *userdata)
{
        struct step *st = calloc(1, sizeof(*st));
        if (st)
                *st = (struct step){.sb = sb, .done = done, .userdata = userdata};
        return st;
}

static void step_end(struct step *st, int result)
{
        mig_done_fn done = st->done;
        void *ud = st->userdata;
        free(st);
        done(result, ud);
}

static enum mig_vm_state ops_vm_state(void *p)
{
        struct sandbox *sb = p;
        return mig_vm_ops.vm_state(sb->vm_steps);
}

static void step_result(int result, void *userdata)
{
        step_end(userdata, result);
}

static int ops_initialize(void *p, const char *opts_json, mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        return mig_vm_ops.initialize(sb->vm_steps, opts_json, done, userdata);
}

/* A pod call whose done may come at once (its answer is then taken as the call's outcome) or
 * later (a save rolling back, a patch opening IO on the thread pool). */
struct pod_wait {
        bool answered, detached;
        int result;
};

static void pod_wait_done(int result, void *userdata)
{
        struct pod_wait *w = userdata;
        if (w->detached) {
                free(w);
                return;
        }
        w->answered = true;
        w->result = result;
}

/* The outcome of a pod call that took w: its answer if it came at once, else pending (the
 * late answer frees w). */
static int pod_wait_end(struct pod_wait *w, int r, int pending)
{
        if (r < 0) {
                free(w);
                return r;
        }
        if (!w->answered) {
                w->detached = true;
                return pending;
        }
        r = w->result;
        free(w);
        return r;
}

/* Source: the VM's envelope (a pure serialization), then the pod's, which freezes the pod and
 * its containers; a failed pod save leaves nothing frozen. */
static int ops_export(void *p, uint8_t **ret, size_t *ret_len)
{
        struct sandbox *sb = p;
        Containerd__Runtime__Sandbox__V1__SandboxSave msg =
            CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_SAVE__INIT;
        ctrl_envelope *venv = NULL, *penv = NULL, *env = NULL;
        /* Plan9 shares and assigned devices cannot follow the VM to another host
         * (controllers.md §8.7, §9.5): a pod that holds one is not migratable */
        if (plan9_share_count(sb->p9) || vpci_device_count(sb->vpci))
                return -EBUSY;
        int r = vm_save(sb->vm, &venv);
        if (r < 0)
                return r;
        struct pod_wait *w = calloc(1, sizeof(*w));
        r = w ? pod_save(sb->pod, &penv, pod_wait_done, w) : -ENOMEM;
        r = w ? pod_wait_end(w, r, -EBUSY) : r; /* a late answer is a rollback: failed */
        msg.schema_version = SANDBOX_SCHEMA_VERSION;
        msg.sandbox_id = sb->id;
        msg.vm = venv;
        msg.n_pods = 1; /* one pod per sandbox today; import takes a list */
        msg.pods = &penv;
        if (r == 0)
                r = ctrl_envelope_pack(SANDBOX_SAVE_NAME, SANDBOX_SCHEMA_VERSION, &msg.base, &env);
        if (r == 0)
                r = ctrl_envelope_to_bytes(env, ret, ret_len);
        ctrl_envelope_free(env);
        ctrl_envelope_free(penv);
        ctrl_envelope_free(venv);
        return r;
}

/* Adds the container ids of one pod envelope to ids (n in use, cap max). A payload that does
 * not decode is left to pod_import to refuse; here only ids matter. */
static int pod_container_ids(const ctrl_envelope *penv, char **ids, size_t *n, size_t max)
{
        ProtobufCMessage *pm = NULL;
        int r = ctrl_envelope_unpack(penv, "pod", UINT32_MAX,
                                     &ferry__pod__save__v1__payload__descriptor, &pm, NULL, NULL);
        if (r < 0)
                return r;
        const Ferry__Pod__Save__V1__Payload *pod = (const Ferry__Pod__Save__V1__Payload *)pm;
        for (size_t i = 0; r == 0 && i < pod->n_containers; i++) {
                ProtobufCMessage *cm = NULL;
                r = ctrl_envelope_unpack(pod->containers[i], "container", UINT32_MAX,
                                         &ferry__container__save__v1__payload__descriptor, &cm,
                                         NULL, NULL);
                if (r < 0)
                        break;
                const char *id = ((Ferry__Container__Save__V1__Payload *)cm)->container_id;
                if (*n >= max)
                        r = -EINVAL;
                else if (!(ids[*n] = strdup(id)))
                        r = -ENOMEM;
                else
                        (*n)++;
                protobuf_c_message_free_unpacked(cm, NULL);
        }
        protobuf_c_message_free_unpacked(pm, NULL);
        return r;
}

/* Decodes every pod's envelope before anything is imported and refuses (-EINVAL) a container
 * id that two pods (or one pod twice) carry: the destination could not tell their patches
 * apart. */
static int check_pods(const Containerd__Runtime__Sandbox__V1__SandboxSave *m)
{
        char **ids = calloc(SANDBOX_IMPORT_IDS_MAX, sizeof(*ids));
        if (!ids)
                return -ENOMEM;
        size_t n = 0;
        int r = 0;
        for (size_t p = 0; r == 0 && p < m->n_pods; p++)
                r = pod_container_ids(m->pods[p], ids, &n, SANDBOX_IMPORT_IDS_MAX);
        for (size_t i = 0; r == 0 && i < n; i++)
                for (size_t j = i + 1; r == 0 && j < n; j++)
                        if (strcmp(ids[i], ids[j]) == 0)
                                r = -EINVAL;
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
        return r;
}

/* Destination: every pod is checked first (check_pods), then the pod's import, then the VM's;
 * a VM that refuses leaves a fresh pod again (an imported pod has nothing in any guest yet,
 * and freeing it publishes nothing), so a failure anywhere leaves nothing imported. The
 * sandbox holds one pod: a snapshot with more is refused (-EINVAL) once they have been
 * checked, before any is imported. */
static int import_pod_vm(struct sandbox *sb, const char *sandbox_id,
                         const Containerd__Runtime__Sandbox__V1__SandboxSave *m)
{
        if (!m->vm || m->n_pods == 0)
                return -EINVAL;
        int r = check_pods(m);
        if (r < 0)
                return r;
        if (m->n_pods != 1)
                return -EINVAL;
        uint8_t *vbuf = NULL;
        size_t vlen = 0;
        r = ctrl_envelope_to_bytes(m->vm, &vbuf, &vlen);
        if (r < 0)
                return r;
        struct pod_options o = pod_opts(sb);
        r = pod_import(sb->pod, &o, m->pods[0]);
        if (r == 0)
                r = mig_vm_ops.import_state(sb->vm_steps, sandbox_id, vbuf, vlen);
        free(vbuf);
        if (r < 0 && strcmp(pod_state_name(sb->pod), "not_created") != 0) {
                struct pod *fresh = NULL;
                if (pod_new(sb->vm, "sandbox", &fresh) == 0 && !pod_free(sb->pod))
                        sb->pod = fresh;
                else
                        pod_free(fresh);
        }
        return r;
}

static int ops_import(void *p, const char *sandbox_id, const uint8_t *buf, size_t len)
{
        struct sandbox *sb = p;
        if (wire_check_id(sandbox_id) < 0 || strlen(sandbox_id) > VM_ID_MAX)
                return -EINVAL;
        if (sb->id[0] || !vm_in(sb, "not_created"))
                return -EBUSY;
        ctrl_envelope *env = NULL;
        Containerd__Runtime__Sandbox__V1__SandboxSave *msg = NULL;
        int r = ctrl_envelope_from_bytes(buf, len, &env);
        if (r == 0)
                r = ctrl_envelope_unpack(
                    env, SANDBOX_SAVE_NAME, SANDBOX_SCHEMA_VERSION,
                    &containerd__runtime__sandbox__v1__sandbox_save__descriptor,
                    (ProtobufCMessage **)&msg, NULL, NULL);
        if (r == 0)
                r = import_pod_vm(sb, sandbox_id, msg);
        if (r == 0) {
                struct network *n = pod_network(sb->pod);
                ferry_strscpy(sb->id, sandbox_id, sizeof(sb->id));
                /* the pod's NICs came with it: its stop removes them as the source's would */
                ferry_strscpy(sb->netns, n ? network_namespace_id(n) : "", sizeof(sb->netns));
                sb->created_at_ns = ferry_wall_ns();
        }
        if (msg)
                protobuf_c_message_free_unpacked(&msg->base, NULL);
        ctrl_envelope_free(env);
        return r;
}

/* The imported containers that wait for their patch (a destination CreateTask), by id. */
static int ops_pending(void *p, char *buf, size_t size)
{
        struct sandbox *sb = p;
        int n = 0;
        size_t len = 0;
        if (size)
                buf[0] = '\0';
        for (size_t i = 0; i < pod_container_count(sb->pod); i++) {
                struct container *c = pod_container_at(sb->pod, i);
                if (pod_container_patched(sb->pod, c))
                        continue;
                if (size > len) {
                        ssize_t w = ferry_bprintf(buf + len, size - len, "%s%s", n ? ", " : "",
                                                  container_id(c));
                        len = w < 0 ? size : len + (size_t)w;
                }
                n++;
        }
        return n;
}

/* The destination host paths of a migrated container's disks: from the patch's rootfs
 * (parsed into a as a create's is; its counts must match the saved ones, which the container
 * checks), or, with no rootfs, the saved paths (the destination sees the same storage). */
static int patch_disks(struct sandbox *sb, const char *source_id,
                       const Containerd__Task__V2__CreateTaskRequest *req, struct attachment *a,
                       struct container_patch_opts *o, const char **layers)
{
        struct container *c = pod_container(sb->pod, source_id);
        struct container_disk d;
        enum container_disk_kind k;
        if (req && req->n_rootfs) {
                const Containerd__Task__V2__Mount *m = req->rootfs[0];
                struct sandbox_mount sm = {m->type, m->source, m->options, m->n_options};
                int r = parse_rootfs(a, &sm, req->n_rootfs);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < a->n_ro; i++)
                        layers[i] = a->res[i].path;
                o->ro_layer_paths = layers;
                o->n_ro_layer_paths = a->n_ro;
                o->scratch_path = a->has_scratch ? a->res[a->n_ro].path : NULL;
                return 0;
        }
        for (size_t i = 0; c && container_disk_at(c, i, &k, &d); i++) {
                if (k == CONTAINER_DISK_LAYER && o->n_ro_layer_paths < CONTAINER_LAYERS_MAX)
                        layers[o->n_ro_layer_paths++] = d.host_path;
                else if (k == CONTAINER_DISK_SCRATCH)
                        o->scratch_path = d.host_path;
        }
        o->ro_layer_paths = layers;
        return 0;
}

/* Destination CreateTask with the source-container annotation: the pod patches the imported
 * container with the destination's id, bundle and stdio. The pod has no network (the shim
 * does not attach one), so no namespace travels with the sandbox container's patch. A patch
 * that opens stdio on the thread pool completes later; until then the container counts as
 * unpatched (PrepareSandbox names it). */
static int ops_patch(void *p, const struct mig_patch *patch)
{
        struct sandbox *sb = p;
        const Containerd__Task__V2__CreateTaskRequest *req = patch->request;
        struct container_patch_opts o = {.id = patch->container_id};
        const char *layers[CONTAINER_LAYERS_MAX];
        _cleanup_free_ struct attachment *a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->sb = sb;
        if (req) {
                o.bundle = req->bundle;
                o.io = (struct process_io){req->stdin, req->stdout, req->stderr, req->terminal};
        }
        char ns[NETWORK_ID_MAX];
        int r = patch_disks(sb, patch->source_container_id, req, a, &o, layers);
        /* the sandbox container's patch brings the destination's namespace: its bundle's, else
         * the imported one (the same host network) */
        if (r == 0)
                r = sandbox_config(sb, req ? req->bundle : NULL, ns, sizeof(ns));
        if (r == 0 && !ns[0])
                ferry_strscpy(ns, sb->netns, sizeof(ns));
        struct pod_wait *w = r == 0 ? calloc(1, sizeof(*w)) : NULL;
        if (r == 0 && !w)
                r = -ENOMEM;
        if (r == 0)
                r = pod_wait_end(w,
                                 pod_patch_container(sb->pod, patch->source_container_id, &o,
                                                     ns[0] ? ns : NULL, pod_wait_done, w),
                                 0);
        for (size_t i = 0; i < a->n; i++) /* a itself is freed on return */
                free(a->res[i].path);
        return r;
}

static int ops_prepare_destination(void *p, const char *opts_json, mig_prepare_fn done,
                                   void *userdata)
{
        struct sandbox *sb = p;
        return mig_vm_ops.prepare_destination(sb->vm_steps, opts_json, done, userdata);
}

static int ops_transfer(void *p, enum mig_origin origin, int fd, uint32_t session_num,
                        mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        return mig_vm_ops.transfer(sb->vm_steps, origin, fd, session_num, done, userdata);
}

static void ignore_done(int result, void *userdata)
{
}

/* This side's VM is gone, or never ran: the pod's frozen containers end (137, their exits
 * published) so Delete can proceed. Best effort: a pod that is not frozen is left as it is. */
static void teardown_pod(struct sandbox *sb)
{
        (void)pod_teardown(sb->pod, ignore_done, NULL);
}

/* The VM's finalize (resume or stop) or terminate is done: the pod follows. */
static void vm_step_done(int result, void *userdata)
{
        struct step *st = userdata;
        struct sandbox *sb = st->sb;
        if (result == -EALREADY && st->terminate)
                result = 0;
        if (result == 0 && st->resume) {
                /* the VM runs again: a source rolls back, a destination binds its containers
                 * (they republish TaskCreate and TaskStart) */
                result = pod_resume(sb->pod, step_result, st);
                if (result == 0)
                        return;
        } else if (result == 0) {
                teardown_pod(sb); /* this side's VM is gone */
                mark_exited(sb, 0);
        }
        step_end(st, result);
}

static int ops_finalize(void *p, enum mig_origin origin, bool resume, bool skip_host,
                        mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        st->resume = resume || skip_host; /* skip_host: resume the VM only */
        int r = mig_vm_ops.finalize(sb->vm_steps, origin, resume, skip_host, vm_step_done, st);
        if (r < 0)
                free(st);
        return r;
}

static int ops_terminate(void *p, mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        st->terminate = true;
        int r = mig_vm_ops.terminate(sb->vm_steps, vm_step_done, st);
        if (r < 0)
                free(st);
        return r;
}

static int ops_cancel(void *p, enum mig_origin origin, mig_done_fn done, void *userdata)
{
        struct sandbox *sb = p;
        /* nothing exists in host compute yet to abort */
        if (!vm_system(sb->vm))
                return later_done(sb, 0, done, userdata);
        struct step *st = step_new(sb, done, userdata);
        if (!st)
                return -ENOMEM;
        int r = vm_cancel(sb->vm, step_result, st);
        if (r < 0) {
                free(st);
                return later_done(sb, r == -EBUSY ? 0 : r, done, userdata);
        }
        return 0;
}

static void cleanup_terminated(int result, void *userdata)
{
        mark_exited(userdata, 0);
}

/* The session ended. A side whose VM does not run (a destination cancelled or stopped before
 * its resume) is torn down: the host system goes, the imported pod's teardown ends every task
 * with 137 (TaskExit published) so Delete can proceed, and the sandbox reports stopped. A
 * running side keeps everything. */
static void ops_cleanup(void *p)
{
        struct sandbox *sb = p;
        if (sandbox_running(sb) || !sb->id[0])
                return;
        teardown_pod(sb);
        if (vm_in(sb, "terminated") || vm_in(sb, "not_created")) {
                mark_exited(sb, 0);
                return;
        }
        if (vm_terminate(sb->vm, cleanup_terminated, sb) < 0)
                mark_exited(sb, 0);
}

const struct migration_sandbox_ops sandbox_mig_ops = {
    .vm_state = ops_vm_state,
    .initialize = ops_initialize,
    .export_state = ops_export,
    .import_state = ops_import,
    .pending_patches = ops_pending,
    .patch_container = ops_patch,
    .prepare_destination = ops_prepare_destination,
    .transfer = ops_transfer,
    .finalize = ops_finalize,
    .terminate = ops_terminate,
    .cancel = ops_cancel,
    .cleanup = ops_cleanup,
};

/* ---------------------------------------------------------------------------------------- */
/* the Sandbox service */

struct sandbox_service {
        struct sandbox *sb;
        void (*shutdown)(void *);
        void *shutdown_userdata;
};

static struct sandbox_service the_service; /* one per process: a shim has one sandbox */

/* A sandbox_id that names another sandbox is NOT_FOUND; empty means "this shim's". */
static int check_target(struct sandbox *sb, const char *sandbox_id)
{
        if (!sandbox_id || !*sandbox_id)
                return sb->id[0] ? 0 : -ENOENT;
        int r = wire_check_id(sandbox_id);
        if (r < 0)
                return r;
        return strcmp(sandbox_id, sb->id) == 0 ? 0 : -ENOENT;
}

static void reply_empty_done(int result, void *userdata)
{
        struct ttrpc_call *call = userdata;
        if (result < 0)
                ttrpc_call_fail(call, result, "sandbox");
        else
                ttrpc_call_reply(call, NULL);
}

static void h_create(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__CreateSandboxRequest *req = (const void *)msg;
        int r = sandbox_create(svc->sb, req->sandbox_id, req->bundle_path, reply_empty_done, call);
        if (r < 0)
                ttrpc_call_fail(call, r,
                                r == -EEXIST ? "sandbox already exists"
                                : r == -EINVAL && sandbox_error(svc->sb)[0] ? sandbox_error(svc->sb)
                                                                            : "create sandbox");
}

static void reply_started(int result, void *userdata)
{
        struct ttrpc_call *call = userdata;
        if (result < 0) {
                ttrpc_call_fail(call, result, "start sandbox");
                return;
        }
        Containerd__Runtime__Sandbox__V1__StartSandboxResponse resp =
            CONTAINERD__RUNTIME__SANDBOX__V1__START_SANDBOX_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts;
        wire_timestamp(&ts, sandbox_created_at_ns(the_service.sb));
        resp.pid = (uint32_t)getpid();
        resp.created_at = &ts;
        ttrpc_call_reply(call, &resp.base);
}

static void h_start(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__StartSandboxRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        if (r == 0)
                r = sandbox_start(svc->sb, reply_started, call);
        if (r < 0)
                ttrpc_call_fail(call, r,
                                r == -EBUSY ? "sandbox is not in created state" : "start sandbox");
}

static void h_platform(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        Containerd__Runtime__Sandbox__V1__PlatformResponse resp =
            CONTAINERD__RUNTIME__SANDBOX__V1__PLATFORM_RESPONSE__INIT;
        Containerd__Runtime__Sandbox__V1__Platform p =
            CONTAINERD__RUNTIME__SANDBOX__V1__PLATFORM__INIT;
        struct utsname u;
        p.os = "linux";
        /* the guest runs the host's architecture (the sim and qemu -accel tcg of the same arch) */
        p.architecture = "amd64";
        if (uname(&u) == 0 && strcmp(u.machine, "aarch64") == 0)
                p.architecture = "arm64";
        resp.platform = &p;
        ttrpc_call_reply(call, &resp.base);
}

static void h_stop(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__StopSandboxRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        if (r == 0)
                r = sandbox_stop(svc->sb, reply_empty_done, call);
        if (r < 0)
                ttrpc_call_fail(call, r, "stop sandbox");
}

/* A WaitSandbox call parked until the VM stops; call is NULL once the client went away. */
struct wait_call {
        struct ttrpc_call *call;
};

static void wait_exited(uint32_t exit_status, uint64_t exited_at_ns, void *userdata);

static void wait_cancelled(struct ttrpc_call *call, void *userdata)
{
        struct wait_call *w = userdata;
        ttrpc_call_fail(call, -ECANCELED, "wait cancelled");
        /* leave the sandbox's list now, so vanished clients cannot grow it */
        if (sandbox_unwait(the_service.sb, wait_exited, w) == 0)
                free(w);
        else
                w->call = NULL;
}

static void wait_exited(uint32_t exit_status, uint64_t exited_at_ns, void *userdata)
{
        struct wait_call *w = userdata;
        if (w->call) {
                Containerd__Runtime__Sandbox__V1__WaitSandboxResponse resp =
                    CONTAINERD__RUNTIME__SANDBOX__V1__WAIT_SANDBOX_RESPONSE__INIT;
                Containerd__Task__V2__Timestamp ts;
                wire_timestamp(&ts, exited_at_ns);
                resp.exit_status = exit_status;
                resp.exited_at = &ts;
                ttrpc_call_reply(w->call, &resp.base);
        }
        free(w);
}

static void h_wait(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__WaitSandboxRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        struct wait_call *w = r < 0 ? NULL : calloc(1, sizeof(*w));
        if (r == 0 && !w)
                r = -ENOMEM;
        if (r == 0) {
                w->call = call;
                ttrpc_call_on_cancel(call, wait_cancelled, w);
                r = sandbox_wait(svc->sb, wait_exited, w);
        }
        if (r < 0) {
                free(w);
                ttrpc_call_fail(call, r, "wait sandbox");
        }
}

static void h_status(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        struct sandbox *sb = svc->sb;
        const Containerd__Runtime__Sandbox__V1__SandboxStatusRequest *req = (const void *)msg;
        int r = check_target(sb, req->sandbox_id);
        if (r < 0) {
                ttrpc_call_fail(call, r, "sandbox status");
                return;
        }
        Containerd__Runtime__Sandbox__V1__SandboxStatusResponse resp =
            CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp created, exited;
        Containerd__Task__V2__KeyValue kv = CONTAINERD__TASK__V2__KEY_VALUE__INIT;
        Containerd__Task__V2__KeyValue *info[1] = {&kv};
        resp.sandbox_id = sb->id;
        resp.pid = (uint32_t)getpid();
        resp.state = (char *)sandbox_state_name(sb);
        if (sb->created_at_ns) {
                wire_timestamp(&created, sb->created_at_ns);
                resp.created_at = &created;
        }
        if (sb->exited) {
                wire_timestamp(&exited, sb->exited_at_ns);
                resp.exited_at = &exited;
        }
        if (req->verbose) {
                kv.key = "backend";
                kv.value = (char *)hcs_backend_name(sb->backend);
                resp.n_info = 1;
                resp.info = info;
        }
        ttrpc_call_reply(call, &resp.base);
}

static void h_ping(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__PingRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        if (r < 0)
                ttrpc_call_fail(call, r, "ping sandbox");
        else
                ttrpc_call_reply(call, NULL);
}

static void shutdown_stopped(int result, void *userdata)
{
        struct ttrpc_call *call = userdata;
        if (result < 0) {
                ttrpc_call_fail(call, result, "shutdown sandbox: stop");
                return;
        }
        ttrpc_call_reply(call, NULL);
        if (the_service.shutdown)
                the_service.shutdown(the_service.shutdown_userdata);
}

static void h_shutdown(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct sandbox_service *svc = ud;
        const Containerd__Runtime__Sandbox__V1__ShutdownSandboxRequest *req = (const void *)msg;
        int r = check_target(svc->sb, req->sandbox_id);
        if (r == -ENOENT && !svc->sb->id[0]) { /* nothing was ever created: just leave */
                shutdown_stopped(0, call);
                return;
        }
        if (r == 0)
                r = sandbox_stop(svc->sb, shutdown_stopped, call);
        if (r < 0)
                ttrpc_call_fail(call, r, "shutdown sandbox");
}

/* In the descriptor's method order (sandbox.proto). */
static const struct ttrpc_method sandbox_methods[] = {
    {h_create, TTRPC_UNARY}, {h_start, TTRPC_UNARY},    {h_platform, TTRPC_UNARY},
    {h_stop, TTRPC_UNARY},   {h_wait, TTRPC_UNARY},     {h_status, TTRPC_UNARY},
    {h_ping, TTRPC_UNARY},   {h_shutdown, TTRPC_UNARY}, {NULL, TTRPC_UNARY}, /* Metrics */
};

int sandbox_service_register(struct ttrpc_server *srv, struct sandbox *sb, void (*shutdown)(void *),
                             void *shutdown_userdata)
{
        the_service = (struct sandbox_service){sb, shutdown, shutdown_userdata};
        return ttrpc_server_register(srv, &containerd__runtime__sandbox__v1__sandbox__descriptor,
                                     sandbox_methods, ARRAY_SIZE(sandbox_methods), &the_service);
}
