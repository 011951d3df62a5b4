/* SPDX-License-Identifier: MIT */
/* Pause, Resume and Stats of the Task service over the VM controller (task_vm.h). The VM's
 * spec decides what is allowed; this file checks the wire, picks the sandbox task, gates on
 * the migration session and maps the answers to containerd's. A call in flight keeps only its
 * ttrpc call and its result buffer, so it outlives the service safely: the VM controller
 * always answers it (-ECANCELED when terminate overtakes it). */
#include "service/task_vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctrl/pod/pod.h"
#include "ctrl/vm/vm.h"
#include "migration/session.h"
#include "rpc/ttrpc.h"
#include "service/sandbox.h"
#include "service/task.h"
#include "service/wire.h"
#include "stats.pb-c.h"
#include "task.pb-c.h"
#include "util/util.h"

#define TASK_VM_MSG_MAX 192

/* One call in flight on the VM. */
struct vm_call {
        struct ttrpc_call *call;
        const char *what;
        struct vm_stats stats;
        /* Pause/Resume: the event published on success (a success completes before any
         * teardown, which would overtake the call with -ECANCELED instead) */
        const char *topic;
        char id[TTRPC_ID_MAX + 1];
        ctrl_publish_fn publish;
        void *publish_userdata;
};

/* Checks the request's task: the sandbox's own id, whose VM the call acts on (a pod made
 * through the Sandbox API has no task of that id, and needs none), or a valid id of an
 * existing task (an imported one counts once its destination CreateTask patched it), which is
 * refused as one container. msg (size bytes) gets the client's message on refusal. */
static int sandbox_task(struct task_service *ts, const char *id, const char *what, char *msg,
                        size_t size)
{
        struct sandbox *sb = task_service_sandbox(ts);
        struct pod *p = sandbox_pod(sb);
        struct container *c = NULL;
        if (wire_check_id(id) < 0) {
                ferry_bprintf(msg, size, "invalid task id");
                return -EINVAL;
        }
        if (sandbox_vm(sb) && strcmp(id, sandbox_id(sb)) == 0)
                return 0;
        c = p ? pod_container(p, id) : NULL;
        if (!c || !pod_container_patched(p, c)) {
                ferry_bprintf(msg, size, "task not found");
                return -ENOENT;
        }
        if (strcmp(id, sandbox_id(sb)) != 0) {
                ferry_bprintf(msg, size,
                              "%s of one container is not supported: the guest cannot %s a "
                              "single container; %s the sandbox task %s for the whole VM",
                              what, what, what, sandbox_id(sb));
                return -EOPNOTSUPP;
        }
        return 0;
}

/* The VM's refusal, as the reference's ensureVMRunning words it. */
static void vm_refusal(struct task_service *ts, int r, char *msg, size_t size)
{
        const char *st = vm_state_name(sandbox_vm(task_service_sandbox(ts)));
        if (r == -EBUSY && strcmp(st, "paused") == 0)
                ferry_bprintf(msg, size, "vm is paused (state: %s)", st);
        else if (r == -EBUSY)
                ferry_bprintf(msg, size, "vm is not running (state: %s)", st);
        else if (r == -ENOTCONN)
                ferry_bprintf(msg, size, "another call on the vm is in flight (state: %s)", st);
        else
                ferry_bprintf(msg, size, "%s", strerror(-r));
}

static struct vm_call *vm_call_new(struct ttrpc_call *call, const char *what)
{
        struct vm_call *vc = calloc(1, sizeof(*vc));
        if (vc) {
                vc->call = call;
                vc->what = what;
        }
        return vc;
}

/* Ends the call with the VM's failure: "<what>: <reason>". */
static void vm_call_fail(struct vm_call *vc, int result)
{
        char msg[TASK_VM_MSG_MAX];
        ferry_bprintf(msg, sizeof(msg), "%s: %s", vc->what,
                      result == -ECANCELED ? "the vm was stopped meanwhile" : strerror(-result));
        ttrpc_call_fail(vc->call, result, msg);
}

/* containerd's TaskPaused / TaskResumed: {"container_id": id}. */
static void publish_task_event(const struct vm_call *vc)
{
        struct json_object *o = json_object_new_object();
        if (!vc->publish || !o ||
            json_object_object_add(o, "container_id", json_object_new_string(vc->id)) < 0) {
                json_object_put(o);
                return;
        }
        vc->publish(vc->topic, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                    vc->publish_userdata);
        json_object_put(o);
}

static void vm_call_done(int result, void *userdata)
{
        struct vm_call *vc = userdata;
        if (result < 0) {
                vm_call_fail(vc, result);
        } else {
                ttrpc_call_reply(vc->call, NULL);
                publish_task_event(vc);
        }
        free(vc);
}

typedef int (*vm_op_fn)(struct vm *vm, ctrl_done_fn done, void *ud);

/* Pause and Resume: the sandbox task, no migration session, then the VM's spec. */
static void pause_or_resume(struct ttrpc_call *call, struct task_service *ts, const char *id,
                            const char *verb, const char *topic, vm_op_fn op)
{
        char msg[TASK_VM_MSG_MAX];
        int r = sandbox_task(ts, id, verb, msg, sizeof(msg));
        struct mig_session *s = task_service_migration(ts);
        if (r == 0 && s)
                r = mig_session_ensure_idle(s, msg, sizeof(msg));
        struct vm_call *vc = NULL;
        if (r == 0 && !(vc = vm_call_new(call, verb[0] == 'p' ? "pause vm" : "resume vm"))) {
                r = -ENOMEM;
                ferry_bprintf(msg, sizeof(msg), "out of memory");
        }
        if (r == 0) {
                const struct ctrl_env *env = sandbox_env(task_service_sandbox(ts));
                vc->topic = topic;
                ferry_strscpy(vc->id, id, sizeof(vc->id));
                vc->publish = env->publish;
                vc->publish_userdata = env->publish_userdata;
        }
        if (r == 0 && (r = op(sandbox_vm(task_service_sandbox(ts)), vm_call_done, vc)) < 0) {
                vm_refusal(ts, r, msg, sizeof(msg));
                free(vc);
        }
        if (r < 0)
                ttrpc_call_fail(call, r, msg);
}

