/* SPDX-License-Identifier: MIT */
/* The process controller's handlers and data. The lifecycle is spec/process.yaml: every public
 * call below only packs its arguments and dispatches the spec's event; the actions do the
 * work. Asynchronous work (opening FIFOs on the thread pool, guest calls) runs through an
 * `op`, a small heap record the process can detach from when it is freed first. */
#include "ctrl/process/process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest/guest.h"
#include "process_fsm.h"
#include "save_process.pb-c.h"
#include "util/util.h"

#define PROCESS_EXIT_UNSET 255
#define IO_RETRY_STEP_US   10000

enum { IO_STDIN, IO_STDOUT, IO_STDERR, IO_N };

/* Upstream IO: containerd's endpoints and the fds opened on them. */
struct upstream_io {
        char *path[IO_N];
        int fd[IO_N];
        bool terminal;
        bool open;
};

struct waiter {
        process_exit_fn fn;
        void *userdata;
};

struct op;

struct process {
        struct fsm fsm;
        const struct ctrl_env *env;
        char name[2 * PROCESS_ID_MAX + 16]; /* instance name for traces */
        char container_id[PROCESS_ID_MAX + 1];
        char guest_container_id[PROCESS_ID_MAX + 1];
        char exec_id[PROCESS_ID_MAX + 1];
        char *bundle;
        char *spec_json;
        uint64_t io_retry_timeout_us;

        struct upstream_io io;     /* the live upstream IO */
        struct upstream_io staged; /* opened by create or patch, adopted on io_opened */
        char *staged_container_id;
        char *staged_bundle;
        char *staged_spec_json;

        int64_t pid;
        int exit_code;
        uint64_t exited_at_ns;
        uint32_t ports[IO_N]; /* guest relay ports, kept by save for the rollback */
        uint64_t wait_id;     /* the outstanding guest wait */
        uint32_t console[2];  /* last console size */

        struct ctrl_pending pending; /* the caller waiting for an in-flight operation */
        struct op *ops;              /* live asynchronous operations */
        struct op *watch;            /* the armed exit watch, if any */
        bool watch_retried;          /* a failed wait was re-armed once */

        struct waiter *waiters;
        size_t n_waiters;
        process_exit_fn hook;
        void *hook_userdata;
};

/* What every event carries: a call's arguments or a completion's result. */
struct call {
        ctrl_done_fn done;
        void *userdata;
        const struct process_create_opts *create;
        const struct process_patch_opts *patch;
        int sig;
        uint32_t width, height;
        const ctrl_envelope *env;
        ctrl_envelope **ret_env;
        int result;     /* completions: 0 or -errno */
        uint64_t value; /* completions: pid, exit code, … */
};

/* An asynchronous operation; p is NULL once the process is gone. */
struct op {
        struct process *p;
        struct op *next;
        uv_work_t work;
        struct upstream_io io; /* thread-pool IO opening: what to open, and the result */
        uint64_t timeout_us;
        int result;
        uint64_t value;
        uint16_t ev_ok, ev_fail; /* the completion events an action's guest call ends with */
        bool exited_ok;          /* -EBUSY (the process already exited) counts as success */
        bool in_action;          /* the action that made the call has not returned yet */
        bool completed;          /* ... and the guest completed before it did */
};

/* ---- small helpers ---- */

static void strfree(char **s)
{
        free(*s);
        *s = NULL;
}

static int strset(char **dst, const char *src)
{
        char *d = strdup(src ? src : "");
        if (!d)
                return -ENOMEM;
        free(*dst);
        *dst = d;
        return 0;
}

static bool id_ok(const char *s, bool may_be_empty)
{
        if (!s)
                return false;
        size_t n = strnlen(s, PROCESS_ID_MAX + 1);
        if (n > PROCESS_ID_MAX || (!may_be_empty && n == 0))
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x21 || s[i] == '/' || (unsigned char)s[i] > 0x7e)
                        return false;
        return true;
}

static bool path_ok(const char *s)
{
        return !s || strnlen(s, PROCESS_PATH_MAX + 1) <= PROCESS_PATH_MAX;
}

static bool nonempty(const char *s)
{
        return s && *s;
}

static void io_init(struct upstream_io *io)
{
        memset(io, 0, sizeof(*io));
        for (int i = 0; i < IO_N; i++)
                io->fd[i] = -1;
}

static void io_close(struct upstream_io *io)
{
        for (int i = 0; i < IO_N; i++) {
                if (io->fd[i] >= 0)
                        close(io->fd[i]);
                io->fd[i] = -1;
                strfree(&io->path[i]);
        }
        io->open = false;
        io->terminal = false;
}

