/* SPDX-License-Identifier: MIT */
/* The Task service. Each task is one container and its init process in the sandbox's guest.
 *
 * Until the container and process controllers (src/ctrl/container, src/ctrl/process) are
 * wired in, the handlers call the guest bridge directly and keep the task's containerd-facing
 * status (created, running, stopped) here. Every guest call that is in flight holds a
 * reference on its task, so a Delete or a shutdown never frees a task under a callback. */
#include "service/task.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sys/stat.h>

#include "guest/guest.h"
#include "migration/session.h"
#include "rpc/ttrpc.h"
#include "sandbox.pb-c.h"
#include "service/events.h"
#include "service/sandbox.h"
#include "service/wire.h"
#include "task.pb-c.h"
#include "util/util.h"

#define FERRY_SHIM_VERSION "ferry-shim 0.1.0"

struct task;

/* A Wait call parked until the task exits; call NULL once the client went away. */
struct task_wait {
        struct ttrpc_call *call;
        struct task *task;
        struct task_wait *next;
};

struct task {
        struct task *next;
        struct task_service *ts;
        unsigned refs;  /* the list's and each guest call's */
        bool listed;    /* still in ts->tasks */
        bool busy;      /* a Create/Start/Kill/Delete is in flight */
        bool watching;  /* an exit watch is armed in the guest */
        bool unpatched; /* imported on a destination, waiting for its patch */
        char id[TTRPC_ID_MAX + 1];
        char *bundle, *stdin_path, *stdout_path, *stderr_path;
        bool terminal;
        Containerd__Task__V2__Status status;
        uint32_t pid;
        uint32_t exit_status;
        uint64_t exited_at_ns;
        struct task_wait *waits;
        struct ttrpc_call *call; /* the call in flight (busy) */
};

struct task_service {
        struct sandbox *sb;
        struct shim_events *events;
        void (*shutdown)(void *);
        void *shutdown_userdata;
        struct task *tasks;
        size_t n_tasks;
        struct mig_session *mig; /* may be NULL */
};

/* -- tasks -- */

static struct task *task_ref(struct task *t)
{
        t->refs++;
        return t;
}

static void task_unref(struct task *t)
{
        if (--t->refs)
                return;
        free(t->bundle);
        free(t->stdin_path);
        free(t->stdout_path);
        free(t->stderr_path);
        free(t);
}

static struct task *task_find(struct task_service *ts, const char *id)
{
        for (struct task *t = ts->tasks; t; t = t->next)
                if (strcmp(t->id, id) == 0)
                        return t;
        return NULL;
}

static void task_unlist(struct task *t)
{
        struct task_service *ts = t->ts;
        for (struct task **pp = &ts->tasks; *pp; pp = &(*pp)->next) {
                if (*pp == t) {
                        *pp = t->next;
                        t->listed = false;
                        ts->n_tasks--;
                        task_unref(t);
                        return;
                }
        }
}

static char *dup_opt(const char *s)
{
        return strdup(s ? s : "");
}

static int task_add(struct task_service *ts, const Containerd__Task__V2__CreateTaskRequest *req,
                    struct task **ret)
{
        struct task *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->ts = ts;
        t->refs = 1;
        t->listed = true;
        ferry_strscpy(t->id, req->id, sizeof(t->id));
        t->bundle = dup_opt(req->bundle);
        t->stdin_path = dup_opt(req->stdin);
        t->stdout_path = dup_opt(req->stdout);
        t->stderr_path = dup_opt(req->stderr);
        t->terminal = req->terminal;
        t->status = CONTAINERD__TASK__V2__STATUS__UNKNOWN;
        if (!t->bundle || !t->stdin_path || !t->stdout_path || !t->stderr_path) {
                task_unref(t);
                return -ENOMEM;
        }
        t->next = ts->tasks;
        ts->tasks = t;
        ts->n_tasks++;
        *ret = t;
        return 0;
}

static void task_begin(struct task *t, struct ttrpc_call *call)
{
        t->busy = true;
        t->call = call;
        task_ref(t);
}

