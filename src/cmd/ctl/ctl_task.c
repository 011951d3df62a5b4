/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "cmd/ctl/ctl_proc.h"
#include "cmd/ctl/ctl_task.h"
#include "util/util.h"

#include "sandbox.pb-c.h"
#include "stats.pb-c.h"
#include "task.pb-c.h"

#define TASK_SERVICE    "containerd.task.v2.Task"
#define SANDBOX_SERVICE "containerd.runtime.sandbox.v1.Sandbox"

const char *ctl_task_status_name(int status)
{
        static const char *const names[] = {"unknown", "created", "running",
                                            "stopped", "paused",  "pausing"};

        return status >= 0 && (size_t)status < ARRAY_SIZE(names) ? names[status] : "unknown";
}

#define SB(T)      Containerd__Runtime__Sandbox__V1__##T
#define SB_DESC(t) containerd__runtime__sandbox__v1__##t##__descriptor
#define TK(T)      Containerd__Task__V2__##T
#define TK_DESC(t) containerd__task__v2__##t##__descriptor

/* Requests that carry only ids (and Kill's signal) go through one table and one caller; Create
 * and Exec, whose requests carry more, are written out. */
enum call {
        CALL_START,
        CALL_KILL,
        CALL_WAIT,
        CALL_DELETE,
        CALL_STATE,
        CALL_PAUSE,
        CALL_RESUME,
        CALL_STATS,
        CALL_SANDBOX_START,
        CALL_SANDBOX_STOP,
};

static const struct call_desc {
        const char *service;
        const char *method;
        const char *id_field; /* Task names the id "id", Sandbox "sandbox_id" */
        const ProtobufCMessageDescriptor *req;
        const ProtobufCMessageDescriptor *resp;
        const char *result; /* the reply's field call_result() returns, or NULL */
} calls[] = {
        [CALL_START] = {TASK_SERVICE, "Start", "id", &TK_DESC(start_request),
                        &TK_DESC(start_response), "pid"},
        [CALL_KILL] = {TASK_SERVICE, "Kill", "id", &TK_DESC(kill_request), &TK_DESC(empty), NULL},
        [CALL_WAIT] = {TASK_SERVICE, "Wait", "id", &TK_DESC(wait_request), &TK_DESC(wait_response),
                       "exit_status"},
        [CALL_DELETE] = {TASK_SERVICE, "Delete", "id", &TK_DESC(delete_request),
                         &TK_DESC(delete_response), "exit_status"},
        [CALL_STATE] = {TASK_SERVICE, "State", "id", &TK_DESC(state_request),
                        &TK_DESC(state_response), "status"},
        [CALL_PAUSE] = {TASK_SERVICE, "Pause", "id", &TK_DESC(pause_request), &TK_DESC(empty),
                        NULL},
        [CALL_RESUME] = {TASK_SERVICE, "Resume", "id", &TK_DESC(resume_request), &TK_DESC(empty),
                         NULL},
        [CALL_STATS] = {TASK_SERVICE, "Stats", "id", &TK_DESC(stats_request),
                        &TK_DESC(stats_response), NULL},
        [CALL_SANDBOX_START] = {SANDBOX_SERVICE, "StartSandbox", "sandbox_id",
                                &SB_DESC(start_sandbox_request), &SB_DESC(start_sandbox_response),
                                "pid"},
        [CALL_SANDBOX_STOP] = {SANDBOX_SERVICE, "StopSandbox", "sandbox_id",
                               &SB_DESC(stop_sandbox_request), &SB_DESC(stop_sandbox_response),
                               NULL},
};

/* Room for any request of the table. */
union call_req {
        ProtobufCMessage base;
        TK(StartRequest) start;
        TK(KillRequest) kill;
        TK(WaitRequest) wait;
        TK(DeleteRequest) del;
        TK(StateRequest) state;
        TK(PauseRequest) pause;
        TK(ResumeRequest) resume;
        TK(StatsRequest) stats;
        SB(StartSandboxRequest) sandbox_start;
        SB(StopSandboxRequest) sandbox_stop;
};

