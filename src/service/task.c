/* SPDX-License-Identifier: MIT */
/* The Task service. Each task is one container of the sandbox's pod (src/ctrl/pod/pod.h) and
 * its init process: every call goes through the container and process controllers, whose done
 * callbacks answer the RPC, and a task's status is its init's (spec/process.yaml). This file
 * checks the wire, maps the controllers' answers to containerd's, and publishes the events the
 * controllers leave to the shim: TaskCreate and TaskStart of a local create and start, and
 * TaskDelete. TaskExit comes from the controllers through ctrl_env.publish (the destination's
 * TaskCreate and TaskStart too), except for the tasks a stopped VM took with it.
 *
 * A call in flight keeps its task's id, never a container pointer: the container is looked up
 * again when it completes, so a Delete or a shutdown never frees one under a callback. */
#include "service/task.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sys/stat.h>

#include "ctrl/container/container.h"
#include "ctrl/pod/pod.h"
#include "ctrl/process/process.h"
#include "migration/session.h"
#include "rpc/ttrpc.h"
#include "service/events.h"
#include "service/sandbox.h"
#include "service/wire.h"
#include "task.pb-c.h"
#include "util/later.h"
#include "util/util.h"

#define FERRY_SHIM_VERSION "ferry-shim 0.1.0"

/* A Wait call parked on a task's init; call is NULL once answered or the client went away.
 * It stays listed until the init reports the exit (or the service is freed), because the
 * process holds it until then. */
struct task_wait {
        struct ttrpc_call *call;
        struct task_service *ts;
        struct process *init; /* the init or an exec; NULL once answered */
        struct task_wait *next;
        char id[TTRPC_ID_MAX + 1]; /* the task's */
};

/* One Task call in flight on the controllers. */
struct task_op {
        struct task_service *ts;
        struct ttrpc_call *call;
        struct task_op *next;
        char id[TTRPC_ID_MAX + 1];
        char exec_id[TTRPC_ID_MAX + 1]; /* "" for the init */
        char *bundle, *stdin_path, *stdout_path, *stderr_path;
        bool terminal;
        /* Create's rootfs (at most one mount: more is refused at once), Exec's process spec */
        bool has_rootfs;
        char *rootfs_type, *rootfs_source, **rootfs_options;
        size_t n_rootfs_options;
        char *spec_json;
        int result;
        uint32_t pid, exit_status;
        uint64_t exited_at_ns;
        const char *what; /* the error message's prefix */
        /* what op_defer runs on the next loop turn */
        void (*later)(struct task_op *op);
        struct ferry_later turn;
};

struct task_service {
        struct sandbox *sb;
        struct shim_events *events;
        void (*shutdown)(void *);
        void *shutdown_userdata;
        struct mig_session *mig; /* may be NULL */
        struct task_wait *waits;
        struct task_op *ops;
};

/* -- ops -- */

static struct task_op *op_new(struct task_service *ts, struct ttrpc_call *call, const char *id,
                              const char *what)
{
        struct task_op *op = calloc(1, sizeof(*op));
        if (!op)
                return NULL;
        op->ts = ts;
        op->call = call;
        op->what = what;
        ferry_strscpy(op->id, id, sizeof(op->id));
        op->next = ts->ops;
        ts->ops = op;
        return op;
}

static void op_free(struct task_op *op)
{
        for (struct task_op **pp = &op->ts->ops; *pp; pp = &(*pp)->next) {
                if (*pp == op) {
                        *pp = op->next;
                        break;
                }
        }
        free(op->bundle);
        free(op->stdin_path);
        free(op->stdout_path);
        free(op->stderr_path);
        free(op->rootfs_type);
        free(op->rootfs_source);
        for (size_t i = 0; i < op->n_rootfs_options; i++)
                free(op->rootfs_options[i]);
        free(op->rootfs_options);
        free(op->spec_json);
        free(op);
}

/* A new op for call when *r is 0 (the call's checks passed); NULL otherwise, and when out of
 * memory, with *r and *ret_msg saying so. */
static struct task_op *op_for(struct task_service *ts, struct ttrpc_call *call, const char *id,
                              const char *what, int *r, const char **ret_msg)
{
        struct task_op *op = *r < 0 ? NULL : op_new(ts, call, id, what);
        if (*r == 0 && !op) {
                *r = -ENOMEM;
                *ret_msg = "out of memory";
        }
        return op;
}

/* A call refused before its op (may be NULL) reached a controller: the op goes without an
 * answer of its own and the call fails with r and why. */
static void op_refuse(struct ttrpc_call *call, struct task_op *op, int r, const char *why)
{
        if (op) {
                op->call = NULL;
                op_free(op);
        }
        ttrpc_call_fail(call, r, why);
}

/* Ends the op's call with err (0: reply resp) and frees the op. */
static void op_end(struct task_op *op, int err, const ProtobufCMessage *resp)
{
        struct ttrpc_call *call = TAKE_PTR(op->call);
        if (call && err < 0)
                ttrpc_call_fail(call, err, op->what);
        else if (call)
                ttrpc_call_reply(call, resp);
        op_free(op);
}

static void op_later_fire(struct ferry_later *l)
{
        struct task_op *op = ferry_container_of(l, struct task_op, turn);
        op->later(op);
}

/* Runs fn(op) on a later loop turn: a container's done may run inside its own transition,
 * where the pod must not free it yet. */
static void op_defer(struct task_op *op, void (*fn)(struct task_op *))
{
        op->later = fn;
        ferry_later_start(&op->turn, sandbox_env(op->ts->sb)->loop, op_later_fire);
}

/* A step failed with result: undo(op) runs on a later loop turn and answers the call. */
static void op_undo_later(struct task_op *op, int result, void (*undo)(struct task_op *))
{
        op->result = result;
        op_defer(op, undo);
}