/* Ends the call in flight with err (0: reply resp) and drops the call's reference. */
static void task_end(struct task *t, int err, const char *msg, const ProtobufCMessage *resp)
{
        struct ttrpc_call *call = TAKE_PTR(t->call);
        t->busy = false;
        if (err < 0)
                ttrpc_call_fail(call, err, msg);
        else
                ttrpc_call_reply(call, resp);
        task_unref(t);
}

/* -- exits -- */

static void reply_wait(struct ttrpc_call *call, const struct task *t)
{
        Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts;
        wire_timestamp(&ts, t->exited_at_ns);
        resp.exit_status = t->exit_status;
        resp.exited_at = &ts;
        ttrpc_call_reply(call, &resp.base);
}

static void task_exited(struct task *t, uint32_t exit_status)
{
        if (t->status == CONTAINERD__TASK__V2__STATUS__STOPPED)
                return;
        t->status = CONTAINERD__TASK__V2__STATUS__STOPPED;
        t->exit_status = exit_status;
        t->exited_at_ns = shim_wall_ns();
        shim_events_task_exit(t->ts->events, t->id, NULL, t->pid, exit_status, t->exited_at_ns);
        while (t->waits) {
                struct task_wait *w = t->waits;
                t->waits = w->next;
                if (w->call)
                        reply_wait(w->call, t);
                free(w);
        }
}

static void on_process_exit(int result, uint32_t pid, int exit_code, void *userdata)
{
        struct task *t = userdata;
        t->watching = false;
        /* A wait that ended without an exit (the bridge closed or was rebound by a migration)
         * is not an exit: the VM's own exit, or a migration's teardown, ends the task. */
        if (t->listed && result == 0)
                task_exited(t, (uint32_t)exit_code);
        task_unref(t);
}

static int task_watch(struct task *t)
{
        struct guest_conn *g = sandbox_guest(t->ts->sb);
        if (t->watching)
                return 0;
        int r = g ? guest_wait_process(g, t->pid, on_process_exit, task_ref(t)) : -ENOTCONN;
        if (r < 0) {
                task_unref(t);
                return r;
        }
        t->watching = true;
        return 0;
}

/* The VM stopped: every task still running is gone with it. */
static void on_sandbox_exit(uint32_t exit_status, uint64_t exited_at_ns, void *userdata)
{
        struct task_service *ts = userdata;
        for (struct task *t = ts->tasks; t; t = t->next)
                if (t->status == CONTAINERD__TASK__V2__STATUS__RUNNING)
                        task_exited(t, 255);
}

/* -- request checks -- */

/* Looks the request's task up: id must pass the id grammar, exec_id must be empty (the init
 * process; execs are not served), and the task must exist and be idle. */
static int lookup(struct task_service *ts, const char *id, const char *exec_id, bool idle,
                  struct task **ret, const char **ret_msg)
{
        int r = wire_check_id(id);
        if (r < 0) {
                *ret_msg = "invalid task id";
                return r;
        }
        if (exec_id && *exec_id) {
                *ret_msg = "exec processes are not supported";
                return -ENOENT;
        }
        struct task *t = task_find(ts, id);
        if (!t || t->unpatched) {
                *ret_msg = "task not found";
                return -ENOENT;
        }
        if (idle && t->busy) {
                *ret_msg = "another call on this task is in flight";
                return -EAGAIN;
        }
        *ret = t;
        return 0;
}

static struct guest_conn *running_guest(struct task_service *ts, int *ret_err, const char **ret_msg)
{
        struct guest_conn *g = sandbox_guest(ts->sb);
        if (!g) {
                *ret_err = -EBUSY;
                *ret_msg = "vm is not running";
        }
        return g;
}