/* Copies the endpoints of src into io (no fds yet). */
static int io_copy_paths(struct upstream_io *io, const struct process_io *src)
{
        const char *paths[IO_N] = {src->stdin_path, src->stdout_path, src->stderr_path};
        io_init(io);
        io->terminal = src->terminal;
        for (int i = 0; i < IO_N; i++)
                if (strset(&io->path[i], paths[i]) < 0) {
                        io_close(io);
                        return -ENOMEM;
                }
        return 0;
}

/* ---- operations ---- */

static struct op *op_new(struct process *p)
{
        struct op *o = calloc(1, sizeof(*o));
        if (!o)
                return NULL;
        o->p = p;
        o->next = p->ops;
        io_init(&o->io);
        p->ops = o;
        return o;
}

/* Unlinks o from its process; returns the process (NULL if it was freed meanwhile). */
static struct process *op_end(struct op *o)
{
        struct process *p = o->p;
        if (p) {
                for (struct op **it = &p->ops; *it; it = &(*it)->next)
                        if (*it == o) {
                                *it = o->next;
                                break;
                        }
                if (p->watch == o)
                        p->watch = NULL;
        }
        return p;
}

static void op_free(struct op *o)
{
        io_close(&o->io);
        free(o);
}

/* ---- the exit: recording it and telling everyone once ---- */

static void notify_waiters(struct process *p)
{
        struct waiter *w = p->waiters;
        size_t n = p->n_waiters;
        p->waiters = NULL;
        p->n_waiters = 0;
        for (size_t i = 0; i < n; i++)
                w[i].fn(p, p->exit_code, p->exited_at_ns, w[i].userdata);
        free(w);
}

/* Records an end with code: exit bookkeeping, IO closed, waiters told. */
static void end_with(struct process *p, int code)
{
        p->exit_code = code;
        p->exited_at_ns = ferry_wall_ns();
        io_close(&p->io);
        notify_waiters(p);
}

/* ---- thread-pool IO opening ---- */

static int open_endpoint(const char *path, uint64_t deadline_us, int *ret_fd)
{
        for (;;) {
                int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                if (fd >= 0) {
                        *ret_fd = fd;
                        return 0;
                }
                int r = -errno;
                if (r != -ENOENT || ferry_now_us() >= deadline_us)
                        return r;
                struct timespec ts = {0, IO_RETRY_STEP_US * 1000};
                nanosleep(&ts, NULL);
        }
}

/* Worker thread: touches only the op's own copy of the endpoints. */
static void io_work_cb(uv_work_t *w)
{
        struct op *o = w->data;
        uint64_t deadline = ferry_now_us() + o->timeout_us;
        o->result = 0;
        for (int i = 0; i < IO_N && o->result == 0; i++)
                if (nonempty(o->io.path[i]))
                        o->result = open_endpoint(o->io.path[i], deadline, &o->io.fd[i]);
}

static void io_after_cb(uv_work_t *w, int status)
{
        struct op *o = w->data;
        struct process *p = op_end(o);
        if (status < 0 && o->result == 0)
                o->result = status;
        if (p) {
                struct call c = {.result = o->result};
                if (o->result == 0) {
                        io_close(&p->staged);
                        p->staged = o->io;
                        p->staged.open = true;
                        io_init(&o->io);
                }
                process_dispatch(
                    &p->fsm, o->result == 0 ? PROCESS_E_IO_OPENED : PROCESS_E_IO_OPEN_FAILED, &c);
        }
        op_free(o);
}

static int queue_io_open(struct process *p, const struct process_io *io);

static bool has_endpoints(const struct process_io *io)
{
        return nonempty(io->stdin_path) || nonempty(io->stdout_path) || nonempty(io->stderr_path);
}

/* Opens the upstream IO on the thread pool (FSM_PENDING), or, with no endpoint to open,
 * stages the empty IO at once (0). */
static int open_upstream(struct process *p, const struct process_io *io)
{
        if (has_endpoints(io)) {
                int r = queue_io_open(p, io);
                return r < 0 ? r : FSM_PENDING;
        }
        io_close(&p->staged);
        if (io_copy_paths(&p->staged, io) < 0)
                return -ENOMEM;
        p->staged.open = true;
        return 0;
}

static int queue_io_open(struct process *p, const struct process_io *io)
{
        struct op *o = op_new(p);
        if (!o)
                return -ENOMEM;
        int r = io_copy_paths(&o->io, io);
        o->timeout_us = p->io_retry_timeout_us;
        o->work.data = o;
        if (r == 0)
                r = uv_queue_work(p->env->loop, &o->work, io_work_cb, io_after_cb);
        if (r < 0) {
                op_end(o);
                op_free(o);
        }
        return r;
}