static void op_done_empty(int result, void *userdata)
{
        op_end(userdata, result, NULL);
}

/* -- tasks: the pod's containers -- */

/* The task id's container; NULL when unknown, or imported and not patched yet (the task is
 * not this shim's until its destination CreateTask). */
static struct container *task_find(const struct task_service *ts, const char *id)
{
        struct pod *p = sandbox_pod(ts->sb);
        struct container *c = p ? pod_container(p, id) : NULL;
        return c && pod_container_patched(p, c) ? c : NULL;
}

/* A VM that stopped outside a migration takes its tasks' inits with it; the guest's exit waits
 * ended with the connection, so no controller will report them. Their status is the VM's exit
 * (255 at its time), derived here from the two controllers' states. */
static bool went_with_vm(const struct task_service *ts, const struct process *init,
                         uint64_t *ret_at_ns)
{
        return init && process_status(init) == PROCESS_STATUS_RUNNING &&
               sandbox_exited(ts->sb, ret_at_ns);
}

static bool is_exec(const char *exec_id)
{
        return exec_id && *exec_id;
}

/* Process exec_id of c ("" or NULL: the init); NULL when c has none of that id. */
static struct process *proc_of(struct container *c, const char *exec_id)
{
        return container_process(c, is_exec(exec_id) ? exec_id : "");
}

struct task_view {
        Containerd__Task__V2__Status status;
        uint32_t pid, exit_status;
        uint64_t exited_at_ns;
};

/* The status of process exec_id ("" or NULL: the init) of c, as containerd sees it. */
static void proc_view(const struct task_service *ts, struct container *c, const char *exec_id,
                      struct task_view *v)
{
        struct process *init = proc_of(c, exec_id);
        int64_t pid = !is_exec(exec_id) ? container_pid(c) : init ? process_pid(init) : 0;
        *v = (struct task_view){.pid = pid > 0 ? (uint32_t)pid : 0};
        if (went_with_vm(ts, init, &v->exited_at_ns)) {
                v->status = CONTAINERD__TASK__V2__STATUS__STOPPED;
                v->exit_status = 255;
                return;
        }
        if (!init)
                return;
        /* enum process_status has containerd's numbering */
        v->status = (Containerd__Task__V2__Status)process_status(init);
        v->status = (Containerd__Task__V2__Status)task_vm_status(ts, v->status); /* paused VM */
        if (v->status == CONTAINERD__TASK__V2__STATUS__STOPPED) {
                v->exit_status = (uint32_t)process_exit_code(init);
                v->exited_at_ns = process_exited_at_ns(init);
                if (!v->exited_at_ns) /* stopped with no exit recorded here */
                        v->exited_at_ns = ferry_wall_ns();
        }
}

static void task_view(const struct task_service *ts, struct container *c, struct task_view *v)
{
        proc_view(ts, c, NULL, v);
}

/* -- exits -- */

static void reply_wait(struct ttrpc_call *call, uint32_t exit_status, uint64_t exited_at_ns)
{
        Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts;
        wire_timestamp(&ts, exited_at_ns);
        resp.exit_status = exit_status;
        resp.exited_at = &ts;
        ttrpc_call_reply(call, &resp.base);
}

static void wait_unlist(struct task_wait *w)
{
        for (struct task_wait **pp = &w->ts->waits; *pp; pp = &(*pp)->next) {
                if (*pp == w) {
                        *pp = w->next;
                        free(w);
                        return;
                }
        }
}

static void on_init_exit(struct process *p, int exit_code, uint64_t exited_at_ns, void *userdata)
{
        struct task_wait *w = userdata;
        if (w->call)
                reply_wait(TAKE_PTR(w->call), (uint32_t)exit_code, exited_at_ns);
        wait_unlist(w);
}

/* The VM stopped: the Waits of inits that were running end with it, and so do their tasks
 * (TaskExit 255: the controllers cannot report an exit the guest never sent). */
static void on_sandbox_exit(uint32_t exit_status, uint64_t exited_at_ns, void *userdata)
{
        struct task_service *ts = userdata;
        uint64_t at = exited_at_ns;
        for (struct task_wait *w = ts->waits; w; w = w->next) {
                if (!went_with_vm(ts, w->init, &at))
                        continue;
                if (w->call)
                        reply_wait(TAKE_PTR(w->call), 255, at);
                w->init = NULL;
        }
        struct pod *p = sandbox_pod(ts->sb);
        for (size_t i = 0; p && i < pod_container_count(p); i++) {
                struct container *c = pod_container_at(p, i);
                if (went_with_vm(ts, container_process(c, ""), &at)) {
                        int64_t pid = container_pid(c);
                        shim_events_task_exit(ts->events, container_id(c), NULL,
                                              pid > 0 ? (uint32_t)pid : 0, 255, at);
                }
        }
}

/* -- request checks -- */

/* Looks the request's task up: id must pass the id grammar and the task must exist; a
 * non-empty exec_id must pass it too and name one of the task's execs. */
static int lookup(struct task_service *ts, const char *id, const char *exec_id,
                  struct container **ret, const char **ret_msg)
{
        int r = wire_check_id(id);
        if (r < 0) {
                *ret_msg = "invalid task id";
                return r;
        }
        if (exec_id && *exec_id && (r = wire_check_id(exec_id)) < 0) {
                *ret_msg = "invalid exec id";
                return r;
        }
        *ret = task_find(ts, id);
        if (!*ret) {
                *ret_msg = "task not found";
                return -ENOENT;
        }
        if (exec_id && *exec_id && !container_process(*ret, exec_id)) {
                *ret_msg = "exec not found";
                return -ENOENT;
        }
        return 0;
}

