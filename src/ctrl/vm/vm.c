/* SPDX-License-Identifier: MIT */
/* The VM controller's handlers (spec/vm.yaml). Each public call packs its arguments, dispatches
 * the spec's event and lets the spec decide; the handlers start host-compute and guest work and
 * turn its completions back into the spec's completion events.
 *
 * A call in flight is recorded in vm->call. Every asynchronous step carries the generation it
 * was started in: terminate and the VM's exit abandon the call (reply -ECANCELED, bump the
 * generation), so a late completion is recognised as stale and only dispatched to the spec,
 * which ignores it, without replying twice. */
#include "vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctrl/scsi/scsi.h"
#include "guest/guest.h"
#include "save_vm.pb-c.h"
#include "util/base64.h"
#include "util/util.h"
#include "vm_fsm.h"

#define VM_COMPAT_MAX   4096
#define VM_NAME_MAX     96
#define VM_HOSTPATH_MAX 255

struct vm;
typedef void (*vm_step_fn)(struct vm *vm, int result);

struct vm_waiter {
        ctrl_done_fn done;
        void *userdata;
};

struct vm {
        struct fsm fsm;
        char name[VM_NAME_MAX];
        uv_loop_t *loop;
        struct hcs_backend *backend;
        struct ctrl_env env;    /* the system and guest; borrowed by the SCSI controller */
        struct scsi_ctrl *scsi; /* built lazily from the document, or imported */
        bool scsi_frozen;       /* a save froze it and nothing lifted the freeze yet */
        char id[VM_ID_MAX + 1];
        struct json_object *doc; /* the retained compute document */
        uint8_t compat[VM_COMPAT_MAX];
        size_t compat_len;
        int compat_error;          /* why initialize kept no blob; save fails with it */
        uint64_t floor_request_id; /* from import; raised on resume */
        uint32_t floor_port;
        unsigned granted; /* host paths granted by the last patch */

        struct ctrl_pending call;    /* the call in flight */
        struct ctrl_pending dropped; /* abandoned, answered once the transition is over */
        unsigned gen;                /* bumped when a call is abandoned */
        unsigned inflight;           /* our callbacks still to come (hcs and guest) */
        bool watching;               /* the exit watcher's hcs_wait is registered */
        vm_step_fn close_deferred;   /* close the system once inflight drops to 0, then this */
        uv_timer_t retry;            /* retries a close the host refused while busy */
        vm_step_fn retry_then;
        unsigned finalize_from; /* the state a finalize began in, for the guards */
        int exit_result;

        struct vm_waiter *waiters;
        size_t n_waiters;
        vm_notify_fn notify;
        void *notify_userdata;
        ctrl_done_fn exit_fn;
        void *exit_userdata;
};

/* The arguments of one call, borrowed by the action that handles it. An action that answers
 * later takes done (sets it NULL); vm_call answers the others at once. */
struct vm_args {
        const char *id;
        const char *json;
        int fd; /* taken by the action (set to -1), else closed by vm_call */
        uint32_t session_id;
        const ctrl_envelope *env;
        ctrl_envelope **ret_env;
        vm_notify_fn notify;
        void *notify_userdata;
        struct vm_stats *stats;
        ctrl_done_fn done;
        void *userdata;
};

static void vm_close_system(struct vm *vm, vm_step_fn then);

/* ---- small helpers ------------------------------------------------------------------------ */

/* Answers an abandoned call, outside any transition of vm (its caller may call vm again). */
static void vm_flush(struct vm *vm)
{
        if (!fsm_busy(&vm->fsm))
                ctrl_reply(&vm->dropped, -ECANCELED);
}

static int vm_call(struct vm *vm, enum vm_event ev, struct vm_args *a)
{
        /* A call from inside one of vm's own transitions would be queued with arguments that
         * are gone by then: refused, retry from the loop. */
        if (fsm_busy(&vm->fsm)) {
                if (a->fd >= 0)
                        close(a->fd);
                return -ENOTCONN;
        }
        int r = vm_dispatch(&vm->fsm, ev, a);
        vm_flush(vm);
        if (a->fd >= 0)
                close(a->fd);
        return ctrl_call_end(r, a->done, a->userdata);
}

/* Makes the call pending: its caller is answered by the completion. */
static int vm_pend(struct vm *vm, struct vm_args *a)
{
        return ctrl_pend(&vm->call, &a->done, &a->userdata);
}

/* Drops the call in flight: its caller hears -ECANCELED, its late completion is stale. */
static void vm_abandon(struct vm *vm)
{
        vm->gen++;
        vm->dropped = vm->call;
        vm->call = (struct ctrl_pending){0};
}

static void vm_wake_waiters(struct vm *vm, int result)
{
        struct vm_waiter *w = vm->waiters;
        size_t n = vm->n_waiters;
        vm->waiters = NULL;
        vm->n_waiters = 0;
        for (size_t i = 0; i < n; i++)
                w[i].done(result, w[i].userdata);
        free(w);
}

static void vm_drop_guest(struct vm *vm)
{
        guest_close(vm->env.guest);
        vm->env.guest = NULL;
}

/* One asynchronous step: when its callback arrives and the call is still current, step runs
 * with the result; a stale one is dropped (the spec would ignore its completion anyway). */

struct vm_op {
        struct vm *vm;
        unsigned gen;
        vm_step_fn step;
        ctrl_done_fn reply; /* instead of step: answer this caller whatever the generation */
        void *reply_userdata;
        struct vm_stats *stats; /* a stats query's caller's result */
};

static struct vm_op *vm_op_new(struct vm *vm, vm_step_fn step)
{
        struct vm_op *op = malloc(sizeof(*op));
        if (!op)
                return NULL;
        *op = (struct vm_op){.vm = vm, .gen = vm->gen, .step = step};
        vm->inflight++;
        return op;
}

/* Ends op; returns the VM if the step should run (the call is current), else NULL. */
static struct vm *vm_op_end(struct vm_op *op, vm_step_fn *ret_step)
{
        struct vm *vm = op->vm;
        bool current = op->gen == vm->gen;
        *ret_step = op->step;
        free(op);
        vm->inflight--;
        if (vm->inflight == 0 && vm->close_deferred) {
                vm_step_fn then = vm->close_deferred;
                vm->close_deferred = NULL;
                vm_close_system(vm, then);
        }
        return current ? vm : NULL;
}

static void vm_op_cancel(struct vm_op *op)
{
        op->vm->inflight--;
        free(op);
}