/* Moves the caller's reply into p->pending: the completion answers it. */
static void hold_reply(struct process *p, struct call *c)
{
        p->pending.done = c->done;
        p->pending.userdata = c->userdata;
        c->done = NULL;
}

/* Replies the caller now with result. */
static void reply_now(struct call *c, int result)
{
        struct ctrl_pending pend = {c->done, c->userdata};
        c->done = NULL;
        ctrl_reply(&pend, result);
}

/* ---- guards ---- */

static const struct process_io *call_io(const struct call *c)
{
        return c->create ? &c->create->io : c->patch ? &c->patch->io : NULL;
}

bool process_guard_terminal_with_stderr(struct process *p, void *arg)
{
        const struct process_io *io = call_io(arg);
        return io && io->terminal && nonempty(io->stderr_path);
}

bool process_guard_patch_args_invalid(struct process *p, void *arg)
{
        const struct call *c = arg;
        return !c->patch || !nonempty(c->patch->container_id);
}

bool process_guard_is_tty(struct process *p, void *arg)
{
        return p->io.terminal;
}

bool process_guard_has_upstream_io(struct process *p, void *arg)
{
        return p->io.open;
}

/* ---- actions: create ---- */

int process_action_open_io(struct process *p, void *arg)
{
        struct call *c = arg;
        const struct process_create_opts *o = c->create;
        if (!o || !path_ok(o->bundle) || !path_ok(o->io.stdin_path) ||
            !path_ok(o->io.stdout_path) || !path_ok(o->io.stderr_path))
                return -EINVAL;
        if (strset(&p->staged_bundle, o->bundle) < 0 ||
            (o->spec_json && strset(&p->staged_spec_json, o->spec_json) < 0))
                return -ENOMEM;
        int r = open_upstream(p, &o->io);
        if (r < 0)
                return r;
        hold_reply(p, c);
        return r == 0 ? process_action_keep_io(p, c) : FSM_PENDING;
}

int process_action_keep_io(struct process *p, void *arg)
{
        io_close(&p->io);
        p->io = p->staged;
        io_init(&p->staged);
        free(p->bundle);
        p->bundle = TAKE_PTR(p->staged_bundle);
        if (p->staged_spec_json) {
                free(p->spec_json);
                p->spec_json = TAKE_PTR(p->staged_spec_json);
        }
        ctrl_reply(&p->pending, 0);
        return 0;
}

int process_action_reply_error(struct process *p, void *arg)
{
        const struct call *c = arg;
        strfree(&p->staged_bundle);
        strfree(&p->staged_spec_json);
        strfree(&p->staged_container_id);
        io_close(&p->staged);
        ctrl_reply(&p->pending, c->result < 0 ? c->result : -EIO);
        return 0;
}

/* ---- actions: start and the exit watch ---- */

static int arm_watch(struct process *p);

static void watch_cb(int result, uint32_t pid, int code, void *userdata)
{
        struct op *o = userdata;
        struct process *p = op_end(o);
        op_free(o);
        /* -ECANCELED: the connection moved (reconnect) and the watch is gone; a resume arms a
         * new one. Any other result is the exit. */
        if (!p || result == -ECANCELED)
                return;
        /* A failed wait is not an exit while the guest still answers: it is re-armed once, so
         * one failed bridge call does not report a live process exited. A second failure, or
         * a guest that is gone (the re-arm fails), is the exit (255, as the reference). */
        if (result < 0 && !p->watch_retried) {
                p->watch_retried = true;
                if (arm_watch(p) == 0)
                        return;
        }
        struct call c = {.result = result, .value = (uint64_t)(result < 0 ? 255 : code)};
        process_dispatch(&p->fsm, PROCESS_E_EXITED, &c);
}

/* Arms the exit watch (at most one at a time). */
static int arm_watch(struct process *p)
{
        if (p->watch)
                return 0;
        if (!p->env->guest)
                return -ENOTCONN;
        struct op *o = op_new(p);
        if (!o)
                return -ENOMEM;
        uint64_t next_id = 0;
        uint32_t next_port = 0;
        if (guest_counters(p->env->guest, &next_id, &next_port) == 0)
                p->wait_id = next_id;
        int r = guest_wait_process(p->env->guest, (uint32_t)p->pid, watch_cb, o);
        if (r < 0) {
                op_end(o);
                op_free(o);
                return r;
        }
        p->watch = o;
        return 0;
}

/* Guest calls made by actions. The guest completes after the call returns (guest.h), and the
 * completion event ends the in-flight state. A completion that arrives before the call
 * returns is taken synchronously instead: the action applies it itself and returns its
 * outcome, which is the spec's `to` (or `on_error`) without the in-flight state. */