/* An exec's event (containerd's TaskExecAdded / TaskExecStarted); ids passed the grammar. */
static void publish_exec(struct task_service *ts, const char *topic, const char *id,
                         const char *exec_id, int64_t pid)
{
        char json[3 * TTRPC_ID_MAX + 96];
        if (!ts->events)
                return;
        if (pid >= 0)
                ferry_bprintf(json, sizeof(json),
                              "{\"container_id\":\"%s\",\"exec_id\":\"%s\",\"pid\":%lld}", id,
                              exec_id, (long long)pid);
        else
                ferry_bprintf(json, sizeof(json), "{\"container_id\":\"%s\",\"exec_id\":\"%s\"}",
                              id, exec_id);
        shim_events_publish(topic, json, ts->events);
}

/* A migration session that is not idle blocks State, Kill and Delete (§B.7). */
static int check_idle(const struct task_service *ts, char *buf, size_t size, const char **ret_msg)
{
        if (!ts->mig)
                return 0;
        int r = mig_session_ensure_idle(ts->mig, buf, size);
        if (r < 0)
                *ret_msg = buf;
        return r;
}

/* What State, Kill and Delete find before they act: the task's container and the view of the
 * process the request names, or why they refuse. */
struct target {
        struct container *c;
        struct task_view v;
        const char *why;
        char buf[128]; /* room for the session's refusal */
};

/* lookup(), then check_idle(), then the process's view. Returns 0 or the refusal (t->why). */
static int target_find(struct task_service *ts, const char *id, const char *exec_id,
                       struct target *t)
{
        int r = lookup(ts, id, exec_id, &t->c, &t->why);
        if (r == 0)
                r = check_idle(ts, t->buf, sizeof(t->buf), &t->why);
        if (r == 0)
                proc_view(ts, t->c, exec_id, &t->v);
        return r;
}

/* Start, Kill, Pids, CloseIO and ResizePty need the VM running (§B.7's ensureVMRunning). */
static int check_vm_running(const struct task_service *ts, const char **ret_msg)
{
        if (sandbox_running(ts->sb))
                return 0;
        *ret_msg = "vm is not running";
        return -EBUSY;
}

/* lookup(), then check_vm_running(): the checks Start, Pids, CloseIO and ResizePty start with. */
static int lookup_running(struct task_service *ts, const char *id, const char *exec_id,
                          struct container **ret, const char **ret_msg)
{
        int r = lookup(ts, id, exec_id, ret, ret_msg);
        return r < 0 ? r : check_vm_running(ts, ret_msg);
}

/* lookup() for a call that checks nothing else: NULL when it refused (the call is failed). */
static struct container *lookup_or_fail(struct task_service *ts, struct ttrpc_call *call,
                                        const char *id, const char *exec_id)
{
        struct container *c = NULL;
        const char *why = NULL;
        int r = lookup(ts, id, exec_id, &c, &why);
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return NULL;
        }
        return c;
}

/* A controller's refusal r of a call made with CTRL_ASK, as a client reads it: the spec's
 * message for the cell that rejected it, else a generic one by error class. */
static const char *rejection(int r, const char *what)
{
        const char *spec = fsm_rejection(r);
        if (spec)
                return spec;
        switch (r) {
        case -EBUSY:
                return "not allowed in the task's current state";
        case -ESTALE:
                return "another call on this task is in flight";
        default:
                return what;
        }
}

/* Ends the op's call with a controller's rejection r. */
static void op_reject(struct task_op *op, int r)
{
        op->what = rejection(r, op->what);
        op_end(op, r, NULL);
}

/* -- Create -- */

#define SOURCE_CONTAINER_ANNOTATION "io.microsoft.migration.source-container-id"
#define CONFIG_JSON_MAX             (1u << 20)

/* The value of the source-container annotation in <bundle>/config.json, copied to buf; 0 and
 * "" when the bundle, the file or the annotation is absent. Present but unreadable or
 * malformed: -EINVAL (the client asked for something it cannot get). */
static int source_container_of(const char *bundle, char *buf, size_t size)
{
        buf[0] = '\0';
        if (!bundle || !*bundle)
                return 0;
        char path[TTRPC_PATH_MAX + 16];
        if (ferry_bprintf(path, sizeof(path), "%s/config.json", bundle) < 0)
                return -EINVAL;
        struct stat st;
        if (stat(path, &st) < 0)
                return 0;
        if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_JSON_MAX)
                return -EINVAL;
        struct json_object *cfg = json_object_from_file(path);
        if (!cfg)
                return -EINVAL;
        struct json_object *ann = NULL, *v = NULL;
        int r = 0;
        if (json_object_object_get_ex(cfg, "annotations", &ann) &&
            json_object_object_get_ex(ann, SOURCE_CONTAINER_ANNOTATION, &v)) {
                const char *id = json_object_get_string(v);
                r = !id || ferry_strscpy(buf, id, size) < 0 ? -EINVAL : 1;
        }
        json_object_put(cfg);
        return r;
}

/* Destination CreateTask for a migrated container (§B.8): no guest work, the session patches
 * the imported container (pod_patch_container), which answers with its pid. */
static void create_patch(struct task_service *ts, struct ttrpc_call *call,
                         const Containerd__Task__V2__CreateTaskRequest *req, const char *source)
{
        if (!ts->mig) {
                ttrpc_call_fail(call, -EOPNOTSUPP, "no migration service");
                return;
        }
        int r = wire_check_id(source);
        if (r < 0) {
                ttrpc_call_fail(call, r, "invalid source container id");
                return;
        }
        struct mig_patch patch = {source, req->id, (void *)req};
        r = mig_session_patch_container(ts->mig, &patch);
        if (r < 0) {
                const char *why = mig_session_error(ts->mig);
                ttrpc_call_fail(call, r, why && *why ? why : "patch container");
                return;
        }
        struct pod *p = sandbox_pod(ts->sb);
        struct container *c = p ? pod_container(p, req->id) : NULL;
        int64_t pid = c ? container_pid(c) : 0;
        Containerd__Task__V2__CreateTaskResponse resp =
            CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
        resp.pid = pid > 0 ? (uint32_t)pid : 0;
        ttrpc_call_reply(call, &resp.base);
}