/* A migration session that is not idle blocks State, Kill and Delete (§B.7). */
static int check_idle(const struct task_service *ts, char *buf, size_t size, const char **ret_msg)
{
        if (!ts->mig || strcmp(mig_session_state_name(ts->mig), "idle") == 0)
                return 0;
        ferry_bprintf(buf, size, "migration session is in progress (state: %s)",
                      mig_session_state_name(ts->mig));
        *ret_msg = buf;
        return -EBUSY;
}

/* Pids, CloseIO and ResizePty need the VM running (§B.7's ensureVMRunning). */
static int check_vm_running(const struct task_service *ts, const char **ret_msg)
{
        if (sandbox_running(ts->sb))
                return 0;
        *ret_msg = "vm is not running";
        return -EBUSY;
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
 * the imported task, which answers with its pid. */
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
        struct task *t = task_find(ts, req->id);
        Containerd__Task__V2__CreateTaskResponse resp =
            CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
        resp.pid = t ? t->pid : 0;
        ttrpc_call_reply(call, &resp.base);
}

static void create_done(int result, uint64_t value, void *userdata)
{
        struct task *t = userdata;
        if (result < 0) {
                task_unlist(t);
                task_end(t, result, "create container", NULL);
                return;
        }
        t->status = CONTAINERD__TASK__V2__STATUS__CREATED;
        shim_events_task_create(t->ts->events, t->id, t->bundle, t->pid);
        Containerd__Task__V2__CreateTaskResponse resp =
            CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
        resp.pid = t->pid;
        task_end(t, 0, NULL, &resp.base);
}

static void create_vm_ready(int result, void *userdata)
{
        struct task *t = userdata;
        const char *msg = "create container";
        struct guest_conn *g = result < 0 ? NULL : running_guest(t->ts, &result, &msg);
        if (g)
                result = guest_create_container(g, t->id, create_done, t);
        if (result < 0) {
                task_unlist(t);
                task_end(t, result, result == -EBUSY ? msg : "create sandbox vm", NULL);
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
        return 0;
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
        if (r == 0 && task_find(ts, req->id)) {
                r = -EEXIST;
                why = "task already exists";
        }
        struct task *t = NULL;
        if (r == 0 && (r = task_add(ts, req, &t)) < 0)
                why = "out of memory";
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return;
        }
        task_begin(t, call);
        /* the first task boots the VM when the Sandbox API was not used (ctr run) */
        r = sandbox_ensure_running(ts->sb, req->id, req->bundle, create_vm_ready, t);
        if (r < 0) {
                task_unlist(t);
                task_end(t, r, r == -EBUSY ? "vm is not running" : "create sandbox vm", NULL);
        }
}

/* -- Start -- */

static void start_done(int result, uint64_t pid, void *userdata)
{
        struct task *t = userdata;
        if (result < 0) {
                task_end(t, result, "start container", NULL);
                return;
        }
        t->pid = (uint32_t)pid;
        t->status = CONTAINERD__TASK__V2__STATUS__RUNNING;
        if (task_watch(t) < 0) /* no exit watch: the process cannot be followed */
                task_exited(t, 255);
        shim_events_task_start(t->ts->events, t->id, t->pid);
        Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
        resp.pid = t->pid;
        task_end(t, 0, NULL, &resp.base);
}

static void h_start(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__StartRequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        int r = lookup(ts, req->id, req->exec_id, true, &t, &why);
        if (r == 0 && t->status != CONTAINERD__TASK__V2__STATUS__CREATED) {
                r = -EBUSY;
                why = "task is not in created state";
        }
        struct guest_conn *g = r < 0 ? NULL : running_guest(ts, &r, &why);
        if (g) {
                task_begin(t, call);
                r = guest_start_container(g, t->id, start_done, t);
                if (r < 0) {
                        task_end(t, r, "start container", NULL);
                        return;
                }
        }
        if (r < 0)
                ttrpc_call_fail(call, r, why);
}

/* -- Kill -- */

static void kill_done(int result, uint64_t value, void *userdata)
{
        struct task *t = userdata;
        /* the process may have exited between the call and the signal */
        if (result == -EALREADY || result == -ENOENT)
                result = 0;
        task_end(t, result, "signal container", NULL);
}