typedef int (*guest_issue_fn)(struct process *p, struct op *o, int arg);

static void action_cb(int result, uint64_t value, void *userdata)
{
        struct op *o = userdata;
        if (o->exited_ok && result == -EBUSY)
                result = 0;
        if (o->in_action) {
                o->completed = true;
                o->result = result;
                o->value = value;
                return;
        }
        struct process *p = op_end(o);
        unsigned ev = result < 0 ? o->ev_fail : o->ev_ok;
        op_free(o);
        if (!p)
                return;
        struct call c = {.result = result, .value = value};
        process_dispatch(&p->fsm, ev, &c);
}

/* Issues a guest call for the action running with c. Returns FSM_PENDING (the caller's reply
 * is held for the completion), a negative errno (refused: nothing held), or 0 with the
 * synchronous completion in *ret_done (the reply is held for the action to give). */
static int guest_action(struct process *p, struct call *c, guest_issue_fn issue, int arg,
                        unsigned ev_ok, unsigned ev_fail, bool exited_ok, struct call *ret_done)
{
        if (!p->env->guest)
                return -ENOTCONN;
        struct op *o = op_new(p);
        if (!o)
                return -ENOMEM;
        o->ev_ok = (uint16_t)ev_ok;
        o->ev_fail = (uint16_t)ev_fail;
        o->exited_ok = exited_ok;
        o->in_action = true;
        int r = issue(p, o, arg);
        o->in_action = false;
        if (r < 0 || o->completed) {
                *ret_done = (struct call){.result = o->result, .value = o->value};
                op_end(o);
                op_free(o);
                if (r < 0)
                        return r;
                hold_reply(p, c);
                return 0;
        }
        hold_reply(p, c);
        return FSM_PENDING;
}

/* Drops a held reply without calling it: a failed action's caller learns from its return. */
static void drop_reply(struct process *p)
{
        p->pending.done = NULL;
        p->pending.userdata = NULL;
}

static int issue_start(struct process *p, struct op *o, int arg)
{
        /* The sim guest's init is its container's start; an exec is a new process in it. */
        if (p->exec_id[0] == '\0')
                return guest_start_container(p->env->guest, p->guest_container_id, action_cb, o);
        return guest_start_process(p->env->guest, p->guest_container_id, action_cb, o);
}

/* A container that has stopped is, to SignalContainer, what an exited process is to
 * SignalProcess: the signal's purpose is met. */
static void init_signal_cb(int r, uint64_t value, void *ud)
{
        action_cb(r == -EBUSY ? -EALREADY : r, value, ud);
}

static int issue_signal(struct process *p, struct op *o, int sig)
{
        /* The init is signalled through its container (the guest's SignalContainer, as the
         * reference's init process does); an exec by its pid. */
        if (p->exec_id[0] == '\0')
                return guest_signal_container(p->env->guest, p->guest_container_id, sig,
                                              init_signal_cb, o);
        return guest_signal_process(p->env->guest, (uint32_t)p->pid, sig, action_cb, o);
}

static int issue_reopen(struct process *p, struct op *o, int arg)
{
        return guest_io_relay(p->env->guest, (uint32_t)p->pid, action_cb, o);
}

/* The relay ports of a started process (what a migration's destination re-listens on),
 * fetched after the start; a failure leaves them 0 (no stream). */
static void relay_cb(int result, uint64_t value, void *userdata)
{
        struct op *o = userdata;
        struct process *p = op_end(o);
        op_free(o);
        if (p && result == 0)
                for (int i = 0; i < IO_N; i++)
                        p->ports[i] = (uint32_t)value + (uint32_t)i;
}

static void fetch_relay_ports(struct process *p)
{
        struct op *o = p->env->guest ? op_new(p) : NULL;
        if (o && guest_io_relay(p->env->guest, (uint32_t)p->pid, relay_cb, o) < 0) {
                op_end(o);
                op_free(o);
        }
}

int process_action_start_process(struct process *p, void *arg)
{
        struct call done;
        int r = guest_action(p, arg, issue_start, 0, PROCESS_E_STARTED, PROCESS_E_START_FAILED,
                             false, &done);
        if (r == 0 && done.result < 0) {
                drop_reply(p);
                r = done.result;
        }
        if (r < 0) {
                /* The spec's on_error is terminated: abort with exit code 1 here. */
                p->pid = -1;
                end_with(p, 1);
                return r;
        }
        if (r == 0)
                process_action_bind_started(p, &done);
        return r;
}