/* The singular field called name in m when it has that type, else NULL. Task and Sandbox
 * messages name the same thing alike (id, exec_id, signal, pid, exit_status), which is what lets
 * one caller serve the whole table. */
static void *msg_field(ProtobufCMessage *m, const char *name, ProtobufCType type)
{
        const ProtobufCFieldDescriptor *f =
            name ? protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name) : NULL;

        if (!f || f->type != type || f->label == PROTOBUF_C_LABEL_REPEATED)
                return NULL;
        return (char *)m + f->offset;
}

/* A reply's uint32 or enum field called name; 0 when it has none. */
static uint32_t reply_u32(ProtobufCMessage *resp, const char *name)
{
        const uint32_t *u = msg_field(resp, name, PROTOBUF_C_TYPE_UINT32);
        const int *e = msg_field(resp, name, PROTOBUF_C_TYPE_ENUM);

        return u ? *u : e ? (uint32_t)*e : 0;
}

/* Stores the reply's field called name and its pid in *ret and *ret_pid (each may be NULL),
 * then frees the reply (taken). */
static void reply_take(ProtobufCMessage *resp, const char *name, uint32_t *ret, uint32_t *ret_pid)
{
        if (ret)
                *ret = reply_u32(resp, name);
        if (ret_pid)
                *ret_pid = reply_u32(resp, "pid");
        protobuf_c_message_free_unpacked(resp, NULL);
}

/* Makes call k with id, exec_id (NULL: the init) and sig in the request's fields of those
 * names. On OK stores the reply in *ret_resp (new) and returns 0; otherwise returns ctl_call()'s
 * error with err filled. */
static int call_ids(struct ctl_conn *c, enum call k, const char *id, const char *exec_id,
                    uint32_t sig, ProtobufCMessage **ret_resp, struct ctl_error *err)
{
        const struct call_desc *d = &calls[k];
        union call_req req;
        uint32_t *u;
        char **s;

        assert(d->req->sizeof_message <= sizeof(req));
        protobuf_c_message_init(d->req, &req);
        if ((s = msg_field(&req.base, d->id_field, PROTOBUF_C_TYPE_STRING)))
                *s = (char *)(id ? id : "");
        if ((s = msg_field(&req.base, "exec_id", PROTOBUF_C_TYPE_STRING)))
                *s = (char *)(exec_id ? exec_id : "");
        if ((u = msg_field(&req.base, "signal", PROTOBUF_C_TYPE_UINT32)))
                *u = sig;
        return ctl_call(c, d->service, d->method, &req.base, d->resp, ret_resp, err);
}

/* call_ids(), then the call's result field and the reply's pid into *ret and *ret_pid (each
 * may be NULL). */
static int call_result(struct ctl_conn *c, enum call k, const char *id, const char *exec_id,
                       uint32_t sig, uint32_t *ret, uint32_t *ret_pid, struct ctl_error *err)
{
        ProtobufCMessage *resp = NULL;
        int r = call_ids(c, k, id, exec_id, sig, &resp, err);

        if (r == 0)
                reply_take(resp, calls[k].result, ret, ret_pid);
        return r;
}

int ctl_sandbox_create(struct ctl_conn *c, const char *id, const char *bundle,
                       struct ctl_error *err)
{
        SB(CreateSandboxRequest)
        req = CONTAINERD__RUNTIME__SANDBOX__V1__CREATE_SANDBOX_REQUEST__INIT;

        req.sandbox_id = (char *)id;
        req.bundle_path = (char *)(bundle ? bundle : "");
        return ctl_call(c, SANDBOX_SERVICE, "CreateSandbox", &req.base,
                        &SB_DESC(create_sandbox_response), NULL, err);
}

int ctl_sandbox_start(struct ctl_conn *c, const char *id, uint32_t *ret_pid, struct ctl_error *err)
{
        return call_result(c, CALL_SANDBOX_START, id, NULL, 0, NULL, ret_pid, err);
}