void task_vm_pause(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        const Containerd__Task__V2__PauseRequest *req = (const void *)msg;
        pause_or_resume(call, userdata, req->id, "pause", "/tasks/paused", vm_pause);
}

void task_vm_resume(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        const Containerd__Task__V2__ResumeRequest *req = (const void *)msg;
        pause_or_resume(call, userdata, req->id, "resume", "/tasks/resumed", vm_resume);
}

/* hcsshim's Statistics{vm} from the VM controller's counters, in an Any. */
static void stats_reply(struct ttrpc_call *call, const struct vm_stats *s)
{
        Containerd__Runhcs__Stats__V1__VirtualMachineMemory mem =
            CONTAINERD__RUNHCS__STATS__V1__VIRTUAL_MACHINE_MEMORY__INIT;
        Containerd__Runhcs__Stats__V1__VirtualMachineMemoryStatistics ms =
            CONTAINERD__RUNHCS__STATS__V1__VIRTUAL_MACHINE_MEMORY_STATISTICS__INIT;
        Containerd__Runhcs__Stats__V1__VirtualMachineProcessorStatistics ps =
            CONTAINERD__RUNHCS__STATS__V1__VIRTUAL_MACHINE_PROCESSOR_STATISTICS__INIT;
        Containerd__Runhcs__Stats__V1__VirtualMachineStatistics vs =
            CONTAINERD__RUNHCS__STATS__V1__VIRTUAL_MACHINE_STATISTICS__INIT;
        Containerd__Runhcs__Stats__V1__Statistics st =
            CONTAINERD__RUNHCS__STATS__V1__STATISTICS__INIT;
        mem.available_memory = s->available_memory;
        mem.available_memory_buffer = s->available_memory_buffer;
        mem.reserved_memory = s->reserved_memory;
        mem.assigned_memory = s->assigned_memory;
        mem.slp_active = s->slp_active;
        mem.balancing_enabled = s->balancing_enabled;
        mem.dm_operation_in_progress = s->dm_operation_in_progress;
        ms.working_set_bytes = s->working_set_bytes;
        ms.virtual_node_count = s->virtual_node_count;
        ms.vm_memory = &mem;
        ps.total_runtime_ns = s->total_runtime_ns;
        vs.processor = &ps;
        vs.memory = &ms;
        st.vm = &vs;

        size_t n = protobuf_c_message_get_packed_size(&st.base);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf) {
                ttrpc_call_fail(call, -ENOMEM, "stats: out of memory");
                return;
        }
        protobuf_c_message_pack(&st.base, buf);
        Containerd__Task__V2__Any any = CONTAINERD__TASK__V2__ANY__INIT;
        any.type_url = (char *)TASK_VM_STATS_TYPE_URL;
        any.value = (ProtobufCBinaryData){.len = n, .data = buf};
        Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
        resp.stats = &any;
        ttrpc_call_reply(call, &resp.base);
        free(buf);
}

static void stats_done(int result, void *userdata)
{
        struct vm_call *vc = userdata;
        if (result < 0)
                vm_call_fail(vc, result);
        else
                stats_reply(vc->call, &vc->stats);
        free(vc);
}

int task_vm_status(const struct task_service *ts, int status)
{
        const char *st = vm_state_name(sandbox_vm(task_service_sandbox(ts)));
        if (status != CONTAINERD__TASK__V2__STATUS__RUNNING)
                return status;
        if (strcmp(st, "paused") == 0 || strcmp(st, "resuming") == 0)
                return CONTAINERD__TASK__V2__STATUS__PAUSED;
        if (strcmp(st, "pausing") == 0)
                return CONTAINERD__TASK__V2__STATUS__PAUSING;
        return status;
}

void task_vm_stats(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct task_service *ts = userdata;
        const Containerd__Task__V2__StatsRequest *req = (const void *)msg;
        char why[TASK_VM_MSG_MAX];
        int r = sandbox_task(ts, req->id, "stats", why, sizeof(why));
        if (r == -EOPNOTSUPP)
                ferry_bprintf(why, sizeof(why),
                              "per-container stats are not available (the guest interface has "
                              "no container metrics); Stats of the sandbox task %s reports the VM",
                              sandbox_id(task_service_sandbox(ts)));
        struct vm_call *vc = NULL;
        if (r == 0 && !(vc = vm_call_new(call, "stats"))) {
                r = -ENOMEM;
                ferry_bprintf(why, sizeof(why), "out of memory");
        }
        /* The VM's spec answers failed_precondition unless it runs (ensureVMRunning). */
        if (r == 0 &&
            (r = vm_stats(sandbox_vm(task_service_sandbox(ts)), &vc->stats, stats_done, vc)) < 0) {
                vm_refusal(ts, r, why, sizeof(why));
                free(vc);
        }
        if (r < 0)
                ttrpc_call_fail(call, r, why);
}