int process_action_bind_started(struct process *p, void *arg)
{
        const struct call *c = arg;
        p->pid = (int64_t)c->value;
        fetch_relay_ports(p);
        int r = arm_watch(p);
        /* Without a watch the exit could never be reported: end the start as failed. */
        if (r < 0) {
                struct call f = {.result = r};
                process_dispatch(&p->fsm, PROCESS_E_EXITED, &f);
        }
        ctrl_reply(&p->pending, (int)p->pid);
        return 0;
}

int process_action_abort_start(struct process *p, void *arg)
{
        const struct call *c = arg;
        p->pid = -1;
        end_with(p, 1);
        ctrl_reply(&p->pending, c->result < 0 ? c->result : -EIO);
        return 0;
}

int process_action_abort_on_kill(struct process *p, void *arg)
{
        end_with(p, 1);
        return 0;
}

int process_action_abort_on_delete(struct process *p, void *arg)
{
        end_with(p, 0);
        return 0;
}

static void publish_exit(struct process *p)
{
        char body[512];
        if (ferry_bprintf(body, sizeof(body),
                          "{\"container_id\":\"%s\",\"id\":\"%s\",\"pid\":%lld,"
                          "\"exit_status\":%d,\"exited_at_ns\":%llu}",
                          p->container_id, p->exec_id, (long long)p->pid, p->exit_code,
                          (unsigned long long)p->exited_at_ns) > 0)
                ctrl_publish(p->env, "/tasks/exit", body);
}

int process_action_record_exit(struct process *p, void *arg)
{
        const struct call *c = arg;
        end_with(p, (int)c->value);
        if (p->hook)
                p->hook(p, p->exit_code, p->exited_at_ns, p->hook_userdata);
        else if (p->exec_id[0] != '\0')
                publish_exit(p);
        return 0;
}

/* ---- actions: signals and the console ---- */

/* Signal and console calls: a synchronous completion is answered as its completion's action
 * would (call_done, call_failed), an undeliverable one fails the call. */
static int guest_signal(struct process *p, struct call *c, int sig)
{
        struct call done;
        int r = guest_action(p, c, issue_signal, sig, PROCESS_E_CALL_DONE, PROCESS_E_CALL_FAILED,
                             false, &done);
        if (r != 0)
                return r;
        if (done.result < 0 && done.result != -EALREADY) {
                drop_reply(p);
                return done.result;
        }
        ctrl_reply(&p->pending, 0);
        return 0;
}

int process_action_signal(struct process *p, void *arg)
{
        struct call *c = arg;
        if (c->sig < 0 || c->sig >= 65)
                return -EINVAL;
        return guest_signal(p, c, c->sig ? c->sig : SIGKILL);
}

int process_action_resize_console(struct process *p, void *arg)
{
        struct call *c = arg;
        if (c->width == 0 || c->height == 0 || c->width > UINT16_MAX || c->height > UINT16_MAX)
                return -EINVAL;
        p->console[0] = c->width;
        p->console[1] = c->height;
        /* The sim guest has no console: a resize reaches the process as SIGWINCH, which is
         * what a terminal resize delivers in a real guest too. */
        return guest_signal(p, c, SIGWINCH);
}

int process_action_reply_ok(struct process *p, void *arg)
{
        ctrl_reply(&p->pending, 0);
        return 0;
}

int process_action_reply_call_error(struct process *p, void *arg)
{
        const struct call *c = arg;
        int r = c->result;
        if (r == -EALREADY || r == -ESRCH)
                r = 0; /* the process already stopped: the signal's purpose is met */
        ctrl_reply(&p->pending, r);
        return 0;
}

int process_action_close_stdin(struct process *p, void *arg)
{
        if (p->io.fd[IO_STDIN] >= 0)
                close(p->io.fd[IO_STDIN]);
        p->io.fd[IO_STDIN] = -1;
        return 0;
}

/* ---- actions: save and import ---- */

int process_action_save_payload(struct process *p, void *arg)
{
        struct call *c = arg;
        Ferry__Process__Save__V1__Payload m = FERRY__PROCESS__SAVE__V1__PAYLOAD__INIT;
        Ferry__Process__Save__V1__Duration d = FERRY__PROCESS__SAVE__V1__DURATION__INIT;
        if (!c->ret_env)
                return -EINVAL;
        d.seconds = (int64_t)(p->io_retry_timeout_us / 1000000);
        d.nanos = (int32_t)(p->io_retry_timeout_us % 1000000) * 1000;
        m.schema_version = PROCESS_SCHEMA_VERSION;
        m.exec_id = p->exec_id;
        m.pid = (int32_t)p->pid;
        m.bundle = p->bundle ? p->bundle : "";
        m.io_retry_timeout = &d;
        m.stdin_port = p->ports[IO_STDIN];
        m.stdout_port = p->ports[IO_STDOUT];
        m.stderr_port = p->ports[IO_STDERR];
        m.wait_call_id = (int64_t)p->wait_id;
        m.terminal = p->io.terminal;
        if (p->spec_json) {
                m.oci_process_spec_json.data = (uint8_t *)p->spec_json;
                m.oci_process_spec_json.len = strlen(p->spec_json);
        }
        return ctrl_envelope_pack(PROCESS_SAVE_NAME, PROCESS_SCHEMA_VERSION, &m.base, c->ret_env);
}