static void vm_on_hcs(int result, void *ud)
{
        struct vm_op *op = ud;
        ctrl_done_fn reply = op->reply;
        void *reply_ud = op->reply_userdata;
        vm_step_fn step;
        struct vm *vm = vm_op_end(op, &step);
        if (reply)
                reply(result, reply_ud);
        else if (vm)
                step(vm, result);
}

static void vm_on_guest(int result, uint64_t value, void *ud)
{
        vm_on_hcs(result, ud);
}

/* Starts hcs or guest work whose callback is vm_on_hcs/vm_on_guest with a new op. */
#define VM_START_OP(vm, step, call_expr)                                                           \
        ({                                                                                         \
                struct vm_op *_op = vm_op_new(vm, step);                                           \
                int _r = _op ? 0 : -ENOMEM;                                                        \
                if (_op) {                                                                         \
                        void *op = _op;                                                            \
                        _r = (call_expr);                                                          \
                        if (_r < 0)                                                                \
                                vm_op_cancel(_op);                                                 \
                }                                                                                  \
                _r;                                                                                \
        })

/* Ends a call: dispatches its completion event and answers its caller. */
static void vm_complete(struct vm *vm, int result, enum vm_event ok, enum vm_event failed)
{
        vm_dispatch(&vm->fsm, result < 0 ? failed : ok, &result);
        vm_flush(vm);
        ctrl_reply(&vm->call, result);
}

/* ---- documents ---------------------------------------------------------------------------- */

static struct json_object *json_path(struct json_object *o, const char *const *keys, size_t n)
{
        for (size_t i = 0; o && i < n; i++)
                if (!json_object_object_get_ex(o, keys[i], &o))
                        return NULL;
        return o;
}

static struct json_object *doc_vm(struct json_object *doc)
{
        static const char *const k[] = {"VirtualMachine"};
        return json_path(doc, k, 1);
}

static struct json_object *doc_devices(struct json_object *doc)
{
        static const char *const k[] = {"VirtualMachine", "Devices"};
        return json_path(doc, k, 2);
}

static bool doc_is_migratable(struct json_object *doc)
{
        static const char *const k[] = {"VirtualMachine", "Chipset", "LinuxKernelDirect",
                                        "KernelCmdLine"};
        struct json_object *cmd = json_path(doc, k, ARRAY_SIZE(k));
        const char *s = cmd ? json_object_get_string(cmd) : NULL;
        return s && strstr(s, VM_LM_LOG_FORWARDER);
}

/* Deep copy through text, so the retained document stays pristine. */
static struct json_object *doc_copy(struct json_object *doc)
{
        return json_tokener_parse(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN));
}

typedef int (*attachment_fn)(struct json_object *att, void *userdata);