static void h_kill(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__KillRequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        char buf[128];
        int r = lookup(ts, req->id, req->exec_id, true, &t, &why);
        if (r == 0)
                r = check_idle(ts, buf, sizeof(buf), &why);
        if (r == 0 && (req->signal == 0 || req->signal >= 65)) {
                r = -EINVAL;
                why = "invalid signal";
        }
        if (r == 0 && t->status == CONTAINERD__TASK__V2__STATUS__STOPPED) {
                r = -ENOENT;
                why = "process already finished";
        }
        if (r == 0 && t->status == CONTAINERD__TASK__V2__STATUS__CREATED) {
                /* never started: nothing runs to receive the signal; it is now stopped */
                task_exited(t, 128 + req->signal);
                ttrpc_call_reply(call, NULL);
                return;
        }
        struct guest_conn *g = r < 0 ? NULL : running_guest(ts, &r, &why);
        if (g) {
                task_begin(t, call);
                r = guest_signal_container(g, t->id, (int)req->signal, kill_done, t);
                if (r < 0) {
                        task_end(t, r, "signal container", NULL);
                        return;
                }
        }
        if (r < 0)
                ttrpc_call_fail(call, r, why);
}

/* -- Delete -- */

static void delete_finish(struct task *t)
{
        shim_events_task_delete(t->ts->events, t->id, NULL, t->pid, t->exit_status,
                                t->exited_at_ns);
        Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts;
        wire_timestamp(&ts, t->exited_at_ns);
        resp.pid = t->pid;
        resp.exit_status = t->exit_status;
        resp.exited_at = &ts;
        task_unlist(t);
        task_end(t, 0, NULL, &resp.base);
}

static void delete_done(int result, uint64_t value, void *userdata)
{
        struct task *t = userdata;
        if (result < 0 && result != -ENOENT && result != -ENOTCONN) {
                task_end(t, result, "delete container", NULL);
                return;
        }
        delete_finish(t); /* gone from the guest, or the guest is gone */
}

static void h_delete(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__DeleteRequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        char buf[128];
        int r = lookup(ts, req->id, req->exec_id, true, &t, &why);
        if (r == 0)
                r = check_idle(ts, buf, sizeof(buf), &why);
        if (r == 0 && t->status == CONTAINERD__TASK__V2__STATUS__RUNNING) {
                r = -EBUSY;
                why = "cannot delete a running task";
        }
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return;
        }
        if (t->status == CONTAINERD__TASK__V2__STATUS__CREATED) {
                t->status = CONTAINERD__TASK__V2__STATUS__STOPPED;
                t->exited_at_ns = shim_wall_ns();
        }
        task_begin(t, call);
        struct guest_conn *g = sandbox_guest(ts->sb);
        r = g ? guest_delete_container(g, t->id, delete_done, t) : -ENOTCONN;
        if (r < 0)
                delete_done(r, 0, t);
}

/* -- State, Wait, Pids -- */

static void h_state(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__StateRequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        char buf[128];
        int r = lookup(ts, req->id, req->exec_id, false, &t, &why);
        if (r == 0)
                r = check_idle(ts, buf, sizeof(buf), &why);
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return;
        }
        Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts_exit;
        resp.id = t->id;
        resp.bundle = t->bundle;
        resp.pid = t->pid;
        resp.status = t->status;
        resp.stdin = t->stdin_path;
        resp.stdout = t->stdout_path;
        resp.stderr = t->stderr_path;
        resp.terminal = t->terminal;
        resp.exit_status = t->exit_status;
        if (t->status == CONTAINERD__TASK__V2__STATUS__STOPPED) {
                wire_timestamp(&ts_exit, t->exited_at_ns);
                resp.exited_at = &ts_exit;
        }
        ttrpc_call_reply(call, &resp.base);
}

/* The client went away: the parked Wait leaves its task's list at once, so clients that
 * park and vanish cannot grow it without bound. */