/* The payload's own checks, after the envelope's. */
static int payload_check(const struct process *p, const Ferry__Process__Save__V1__Payload *m)
{
        if (!m->exec_id || strcmp(m->exec_id, p->exec_id) != 0)
                return -EINVAL; /* saved under another exec id */
        if (m->pid <= 0 || !path_ok(m->bundle) || m->oci_process_spec_json.len > 1u << 20)
                return -EINVAL;
        if (m->io_retry_timeout &&
            (m->io_retry_timeout->seconds < 0 || m->io_retry_timeout->seconds > 86400 ||
             m->io_retry_timeout->nanos < 0 || m->io_retry_timeout->nanos >= 1000000000))
                return -EINVAL;
        return 0;
}

int process_action_import_payload(struct process *p, void *arg)
{
        struct call *c = arg;
        ProtobufCMessage *msg = NULL;
        int r =
            ctrl_envelope_unpack(c->env, PROCESS_SAVE_NAME, PROCESS_SCHEMA_VERSION,
                                 &ferry__process__save__v1__payload__descriptor, &msg, NULL, NULL);
        if (r < 0)
                return r;
        Ferry__Process__Save__V1__Payload *m = (Ferry__Process__Save__V1__Payload *)msg;
        _cleanup_free_ char *bundle = NULL, *spec = NULL;
        r = payload_check(p, m);
        if (r == 0 && !(bundle = strdup(m->bundle ? m->bundle : "")))
                r = -ENOMEM;
        if (r == 0 && m->oci_process_spec_json.len &&
            !(spec = strndup((const char *)m->oci_process_spec_json.data,
                             m->oci_process_spec_json.len)))
                r = -ENOMEM;
        if (r == 0) {
                /* Everything checked and allocated: commit. */
                free(p->bundle);
                p->bundle = TAKE_PTR(bundle);
                free(p->spec_json);
                p->spec_json = TAKE_PTR(spec);
                p->pid = m->pid;
                p->exit_code = PROCESS_EXIT_UNSET; /* §12.20: as a new process */
                p->exited_at_ns = 0;
                p->ports[IO_STDIN] = m->stdin_port;
                p->ports[IO_STDOUT] = m->stdout_port;
                p->ports[IO_STDERR] = m->stderr_port;
                p->wait_id = (uint64_t)m->wait_call_id;
                if (m->io_retry_timeout)
                        p->io_retry_timeout_us = (uint64_t)m->io_retry_timeout->seconds * 1000000 +
                                                 (uint64_t)m->io_retry_timeout->nanos / 1000;
        }
        protobuf_c_message_free_unpacked(msg, NULL);
        return r;
}

/* ---- actions: destination patch ---- */

int process_action_open_destination_io(struct process *p, void *arg)
{
        struct call *c = arg;
        const struct process_patch_opts *o = c->patch;
        if (!id_ok(o->container_id, false) || !path_ok(o->bundle) || !path_ok(o->io.stdin_path) ||
            !path_ok(o->io.stdout_path) || !path_ok(o->io.stderr_path))
                return -EINVAL;
        if (strset(&p->staged_container_id, o->container_id) < 0 ||
            strset(&p->staged_bundle, o->bundle) < 0)
                return -ENOMEM;
        int r = open_upstream(p, &o->io);
        if (r < 0)
                return r;
        hold_reply(p, c);
        return r == 0 ? process_action_adopt_patch(p, c) : FSM_PENDING;
}

int process_action_adopt_patch(struct process *p, void *arg)
{
        ferry_strscpy(p->container_id, p->staged_container_id, sizeof(p->container_id));
        strfree(&p->staged_container_id);
        free(p->bundle);
        p->bundle = TAKE_PTR(p->staged_bundle);
        io_close(&p->io); /* an earlier patch's IO */
        p->io = p->staged;
        io_init(&p->staged);
        ctrl_reply(&p->pending, 0);
        return 0;
}

/* ---- actions: resume ---- */

/* Reopens the guest process's stdio relay (the sim's OpenProcessWithIO). -EBUSY, the process
 * exited while no bridge was connected, still succeeds: the exit watch reports that exit, once.
 * A synchronous completion binds at once through bind. */
