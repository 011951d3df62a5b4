/* SPDX-License-Identifier: MIT */
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
        SB(StartSandboxRequest) req = CONTAINERD__RUNTIME__SANDBOX__V1__START_SANDBOX_REQUEST__INIT;
        SB(StartSandboxResponse) *resp = NULL;
        int r;

        req.sandbox_id = (char *)id;
        r = ctl_call(c, SANDBOX_SERVICE, "StartSandbox", &req.base,
                     &SB_DESC(start_sandbox_response), (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = resp->pid;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_sandbox_state(struct ctl_conn *c, const char *id, char *ret_state, struct ctl_error *err)
{
        SB(SandboxStatusRequest)
        req = CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_REQUEST__INIT;
        SB(SandboxStatusResponse) *resp = NULL;
        int r;

        req.sandbox_id = (char *)(id ? id : "");
        r = ctl_call(c, SANDBOX_SERVICE, "SandboxStatus", &req.base,
                     &SB_DESC(sandbox_status_response), (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        (void)ferry_strscpy(ret_state, resp->state ? resp->state : "", 32);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_task_create(struct ctl_conn *c, const char *id, const char *bundle, uint32_t *ret_pid,
                    struct ctl_error *err)
{
        TK(CreateTaskRequest) req = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
        TK(CreateTaskResponse) *resp = NULL;
        int r;

        req.id = (char *)id;
        req.bundle = (char *)(bundle ? bundle : "");
        r = ctl_call(c, TASK_SERVICE, "Create", &req.base, &TK_DESC(create_task_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = resp->pid;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_task_create_rootfs(struct ctl_conn *c, const char *id, const char *bundle,
                           const char *layer_source, const char *parent_layers, uint32_t *ret_pid,
                           struct ctl_error *err)
{
        TK(CreateTaskRequest) req = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
        TK(CreateTaskResponse) *resp = NULL;
        TK(Mount) m = CONTAINERD__TASK__V2__MOUNT__INIT, *ms[1] = {&m};
        char opt[PATH_MAX + 32], *opts[1] = {opt};
        int r;

        if (!layer_source)
                return ctl_task_create(c, id, bundle, ret_pid, err);
        if (ferry_bprintf(opt, sizeof(opt), "parentLayerPaths=%s",
                          parent_layers ? parent_layers : "[]") < 0) {
                ctl_error_set(err, -ENAMETOOLONG, "parent layer list too long");
                return -ENAMETOOLONG;
        }
        m.type = (char *)"lcow-layer";
        m.source = (char *)layer_source;
        m.n_options = 1;
        m.options = opts;
        req.id = (char *)id;
        req.bundle = (char *)(bundle ? bundle : "");
        req.n_rootfs = 1;
        req.rootfs = ms;
        r = ctl_call(c, TASK_SERVICE, "Create", &req.base, &TK_DESC(create_task_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = resp->pid;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
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
        TK(StartRequest) req = CONTAINERD__TASK__V2__START_REQUEST__INIT;
        TK(StartResponse) *resp = NULL;
        int r;

        req.id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        r = ctl_call(c, TASK_SERVICE, "Start", &req.base, &TK_DESC(start_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = resp->pid;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_proc_kill(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t sig,
                  struct ctl_error *err)
{
        TK(KillRequest) req = CONTAINERD__TASK__V2__KILL_REQUEST__INIT;

        req.id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        req.signal = sig;
        return ctl_call(c, TASK_SERVICE, "Kill", &req.base, &TK_DESC(empty), NULL, err);
}

int ctl_proc_wait(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t *ret_status,
                  struct ctl_error *err)
{
        TK(WaitRequest) req = CONTAINERD__TASK__V2__WAIT_REQUEST__INIT;
        TK(WaitResponse) *resp = NULL;
        int r;

        req.id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        r = ctl_call(c, TASK_SERVICE, "Wait", &req.base, &TK_DESC(wait_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        *ret_status = resp->exit_status;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_proc_delete(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t *ret_status,
                    struct ctl_error *err)
{
        TK(DeleteRequest) req = CONTAINERD__TASK__V2__DELETE_REQUEST__INIT;
        TK(DeleteResponse) *resp = NULL;
        int r;

        req.id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        r = ctl_call(c, TASK_SERVICE, "Delete", &req.base, &TK_DESC(delete_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        if (ret_status)
                *ret_status = resp->exit_status;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_task_start(struct ctl_conn *c, const char *id, uint32_t *ret_pid, struct ctl_error *err)
{
        TK(StartRequest) req = CONTAINERD__TASK__V2__START_REQUEST__INIT;
        TK(StartResponse) *resp = NULL;
        int r;

        req.id = (char *)id;
        r = ctl_call(c, TASK_SERVICE, "Start", &req.base, &TK_DESC(start_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = resp->pid;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_task_state(struct ctl_conn *c, const char *id, int *ret_status, uint32_t *ret_pid,
                   struct ctl_error *err)
{
        TK(StateRequest) req = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
        TK(StateResponse) *resp = NULL;
        int r;

        req.id = (char *)id;
        r = ctl_call(c, TASK_SERVICE, "State", &req.base, &TK_DESC(state_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        *ret_status = (int)resp->status;
        if (ret_pid)
                *ret_pid = resp->pid;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
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

int ctl_sandbox_stop(struct ctl_conn *c, const char *id, struct ctl_error *err)
{
        SB(StopSandboxRequest) req = CONTAINERD__RUNTIME__SANDBOX__V1__STOP_SANDBOX_REQUEST__INIT;

        req.sandbox_id = (char *)id;
        return ctl_call(c, SANDBOX_SERVICE, "StopSandbox", &req.base,
                        &SB_DESC(stop_sandbox_response), NULL, err);
}

static int sandbox_status_print(struct ctl_conn *c, const char *id, struct ctl_error *err)
{
        SB(SandboxStatusRequest)
        req = CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_REQUEST__INIT;
        SB(SandboxStatusResponse) *resp = NULL;
        int r;

        req.sandbox_id = (char *)(id ? id : "");
        req.verbose = true;
        r = ctl_call(c, SANDBOX_SERVICE, "SandboxStatus", &req.base,
                     &SB_DESC(sandbox_status_response), (ProtobufCMessage **)&resp, err);
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

int ctl_task_kill(struct ctl_conn *c, const char *id, uint32_t sig, struct ctl_error *err)
{
        TK(KillRequest) req = CONTAINERD__TASK__V2__KILL_REQUEST__INIT;

        req.id = (char *)id;
        req.signal = sig;
        return ctl_call(c, TASK_SERVICE, "Kill", &req.base, &TK_DESC(empty), NULL, err);
}

static int task_delete(struct ctl_conn *c, const char *id, struct ctl_error *err)
{
        TK(DeleteRequest) req = CONTAINERD__TASK__V2__DELETE_REQUEST__INIT;
        TK(DeleteResponse) *resp = NULL;
        int r;

        req.id = (char *)id;
        r = ctl_call(c, TASK_SERVICE, "Delete", &req.base, &TK_DESC(delete_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        printf("task %s deleted (pid %u, exit status %u)\n", id, resp->pid, resp->exit_status);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

int ctl_task_wait(struct ctl_conn *c, const char *id, uint32_t *ret_status, struct ctl_error *err)
{
        TK(WaitRequest) req = CONTAINERD__TASK__V2__WAIT_REQUEST__INIT;
        TK(WaitResponse) *resp = NULL;
        int r;

        req.id = (char *)id;
        r = ctl_call(c, TASK_SERVICE, "Wait", &req.base, &TK_DESC(wait_response),
                     (ProtobufCMessage **)&resp, err);
        if (r < 0)
                return r;
        *ret_status = resp->exit_status;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
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

/* ---- task pause|resume|stats: the sandbox task's VM ---------------------------------------- */

static bool task_vm_sub(const char *sub)
{
        return !strcmp(sub, "pause") || !strcmp(sub, "resume") || !strcmp(sub, "stats");
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

/* Pause and Resume freeze and thaw the whole VM (the sandbox task's); Stats prints its
 * statistics. */
static int task_vm_run(struct cmd *c, const char *sub, const char *id)
{
        TK(PauseRequest) pause = CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
        TK(ResumeRequest) resume = CONTAINERD__TASK__V2__RESUME_REQUEST__INIT;
        TK(StatsRequest) stats = CONTAINERD__TASK__V2__STATS_REQUEST__INIT;
        TK(StatsResponse) *resp = NULL;
        int r;

        pause.id = resume.id = stats.id = (char *)id;
        if (!strcmp(sub, "pause")) {
                r = ctl_call(&c->conn, TASK_SERVICE, "Pause", &pause.base, &TK_DESC(empty), NULL,
                             &c->err);
                if (r == 0)
                        printf("task %s paused (the whole vm)\n", id);
        } else if (!strcmp(sub, "resume")) {
                r = ctl_call(&c->conn, TASK_SERVICE, "Resume", &resume.base, &TK_DESC(empty), NULL,
                             &c->err);
                if (r == 0)
                        printf("task %s resumed\n", id);
        } else {
                r = ctl_call(&c->conn, TASK_SERVICE, "Stats", &stats.base, &TK_DESC(stats_response),
                             (ProtobufCMessage **)&resp, &c->err);
                if (r == 0) {
                        task_stats_print(id, resp->stats);
                        protobuf_c_message_free_unpacked(&resp->base, NULL);
                }
        }
        return r;
}

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

/* task exec ID EXEC_ID [--] ARGS...: Exec, then Start of the exec id. */
static int task_exec(struct cmd *c, const char *id, int argc, char **argv)
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

static int task_run(struct cmd *c, const char *sub, const char *id, int argc, char **argv)
{
        const char *exec_id = opt_value(argc, argv, "--exec"), *rootfs;
        const char *what = exec_id ? "exec" : "task", *name = exec_id ? exec_id : id;
        char layers[PATH_MAX];
        uint32_t pid = 0, sig, st = 0;
        int status, r;

        if (strcmp(sub, "create") == 0) {
                rootfs = opt_value(argc, argv, "--rootfs");
                r = rootfs_layers(argc, argv, layers, sizeof(layers));
                if (r < 0)
                        ctl_error_set(&c->err, r, "too many --layer paths");
                else
                        r = ctl_task_create_rootfs(&c->conn, id, opt_value(argc, argv, "--bundle"),
                                                   rootfs, layers, &pid, &c->err);
                if (r == 0)
                        printf("task %s created (pid %u)\n", id, pid);
        } else if (strcmp(sub, "exec") == 0) {
                r = task_exec(c, id, argc, argv);
        } else if (strcmp(sub, "start") == 0) {
                r = ctl_proc_start(&c->conn, id, exec_id, &pid, &c->err);
                if (r == 0)
                        printf("%s %s started (pid %u)\n", what, name, pid);
        } else if (strcmp(sub, "state") == 0 && !exec_id) {
                r = ctl_task_state(&c->conn, id, &status, &pid, &c->err);
                if (r == 0)
                        printf("task %s: %s (pid %u)\n", id, ctl_task_status_name(status), pid);
        } else if (strcmp(sub, "state") == 0) {
                r = -EINVAL;
                ctl_error_set(&c->err, r, "state takes no --exec");
        } else if (strcmp(sub, "kill") == 0) {
                r = parse_signal(opt_value(argc, argv, "--signal"), &sig);
                if (r < 0)
                        ctl_error_set(&c->err, r, "bad --signal");
                else if ((r = ctl_proc_kill(&c->conn, id, exec_id, sig, &c->err)) == 0)
                        printf("%s %s: signal %u sent\n", what, name, sig);
        } else if (strcmp(sub, "delete") == 0 && !exec_id) {
                r = task_delete(&c->conn, id, &c->err);
        } else if (strcmp(sub, "delete") == 0) {
                r = ctl_proc_delete(&c->conn, id, exec_id, &st, &c->err);
                if (r == 0)
                        printf("%s %s deleted (exit status %u)\n", what, name, st);
        } else {
                r = ctl_proc_wait(&c->conn, id, exec_id, &st, &c->err);
                if (r == 0)
                        printf("%s %s exited with status %u\n", what, name, st);
        }
        return r;
}

int ctl_task_main(const char *address, int argc, char **argv)
{
        static const char *const subs[] = {"create", "start", "state", "kill",
                                           "delete", "wait",  "exec"};
        const char *sub = argc > 0 ? argv[0] : "";
        bool known = false;
        struct cmd c = {0};
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
                known = known || strcmp(sub, subs[i]) == 0;
        known = known || task_vm_sub(sub);
        if (!known || argc < 2 || argv[1][0] == '-' || (strcmp(sub, "exec") == 0 && argc < 4)) {
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
        if (r == 0 && task_vm_sub(sub))
                r = task_vm_run(&c, sub, argv[1]);
        else if (r == 0)
                r = task_run(&c, sub, argv[1], argc, argv);
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