static void wait_cancelled(struct ttrpc_call *call, void *userdata)
{
        struct task_wait *w = userdata;
        ttrpc_call_fail(call, -ECANCELED, "wait cancelled");
        for (struct task_wait **pp = &w->task->waits; *pp; pp = &(*pp)->next) {
                if (*pp == w) {
                        *pp = w->next;
                        free(w);
                        return;
                }
        }
        w->call = NULL; /* not listed (cannot happen): freed with the list */
}

static void h_wait(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__WaitRequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        int r = lookup(ts, req->id, req->exec_id, false, &t, &why);
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return;
        }
        if (t->status == CONTAINERD__TASK__V2__STATUS__STOPPED) {
                reply_wait(call, t);
                return;
        }
        struct task_wait *w = calloc(1, sizeof(*w));
        if (!w) {
                ttrpc_call_fail(call, -ENOMEM, "out of memory");
                return;
        }
        *w = (struct task_wait){call, t, t->waits};
        t->waits = w;
        ttrpc_call_on_cancel(call, wait_cancelled, w);
}

static void h_pids(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__PidsRequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        int r = lookup(ts, req->id, NULL, false, &t, &why);
        if (r == 0)
                r = check_vm_running(ts, &why);
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return;
        }
        Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
        Containerd__Task__V2__ProcessInfo pi = CONTAINERD__TASK__V2__PROCESS_INFO__INIT;
        Containerd__Task__V2__ProcessInfo *list[1] = {&pi};
        if (t->status == CONTAINERD__TASK__V2__STATUS__RUNNING) {
                pi.pid = t->pid;
                resp.n_processes = 1;
                resp.processes = list;
        }
        ttrpc_call_reply(call, &resp.base);
}

/* -- CloseIO, ResizePty: the sim guest has no stdio relay yet; accepted for known tasks -- */

static void h_close_io(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__CloseIORequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        int r = lookup(ts, req->id, req->exec_id, false, &t, &why);
        if (r == 0)
                r = check_vm_running(ts, &why);
        if (r < 0)
                ttrpc_call_fail(call, r, why);
        else
                ttrpc_call_reply(call, NULL);
}

static void h_resize_pty(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__ResizePtyRequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        int r = lookup(ts, req->id, req->exec_id, false, &t, &why);
        if (r == 0)
                r = check_vm_running(ts, &why);
        if (r == 0 && !t->terminal) {
                r = -EBUSY;
                why = "task has no terminal";
        }
        if (r == 0 &&
            (req->width == 0 || req->height == 0 || req->width > 65535 || req->height > 65535)) {
                r = -EINVAL;
                why = "invalid console size";
        }
        if (r < 0)
                ttrpc_call_fail(call, r, why);
        else
                ttrpc_call_reply(call, NULL);
}

/* -- Connect, Shutdown -- */

static void h_connect(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__ConnectRequest *req = (const void *)msg;
        struct task *t = NULL;
        const char *why = NULL;
        int r = lookup(ts, req->id, NULL, false, &t, &why);
        if (r < 0) {
                ttrpc_call_fail(call, r, why);
                return;
        }
        Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
        resp.shim_pid = (uint32_t)getpid();
        resp.task_pid = t->pid;
        resp.version = FERRY_SHIM_VERSION;
        ttrpc_call_reply(call, &resp.base);
}

static void h_shutdown(struct ttrpc_call *call, const ProtobufCMessage *msg, void *ud)
{
        struct task_service *ts = ud;
        const Containerd__Task__V2__ShutdownRequest *req = (const void *)msg;
        /* containerd calls Shutdown after each Delete: the shim stays while tasks remain */
        bool leave = req->now || ts->n_tasks == 0;
        ttrpc_call_reply(call, NULL);
        if (leave && ts->shutdown)
                ts->shutdown(ts->shutdown_userdata);
}

/* In the descriptor's method order (task.proto); NULL answers UNIMPLEMENTED, as the
 * runtime-v2 contract asks of a shim that does not implement a call. */