static int reopen(struct process *p, struct call *c, int (*bind)(struct process *, void *))
{
        struct call done;
        int r = guest_action(p, c, issue_reopen, 0, PROCESS_E_RESUMED, PROCESS_E_RESUME_FAILED,
                             true, &done);
        if (r != 0)
                return r;
        if (done.result < 0) {
                drop_reply(p);
                return done.result;
        }
        return bind(p, &done);
}

int process_action_reopen_source(struct process *p, void *arg)
{
        return reopen(p, arg, process_action_bind_source);
}

int process_action_bind_source(struct process *p, void *arg)
{
        memset(p->ports, 0, sizeof(p->ports));
        /* The watch armed at start stays the only exit reporter. Only if the bridge moved
         * under it (its wait was cancelled) is one armed again, so an exit is never lost. */
        int r = arm_watch(p);
        ctrl_reply(&p->pending, r < 0 ? r : 0);
        return 0;
}

int process_action_reopen_destination(struct process *p, void *arg)
{
        return reopen(p, arg, process_action_bind_destination);
}

int process_action_bind_destination(struct process *p, void *arg)
{
        memset(p->ports, 0, sizeof(p->ports));
        /* The guest wait completes at once for a process that exited during the blackout,
         * which is the reference's 50 ms probe without the timer. */
        int r = arm_watch(p);
        ctrl_reply(&p->pending, r < 0 ? r : 0);
        return 0;
}

int process_action_close_reopened(struct process *p, void *arg)
{
        ctrl_reply(&p->pending, 0);
        return 0;
}

int process_action_abort_migrated(struct process *p, void *arg)
{
        end_with(p, PROCESS_EXIT_TORN_DOWN);
        return 0;
}

/* ---- public calls ---- */

/* Dispatches event with c; a call taken without an action that replied is answered 0. */
static int call(struct process *p, unsigned event, struct call *c)
{
        if (!p)
                return -EINVAL;
        /* From inside one of p's own transitions (a callback it runs) the event would be
         * queued past the life of c: refuse it as a conflict the caller retries. */
        if (fsm_busy(&p->fsm))
                return -ESTALE;
        int r = process_dispatch(&p->fsm, event, c);
        if (r < 0)
                return r;
        if (c->done)
                reply_now(c, 0);
        return 0;
}

int process_new(const struct ctrl_env *env, const char *container_id,
                const char *guest_container_id, const char *exec_id, uint64_t io_retry_timeout_us,
                struct process **ret)
{
        if (!env || !env->loop || !ret || !id_ok(container_id, false) ||
            !id_ok(guest_container_id, false) || !id_ok(exec_id, true))
                return -EINVAL;
        struct process *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->env = env;
        ferry_strscpy(p->container_id, container_id, sizeof(p->container_id));
        ferry_strscpy(p->guest_container_id, guest_container_id, sizeof(p->guest_container_id));
        ferry_strscpy(p->exec_id, exec_id, sizeof(p->exec_id));
        ferry_bprintf(p->name, sizeof(p->name), "process:%s/%s", guest_container_id, exec_id);
        p->io_retry_timeout_us = io_retry_timeout_us;
        p->exit_code = PROCESS_EXIT_UNSET;
        io_init(&p->io);
        io_init(&p->staged);
        fsm_init(&p->fsm, &process_machine, p, p->name);
        *ret = p;
        return 0;
}

struct process *process_free(struct process *p)
{
        if (!p)
                return NULL;
        /* Detach live operations: their callbacks find no process and only free themselves. */
        for (struct op *o = p->ops; o; o = o->next)
                o->p = NULL;
        io_close(&p->io);
        io_close(&p->staged);
        free(p->bundle);
        free(p->spec_json);
        free(p->staged_container_id);
        free(p->staged_bundle);
        free(p->staged_spec_json);
        free(p->waiters);
        free(p);
        return NULL;
}

void process_set_exit_hook(struct process *p, process_exit_fn fn, void *userdata)
{
        p->hook = fn;
        p->hook_userdata = userdata;
}

int process_create(struct process *p, const struct process_create_opts *opts, ctrl_done_fn done,
                   void *userdata)
{
        if (!opts)
                return -EINVAL;
        struct call c = {.done = done, .userdata = userdata, .create = opts};
        return call(p, PROCESS_E_CREATE, &c);
}

int process_start(struct process *p, ctrl_done_fn done, void *userdata)
{
        struct call c = {.done = done, .userdata = userdata};
        return call(p, PROCESS_E_START, &c);
}

int process_kill(struct process *p, int sig, ctrl_done_fn done, void *userdata)
{
        if (sig < 0 || sig >= 65)
                return -EINVAL;
        struct call c = {.done = done, .userdata = userdata, .sig = sig};
        return call(p, PROCESS_E_KILL, &c);
}