static void create_undone(int result, void *userdata)
{
        struct task_op *op = userdata;
        op_end(op, op->result, NULL);
}

/* A failed create: the pod drops the container again and the devices attached for it are
 * released (the create's own error is the answer either way). */
static void create_undo(struct task_op *op)
{
        struct pod *p = sandbox_pod(op->ts->sb);
        if (p)
                (void)pod_delete_container(p, op->id);
        if (sandbox_detach(op->ts->sb, op->id, create_undone, op) < 0)
                op_end(op, op->result, NULL);
}

static void create_done(int result, void *userdata)
{
        struct task_op *op = userdata;
        if (result < 0) {
                op_undo_later(op, result, create_undo);
                return;
        }
        shim_events_task_create(op->ts->events, op->id, op->bundle, 0);
        Containerd__Task__V2__CreateTaskResponse resp =
            CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
        op_end(op, 0, &resp.base);
}

/* The container's devices are in the guest: the guest container is created on them. */
static void create_attached(int result, const struct sandbox_disks *d, void *userdata)
{
        struct task_op *op = userdata;
        struct pod *p = sandbox_pod(op->ts->sb);
        struct container *c = p ? pod_container(p, op->id) : NULL;
        if (result == 0 && !c)
                result = -ENOENT;
        if (result == 0) {
                struct container_create_opts o = {
                    .id = op->id,
                    .bundle = op->bundle,
                    .io = {op->stdin_path, op->stdout_path, op->stderr_path, op->terminal},
                    .rootfs_path = d->rootfs_path,
                    .ro_layers = d->ro_layers,
                    .n_ro_layers = d->n_ro_layers,
                    .scratch = d->scratch,
                };
                result = container_create(c, &o, create_done, op);
                if (result == 0)
                        return;
        } else {
                op->what = "attach devices";
        }
        op_undo_later(op, result, create_undo); /* may be inside a device controller's callback */
}

static void create_vm_ready(int result, void *userdata)
{
        struct task_op *op = userdata;
        struct pod *p = sandbox_pod(op->ts->sb);
        struct container *c = NULL;
        if (result < 0) {
                op->what = "create sandbox vm";
                op_end(op, result, NULL);
                return;
        }
        result = p ? pod_new_container(p, op->id, &c) : -EBUSY;
        if (result < 0) {
                /* -EBUSY: the pod is migrating or gone with a stopped VM */
                op->what = result == -EEXIST ? "task already exists"
                                             : "the sandbox takes no new container now";
                op_end(op, result, NULL);
                return;
        }
        struct sandbox_mount m = {op->rootfs_type, op->rootfs_source, op->rootfs_options,
                                  op->n_rootfs_options};
        result =
            sandbox_attach(op->ts->sb, op->id, op->bundle, &m, op->has_rootfs, create_attached, op);
        if (result < 0) { /* refused before anything was attached: drop it at once */
                (void)pod_delete_container(p, op->id);
                op->what = result == -EINVAL ? sandbox_error(op->ts->sb) : "attach devices";
                op_end(op, result, NULL);
        }
}

static int check_create(const Containerd__Task__V2__CreateTaskRequest *req, const char **ret_msg)
{
        int r = wire_check_id(req->id);
        *ret_msg = "invalid task id";
        if (r < 0)
                return r;
        *ret_msg = "invalid path";
        const char *paths[] = {req->bundle, req->stdin, req->stdout, req->stderr};
        for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
                if ((r = wire_check_opt_path(paths[i])) < 0)
                        return r;
        *ret_msg = "checkpoint restore is not supported";
        if ((req->checkpoint && *req->checkpoint) ||
            (req->parent_checkpoint && *req->parent_checkpoint))
                return -EOPNOTSUPP;
        *ret_msg = "rootfs: one lcow-layer or bind mount at most";
        return req->n_rootfs > 1 ? -EINVAL : 0;
}

static int copy_rootfs(struct task_op *op, const Containerd__Task__V2__CreateTaskRequest *req)
{
        if (req->n_rootfs == 0)
                return 0;
        const Containerd__Task__V2__Mount *m = req->rootfs[0];
        op->has_rootfs = true;
        op->rootfs_type = strdup(m->type ? m->type : "");
        op->rootfs_source = strdup(m->source ? m->source : "");
        op->rootfs_options = calloc(m->n_options + 1, sizeof(char *));
        if (!op->rootfs_type || !op->rootfs_source || !op->rootfs_options)
                return -ENOMEM;
        for (; op->n_rootfs_options < m->n_options; op->n_rootfs_options++)
                if (!(op->rootfs_options[op->n_rootfs_options] =
                          strdup(m->options[op->n_rootfs_options] ?: "")))
                        return -ENOMEM;
        return 0;
}

static char *dup_opt(const char *s)
{
        return strdup(s ? s : "");
}

static struct task_op *create_op(struct task_service *ts, struct ttrpc_call *call,
                                 const Containerd__Task__V2__CreateTaskRequest *req)
{
        struct task_op *op = op_new(ts, call, req->id, "create container");
        if (!op)
                return NULL;
        op->bundle = dup_opt(req->bundle);
        op->stdin_path = dup_opt(req->stdin);
        op->stdout_path = dup_opt(req->stdout);
        op->stderr_path = dup_opt(req->stderr);
        op->terminal = req->terminal;
        if (!op->bundle || !op->stdin_path || !op->stdout_path || !op->stderr_path ||
            copy_rootfs(op, req) < 0) {
                op->call = NULL;
                op_free(op);
                return NULL;
        }
        return op;
}