int ctl_sandbox_stop(struct ctl_conn *c, const char *id, struct ctl_error *err)
{
        return call_result(c, CALL_SANDBOX_STOP, id, NULL, 0, NULL, NULL, err);
}

/* SandboxStatus; on OK *ret_resp is the reply (new). */
static int sandbox_status(struct ctl_conn *c, const char *id, bool verbose,
                          SB(SandboxStatusResponse) **ret_resp, struct ctl_error *err)
{
        SB(SandboxStatusRequest)
        req = CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_REQUEST__INIT;

        req.sandbox_id = (char *)(id ? id : "");
        req.verbose = verbose;
        return ctl_call(c, SANDBOX_SERVICE, "SandboxStatus", &req.base,
                        &SB_DESC(sandbox_status_response), (ProtobufCMessage **)ret_resp, err);
}

int ctl_sandbox_state(struct ctl_conn *c, const char *id, char *ret_state, struct ctl_error *err)
{
        SB(SandboxStatusResponse) *resp = NULL;
        int r = sandbox_status(c, id, false, &resp, err);

        if (r < 0)
                return r;
        (void)ferry_strscpy(ret_state, resp->state ? resp->state : "", 32);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_task_create(struct ctl_conn *c, const char *id, const char *bundle, uint32_t *ret_pid,
                    struct ctl_error *err)
{
        return ctl_task_create_rootfs(c, id, bundle, NULL, NULL, ret_pid, err);
}

int ctl_task_create_rootfs(struct ctl_conn *c, const char *id, const char *bundle,
                           const char *layer_source, const char *parent_layers, uint32_t *ret_pid,
                           struct ctl_error *err)
{
        TK(CreateTaskRequest) req = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
        TK(Mount) m = CONTAINERD__TASK__V2__MOUNT__INIT, *ms[1] = {&m};
        char opt[PATH_MAX + 32], *opts[1] = {opt};
        ProtobufCMessage *resp = NULL;
        int r;

        req.id = (char *)id;
        req.bundle = (char *)(bundle ? bundle : "");
        if (layer_source) {
                if (ferry_bprintf(opt, sizeof(opt), "parentLayerPaths=%s",
                                  parent_layers ? parent_layers : "[]") < 0) {
                        ctl_error_set(err, -ENAMETOOLONG, "parent layer list too long");
                        return -ENAMETOOLONG;
                }
                m.type = (char *)"lcow-layer";
                m.source = (char *)layer_source;
                m.n_options = 1;
                m.options = opts;
                req.n_rootfs = 1;
                req.rootfs = ms;
        }
        r = ctl_call(c, TASK_SERVICE, "Create", &req.base, &TK_DESC(create_task_response), &resp,
                     err);
        if (r == 0)
                reply_take(resp, NULL, NULL, ret_pid);
        return r;
}

int ctl_task_exec(struct ctl_conn *c, const char *id, const char *exec_id, const char *const *args,
                  struct ctl_error *err)
{
        TK(ExecProcessRequest) req = CONTAINERD__TASK__V2__EXEC_PROCESS_REQUEST__INIT;
        TK(Any) spec = CONTAINERD__TASK__V2__ANY__INIT;
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        const char *text;
        int r;

        for (size_t i = 0; args && args[i]; i++)
                json_object_array_add(a, json_object_new_string(args[i]));
        json_object_object_add(o, "args", a);
        json_object_object_add(o, "cwd", json_object_new_string("/"));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        spec.type_url = (char *)"types.containerd.io/opencontainers/runtime-spec/1/Process";
        spec.value.data = (uint8_t *)text;
        spec.value.len = strlen(text);
        req.id = (char *)id;
        req.exec_id = (char *)exec_id;
        req.spec = &spec;
        r = ctl_call(c, TASK_SERVICE, "Exec", &req.base, &TK_DESC(empty), NULL, err);
        json_object_put(o);
        return r;
}

int ctl_proc_start(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t *ret_pid,
                   struct ctl_error *err)
{
        return call_result(c, CALL_START, id, exec_id, 0, ret_pid, NULL, err);
}

int ctl_proc_kill(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t sig,
                  struct ctl_error *err)
{
        return call_result(c, CALL_KILL, id, exec_id, sig, NULL, NULL, err);
}

int ctl_proc_wait(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t *ret_status,
                  struct ctl_error *err)
{
        return call_result(c, CALL_WAIT, id, exec_id, 0, ret_status, NULL, err);
}

int ctl_proc_delete(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t *ret_status,
                    struct ctl_error *err)
{
        return call_result(c, CALL_DELETE, id, exec_id, 0, ret_status, NULL, err);
}

int ctl_task_start(struct ctl_conn *c, const char *id, uint32_t *ret_pid, struct ctl_error *err)
{
        return ctl_proc_start(c, id, NULL, ret_pid, err);
}

int ctl_task_kill(struct ctl_conn *c, const char *id, uint32_t sig, struct ctl_error *err)
{
        return ctl_proc_kill(c, id, NULL, sig, err);
}

int ctl_task_wait(struct ctl_conn *c, const char *id, uint32_t *ret_status, struct ctl_error *err)
{
        return ctl_proc_wait(c, id, NULL, ret_status, err);
}

int ctl_task_state(struct ctl_conn *c, const char *id, int *ret_status, uint32_t *ret_pid,
                   struct ctl_error *err)
{
        uint32_t status = 0;
        int r = call_result(c, CALL_STATE, id, NULL, 0, &status, ret_pid, err);

        if (r == 0)
                *ret_status = (int)status;
        return r;
}

/* ---- commands ----------------------------------------------------------------------------- */

/* A command run against one shim: its own loop and connection. */
struct cmd {
        uv_loop_t loop;
        struct ctl_conn conn;
        struct ctl_error err;
        bool loop_open;
};

static int cmd_open(struct cmd *c, const char *address)
{
        if (!address) {
                fprintf(stderr, "ferryctl: --address SOCK (or FERRY_ADDRESS) is required\n");
                return -EDESTADDRREQ;
        }
        if (uv_loop_init(&c->loop) < 0)
                return -ENOMEM;
        c->loop_open = true;
        return ctl_connect(&c->loop, address, 1000, &c->conn, &c->err);
}

/* Prints the failure and ends the command; returns the exit status. */
static int cmd_close(struct cmd *c, int r, const char *what)
{
        if (r == -EDESTADDRREQ)
                return 2;
        if (r < 0)
                ctl_error_print(&c->err, what);
        if (c->loop_open) {
                ctl_disconnect(&c->conn);
                uv_run(&c->loop, UV_RUN_NOWAIT);
                (void)uv_loop_close(&c->loop);
        }
        return r < 0 ? 1 : 0;
}

static const char *opt_value(int argc, char **argv, const char *name)
{
        for (int i = 0; i + 1 < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return argv[i + 1];
        return NULL;
}

static int sandbox_status_print(struct ctl_conn *c, const char *id, struct ctl_error *err)
{
        SB(SandboxStatusResponse) *resp = NULL;
        int r = sandbox_status(c, id, true, &resp, err);

        if (r < 0)
                return r;
        printf("sandbox %s: %s (pid %u)\n", resp->sandbox_id, resp->state, resp->pid);
        for (size_t i = 0; i < resp->n_info; i++)
                printf("  %s: %s\n", resp->info[i]->key, resp->info[i]->value);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_sandbox_main(const char *address, int argc, char **argv)
{
        const char *sub = argc > 0 ? argv[0] : "";
        const char *id = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
        struct cmd c = {0};
        uint32_t pid = 0;
        char state[32];
        int r;

        if (strcmp(sub, "create") && strcmp(sub, "start") && strcmp(sub, "stop") &&
            strcmp(sub, "status")) {
                fprintf(stderr, "usage: ferryctl --address SOCK sandbox create ID [--bundle DIR]\n"
                                "       ferryctl --address SOCK sandbox start|stop|status [ID]\n");
                return 2;
        }
        if (!id && strcmp(sub, "status") != 0) {
                /* the shim owns one sandbox: start and stop may name it by its status */
                if (strcmp(sub, "create") == 0) {
                        fprintf(stderr, "ferryctl: sandbox create: an ID is required\n");
                        return 2;
                }
        }
        r = cmd_open(&c, address);
        if (r == 0 && strcmp(sub, "create") == 0) {
                r = ctl_sandbox_create(&c.conn, id, opt_value(argc, argv, "--bundle"), &c.err);
                if (r == 0)
                        printf("sandbox %s created\n", id);
        } else if (r == 0 && strcmp(sub, "start") == 0) {
                r = ctl_sandbox_start(&c.conn, id ? id : "", &pid, &c.err);
                if (r == 0 && (r = ctl_sandbox_state(&c.conn, id, state, &c.err)) == 0)
                        printf("sandbox started (pid %u): %s\n", pid, state);
        } else if (r == 0 && strcmp(sub, "stop") == 0) {
                r = ctl_sandbox_stop(&c.conn, id ? id : "", &c.err);
                if (r == 0)
                        printf("sandbox stopped\n");
        } else if (r == 0) {
                r = sandbox_status_print(&c.conn, id, &c.err);
        }
        return cmd_close(&c, r, sub);
}

static int parse_signal(const char *s, uint32_t *ret)
{
        char *end;
        unsigned long v;

        if (!s) {
                *ret = 15;
                return 0;
        }
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v == 0 || v > 64)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

/* ---- task subcommands ------------------------------------------------------------------- */

/* One `task` subcommand against the task id (exec_id: --exec, NULL for the init). It makes its
 * calls and prints what they answered; returns 0 or the failure (c->err says why), which
 * cmd_close() prints. */
struct task_sub {
        const char *name;
        int (*run)(struct cmd *c, const struct task_sub *s, const char *id, const char *exec_id,
                   int argc, char **argv);
        enum call call;
        /* the line of a call with one result: "<what> <name> <before><result><after>" */
        const char *before;
        const char *after;
};

/* --rootfs DIR and each --layer DIR: the lcow-layer rootfs (parentLayerPaths as JSON). */
static int rootfs_layers(int argc, char **argv, char *buf, size_t size)
{
        json_object *a = json_object_new_array();
        int r = 0;

        for (int i = 0; i + 1 < argc; i++)
                if (strcmp(argv[i], "--layer") == 0)
                        json_object_array_add(a, json_object_new_string(argv[i + 1]));
        if (ferry_strscpy(buf, json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN), size) < 0)
                r = -ENAMETOOLONG;
        json_object_put(a);
        return r;
}

static int sub_create(struct cmd *c, const struct task_sub *s, const char *id,
                      const char *exec_id, int argc, char **argv)
{
        char layers[PATH_MAX];
        uint32_t pid = 0;
        int r;

        r = rootfs_layers(argc, argv, layers, sizeof(layers));
        if (r < 0)
                ctl_error_set(&c->err, r, "too many --layer paths");
        else
                r = ctl_task_create_rootfs(&c->conn, id, opt_value(argc, argv, "--bundle"),
                                           opt_value(argc, argv, "--rootfs"), layers, &pid,
                                           &c->err);
        if (r == 0)
                printf("task %s created (pid %u)\n", id, pid);
        return r;
}

/* task exec ID EXEC_ID [--] ARGS...: Exec, then Start of the exec id. */
static int sub_exec(struct cmd *c, const struct task_sub *s, const char *id, const char *opt_exec,
                    int argc, char **argv)
{
        const char *exec_id = argc > 2 ? argv[2] : NULL;
        int first = 3;
        uint32_t pid = 0;
        int r;

        if (first < argc && strcmp(argv[first], "--") == 0)
                first++;
        if (!exec_id || exec_id[0] == '-' || first >= argc) {
                ctl_error_set(&c->err, -EINVAL, "usage: task exec ID EXEC_ID [--] ARGS...");
                return -EINVAL;
        }
        r = ctl_task_exec(&c->conn, id, exec_id, (const char *const *)argv + first, &c->err);
        if (r == 0)
                r = ctl_proc_start(&c->conn, id, exec_id, &pid, &c->err);
        if (r == 0)
                printf("exec %s of task %s started (pid %u)\n", exec_id, id, pid);
        return r;
}

/* Start, Wait, and Delete of an exec: the call's one result, on the row's line. */
static int sub_result(struct cmd *c, const struct task_sub *s, const char *id,
                      const char *exec_id, int argc, char **argv)
{
        uint32_t v = 0;
        int r = call_result(&c->conn, s->call, id, exec_id, 0, &v, NULL, &c->err);

        if (r == 0)
                printf("%s %s %s%u%s\n", exec_id ? "exec" : "task", exec_id ? exec_id : id,
                       s->before, v, s->after);
        return r;
}

/* Delete of the init also says the pid it had. */
static int sub_delete(struct cmd *c, const struct task_sub *s, const char *id,
                      const char *exec_id, int argc, char **argv)
{
        uint32_t pid = 0, st = 0;
        int r;

        if (exec_id)
                return sub_result(c, s, id, exec_id, argc, argv);
        r = call_result(&c->conn, CALL_DELETE, id, NULL, 0, &st, &pid, &c->err);
        if (r == 0)
                printf("task %s deleted (pid %u, exit status %u)\n", id, pid, st);
        return r;
}

static int sub_kill(struct cmd *c, const struct task_sub *s, const char *id, const char *exec_id,
                    int argc, char **argv)
{
        uint32_t sig;
        int r = parse_signal(opt_value(argc, argv, "--signal"), &sig);

        if (r < 0) {
                ctl_error_set(&c->err, r, "bad --signal");
                return r;
        }
        r = ctl_proc_kill(&c->conn, id, exec_id, sig, &c->err);
        if (r == 0)
                printf("%s %s: signal %u sent\n", exec_id ? "exec" : "task",
                       exec_id ? exec_id : id, sig);
        return r;
}

static int sub_state(struct cmd *c, const struct task_sub *s, const char *id, const char *exec_id,
                     int argc, char **argv)
{
        uint32_t pid = 0;
        int status, r;

        if (exec_id) {
                ctl_error_set(&c->err, -EINVAL, "state takes no --exec");
                return -EINVAL;
        }
        r = ctl_task_state(&c->conn, id, &status, &pid, &c->err);
        if (r == 0)
                printf("task %s: %s (pid %u)\n", id, ctl_task_status_name(status), pid);
        return r;
}

/* Pause and Resume freeze and thaw the whole VM (the sandbox task's); --exec is ignored. */
static int sub_vm(struct cmd *c, const struct task_sub *s, const char *id, const char *exec_id,
                  int argc, char **argv)
{
        int r = call_result(&c->conn, s->call, id, NULL, 0, NULL, NULL, &c->err);

        if (r == 0)
                printf("task %s %s\n", id, s->before);
        return r;
}

static void task_stats_print(const char *id, const Containerd__Task__V2__Any *any)
{
        Containerd__Runhcs__Stats__V1__Statistics *st =
            any && !strcmp(any->type_url, "containerd.runhcs.stats.v1.Statistics")
                ? containerd__runhcs__stats__v1__statistics__unpack(NULL, any->value.len,
                                                                    any->value.data)
                : NULL;
        if (!st || !st->vm) {
                printf("task %s: stats of type %s (%zu bytes) not understood\n", id,
                       any ? any->type_url : "(none)", any ? any->value.len : 0);
        } else {
                const Containerd__Runhcs__Stats__V1__VirtualMachineStatistics *vm = st->vm;
                printf("task %s: vm statistics\n", id);
                if (vm->processor)
                        printf("  processor total runtime  %" PRIu64 " ns\n",
                               vm->processor->total_runtime_ns);
                if (vm->memory) {
                        printf("  memory working set       %" PRIu64 " bytes\n",
                               vm->memory->working_set_bytes);
                        printf("  virtual NUMA nodes       %u\n", vm->memory->virtual_node_count);
                }
                if (vm->memory && vm->memory->vm_memory) {
                        const Containerd__Runhcs__Stats__V1__VirtualMachineMemory *m =
                            vm->memory->vm_memory;
                        printf("  assigned memory          %" PRIu64 " pages\n",
                               m->assigned_memory);
                        printf("  available memory         %d MB (buffer %d)\n",
                               m->available_memory, m->available_memory_buffer);
                        printf("  reserved memory          %" PRIu64 "\n", m->reserved_memory);
                }
        }
        if (st)
                protobuf_c_message_free_unpacked(&st->base, NULL);
}

static int sub_stats(struct cmd *c, const struct task_sub *s, const char *id, const char *exec_id,
                     int argc, char **argv)
{
        ProtobufCMessage *resp = NULL;
        int r = call_ids(&c->conn, CALL_STATS, id, NULL, 0, &resp, &c->err);

        if (r == 0) {
                task_stats_print(id, ((TK(StatsResponse) *)resp)->stats);
                protobuf_c_message_free_unpacked(resp, NULL);
        }
        return r;
}

static const struct task_sub task_subs[] = {
        {.name = "create", .run = sub_create},
        {.name = "start", .run = sub_result, .call = CALL_START, .before = "started (pid ",
         .after = ")"},
        {.name = "state", .run = sub_state},
        {.name = "kill", .run = sub_kill},
        {.name = "delete", .run = sub_delete, .call = CALL_DELETE,
         .before = "deleted (exit status ", .after = ")"},
        {.name = "wait", .run = sub_result, .call = CALL_WAIT, .before = "exited with status ",
         .after = ""},
        {.name = "exec", .run = sub_exec},
        {.name = "pause", .run = sub_vm, .call = CALL_PAUSE, .before = "paused (the whole vm)"},
        {.name = "resume", .run = sub_vm, .call = CALL_RESUME, .before = "resumed"},
        {.name = "stats", .run = sub_stats},
};

static const struct task_sub *task_sub_find(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(task_subs); i++)
                if (strcmp(name, task_subs[i].name) == 0)
                        return &task_subs[i];
        return NULL;
}

int ctl_task_main(const char *address, int argc, char **argv)
{
        const char *sub = argc > 0 ? argv[0] : "";
        const struct task_sub *s = task_sub_find(sub);
        struct cmd c = {0};
        int r;

        if (!s || argc < 2 || argv[1][0] == '-' || (s->run == sub_exec && argc < 4)) {
                fprintf(stderr, "usage: ferryctl --address SOCK task create ID [--bundle DIR] "
                                "[--rootfs DIR [--layer DIR]...]\n"
                                "       ferryctl --address SOCK task state ID\n"
                                "       ferryctl --address SOCK task start|delete|wait ID "
                                "[--exec EXEC_ID]\n"
                                "       ferryctl --address SOCK task kill ID [--signal N] "
                                "[--exec EXEC_ID]\n"
                                "       ferryctl --address SOCK task exec ID EXEC_ID [--] ARGS...\n"
                                "       ferryctl --address SOCK task pause|resume|stats ID\n");
                return 2;
        }
        r = cmd_open(&c, address);
        if (r == 0)
                r = s->run(&c, s, argv[1], opt_value(argc, argv, "--exec"), argc, argv);
        return cmd_close(&c, r, sub);
}

int ctl_status_main(const char *address, int argc, char **argv)
{
        struct cmd c = {0};
        int r;

        /* `ferryctl status ADDR` as issue 7 writes it, or --address */
        if (argc > 0)
                address = argv[0];
        r = cmd_open(&c, address);
        if (r == 0)
                r = sandbox_status_print(&c.conn, NULL, &c.err);
        return cmd_close(&c, r, "status");
}