int process_delete(struct process *p, ctrl_done_fn done, void *userdata)
{
        struct call c = {.done = done, .userdata = userdata};
        return call(p, PROCESS_E_DELETE, &c);
}

int process_resize(struct process *p, uint32_t width, uint32_t height, ctrl_done_fn done,
                   void *userdata)
{
        struct call c = {.done = done, .userdata = userdata, .width = width, .height = height};
        return call(p, PROCESS_E_RESIZE, &c);
}

int process_close_io(struct process *p, ctrl_done_fn done, void *userdata)
{
        struct call c = {.done = done, .userdata = userdata};
        return call(p, PROCESS_E_CLOSE_IO, &c);
}

int process_wait(struct process *p, process_exit_fn fn, void *userdata)
{
        if (!p || !fn)
                return -EINVAL;
        if (p->exited_at_ns) {
                fn(p, p->exit_code, p->exited_at_ns, userdata);
                return 0;
        }
        struct waiter *w = realloc(p->waiters, (p->n_waiters + 1) * sizeof(*w));
        if (!w)
                return -ENOMEM;
        w[p->n_waiters++] = (struct waiter){fn, userdata};
        p->waiters = w;
        return 0;
}

int process_save(struct process *p, ctrl_envelope **ret)
{
        if (!ret)
                return -EINVAL;
        ctrl_envelope *e = NULL;
        struct call c = {.ret_env = &e};
        int r = call(p, PROCESS_E_SAVE, &c);
        if (r == 0)
                *ret = e;
        return r;
}

int process_import(struct process *p, const ctrl_envelope *env)
{
        struct call c = {.env = env};
        return call(p, PROCESS_E_IMPORT, &c);
}

int process_patch(struct process *p, const struct process_patch_opts *opts, ctrl_done_fn done,
                  void *userdata)
{
        struct call c = {.done = done, .userdata = userdata, .patch = opts};
        return call(p, PROCESS_E_PATCH, &c);
}

int process_resume(struct process *p, ctrl_done_fn done, void *userdata)
{
        struct call c = {.done = done, .userdata = userdata};
        return call(p, PROCESS_E_RESUME, &c);
}

int process_teardown(struct process *p)
{
        struct call c = {0};
        return call(p, PROCESS_E_TEARDOWN, &c);
}

/* ---- queries ---- */

enum process_status process_status(const struct process *p)
{
        static const enum process_status by_state[PROCESS_S__COUNT] = {
            [PROCESS_S_CREATED] = PROCESS_STATUS_CREATED,
            [PROCESS_S_STARTING] = PROCESS_STATUS_CREATED,
            [PROCESS_S_RUNNING] = PROCESS_STATUS_RUNNING,
            [PROCESS_S_RUNNING_BUSY] = PROCESS_STATUS_RUNNING,
            [PROCESS_S_TERMINATED] = PROCESS_STATUS_STOPPED,
        };
        return by_state[fsm_state(&p->fsm)];
}

const char *process_status_name(enum process_status s)
{
        static const char *const names[] = {"UNKNOWN", "CREATED", "RUNNING", "STOPPED"};
        return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "UNKNOWN";
}

const char *process_state_name(const struct process *p)
{
        return fsm_state_name(&p->fsm);
}

bool process_is_frozen(const struct process *p)
{
        return fsm_is_frozen(&p->fsm);
}

int64_t process_pid(const struct process *p)
{
        return p->pid;
}

int process_exit_code(const struct process *p)
{
        return p->exit_code;
}

uint64_t process_exited_at_ns(const struct process *p)
{
        return p->exited_at_ns;
}

const char *process_exec_id(const struct process *p)
{
        return p->exec_id;
}

const char *process_container_id(const struct process *p)
{
        return p->container_id;
}

const char *process_bundle(const struct process *p)
{
        return p->bundle ? p->bundle : "";
}

bool process_io(const struct process *p, struct process_io *ret)
{
        if (!p->io.open)
                return false;
        ret->stdin_path = p->io.path[IO_STDIN] ? p->io.path[IO_STDIN] : "";
        ret->stdout_path = p->io.path[IO_STDOUT] ? p->io.path[IO_STDOUT] : "";
        ret->stderr_path = p->io.path[IO_STDERR] ? p->io.path[IO_STDERR] : "";
        ret->terminal = p->io.terminal;
        return true;
}

void process_relay_ports(const struct process *p, uint32_t ret_ports[3], uint64_t *ret_wait_id)
{
        memcpy(ret_ports, p->ports, sizeof(p->ports));
        if (ret_wait_id)
                *ret_wait_id = p->wait_id;
}