static void h_create(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__CreateTaskRequest *req = (const void *)msg;
        const char *why;
        char source[TTRPC_ID_MAX + 2];
        int r = check_create(req, &why);
        if (r == 0) {
                int a = source_container_of(req->bundle, source, sizeof(source));
                if (a > 0) {
                        create_patch(ts, call, req, source);
                        return;
                }
                r = a;
                why = "unreadable bundle config.json";
        }
        struct pod *p = sandbox_pod(ts->sb);
        if (r == 0 && p && pod_container(p, req->id)) {
                r = -EEXIST;
                why = "task already exists";
        }
        struct task_op *op = r < 0 ? NULL : create_op(ts, call, req);
        if (r == 0 && !op) {
                r = -ENOMEM;
                why = "out of memory";
        }
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return;
        }
        /* the first task boots the VM when the Sandbox API was not used (ctr run) */
        r = sandbox_ensure_running(ts->sb, req->id, req->bundle, create_vm_ready, op);
        if (r < 0) {
                op->what = r == -EBUSY    ? "vm is not running"
                           : r == -EINVAL ? sandbox_error(ts->sb)
                                          : "create sandbox vm";
                op_end(op, r, NULL);
        }
}

/* -- Start -- */

/* The init's start publishes TaskStart, an exec's TaskExecStarted. */
static void start_done(int result, void *userdata)
{
        struct task_op *op = userdata;
        if (result < 0) {
                op_end(op, result, NULL);
                return;
        }
        if (is_exec(op->exec_id))
                publish_exec(op->ts, "/tasks/exec-started", op->id, op->exec_id, result);
        else
                shim_events_task_start(op->ts->events, op->id, (uint32_t)result);
        Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
        resp.pid = (uint32_t)result;
        op_end(op, 0, &resp.base);
}

static void h_start(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__StartRequest *req = (const void *)msg;
        bool exec = is_exec(req->exec_id);
        struct container *c = NULL;
        const char *why = NULL;
        int r = lookup_running(ts, req->id, req->exec_id, &c, &why);
        struct task_op *op =
            op_for(ts, call, req->id, exec ? "start exec" : "start container", &r, &why);
        if (op && exec) {
                ferry_strscpy(op->exec_id, req->exec_id, sizeof(op->exec_id));
                r = CTRL_ASK(process_start(proc_of(c, req->exec_id), start_done, op));
        } else if (op) {
                r = CTRL_ASK(container_start(c, start_done, op));
        }
        /* r == 0: done may already have run and freed op */
        if (op && r == -EBUSY)
                why = exec ? "exec is not in created state" : "task is not in created state";
        else if (op && r < 0)
                why = rejection(r, op->what);
        if (r < 0)
                op_refuse(call, op, r, why);
}

/* -- Kill -- */

static void kill_done(int result, void *userdata)
{
        /* the process may have exited between the call and the signal */
        if (result == -EALREADY || result == -ENOENT)
                result = 0;
        op_end(userdata, result, NULL);
}

static void h_kill(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__KillRequest *req = (const void *)msg;
        bool exec = is_exec(req->exec_id);
        struct target t;
        int r = target_find(ts, req->id, req->exec_id, &t);
        if (r == 0 && (req->signal == 0 || req->signal >= 65)) {
                r = -EINVAL;
                t.why = "invalid signal";
        }
        if (r == 0 && t.v.status == CONTAINERD__TASK__V2__STATUS__STOPPED) {
                r = -ENOENT; /* containerd's answer for a finished process */
                t.why = "process already finished";
        }
        if (r == 0)
                r = check_vm_running(ts, &t.why);
        struct task_op *op =
            op_for(ts, call, req->id, exec ? "signal exec" : "signal container", &r, &t.why);
        if (op) {
                r = CTRL_ASK(container_kill(t.c, exec ? req->exec_id : "", (int)req->signal,
                                            !exec && req->all, kill_done, op));
                /* r == 0: kill_done may already have run and freed op */
                if (r < 0)
                        t.why = rejection(r, op->what);
        }
        if (r < 0)
                op_refuse(call, op, r, t.why);
}

/* -- Delete -- */

/* Waits parked on a process of task id that will never report (an exec never started, which
 * the container frees with itself) end now: the pod is about to free their processes. */
static void drop_waits(struct task_service *ts, const char *id)
{
        for (struct task_wait *w = ts->waits; w; w = w->next) {
                if (!w->init || strcmp(w->id, id) != 0)
                        continue;
                if (w->call)
                        ttrpc_call_fail(TAKE_PTR(w->call), -ENOENT, "task deleted");
                w->init = NULL; /* stays listed until the service is freed */
        }
}

/* TaskDelete of the task or its exec, and the Delete's answer: what the op kept of the
 * process (its pid and exit). */
static void delete_reply(struct task_op *op)
{
        Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp t;
        shim_events_task_delete(op->ts->events, op->id, is_exec(op->exec_id) ? op->exec_id : NULL,
                                op->pid, op->exit_status, op->exited_at_ns);
        wire_timestamp(&t, op->exited_at_ns);
        resp.pid = op->pid;
        resp.exit_status = op->exit_status;
        resp.exited_at = &t;
        op_end(op, 0, &resp.base);
}

/* The container is gone from the guest and its devices are released (or the VM is gone with
 * both): the pod drops it. */
static void delete_finish(struct task_op *op)
{
        struct task_service *ts = op->ts;
        struct pod *p = sandbox_pod(ts->sb);
        drop_waits(ts, op->id);
        if (p)
                (void)pod_delete_container(p, op->id);
        delete_reply(op);
}