static const struct ttrpc_method task_methods[] = {
    {h_state, TTRPC_UNARY},      /* State */
    {h_create, TTRPC_UNARY},     /* Create */
    {h_start, TTRPC_UNARY},      /* Start */
    {h_delete, TTRPC_UNARY},     /* Delete */
    {h_pids, TTRPC_UNARY},       /* Pids */
    {NULL, TTRPC_UNARY},         /* Pause */
    {NULL, TTRPC_UNARY},         /* Resume */
    {NULL, TTRPC_UNARY},         /* Checkpoint */
    {h_kill, TTRPC_UNARY},       /* Kill */
    {NULL, TTRPC_UNARY},         /* Exec */
    {h_resize_pty, TTRPC_UNARY}, /* ResizePty */
    {h_close_io, TTRPC_UNARY},   /* CloseIO */
    {NULL, TTRPC_UNARY},         /* Update */
    {h_wait, TTRPC_UNARY},       /* Wait */
    {NULL, TTRPC_UNARY},         /* Stats */
    {h_connect, TTRPC_UNARY},    /* Connect */
    {h_shutdown, TTRPC_UNARY},   /* Shutdown */
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
        while (ts->tasks) {
                struct task *t = ts->tasks;
                while (t->waits) {
                        struct task_wait *w = t->waits;
                        t->waits = w->next;
                        if (w->call)
                                ttrpc_call_fail(w->call, -ECANCELED, "shim shutting down");
                        free(w);
                }
                task_unlist(t);
        }
        free(ts);
        return NULL;
}

size_t task_service_count(const struct task_service *ts)
{
        return ts ? ts->n_tasks : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* migration */

void task_service_set_migration(struct task_service *ts, struct mig_session *s)
{
        ts->mig = s;
}

int task_service_save(struct task_service *ts, Containerd__Runtime__Sandbox__V1__SandboxSave *msg)
{
        size_t n = 0;
        for (struct task *t = ts->tasks; t; t = t->next)
                n += !t->unpatched;
        msg->n_tasks = 0;
        msg->tasks = NULL;
        if (n == 0)
                return 0;
        Containerd__Runtime__Sandbox__V1__TaskSave **arr = calloc(n, sizeof(*arr));
        Containerd__Runtime__Sandbox__V1__TaskSave *items = calloc(n, sizeof(*items));
        if (!arr || !items) {
                free(arr);
                free(items);
                return -ENOMEM;
        }
        size_t i = 0;
        for (struct task *t = ts->tasks; t; t = t->next) {
                if (t->unpatched)
                        continue;
                Containerd__Runtime__Sandbox__V1__TaskSave init =
                    CONTAINERD__RUNTIME__SANDBOX__V1__TASK_SAVE__INIT;
                items[i] = init;
                items[i].id = t->id;
                items[i].bundle = t->bundle;
                items[i].stdin = t->stdin_path;
                items[i].stdout = t->stdout_path;
                items[i].stderr = t->stderr_path;
                items[i].terminal = t->terminal;
                items[i].pid = t->pid;
                items[i].status = t->status;
                items[i].exit_status = t->exit_status;
                arr[i] = &items[i];
                i++;
        }
        msg->n_tasks = n;
        msg->tasks = arr;
        return 0;
}

void task_service_save_free(Containerd__Runtime__Sandbox__V1__SandboxSave *msg)
{
        if (msg->n_tasks)
                free(msg->tasks[0]); /* the items block */
        free(msg->tasks);
        msg->tasks = NULL;
        msg->n_tasks = 0;
}

static int check_import(struct task_service *ts,
                        const Containerd__Runtime__Sandbox__V1__SandboxSave *msg)
{
        for (size_t i = 0; i < msg->n_tasks; i++) {
                const Containerd__Runtime__Sandbox__V1__TaskSave *ti = msg->tasks[i];
                if (wire_check_id(ti->id) < 0 || wire_check_opt_path(ti->bundle) < 0 ||
                    wire_check_opt_path(ti->stdin) < 0 || wire_check_opt_path(ti->stdout) < 0 ||
                    wire_check_opt_path(ti->stderr) < 0)
                        return -EINVAL;
                if (task_find(ts, ti->id))
                        return -EEXIST;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(msg->tasks[j]->id, ti->id) == 0)
                                return -EINVAL;
        }
        return 0;
}