/* Calls fn for every SCSI attachment of doc; stops at the first error. */
static int doc_for_each_attachment(struct json_object *doc, attachment_fn fn, void *userdata)
{
        struct json_object *scsi = NULL, *atts = NULL;
        struct json_object *dev = doc_devices(doc);
        if (!dev || !json_object_object_get_ex(dev, "Scsi", &scsi))
                return 0;
        if (!json_object_is_type(scsi, json_type_object))
                return -EINVAL;
        json_object_object_foreach(scsi, ctl, cv)
        {
                (void)ctl;
                if (!json_object_object_get_ex(cv, "Attachments", &atts))
                        continue;
                json_object_object_foreach(atts, lun, att)
                {
                        (void)lun;
                        int r = fn(att, userdata);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static const char *att_str(struct json_object *att, const char *key)
{
        struct json_object *v = NULL;
        if (!json_object_object_get_ex(att, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool host_path_valid(const char *p)
{
        size_t n = p ? strnlen(p, VM_HOSTPATH_MAX + 1) : 0;
        return n > 1 && n <= VM_HOSTPATH_MAX && p[0] == '/' && !strstr(p, "/../") &&
               !(n >= 3 && strcmp(p + n - 3, "/..") == 0);
}

/* ---- guards -------------------------------------------------------------------------------- */

bool vm_guard_is_migratable(struct vm *vm, void *arg)
{
        return doc_is_migratable(vm->doc);
}

bool vm_guard_finalize_began_in_source_initialized(struct vm *vm, void *arg)
{
        return vm->finalize_from == VM_S_SOURCE_MIGRATION_INITIALIZED;
}

bool vm_guard_finalize_began_in_source_started(struct vm *vm, void *arg)
{
        return vm->finalize_from == VM_S_SOURCE_MIGRATION_STARTED;
}

bool vm_guard_finalize_began_in_destination_created(struct vm *vm, void *arg)
{
        return vm->finalize_from == VM_S_DESTINATION_MIGRATION_CREATED;
}

bool vm_guard_finalize_began_in_destination_patched(struct vm *vm, void *arg)
{
        return vm->finalize_from == VM_S_DESTINATION_MIGRATION_PATCHED;
}

bool vm_guard_finalize_began_in_destination_started(struct vm *vm, void *arg)
{
        return vm->finalize_from == VM_S_DESTINATION_MIGRATION_STARTED;
}

/* ---- the system and its exit -------------------------------------------------------------- */

static void vm_hcs_notify(struct hcs_system *sys, const struct hcs_notification *n, void *ud)
{
        struct vm *vm = ud;
        if (vm->notify)
                vm->notify(vm, n, vm->notify_userdata);
}

static void vm_watch_cb(int result, void *ud)
{
        struct vm *vm = ud;
        vm->watching = false;
        /* -ECANCELED: we closed the system ourselves; that is not an exit of the VM. */
        if (result == -ECANCELED)
                return;
        vm_dispatch(&vm->fsm, VM_E_VM_EXITED, &result);
        vm_flush(vm);
}

static int vm_watch(struct vm *vm)
{
        if (vm->watching)
                return 0;
        int r = hcs_wait(vm->env.sys, vm_watch_cb, vm);
        if (r == 0)
                vm->watching = true;
        return r;
}

static void vm_system_closed(int result, void *ud)
{
        struct vm_op *op = ud;
        op->vm->env.sys = NULL;
        /* Closing ends the call that asked for it even if another call was abandoned since. */
        op->gen = op->vm->gen;
        vm_on_hcs(result, op);
}

static void vm_closed_quietly(struct vm *vm, int result)
{
}

static void vm_close_system_now(struct vm *vm, vm_step_fn then);

static void vm_retry_cb(uv_timer_t *t)
{
        struct vm *vm = t->data;
        vm_step_fn then = vm->retry_then;
        vm->retry_then = NULL;
        vm->inflight--;
        vm_close_system_now(vm, then);
}

/* Closes the system and runs then with the result. Someone else's host-compute call in flight
 * (-EBUSY) only delays the close. */
static void vm_close_system_now(struct vm *vm, vm_step_fn then)
{
        if (!vm->env.sys) {
                then(vm, 0);
                return;
        }
        int r = VM_START_OP(vm, then, hcs_system_close(vm->env.sys, vm_system_closed, op));
        if (r == -EBUSY && uv_timer_start(&vm->retry, vm_retry_cb, 1, 0) == 0) {
                vm->retry_then = then;
                vm->inflight++;
                return;
        }
        if (r < 0)
                then(vm, r);
}

/* Closes the system once no call of ours is in flight on it, then runs then. */
static void vm_close_system(struct vm *vm, vm_step_fn then)
{
        if (vm->inflight > 0) {
                vm->close_deferred = then;
                return;
        }
        vm_close_system_now(vm, then);
}

/* ---- cold lifecycle ------------------------------------------------------------------------ */

static void create_closed(struct vm *vm, int result)
{
        /* result is the create's error, carried in exit_result while the handle closes. */
        vm_complete(vm, vm->exit_result, VM_E_CREATE_DONE, VM_E_CREATE_FAILED);
}

static void create_step(struct vm *vm, int result)
{
        if (result < 0) {
                vm->exit_result = result;
                json_object_put(vm->doc);
                vm->doc = NULL;
                vm_close_system_now(vm, create_closed);
                return;
        }
        vm_complete(vm, 0, VM_E_CREATE_DONE, VM_E_CREATE_FAILED);
}

static int vm_new_system(struct vm *vm, const char *id, struct json_object *doc)
{
        const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
        int r = hcs_system_new(vm->backend, id, text, vm_hcs_notify, vm, &vm->env.sys);
        if (r < 0)
                return r;
        ferry_strscpy(vm->id, id, sizeof(vm->id));
        return 0;
}

int vm_action_create_system(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        struct json_object *doc = a->json ? json_tokener_parse(a->json) : NULL;
        if (!doc || !doc_vm(doc)) {
                json_object_put(doc);
                return -EINVAL;
        }
        /* Plan9 shares cannot follow a VM to another host: a migratable VM has none. */
        struct json_object *dev = doc_devices(doc);
        if (dev && doc_is_migratable(doc))
                json_object_object_del(dev, "Plan9");
        int r = vm_new_system(vm, a->id, doc);
        if (r < 0) {
                json_object_put(doc);
                return r;
        }
        vm->doc = doc;
        r = VM_START_OP(vm, create_step, hcs_create(vm->env.sys, vm_on_hcs, op));
        if (r < 0) {
                vm->doc = NULL;
                json_object_put(doc);
                vm_close_system_now(vm, vm_closed_quietly);
                return r;
        }
        return vm_pend(vm, a);
}

static void start_connected(struct vm *vm, int result)
{
        vm_complete(vm, result, VM_E_START_DONE, VM_E_START_FAILED);
}

static void start_step(struct vm *vm, int result)
{
        if (result == 0)
                result = vm_watch(vm);
        if (result == 0)
                result = VM_START_OP(vm, start_connected,
                                     guest_connect(vm->loop, vm->env.sys, VM_GUEST_PROTOCOL,
                                                   vm_on_guest, op, &vm->env.guest));
        if (result < 0)
                vm_complete(vm, result, VM_E_START_DONE, VM_E_START_FAILED);
}

int vm_action_start_system(struct vm *vm, void *arg)
{
        int r = VM_START_OP(vm, start_step, hcs_start(vm->env.sys, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, arg);
}

int vm_action_apply_update(struct vm *vm, void *arg)
{
        /* hcs has no CPU, memory or policy update calls yet. */
        return -EOPNOTSUPP;
}

int vm_action_run_query(struct vm *vm, void *arg)
{
        /* the guest bridge has no dump-stacks or exec-into-VM call yet */
        return -EOPNOTSUPP;
}

#define VM_STATS_QUERY "{\"Queries\":{\"Statistics\":null,\"Memory\":null}}"

static int json_i64(struct json_object *o, const char *const *keys, size_t n, int64_t *ret)
{
        struct json_object *v = json_path(o, keys, n);
        if (!v || !json_object_is_type(v, json_type_int))
                return -EPROTO;
        *ret = json_object_get_int64(v);
        return 0;
}

static bool json_flag(struct json_object *vmm, const char *key)
{
        struct json_object *v = NULL;
        return json_object_object_get_ex(vmm, key, &v) && json_object_get_boolean(v);
}

/* The reference's uvm.Stats over a Statistics + Memory answer. */
static int stats_parse(struct json_object *doc, struct vm_stats *ret)
{
        static const char *const runtime[] = {"PropertyResponses", "Statistics", "Processor",
                                              "TotalRuntime100ns"};
        static const char *const nodes[] = {"PropertyResponses", "Memory", "VirtualNodeCount"};
        static const char *const vmm_path[] = {"PropertyResponses", "Memory",
                                               "VirtualMachineMemory"};
        static const char *const k_avail[] = {"AvailableMemory"};
        static const char *const k_buf[] = {"AvailableMemoryBuffer"};
        static const char *const k_res[] = {"ReservedMemory"};
        static const char *const k_asg[] = {"AssignedMemory"};
        struct json_object *vmm = json_path(doc, vmm_path, ARRAY_SIZE(vmm_path));
        int64_t rt, nn, avail, buf, res, asg;
        if (json_i64(doc, runtime, ARRAY_SIZE(runtime), &rt) < 0 ||
            json_i64(doc, nodes, ARRAY_SIZE(nodes), &nn) < 0 || !vmm ||
            json_i64(vmm, k_avail, 1, &avail) < 0 || json_i64(vmm, k_buf, 1, &buf) < 0 ||
            json_i64(vmm, k_res, 1, &res) < 0 || json_i64(vmm, k_asg, 1, &asg) < 0)
                return -EPROTO;
        if (rt < 0 || rt > (int64_t)(UINT64_MAX / 100) || nn < 0 || nn > UINT32_MAX || res < 0 ||
            asg < 0 || asg > INT64_MAX / 4096 || avail < INT32_MIN || avail > INT32_MAX ||
            buf < INT32_MIN || buf > INT32_MAX)
                return -EPROTO;
        *ret = (struct vm_stats){
            .total_runtime_ns = (uint64_t)rt * 100,
            .working_set_bytes = (uint64_t)asg * 4096,
            .virtual_node_count = (uint32_t)nn,
            .available_memory = (int32_t)avail,
            .available_memory_buffer = (int32_t)buf,
            .reserved_memory = (uint64_t)res,
            .assigned_memory = (uint64_t)asg,
            .slp_active = json_flag(vmm, "SlpActive"),
            .balancing_enabled = json_flag(vmm, "BalancingEnabled"),
            .dm_operation_in_progress = json_flag(vmm, "DmOperationInProgress"),
        };
        return 0;
}

static void vm_on_stats(int result, struct json_object *doc, void *ud)
{
        struct vm_op *op = ud;
        struct vm_stats s;
        if (result == 0)
                result = stats_parse(doc, &s);
        if (result == 0)
                *op->stats = s;
        vm_on_hcs(result, ud);
}

int vm_action_query_stats(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        if (!a->stats)
                return -EINVAL;
        /* Read-only and answered to its caller: no in-flight state, like cancel. */
        struct vm_op *op = vm_op_new(vm, NULL);
        if (!op)
                return -ENOMEM;
        op->reply = a->done;
        op->reply_userdata = a->userdata;
        op->stats = a->stats;
        int r = hcs_properties_query(vm->env.sys, VM_STATS_QUERY, vm_on_stats, op);
        if (r < 0) {
                vm_op_cancel(op);
                return r;
        }
        a->done = NULL;
        return 0;
}

static void pause_step(struct vm *vm, int result)
{
        vm_complete(vm, result, VM_E_PAUSE_DONE, VM_E_PAUSE_FAILED);
}

int vm_action_pause_system(struct vm *vm, void *arg)
{
        int r = VM_START_OP(vm, pause_step, hcs_pause(vm->env.sys, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, arg);
}

static void resume_paused_step(struct vm *vm, int result)
{
        vm_complete(vm, result, VM_E_RESUME_DONE, VM_E_RESUME_FAILED);
}

int vm_action_resume_paused_system(struct vm *vm, void *arg)
{
        int r = VM_START_OP(vm, resume_paused_step, hcs_resume(vm->env.sys, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, arg);
}

int vm_action_open_notification_stream(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        vm->notify = a->notify;
        vm->notify_userdata = a->notify_userdata;
        return 0;
}

/* ---- source ---------------------------------------------------------------------------------- */

#define VM_COMPAT_QUERY "{\"Queries\":{\"CompatibilityInfo\":null}}"

/* The blob of a CompatibilityInfo answer: {"PropertyResponses":{"CompatibilityInfo":
 * {"Data":"<base64>"}}}; missing, empty or malformed is -EPROTO. */
static int compat_parse(struct vm *vm, struct json_object *doc)
{
        static const char *const k[] = {"PropertyResponses", "CompatibilityInfo", "Data"};
        struct json_object *data = json_path(doc, k, ARRAY_SIZE(k));
        if (!data || !json_object_is_type(data, json_type_string))
                return -EPROTO;
        ssize_t n =
            ferry_base64_decode(json_object_get_string(data), vm->compat, sizeof(vm->compat));
        if (n <= 0)
                return -EPROTO;
        vm->compat_len = (size_t)n;
        return 0;
}

static void vm_on_compat(int result, struct json_object *doc, void *ud)
{
        struct vm_op *op = ud;
        struct vm *vm = op->vm;
        if (op->gen == vm->gen) {
                vm->compat_error = result < 0 ? result : compat_parse(vm, doc);
                if (vm->compat_error < 0)
                        vm->compat_len = 0;
        }
        /* The host is initialized whatever the query said: save reports a missing blob. */
        vm_on_hcs(0, ud);
}

static void initialized(struct vm *vm, int result)
{
        vm_complete(vm, result, VM_E_INITIALIZE_DONE, VM_E_INITIALIZE_FAILED);
}

static void initialize_step(struct vm *vm, int result)
{
        if (result == 0) {
                result = VM_START_OP(
                    vm, initialized,
                    hcs_properties_query(vm->env.sys, VM_COMPAT_QUERY, vm_on_compat, op));
                if (result == 0)
                        return;
                vm->compat_error = result; /* could not even ask: save fails with it */
                result = 0;
        }
        vm_complete(vm, result, VM_E_INITIALIZE_DONE, VM_E_INITIALIZE_FAILED);
}

/* The initialize's own blob is not kept: the properties query is the reference's source. */
static void vm_on_initialized(int result, const void *blob, size_t size, void *ud)
{
        vm_on_hcs(result, ud);
}

int vm_action_initialize_migration(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        vm->compat_len = 0;
        vm->compat_error = -EPROTO;
        int r = VM_START_OP(vm, initialize_step,
                            hcs_lm_initialize(vm->env.sys, a->json, vm_on_initialized, op));
        return r < 0 ? r : vm_pend(vm, a);
}

static bool devices_empty(struct json_object *doc, const char *key)
{
        struct json_object *dev = doc_devices(doc), *v = NULL;
        if (!dev || !json_object_object_get_ex(dev, key, &v))
                return true;
        if (json_object_is_type(v, json_type_object))
                return json_object_object_length(v) == 0;
        return false;
}

int vm_action_save_state(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        Ferry__Vm__Save__V1__Payload p = FERRY__VM__SAVE__V1__PAYLOAD__INIT;
        uint64_t next_id = 0;
        uint32_t next_port = 0;

        bool scsi_was_frozen = vm->scsi_frozen;
        /* The reference fails Save when its CompatibilityInfo query does. */
        if (vm->compat_len == 0)
                return vm->compat_error < 0 ? vm->compat_error : -EPROTO;
        /* Devices that cannot follow the VM make the save fail before anything is frozen. */
        if (!devices_empty(vm->doc, "Plan9") || !devices_empty(vm->doc, "VirtualPci"))
                return -EBUSY;
        if (!vm->env.guest)
                return -ENOTCONN;
        int r = guest_counters(vm->env.guest, &next_id, &next_port);
        if (r < 0)
                return r;
        /* Last, because it freezes the disks: undone below if packing fails. */
        if (vm->scsi) {
                r = scsi_save(vm->scsi, &p.scsi);
                if (r < 0)
                        return r;
        }
        p.schema_version = VM_SCHEMA_VERSION;
        p.vm_id = vm->id;
        const char *text = json_object_to_json_string_ext(vm->doc, JSON_C_TO_STRING_PLAIN);
        p.compute_document = (ProtobufCBinaryData){.len = strlen(text), .data = (uint8_t *)text};
        p.compat_info = (ProtobufCBinaryData){.len = vm->compat_len, .data = vm->compat};
        p.guest_next_port = next_port;
        p.bridge_next_request_id = next_id;
        r = ctrl_envelope_pack("vm", VM_SCHEMA_VERSION, &p.base, a->ret_env);
        if (r < 0 && p.scsi && !scsi_was_frozen)
                scsi_resume(vm->scsi);
        else if (p.scsi)
                vm->scsi_frozen = true;
        ctrl_envelope_free(p.scsi);
        return r;
}

static void start_source_step(struct vm *vm, int result)
{
        vm_complete(vm, result, VM_E_START_SOURCE_DONE, VM_E_START_SOURCE_FAILED);
}

int vm_action_start_source_migration(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        int fd = a->fd;
        a->fd = -1; /* hcs takes it in every case */
        int r = VM_START_OP(vm, start_source_step,
                            hcs_lm_start_source(vm->env.sys, fd, a->session_id, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, a);
}

int vm_action_clear_guest_migrating(struct vm *vm, void *arg)
{
        /* The sim bridge has no blackout tolerance mark to clear: its calls fail with
         * -ENOTCONN during a blackout and succeed again after it. */
        return 0;
}

static void transfer_step(struct vm *vm, int result)
{
        vm_complete(vm, result, VM_E_TRANSFER_DONE, VM_E_TRANSFER_FAILED);
}

static int vm_transfer_start(struct vm *vm, struct vm_args *a)
{
        int r = VM_START_OP(vm, transfer_step, hcs_lm_transfer(vm->env.sys, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, a);
}

int vm_action_transfer_source(struct vm *vm, void *arg)
{
        return vm_transfer_start(vm, arg);
}

int vm_action_transfer_destination(struct vm *vm, void *arg)
{
        return vm_transfer_start(vm, arg);
}

/* ---- destination ------------------------------------------------------------------------- */

int vm_action_import_state(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        ProtobufCMessage *m = NULL;
        uint32_t version;
        int r = ctrl_envelope_unpack(a->env, "vm", VM_SCHEMA_VERSION,
                                     &ferry__vm__save__v1__payload__descriptor, &m, &version, NULL);
        if (r < 0)
                return r;
        Ferry__Vm__Save__V1__Payload *p = (Ferry__Vm__Save__V1__Payload *)m;
        struct json_object *doc = NULL;
        struct json_tokener *tok = json_tokener_new();
        r = -ENOMEM;
        if (tok) {
                doc = json_tokener_parse_ex(tok, (const char *)p->compute_document.data,
                                            (int)p->compute_document.len);
                r = doc && doc_vm(doc) && p->compute_document.len < INT32_MAX ? 0 : -EINVAL;
                json_tokener_free(tok);
        }
        if (r == 0 && (p->compat_info.len == 0 || p->compat_info.len > sizeof(vm->compat)))
                r = -EINVAL;
        if (r == 0 && strnlen(p->vm_id, VM_ID_MAX + 1) > VM_ID_MAX)
                r = -EINVAL;
        struct scsi_ctrl *scsi = NULL;
        if (r == 0 && p->scsi)
                r = scsi_import(&vm->env, p->scsi, &scsi);
        if (r < 0) {
                json_object_put(doc);
                protobuf_c_message_free_unpacked(m, NULL);
                return r;
        }
        /* Everything decoded: commit. */
        vm->doc = doc;
        vm->scsi = scsi;
        vm->scsi_frozen = scsi != NULL;
        memcpy(vm->compat, p->compat_info.data, p->compat_info.len);
        vm->compat_len = p->compat_info.len;
        vm->floor_port = p->guest_next_port;
        vm->floor_request_id = p->bridge_next_request_id;
        ferry_strscpy(vm->id, p->vm_id, sizeof(vm->id));
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
}

static void create_destination_closed(struct vm *vm, int result)
{
        vm_complete(vm, vm->exit_result, VM_E_CREATE_DESTINATION_DONE,
                    VM_E_CREATE_DESTINATION_FAILED);
}

static void create_destination_step(struct vm *vm, int result)
{
        if (result < 0) {
                vm->exit_result = result;
                vm_close_system_now(vm, create_destination_closed);
                return;
        }
        vm_complete(vm, 0, VM_E_CREATE_DESTINATION_DONE, VM_E_CREATE_DESTINATION_FAILED);
}

/* The document the destination is created from: a copy of the retained one with the migration
 * options and the compatibility blob stamped in. */
static int destination_document(struct vm *vm, const char *opts_json, struct json_object **ret)
{
        char b64[VM_COMPAT_MAX / 3 * 4 + 8];
        struct json_object *opts =
            opts_json ? json_tokener_parse(opts_json) : json_object_new_object();
        struct json_object *doc = doc_copy(vm->doc);
        struct json_object *compat = json_object_new_object();
        if (!opts || !json_object_is_type(opts, json_type_object) || !doc || !doc_vm(doc) ||
            !compat) {
                json_object_put(opts);
                json_object_put(doc);
                json_object_put(compat);
                return opts && doc && compat ? -EINVAL : -ENOMEM;
        }
        /* The disks where the patched SCSI controller says they are on this host. */
        struct json_object *atts = NULL;
        if (vm->scsi) {
                int r = scsi_attachments(vm->scsi, &atts);
                if (r < 0) {
                        json_object_put(opts);
                        json_object_put(doc);
                        json_object_put(compat);
                        return r;
                }
                struct json_object *dev = doc_devices(doc);
                if (dev)
                        json_object_object_add(dev, "Scsi", atts);
                else
                        json_object_put(atts);
        }
        if (!json_object_object_get_ex(opts, "Origin", NULL))
                json_object_object_add(opts, "Origin", json_object_new_string("Destination"));
        ferry_base64_encode(vm->compat, vm->compat_len, b64);
        json_object_object_add(compat, "Data", json_object_new_string(b64));
        json_object_object_add(opts, "CompatibilityData", compat);
        json_object_object_add(doc_vm(doc), "MigrationOptions", opts);
        *ret = doc;
        return 0;
}

int vm_action_create_destination_system(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        struct json_object *doc = NULL;
        int r = destination_document(vm, a->json, &doc);
        if (r < 0)
                return r;
        r = vm_new_system(vm, a->id, doc);
        json_object_put(doc); /* hcs keeps its own copy; the retained one stays pristine */
        if (r < 0)
                return r;
        r = VM_START_OP(vm, create_destination_step, hcs_create(vm->env.sys, vm_on_hcs, op));
        if (r < 0) {
                vm_close_system_now(vm, vm_closed_quietly);
                return r;
        }
        return vm_pend(vm, a);
}

static int grant_one(struct json_object *att, void *userdata)
{
        unsigned *granted = userdata;
        const char *type = att_str(att, "Type");
        /* Only host files need the VM's access; other attachment types carry no host path. */
        if (!type || (strcmp(type, "VirtualDisk") != 0 && strcmp(type, "PassThru") != 0))
                return 0;
        if (!host_path_valid(att_str(att, "Path")))
                return -EINVAL;
        (*granted)++;
        return 0;
}

int vm_action_grant_disk_access(struct vm *vm, void *arg)
{
        /* Granting is recording: the sim backend has no host ACLs. It is checked and counted
         * synchronously, so the patching in-flight state is never entered. */
        unsigned granted = 0;
        struct scsi_ctrl *scsi = NULL;
        int r = vm_scsi(vm, &scsi);
        if (r < 0)
                return r;
        /* The controller's attachments carry the patched host paths. */
        struct json_object *scsi_doc = NULL, *wrap = NULL;
        r = scsi_attachments(scsi, &scsi_doc);
        if (r < 0)
                return r;
        wrap = json_object_new_object();
        if (!wrap) {
                json_object_put(scsi_doc);
                return -ENOMEM;
        }
        struct json_object *vmo = json_object_new_object(), *dev = json_object_new_object();
        json_object_object_add(wrap, "VirtualMachine", vmo);
        json_object_object_add(vmo, "Devices", dev);
        json_object_object_add(dev, "Scsi", scsi_doc);
        r = doc_for_each_attachment(wrap, grant_one, &granted);
        json_object_put(wrap);
        if (r < 0)
                return r;
        vm->granted = granted;
        return 0;
}

static void start_destination_step(struct vm *vm, int result)
{
        if (result == 0)
                result = vm_watch(vm);
        vm_complete(vm, result, VM_E_START_DESTINATION_DONE, VM_E_START_DESTINATION_FAILED);
}

int vm_action_start_destination_system(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        int fd = a->fd;
        a->fd = -1; /* hcs takes it in every case */
        int r =
            VM_START_OP(vm, start_destination_step,
                        hcs_lm_start_destination(vm->env.sys, fd, a->session_id, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, a);
}

/* ---- finalize, resume, cancel ------------------------------------------------------------ */

static void finalize_resume_step(struct vm *vm, int result)
{
        vm_complete(vm, result, VM_E_FINALIZE_DONE, VM_E_FINALIZE_FAILED);
}

int vm_action_finalize_migration_resume(struct vm *vm, void *arg)
{
        vm->finalize_from = fsm_state(&vm->fsm);
        int r = VM_START_OP(vm, finalize_resume_step,
                            hcs_lm_finalize(vm->env.sys, true, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, arg);
}

/* The VM is gone: frozen disks are dropped without host or guest calls. */
static void vm_teardown_scsi(struct vm *vm)
{
        if (vm->scsi)
                scsi_teardown(vm->scsi);
        vm->scsi_frozen = false;
}

static void stop_closed(struct vm *vm, int result)
{
        vm_teardown_scsi(vm);
        vm_wake_waiters(vm, 0);
        vm_complete(vm, result, VM_E_FINALIZE_DONE, VM_E_FINALIZE_FAILED);
}

static void stop_waited(struct vm *vm, int result)
{
        vm_close_system(vm, stop_closed);
}

static void stop_step(struct vm *vm, int result)
{
        if (result == 0) {
                /* The guest is gone with its VM; blocked waits end now. */
                vm_drop_guest(vm);
                result = VM_START_OP(vm, stop_waited, hcs_wait(vm->env.sys, vm_on_hcs, op));
                if (result == 0)
                        return;
        }
        vm_complete(vm, result, VM_E_FINALIZE_DONE, VM_E_FINALIZE_FAILED);
}

int vm_action_finalize_migration_stop(struct vm *vm, void *arg)
{
        vm->finalize_from = fsm_state(&vm->fsm);
        int r = VM_START_OP(vm, stop_step, hcs_lm_finalize(vm->env.sys, false, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, arg);
}

static void resume_floored(struct vm *vm, int result)
{
        /* Only now may the disks' reservations issue guest ids again. */
        if (result == 0 && vm->scsi) {
                result = scsi_resume(vm->scsi);
                if (result == 0)
                        vm->scsi_frozen = false;
        }
        vm_complete(vm, result, VM_E_RESUME_DONE, VM_E_RESUME_FAILED);
}

/* The guest bridge is in place: raise the counter floors before anyone registers ids. */
static void resume_connected(struct vm *vm, int result)
{
        if (result == 0 && (vm->floor_request_id || vm->floor_port))
                result = VM_START_OP(vm, resume_floored,
                                     guest_raise_floors(vm->env.guest, vm->floor_request_id,
                                                        vm->floor_port, vm_on_guest, op));
        else if (result == 0)
                result = 1; /* no floors to raise: done */
        if (result != 0)
                resume_floored(vm, result < 0 ? result : 0);
}

int vm_action_resume_after_migration(struct vm *vm, void *arg)
{
        int r;
        if (vm->env.guest && guest_protocol(vm->env.guest) > 0)
                /* Source rolled back: the bridge never went away; reuse it as it is. */
                r = VM_START_OP(vm, resume_connected,
                                guest_raise_floors(vm->env.guest, 0, 0, vm_on_guest, op));
        else if (vm->env.guest)
                r = VM_START_OP(vm, resume_connected,
                                guest_reconnect(vm->env.guest, vm->env.sys, VM_GUEST_PROTOCOL,
                                                vm_on_guest, op));
        else
                r = VM_START_OP(vm, resume_connected,
                                guest_connect(vm->loop, vm->env.sys, VM_GUEST_PROTOCOL, vm_on_guest,
                                              op, &vm->env.guest));
        if (r == 0)
                r = vm_watch(vm);
        return r < 0 ? r : vm_pend(vm, arg);
}

int vm_action_cancel_migration(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        struct vm_op *op = vm_op_new(vm, NULL);
        if (!op)
                return -ENOMEM;
        op->reply = a->done;
        op->reply_userdata = a->userdata;
        int r = hcs_lm_cancel(vm->env.sys, vm_on_hcs, op);
        if (r < 0) {
                vm_op_cancel(op);
                return r;
        }
        a->done = NULL; /* answered by the host's result */
        return 0;
}

/* ---- teardown ------------------------------------------------------------------------------- */

int vm_action_discard_import(struct vm *vm, void *arg)
{
        vm_teardown_scsi(vm);
        json_object_put(vm->doc);
        vm->doc = NULL;
        vm->compat_len = 0;
        vm->floor_port = 0;
        vm->floor_request_id = 0;
        return 0;
}

int vm_action_close_unstarted_system(struct vm *vm, void *arg)
{
        struct vm_args *a = arg;
        vm_abandon(vm);
        vm_drop_guest(vm);
        vm_teardown_scsi(vm);
        /* A never-started system needs no terminate: closing the last handle ends it. */
        struct vm_op *op = vm_op_new(vm, NULL);
        if (!op)
                return -ENOMEM;
        op->reply = a->done;
        op->reply_userdata = a->userdata;
        int r = hcs_system_close(vm->env.sys, vm_system_closed, op);
        if (r < 0) {
                vm_op_cancel(op);
                return r;
        }
        a->done = NULL;
        vm_wake_waiters(vm, 0);
        return 0;
}

static void terminate_closed(struct vm *vm, int result)
{
        vm_teardown_scsi(vm);
        if (result == 0)
                vm_wake_waiters(vm, 0);
        vm_complete(vm, result, VM_E_TERMINATE_DONE, VM_E_TERMINATE_FAILED);
}

static void terminate_step(struct vm *vm, int result)
{
        /* The host's "already stopped" is what terminate wants. */
        if (result == -EALREADY)
                result = 0;
        if (result < 0) {
                vm_complete(vm, result, VM_E_TERMINATE_DONE, VM_E_TERMINATE_FAILED);
                return;
        }
        vm_close_system(vm, terminate_closed);
}

int vm_action_terminate_system(struct vm *vm, void *arg)
{
        vm_abandon(vm);
        vm_drop_guest(vm);
        if (!vm->env.sys) {
                terminate_step(vm, 0); /* cannot happen: states with a system only */
                return 0;
        }
        int r = VM_START_OP(vm, terminate_step, hcs_terminate(vm->env.sys, vm_on_hcs, op));
        return r < 0 ? r : vm_pend(vm, arg);
}

static void exit_closed(struct vm *vm, int result)
{
        vm_teardown_scsi(vm);
        ctrl_done_fn fn = vm->exit_fn;
        vm->exit_fn = NULL;
        vm_wake_waiters(vm, vm->exit_result);
        if (fn)
                fn(vm->exit_result, vm->exit_userdata);
}

int vm_action_note_exit(struct vm *vm, void *arg)
{
        vm->exit_result = arg ? *(int *)arg : 0;
        vm_abandon(vm);
        vm_drop_guest(vm);
        vm_close_system(vm, exit_closed);
        return 0;
}

/* The stop in flight is kept: its own wait for the exit, or its failure, completes it. */
int vm_action_note_exit_while_stopping(struct vm *vm, void *arg)
{
        vm->exit_result = arg ? *(int *)arg : 0;
        return 0;
}

/* The stop failed after the exit: the system is gone all the same, so end it as an exit. */
int vm_action_close_exited_system(struct vm *vm, void *arg)
{
        vm_drop_guest(vm);
        vm_close_system(vm, exit_closed);
        return 0;
}

/* ---- public calls ---------------------------------------------------------------------------- */

int vm_new(uv_loop_t *loop, struct hcs_backend *backend, const char *name, struct vm **ret)
{
        if (!loop || !backend || !name || !ret)
                return -EINVAL;
        struct vm *vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        vm->loop = loop;
        vm->env.loop = loop;
        vm->backend = backend;
        ferry_bprintf(vm->name, sizeof(vm->name), "vm:%s", name);
        fsm_init(&vm->fsm, &vm_machine, vm, vm->name);
        int r = uv_timer_init(loop, &vm->retry);
        if (r < 0) {
                free(vm);
                return r;
        }
        vm->retry.data = vm;
        *ret = vm;
        return 0;
}

static void vm_retry_closed(uv_handle_t *h)
{
        free(h->data);
}

/* Frees what is left once no system is held. */
static void vm_release(struct vm *vm)
{
        vm_wake_waiters(vm, -ECANCELED);
        json_object_put(vm->doc);
        vm->doc = NULL;
        /* The memory goes with the timer handle, on the loop's next turn. */
        uv_close((uv_handle_t *)&vm->retry, vm_retry_closed);
}

static void vm_free_closed(int result, void *ud)
{
        struct vm *vm = ud;
        vm->env.sys = NULL;
        vm_release(vm);
}

struct vm *vm_free(struct vm *vm)
{
        if (!vm)
                return NULL;
        if (vm->inflight || fsm_busy(&vm->fsm) || (vm->watching && !vm->env.sys))
                return vm;
        if (scsi_ctrl_free(vm->scsi) < 0)
                return vm;
        vm->scsi = NULL;
        if (!vm->env.sys) {
                vm_release(vm);
                return NULL;
        }
        /* A system is still held (an invalid VM, or one its owner gives up on): closing it
         * stops the VM; the memory goes once the host let go of it. */
        vm_drop_guest(vm);
        vm->notify = NULL;
        vm->exit_fn = NULL;
        if (hcs_system_close(vm->env.sys, vm_free_closed, vm) < 0)
                return vm; /* someone else's host call is in flight: retry */
        return NULL;
}

const char *vm_state_name(const struct vm *vm)
{
        return fsm_state_name(&vm->fsm);
}

bool vm_is_migrating(const struct vm *vm)
{
        return fsm_is_frozen(&vm->fsm);
}

struct fsm *vm_fsm(struct vm *vm)
{
        return &vm->fsm;
}

struct hcs_system *vm_system(struct vm *vm)
{
        return vm->env.sys;
}

struct guest_conn *vm_guest(struct vm *vm)
{
        return vm->env.guest;
}

void vm_env(struct vm *vm, struct ctrl_env *env)
{
        *env = (struct ctrl_env){.loop = vm->loop, .sys = vm->env.sys, .guest = vm->env.guest};
}

int vm_scsi(struct vm *vm, struct scsi_ctrl **ret)
{
        if (!vm->scsi) {
                if (!vm->doc)
                        return -EINVAL;
                int r = scsi_ctrl_new(&vm->env, vm->doc, &vm->scsi);
                if (r < 0)
                        return r;
        }
        *ret = vm->scsi;
        return 0;
}

struct json_object *vm_document(struct vm *vm)
{
        return vm->doc;
}

const uint8_t *vm_compat_blob(const struct vm *vm, size_t *ret_size)
{
        *ret_size = vm->compat_len;
        return vm->compat;
}

void vm_imported_floors(const struct vm *vm, uint64_t *ret_next_request_id, uint32_t *ret_next_port)
{
        *ret_next_request_id = vm->floor_request_id;
        *ret_next_port = vm->floor_port;
}

void vm_subscribe(struct vm *vm, vm_notify_fn fn, void *userdata)
{
        vm->notify = fn;
        vm->notify_userdata = userdata;
}

void vm_on_exit(struct vm *vm, ctrl_done_fn fn, void *userdata)
{
        vm->exit_fn = fn;
        vm->exit_userdata = userdata;
}

#define VM_ARGS(...) ((struct vm_args){.fd = -1, __VA_ARGS__})

int vm_create(struct vm *vm, const char *id, const char *doc_json, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.id = id, .json = doc_json, .done = done, .userdata = ud);
        return vm_call(vm, VM_E_CREATE, &a);
}

int vm_start(struct vm *vm, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.done = done, .userdata = ud);
        return vm_call(vm, VM_E_START, &a);
}

int vm_terminate(struct vm *vm, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.done = done, .userdata = ud);
        return vm_call(vm, VM_E_TERMINATE, &a);
}

int vm_wait(struct vm *vm, ctrl_done_fn done, void *ud)
{
        if (!done)
                return -EINVAL;
        if (!vm->env.sys) {
                done(0, ud);
                return 0;
        }
        struct vm_waiter *w = realloc(vm->waiters, (vm->n_waiters + 1) * sizeof(*w));
        if (!w)
                return -ENOMEM;
        vm->waiters = w;
        w[vm->n_waiters++] = (struct vm_waiter){.done = done, .userdata = ud};
        return 0;
}

int vm_open_notifications(struct vm *vm, vm_notify_fn fn, void *userdata)
{
        struct vm_args a = VM_ARGS(.notify = fn, .notify_userdata = userdata);
        return vm_call(vm, VM_E_OPEN_NOTIFICATIONS, &a);
}

int vm_initialize_source(struct vm *vm, const char *opts_json, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.json = opts_json, .done = done, .userdata = ud);
        return vm_call(vm, VM_E_INITIALIZE_SOURCE, &a);
}

int vm_save(struct vm *vm, ctrl_envelope **ret)
{
        if (!ret)
                return -EINVAL;
        ctrl_envelope *env = NULL;
        struct vm_args a = VM_ARGS(.ret_env = &env);
        int r = vm_call(vm, VM_E_SAVE, &a);
        if (r < 0)
                return r;
        if (!env)
                return -EBUSY; /* the spec ignored it: cannot happen with today's spec */
        *ret = env;
        return 0;
}

int vm_start_source(struct vm *vm, int fd, uint32_t session_id, ctrl_done_fn done, void *ud)
{
        struct vm_args a = {.fd = fd, .session_id = session_id, .done = done, .userdata = ud};
        return vm_call(vm, VM_E_START_SOURCE, &a);
}

int vm_import(struct vm *vm, const ctrl_envelope *env)
{
        struct vm_args a = VM_ARGS(.env = env);
        return vm_call(vm, VM_E_IMPORT, &a);
}

struct remap {
        const char *from, *to;
        unsigned n;
};

static int remap_one(struct json_object *att, void *userdata)
{
        struct remap *m = userdata;
        const char *path = att_str(att, "Path");
        if (path && strcmp(path, m->from) == 0) {
                json_object_object_add(att, "Path", json_object_new_string(m->to));
                m->n++;
        }
        return 0;
}

int vm_remap_disk(struct vm *vm, const char *old_path, const char *new_path)
{
        if (!old_path || !host_path_valid(new_path))
                return -EINVAL;
        if (!vm->doc)
                return -ENOENT;
        struct remap m = {.from = old_path, .to = new_path};
        int r = doc_for_each_attachment(vm->doc, remap_one, &m);
        if (r < 0)
                return r;
        return m.n ? 0 : -ENOENT;
}

int vm_create_destination(struct vm *vm, const char *id, const char *migration_options_json,
                          ctrl_done_fn done, void *ud)
{
        struct vm_args a =
            VM_ARGS(.id = id, .json = migration_options_json, .done = done, .userdata = ud);
        return vm_call(vm, VM_E_CREATE_DESTINATION, &a);
}

int vm_patch(struct vm *vm, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.done = done, .userdata = ud);
        return vm_call(vm, VM_E_PATCH, &a);
}

int vm_start_destination(struct vm *vm, int fd, uint32_t session_id, ctrl_done_fn done, void *ud)
{
        struct vm_args a = {.fd = fd, .session_id = session_id, .done = done, .userdata = ud};
        return vm_call(vm, VM_E_START_WITH_MIGRATION_OPTIONS, &a);
}

int vm_transfer(struct vm *vm, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.done = done, .userdata = ud);
        return vm_call(vm, VM_E_TRANSFER, &a);
}

int vm_finalize(struct vm *vm, bool resume, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.done = done, .userdata = ud);
        return vm_call(vm, resume ? VM_E_FINALIZE_RESUME : VM_E_FINALIZE_STOP, &a);
}

int vm_cancel(struct vm *vm, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.done = done, .userdata = ud);
        return vm_call(vm, VM_E_CANCEL, &a);
}

int vm_stats(struct vm *vm, struct vm_stats *ret, ctrl_done_fn done, void *ud)
{
        if (!ret || !done)
                return -EINVAL;
        struct vm_args a = VM_ARGS(.stats = ret, .done = done, .userdata = ud);
        return vm_call(vm, VM_E_STATS, &a);
}

int vm_pause(struct vm *vm, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.done = done, .userdata = ud);
        return vm_call(vm, VM_E_PAUSE, &a);
}

int vm_resume(struct vm *vm, ctrl_done_fn done, void *ud)
{
        struct vm_args a = VM_ARGS(.done = done, .userdata = ud);
        return vm_call(vm, VM_E_RESUME, &a);
}