static void delete_released(int result, void *userdata)
{
        struct task_op *op = userdata;
        if (result < 0) { /* kept: a retried Delete releases the rest */
                op->what = "release the task's devices";
                op_end(op, result, NULL);
                return;
        }
        delete_finish(op);
}

/* Releases the devices the container held (its layers, shares and assigned devices). */
static void delete_release(struct task_op *op)
{
        int r = CTRL_ASK(sandbox_detach(op->ts->sb, op->id, delete_released, op));
        if (r < 0) {
                op->what = rejection(r, "release the task's devices");
                op_end(op, r, NULL);
        }
}

static void delete_done(int result, void *userdata)
{
        struct task_op *op = userdata;
        if (result < 0 && result != -ENOENT && result != -ENOTCONN) {
                op_end(op, result, NULL);
                return;
        }
        op_defer(op, delete_release);
}

static void exec_delete_done(int result, void *userdata)
{
        struct task_op *op = userdata;
        if (result < 0) {
                op_end(op, result, NULL);
                return;
        }
        delete_reply(op);
}

/* Delete of an exec: the container drops its process (created or stopped only). */
static void delete_exec(struct task_op *op, struct container *c, const char *exec_id)
{
        ferry_strscpy(op->exec_id, exec_id, sizeof(op->exec_id));
        op->what = "delete exec";
        int r = CTRL_ASK(container_delete_exec(c, exec_id, exec_delete_done, op));
        if (r < 0)
                op_reject(op, r);
}

static void h_delete(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__DeleteRequest *req = (const void *)msg;
        struct target t;
        int r = target_find(ts, req->id, req->exec_id, &t);
        if (r == 0 && t.v.status == CONTAINERD__TASK__V2__STATUS__RUNNING) {
                r = -EBUSY;
                t.why = is_exec(req->exec_id) ? "cannot delete a running exec"
                                              : "cannot delete a running task";
        }
        struct task_op *op = op_for(ts, call, req->id, "delete container", &r, &t.why);
        if (!op) {
                ttrpc_call_fail(call, r, t.why);
                return;
        }
        struct container *c = t.c; /* found: the op exists */
        op->pid = t.v.pid;
        op->exit_status = t.v.exit_status; /* a created task ends with 0 */
        op->exited_at_ns = t.v.exited_at_ns ? t.v.exited_at_ns : ferry_wall_ns();
        /* A VM that is gone (stopped, or this side's copy after a migration) has no guest
         * container left to release: the pod just drops the container. The container would
         * try its guest (a torn-down source keeps its guest binding). */
        if (sandbox_exited(ts->sb, NULL)) {
                op_defer(op, delete_release);
                return;
        }
        if (is_exec(req->exec_id)) {
                delete_exec(op, c, req->exec_id);
                return;
        }
        /* a migrated container's layers were attached by the source: tracked from now on */
        r = CTRL_ASK(sandbox_adopt(ts->sb, c));
        /* a Delete retried after its devices failed to release: the guest part is done */
        if (r == 0 && container_is_ended(c) && strcmp(container_state_name(c), "deleted") == 0) {
                op_defer(op, delete_release);
                return;
        }
        if (r == 0)
                r = CTRL_ASK(container_delete(c, delete_done, op));
        if (r < 0)
                op_reject(op, r);
}

/* -- State, Wait, Pids -- */

static void h_state(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__StateRequest *req = (const void *)msg;
        struct target t;
        int r = target_find(ts, req->id, req->exec_id, &t);
        if (r < 0) {
                ttrpc_call_fail(call, r, t.why);
                return;
        }
        struct container *c = t.c;
        const struct task_view *v = &t.v;
        struct process *init = proc_of(c, req->exec_id);
        struct process_io io = {"", "", "", false};
        if (init)
                process_io(init, &io);
        Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts_exit;
        resp.id = (char *)(is_exec(req->exec_id) ? req->exec_id : container_id(c));
        resp.exec_id = (char *)(req->exec_id ? req->exec_id : "");
        resp.bundle = (char *)(init ? process_bundle(init) : "");
        resp.pid = v->pid;
        resp.status = v->status;
        resp.stdin = (char *)io.stdin_path;
        resp.stdout = (char *)io.stdout_path;
        resp.stderr = (char *)io.stderr_path;
        resp.terminal = io.terminal;
        resp.exit_status = v->exit_status;
        if (v->status == CONTAINERD__TASK__V2__STATUS__STOPPED) {
                wire_timestamp(&ts_exit, v->exited_at_ns);
                resp.exited_at = &ts_exit;
        }
        ttrpc_call_reply(call, &resp.base);
}

/* The client went away: the parked Wait is answered now; its entry stays until the init
 * reports (the process holds it). */
static void wait_cancelled(struct ttrpc_call *call, void *userdata)
{
        struct task_wait *w = userdata;
        ttrpc_call_fail(call, -ECANCELED, "wait cancelled");
        w->call = NULL;
}

static void h_wait(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__WaitRequest *req = (const void *)msg;
        struct container *c = lookup_or_fail(ts, call, req->id, req->exec_id);
        if (!c)
                return;
        struct task_view v;
        proc_view(ts, c, req->exec_id, &v);
        struct process *init = proc_of(c, req->exec_id);
        if (v.status == CONTAINERD__TASK__V2__STATUS__STOPPED || !init) {
                reply_wait(call, v.exit_status, v.exited_at_ns ? v.exited_at_ns : ferry_wall_ns());
                return;
        }
        struct task_wait *w = calloc(1, sizeof(*w));
        if (!w) {
                ttrpc_call_fail(call, -ENOMEM, "out of memory");
                return;
        }
        *w = (struct task_wait){.call = call, .ts = ts, .init = init, .next = ts->waits};
        ferry_strscpy(w->id, req->id, sizeof(w->id));
        ts->waits = w;
        ttrpc_call_on_cancel(call, wait_cancelled, w);
        int r = process_wait(init, on_init_exit, w);
        if (r < 0) {
                if (w->call)
                        ttrpc_call_fail(TAKE_PTR(w->call), r, "wait");
                wait_unlist(w);
        }
}