int task_service_import(struct task_service *ts,
                        const Containerd__Runtime__Sandbox__V1__SandboxSave *msg)
{
        int r = check_import(ts, msg);
        if (r < 0)
                return r;
        for (size_t i = 0; i < msg->n_tasks; i++) {
                const Containerd__Runtime__Sandbox__V1__TaskSave *ti = msg->tasks[i];
                Containerd__Task__V2__CreateTaskRequest req =
                    CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
                req.id = ti->id;
                req.bundle = ti->bundle;
                req.stdin = ti->stdin;
                req.stdout = ti->stdout;
                req.stderr = ti->stderr;
                req.terminal = ti->terminal;
                struct task *t = NULL;
                r = task_add(ts, &req, &t);
                if (r < 0) { /* all or nothing */
                        while (i-- > 0)
                                task_unlist(task_find(ts, msg->tasks[i]->id));
                        return r;
                }
                t->unpatched = true;
                t->pid = ti->pid;
                t->status = ti->status;
                t->exit_status = ti->exit_status;
                if (t->status == CONTAINERD__TASK__V2__STATUS__STOPPED)
                        t->exited_at_ns = shim_wall_ns();
        }
        return 0;
}

int task_service_unpatched(const struct task_service *ts, char *buf, size_t size)
{
        int n = 0;
        size_t len = 0;
        if (size)
                buf[0] = '\0';
        for (const struct task *t = ts->tasks; t; t = t->next) {
                if (!t->unpatched)
                        continue;
                if (size > len) {
                        ssize_t w =
                            ferry_bprintf(buf + len, size - len, "%s%s", n ? ", " : "", t->id);
                        len = w < 0 ? size : len + (size_t)w;
                }
                n++;
        }
        return n;
}

int task_service_patch(struct task_service *ts, const char *source_id, const char *new_id,
                       const char *bundle, uint32_t *ret_pid)
{
        if (wire_check_id(source_id) < 0 || wire_check_id(new_id) < 0 ||
            wire_check_opt_path(bundle) < 0)
                return -EINVAL;
        struct task *t = task_find(ts, source_id);
        if (!t)
                return -ENOENT;
        if (!t->unpatched)
                return -EALREADY;
        struct task *other = task_find(ts, new_id);
        if (other && other != t)
                return -EEXIST;
        char *nb = strdup(bundle ? bundle : "");
        if (!nb)
                return -ENOMEM;
        free(t->bundle);
        t->bundle = nb;
        ferry_strscpy(t->id, new_id, sizeof(t->id));
        t->unpatched = false;
        if (ret_pid)
                *ret_pid = t->pid;
        return 0;
}

void task_service_resumed(struct task_service *ts, bool destination)
{
        for (struct task *t = ts->tasks; t; t = t->next) {
                if (t->unpatched)
                        continue;
                if (destination) {
                        shim_events_task_create(ts->events, t->id, t->bundle, t->pid);
                        if (t->status != CONTAINERD__TASK__V2__STATUS__CREATED)
                                shim_events_task_start(ts->events, t->id, t->pid);
                }
                if (t->status == CONTAINERD__TASK__V2__STATUS__RUNNING && task_watch(t) < 0)
                        task_exited(t, 255);
        }
}

void task_service_teardown(struct task_service *ts, uint32_t exit_status)
{
        struct task *t = ts->tasks;
        while (t) {
                struct task *next = t->next;
                if (t->unpatched)
                        task_unlist(t);
                else if (t->status != CONTAINERD__TASK__V2__STATUS__STOPPED)
                        task_exited(t, exit_status);
                t = next;
        }
}