static void h_pids(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__PidsRequest *req = (const void *)msg;
        struct container *c = NULL;
        const char *why = NULL;
        int r = lookup_running(ts, req->id, NULL, &c, &why);
        /* the container's gate: only a running container lists its process */
        int gate = r < 0 ? r : CTRL_ASK(container_inspect(c));
        if (r == 0 && gate < 0 && (gate != -EBUSY || container_is_frozen(c))) {
                r = gate;
                why = rejection(gate, "pids");
        }
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return;
        }
        Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
        Containerd__Task__V2__ProcessInfo pi = CONTAINERD__TASK__V2__PROCESS_INFO__INIT;
        Containerd__Task__V2__ProcessInfo *list[1] = {&pi};
        if (gate == 0) {
                pi.pid = (uint32_t)container_pid(c);
                resp.n_processes = 1;
                resp.processes = list;
        }
        ttrpc_call_reply(call, &resp.base);
}

/* -- CloseIO, ResizePty: the init process's -- */

/* Checks common to CloseIO and ResizePty; *ret_op is a new op for the init's call. */
static int io_call(struct task_service *ts, struct ttrpc_call *call, const char *id,
                   const char *exec_id, const char *what, struct process **ret_init,
                   struct task_op **ret_op, const char **ret_msg)
{
        struct container *c = NULL;
        int r = lookup_running(ts, id, exec_id, &c, ret_msg);
        if (r == 0 && !(*ret_init = proc_of(c, exec_id))) {
                r = -ENOENT;
                *ret_msg = "task not found";
        }
        *ret_op = op_for(ts, call, id, what, &r, ret_msg);
        return r;
}

static void h_close_io(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__CloseIORequest *req = (const void *)msg;
        struct process *init = NULL;
        struct task_op *op = NULL;
        const char *why = NULL;
        int r = io_call(ts, call, req->id, req->exec_id, "close io", &init, &op, &why);
        if (r == 0 && (r = CTRL_ASK(process_close_io(init, op_done_empty, op))) < 0)
                why = rejection(r, "close io");
        if (r < 0)
                op_refuse(call, op, r, why);
}

static void h_resize_pty(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__ResizePtyRequest *req = (const void *)msg;
        struct process *init = NULL;
        struct task_op *op = NULL;
        const char *why = NULL;
        int r = 0;
        if (req->width == 0 || req->height == 0 || req->width > 65535 || req->height > 65535) {
                r = -EINVAL;
                why = "invalid console size";
        }
        if (r == 0)
                r = io_call(ts, call, req->id, req->exec_id, "resize pty", &init, &op, &why);
        /* the process's answer: a running terminal only (failed_precondition otherwise) */
        if (r == 0 &&
            (r = CTRL_ASK(process_resize(init, req->width, req->height, op_done_empty, op))) < 0)
                why = r == -EBUSY ? "task has no running terminal" : rejection(r, "resize pty");
        if (r < 0)
                op_refuse(call, op, r, why);
}

/* -- Exec -- */

#define EXEC_SPEC_MAX (1u << 20)

static void exec_dropped(int result, void *userdata)
{
}

/* A failed exec create: the container drops the exec again (outside its transition). */
static void exec_undo(struct task_op *op)
{
        struct container *c = task_find(op->ts, op->id);
        if (c)
                (void)container_delete_exec(c, op->exec_id, exec_dropped, NULL);
        op_end(op, op->result, NULL);
}

static void exec_created(int result, void *userdata)
{
        struct task_op *op = userdata;
        if (result < 0) {
                op_undo_later(op, result, exec_undo);
                return;
        }
        publish_exec(op->ts, "/tasks/exec-added", op->id, op->exec_id, -1);
        op_end(op, 0, NULL);
}

/* The exec's OCI process spec (Any.value: JSON), NUL-terminated in *ret; NULL when absent.
 * -EINVAL: over 1 MiB, or not a JSON object. */
static int exec_spec(const Containerd__Task__V2__ExecProcessRequest *req, char **ret)
{
        *ret = NULL;
        if (!req->spec || req->spec->value.len == 0)
                return 0;
        if (req->spec->value.len > EXEC_SPEC_MAX)
                return -EINVAL;
        char *json = strndup((const char *)req->spec->value.data, req->spec->value.len);
        if (!json)
                return -ENOMEM;
        struct json_object *o = json_tokener_parse(json);
        bool ok = o && json_object_is_type(o, json_type_object);
        json_object_put(o);
        if (!ok) {
                free(json);
                return -EINVAL;
        }
        *ret = json;
        return 0;
}

static int check_exec(struct task_service *ts, const Containerd__Task__V2__ExecProcessRequest *req,
                      struct container **ret, const char **ret_msg)
{
        int r = lookup(ts, req->id, NULL, ret, ret_msg);
        if (r < 0)
                return r;
        *ret_msg = "invalid exec id";
        if (!is_exec(req->exec_id) || (r = wire_check_id(req->exec_id)) < 0)
                return r < 0 ? r : -EINVAL;
        *ret_msg = "invalid path";
        const char *paths[] = {req->stdin, req->stdout, req->stderr};
        for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
                if ((r = wire_check_opt_path(paths[i])) < 0)
                        return r;
        *ret_msg = "exec already exists";
        if (container_process(*ret, req->exec_id))
                return -EEXIST;
        struct task_view v;
        task_view(ts, *ret, &v);
        *ret_msg = "task is not running";
        if (v.status != CONTAINERD__TASK__V2__STATUS__RUNNING)
                return -EBUSY;
        return check_vm_running(ts, ret_msg);
}

/* Exec: a new process in a running task's container (process controller, spec/process.yaml),
 * created with its stdio; Start with its exec id runs it in the guest. */
static void h_exec(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__ExecProcessRequest *req = (const void *)msg;
        struct container *c = NULL;
        const char *why = NULL;
        char *spec = NULL;
        int r = check_exec(ts, req, &c, &why);
        if (r == 0 && (r = exec_spec(req, &spec)) < 0)
                why = "spec: not a JSON process spec of at most 1 MiB";
        struct task_op *op = op_for(ts, call, req->id, "exec", &r, &why);
        if (!op) {
                free(spec);
                ttrpc_call_fail(call, r, why);
                return;
        }
        ferry_strscpy(op->exec_id, req->exec_id, sizeof(op->exec_id));
        op->spec_json = spec;
        r = CTRL_ASK(container_exec(c, req->exec_id));
        if (r < 0) {
                op_reject(op, r);
                return;
        }
        struct process_create_opts o = {
            .bundle = process_bundle(container_process(c, "")),
            .io = {req->stdin, req->stdout, req->stderr, req->terminal},
            .spec_json = op->spec_json,
        };
        r = CTRL_ASK(process_create(container_process(c, req->exec_id), &o, exec_created, op));
        if (r < 0) {
                op->result = r;
                op->what = rejection(r, op->what);
                exec_undo(op);
        }
}

/* -- Connect, Shutdown -- */

static void h_connect(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__ConnectRequest *req = (const void *)msg;
        struct container *c = lookup_or_fail(ts, call, req->id, NULL);
        if (!c)
                return;
        int64_t pid = container_pid(c);
        Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
        resp.shim_pid = (uint32_t)getpid();
        resp.task_pid = pid > 0 ? (uint32_t)pid : 0;
        resp.version = FERRY_SHIM_VERSION;
        ttrpc_call_reply(call, &resp.base);
}

static void h_shutdown(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__ShutdownRequest *req = (const void *)msg;
        /* containerd calls Shutdown after each Delete: the shim stays while tasks remain */
        bool leave = req->now || task_service_count(ts) == 0;
        ttrpc_call_reply(call, NULL);
        if (leave && ts->shutdown)
                ts->shutdown(ts->shutdown_userdata);
}

/* In the descriptor's method order (task.proto); NULL answers UNIMPLEMENTED, as the
 * runtime-v2 contract asks of a shim that does not implement a call. */
static const struct ttrpc_method task_methods[] = {
    {h_state, TTRPC_UNARY},        /* State */
    {h_create, TTRPC_UNARY},       /* Create */
    {h_start, TTRPC_UNARY},        /* Start */
    {h_delete, TTRPC_UNARY},       /* Delete */
    {h_pids, TTRPC_UNARY},         /* Pids */
    {task_vm_pause, TTRPC_UNARY},  /* Pause: task_vm.c */
    {task_vm_resume, TTRPC_UNARY}, /* Resume: task_vm.c */
    {NULL, TTRPC_UNARY},           /* Checkpoint */
    {h_kill, TTRPC_UNARY},         /* Kill */
    {h_exec, TTRPC_UNARY},         /* Exec */
    {h_resize_pty, TTRPC_UNARY},   /* ResizePty */
    {h_close_io, TTRPC_UNARY},     /* CloseIO */
    {NULL, TTRPC_UNARY},           /* Update */
    {h_wait, TTRPC_UNARY},         /* Wait */
    {task_vm_stats, TTRPC_UNARY},  /* Stats: task_vm.c */
    {h_connect, TTRPC_UNARY},      /* Connect */
    {h_shutdown, TTRPC_UNARY},     /* Shutdown */
};

int task_service_new(struct sandbox *sb, struct shim_events *events, void (*shutdown)(void *),
                     void *shutdown_userdata, struct task_service **ret)
{
        struct task_service *ts = calloc(1, sizeof(*ts));
        if (!ts)
                return -ENOMEM;
        *ts = (struct task_service){.sb = sb,
                                    .events = events,
                                    .shutdown = shutdown,
                                    .shutdown_userdata = shutdown_userdata};
        int r = sandbox_on_exit(sb, on_sandbox_exit, ts);
        if (r < 0) {
                free(ts);
                return r;
        }
        *ret = ts;
        return 0;
}

int task_service_register(struct ttrpc_server *srv, struct task_service *ts)
{
        return ttrpc_server_register(srv, &containerd__task__v2__task__descriptor, task_methods,
                                     ARRAY_SIZE(task_methods), ts);
}

struct task_service *task_service_free(struct task_service *ts)
{
        if (!ts)
                return NULL;
        while (ts->waits) {
                struct task_wait *w = ts->waits;
                ts->waits = w->next;
                if (w->call)
                        ttrpc_call_fail(w->call, -ECANCELED, "shim shutting down");
                free(w);
        }
        /* calls whose controller went with the sandbox (never answered) */
        while (ts->ops) {
                struct task_op *op = ts->ops;
                op->what = "shim shutting down";
                op_end(op, -ECANCELED, NULL);
        }
        free(ts);
        return NULL;
}

size_t task_service_count(const struct task_service *ts)
{
        struct pod *p = ts ? sandbox_pod(ts->sb) : NULL;
        return p ? pod_container_count(p) : 0;
}

void task_service_set_migration(struct task_service *ts, struct mig_session *s)
{
        ts->mig = s;
}

struct sandbox *task_service_sandbox(const struct task_service *ts)
{
        return ts->sb;
}

struct mig_session *task_service_migration(const struct task_service *ts)
{
        return ts->mig;
}
