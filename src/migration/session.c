/* SPDX-License-Identifier: MIT */
/* The migration session's handlers (spec/migration.yaml). The spec owns the lifecycle: this
 * file validates input, does each step's work through the sandbox ops, and turns the ops'
 * completions into the spec's completion events. It never looks at the state to decide. */
#include "migration/session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctrl/common/ctrl.h"
#include "migration/defer.h"
#include "migration/notify.h"
#include "migration/sha256.h"
#include "migration/socket.h"
#include "migration_fsm.h"
#include "util/util.h"

struct mig_subscriber {
        struct mig_session *s;
        const struct mig_subscriber_ops *ops;
        void *userdata;
        uint64_t dropped;
        struct mig_subscriber *next;
};

struct mig_session {
        struct fsm fsm;
        uv_loop_t *loop;
        const struct migration_sandbox_ops *ops;
        void *sb;
        struct mig_handoff *handoff;

        char id[MIG_SESSION_ID_MAX + 1];
        char sandbox_id[MIG_SANDBOX_ID_MAX + 1];
        enum mig_origin origin;
        uint64_t generation;
        int fd; /* adopted and not yet handed to the transfer */

        uv_timer_t timer; /* the socket wait */
        bool timer_armed;

        mig_done_fn call_done; /* the RPC waiting for a pending step */
        void *call_userdata;
        unsigned finalize_from;
        unsigned inflight; /* op callbacks outstanding */
        bool freeing;

        char error[320];
        int pending_n;
        char pending_ids[200];

        /* the notifier: one per session, from its start to its cleanup */
        struct mig_subscriber *subs;
        unsigned n_subs;
        struct mig_notification latest;
        bool has_latest;
        uint32_t last_message_id;
        uint64_t start_unix_us;
        uint64_t dropped;
};

/* Everything a dispatch carries: a call's input or a completion's result. Borrowed. */
struct mig_arg {
        const char *session_id;
        const char *opts_json;
        const char *sandbox_id;
        const uint8_t *buf;
        size_t len;
        uint8_t **ret;
        size_t *ret_len;
        const struct mig_patch *patch;
        int fd;
        const void *info;
        size_t info_len;
        uint64_t timeout_us;
        const struct mig_subscriber_ops *sub_ops;
        void *sub_userdata;
        struct mig_subscriber **ret_sub;
        int result; /* completions */
};

/* One ops call in flight: completes into ok/fail events of the generation that issued it. */
struct mig_op {
        struct mig_session *s;
        uint64_t generation;
        enum migration_event ok, fail, fail_late; /* fail_late: prepare's patch failure */
        bool replies;                             /* ends the waiting RPC */
        enum migration_event deferred_ev;         /* the completion mig_defer delivers */
};

/* Why an ops call made with CTRL_ASK refused (r < 0): a VM controller spec's words when its
 * spec rejected the call, else the errno's. */
static const char *refusal(int r)
{
        const char *spec = fsm_rejection(r);
        return spec ? spec : strerror(-r);
}

static void set_error(struct mig_session *s, const char *fmt, ...) _printf_(2, 3);
static void set_error(struct mig_session *s, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->error, sizeof(s->error), fmt, ap);
        va_end(ap);
}

static uint64_t wall_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The spec's message with {state} and {event} filled in. */
static void format_reject(struct mig_session *s, const char *msg, unsigned from, unsigned ev)
{
        const char *state = migration_machine.state_names[from];
        const char *event = migration_machine.event_names[ev];
        size_t o = 0;
        if (!msg)
                msg = "rejected";
        while (*msg && o + 1 < sizeof(s->error)) {
                const char *sub = NULL;
                size_t skip = 0;
                if (!strncmp(msg, "{state}", 7))
                        sub = state, skip = 7;
                else if (!strncmp(msg, "{event}", 7))
                        sub = event, skip = 7;
                if (sub) {
                        ssize_t n = ferry_strscpy(s->error + o, sub, sizeof(s->error) - o);
                        o += n < 0 ? strlen(s->error + o) : (size_t)n;
                        msg += skip;
                } else {
                        s->error[o++] = *msg++;
                }
        }
        s->error[o] = '\0';
}

static int dispatch(struct mig_session *s, enum migration_event ev, struct mig_arg *a)
{
        struct fsm_outcome o;
        int r = fsm_dispatch(&s->fsm, ev, a, &o);
        if (o.result == FSM_RESULT_REJECTED)
                format_reject(s, o.message, o.from, ev);
        return r;
}

/* ---- notifier ----------------------------------------------------------------------- */

static void broadcast(struct mig_session *s, struct mig_notification *n)
{
        n->message_id = ++s->last_message_id;
        n->start_unix_us = s->start_unix_us;
        n->update_unix_us = wall_us();
        s->latest = *n;
        s->has_latest = true;
        for (struct mig_subscriber *sub = s->subs; sub; sub = sub->next) {
                if (sub->ops->on_note(n, sub->dropped, sub->userdata) < 0) {
                        sub->dropped++;
                        s->dropped++;
                }
        }
}

static void end_subscribers(struct mig_session *s)
{
        struct mig_subscriber *sub = s->subs;
        s->subs = NULL;
        s->n_subs = 0;
        while (sub) {
                struct mig_subscriber *next = sub->next;
                if (sub->ops->on_end)
                        sub->ops->on_end(sub->userdata);
                free(sub);
                sub = next;
        }
}

void mig_session_host_event(struct mig_session *s, const struct hcs_notification *hn)
{
        struct mig_notification n;
        if (!s->id[0])
                return; /* no session: nobody to tell */
        mig_notification_from_host(hn, s->origin, &n);
        broadcast(s, &n);
}

/* ---- op completions ----------------------------------------------------------------- */

static struct mig_op *op_new(struct mig_session *s, enum migration_event ok,
                             enum migration_event fail, bool replies)
{
        struct mig_op *op = calloc(1, sizeof(*op));
        if (!op)
                return NULL;
        op->s = s;
        op->generation = s->generation;
        op->ok = ok;
        op->fail = fail;
        op->fail_late = fail;
        op->replies = replies;
        s->inflight++;
        return op;
}

static void op_release(struct mig_op *op)
{
        op->s->inflight--;
        free(op);
}

static void reply(struct mig_session *s, int result)
{
        mig_done_fn done = s->call_done;
        void *ud = s->call_userdata;
        s->call_done = NULL;
        s->call_userdata = NULL;
        if (done)
                done(result, ud);
}

static void op_complete(struct mig_op *op, int result, enum migration_event ev)
{
        struct mig_session *s = op->s;
        bool current = op->generation == s->generation && !s->freeing;
        bool replies = op->replies;
        op_release(op);
        if (!current)
                return; /* a worker of an earlier session (§F.1): never touches this one */
        struct mig_arg a = {.result = result, .fd = -1};
        dispatch(s, ev, &a);
        if (replies)
                reply(s, result);
}

static void op_deferred(int result, void *userdata)
{
        struct mig_op *op = userdata;
        op_complete(op, result, op->deferred_ev);
}

/* A completion that arrives while its own step is still being dispatched (ops that answer at
 * once) runs on the next loop turn, so the caller always sees the step's final state. */
static void op_finish(struct mig_op *op, int result, enum migration_event ev)
{
        struct mig_session *s = op->s;
        op->deferred_ev = ev;
        if (fsm_busy(&s->fsm) && mig_defer(s->loop, &s->inflight, result, op_deferred, op) == 0)
                return;
        op_complete(op, result, ev);
}

static void op_done(int result, void *userdata)
{
        struct mig_op *op = userdata;
        op_finish(op, result, result < 0 ? op->fail : op->ok);
}

static void op_prepared(int result, bool vm_created, void *userdata)
{
        struct mig_op *op = userdata;
        op_finish(op, result, result >= 0 ? op->ok : vm_created ? op->fail_late : op->fail);
}

/* ---- guards --------------------------------------------------------------------------- */

bool migration_guard_session_mismatch(struct mig_session *s, void *arg)
{
        const struct mig_arg *a = arg;
        return strcmp(a->session_id ? a->session_id : "", s->id) != 0;
}

bool migration_guard_vm_not_created(struct mig_session *s, void *arg)
{
        return s->ops->vm_state(s->sb) == MIG_VM_NOT_CREATED;
}

bool migration_guard_patches_pending(struct mig_session *s, void *arg)
{
        s->pending_ids[0] = '\0';
        s->pending_n = 0;
        if (s->ops->pending_patches)
                s->pending_n =
                    s->ops->pending_patches(s->sb, s->pending_ids, sizeof(s->pending_ids));
        return s->pending_n > 0;
}

bool migration_guard_vm_terminated(struct mig_session *s, void *arg)
{
        return s->ops->vm_state(s->sb) == MIG_VM_TERMINATED;
}

bool migration_guard_vm_finalized(struct mig_session *s, void *arg)
{
        return s->ops->vm_state(s->sb) == MIG_VM_FINALIZED;
}

bool migration_guard_is_destination(struct mig_session *s, void *arg)
{
        return s->origin == MIG_ORIGIN_DESTINATION;
}

bool migration_guard_hcs_nothing_to_cancel(struct mig_session *s, void *arg)
{
        const struct mig_arg *a = arg;
        return a->result == -EALREADY;
}

bool migration_guard_finalize_began_in_cancelled(struct mig_session *s, void *arg)
{
        return s->finalize_from == MIGRATION_S_CANCELLED;
}

bool migration_guard_finalize_began_in_failed(struct mig_session *s, void *arg)
{
        return s->finalize_from == MIGRATION_S_FAILED;
}

/* ---- actions: source ---------------------------------------------------------------- */

/* The options document with Origin stamped (new string), or NULL on bad JSON / no memory. */
static char *stamp_origin(const char *opts_json, const char *origin)
{
        struct json_object *o =
            opts_json && *opts_json ? json_tokener_parse(opts_json) : json_object_new_object();
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return NULL;
        }
        json_object_object_add(o, "Origin", json_object_new_string(origin));
        char *r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return r;
}

static void begin_session(struct mig_session *s, const char *id, enum mig_origin origin)
{
        ferry_strscpy(s->id, id, sizeof(s->id));
        s->origin = origin;
        s->start_unix_us = wall_us();
        s->last_message_id = 0;
        s->has_latest = false;
        s->dropped = 0;
}

int migration_action_initialize_source(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        _cleanup_free_ char *opts = stamp_origin(a->opts_json, "Source");
        if (!opts) {
                set_error(s, "prepare: initialize options are not a JSON object");
                return -EINVAL;
        }
        struct mig_op *op =
            op_new(s, MIGRATION_E_SOURCE_PREPARE_DONE, MIGRATION_E_SOURCE_PREPARE_FAILED, true);
        if (!op)
                return -ENOMEM;
        /* Held tentatively so the completion finds its session; forgotten on failure. */
        begin_session(s, a->session_id, MIG_ORIGIN_SOURCE);
        int r = CTRL_ASK(s->ops->initialize(s->sb, opts, op_done, op));
        if (r < 0) {
                op_release(op);
                s->id[0] = '\0';
                s->origin = MIG_ORIGIN_NONE;
                const char *why = fsm_rejection(r); /* the VM's spec refused: paused, say */
                if (why)
                        set_error(s, "prepare: %s", why);
                else
                        set_error(s, "prepare: host-compute initialize: %s", strerror(-r));
                return r;
        }
        return FSM_PENDING;
}

int migration_action_forget_session(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        set_error(s, "prepare: host-compute initialize: %s", strerror(-a->result));
        s->id[0] = '\0';
        s->origin = MIG_ORIGIN_NONE;
        return 0;
}

int migration_action_export_sandbox(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        int r = CTRL_ASK(s->ops->export_state(s->sb, a->ret, a->ret_len));
        if (r < 0)
                set_error(s, "export: %s (session failed; finalize(resume) rolls back)",
                          refusal(r));
        return r;
}

/* ---- actions: destination ------------------------------------------------------------ */

int migration_action_import_sandbox(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        int r = CTRL_ASK(s->ops->import_state(s->sb, a->sandbox_id, a->buf, a->len));
        if (r < 0) {
                set_error(s, "import: %s", refusal(r));
                return r;
        }
        begin_session(s, a->session_id, MIG_ORIGIN_DESTINATION);
        ferry_strscpy(s->sandbox_id, a->sandbox_id, sizeof(s->sandbox_id));
        return 0;
}

int migration_action_patch_container(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        int r = s->ops->patch_container ? CTRL_ASK(s->ops->patch_container(s->sb, a->patch))
                                        : -EOPNOTSUPP;
        if (r < 0)
                set_error(s, "patch container %s: %s", a->patch->source_container_id, refusal(r));
        return r;
}

int migration_action_prepare_destination_vm(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        _cleanup_free_ char *opts = stamp_origin(a->opts_json, "Destination");
        if (!opts) {
                set_error(s, "prepare: initialize options are not a JSON object");
                return -EINVAL;
        }
        struct mig_op *op = op_new(s, MIGRATION_E_DESTINATION_PREPARE_DONE,
                                   MIGRATION_E_DESTINATION_CREATE_FAILED, true);
        if (!op)
                return -ENOMEM;
        op->fail_late = MIGRATION_E_DESTINATION_PATCH_FAILED;
        int r = CTRL_ASK(s->ops->prepare_destination(s->sb, opts, op_prepared, op));
        if (r < 0) {
                op_release(op);
                set_error(s, "prepare destination: %s", refusal(r));
                return r;
        }
        return FSM_PENDING;
}

/* ---- actions: socket and transfer ----------------------------------------------------- */

int migration_action_adopt_socket(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        int fd = TAKE_FD(a->fd);
        int r = 0;
        if (fd < 0)
                r = mig_socket_resolve(s->handoff, a->info, a->info_len, &fd);
        if (r == 0)
                r = mig_socket_check(fd);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                set_error(s, "register socket: %s (session failed)", strerror(-r));
                return r;
        }
        s->fd = fd;
        return 0;
}

static void timer_stop(struct mig_session *s)
{
        if (s->timer_armed) {
                uv_timer_stop(&s->timer);
                s->timer_armed = false;
        }
}

int migration_action_start_transfer(struct mig_session *s, void *arg)
{
        struct mig_op *op =
            op_new(s, MIGRATION_E_TRANSFER_DONE, MIGRATION_E_TRANSFER_FAILED, false);
        if (!op)
                return -ENOMEM;
        /* The transfer owns the socket from here: when it ends, the peer sees it close. */
        int r = CTRL_ASK(s->ops->transfer(s->sb, s->origin, TAKE_FD(s->fd),
                                          mig_session_number(s->id), op_done, op));
        if (r < 0) {
                op_release(op);
                set_error(s, "transfer: %s (session failed)", refusal(r));
                return r;
        }
        return FSM_PENDING;
}

int migration_action_adopt_socket_and_start_transfer(struct mig_session *s, void *arg)
{
        int r = migration_action_adopt_socket(s, arg);
        if (r < 0)
                return r;
        timer_stop(s);
        return migration_action_start_transfer(s, arg);
}

static void socket_timeout_cb(uv_timer_t *t)
{
        struct mig_session *s = t->data;
        struct mig_arg a = {.result = -ETIMEDOUT, .fd = -1};
        s->timer_armed = false;
        dispatch(s, MIGRATION_E_SOCKET_TIMEOUT, &a);
}

int migration_action_wait_for_socket(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        uint64_t us = a->timeout_us ? a->timeout_us : MIG_DEFAULT_SOCKET_TIMEOUT_US;
        uint64_t ms = (us + 999) / 1000;
        uv_timer_start(&s->timer, socket_timeout_cb, ms, 0);
        s->timer_armed = true;
        return FSM_PENDING;
}

int migration_action_report_failure(struct mig_session *s, void *arg)
{
        const struct mig_arg *a = arg;
        struct mig_notification n = {0};
        struct hcs_notification hn = {
            .event = HCS_EVENT_MIGRATION_FAILED,
            .origin =
                s->origin == MIG_ORIGIN_DESTINATION ? HCS_ORIGIN_DESTINATION : HCS_ORIGIN_SOURCE,
            .result = s->origin == MIG_ORIGIN_DESTINATION ? HCS_RESULT_DESTINATION_FAILED
                                                          : HCS_RESULT_SOURCE_FAILED,
            .error = a->result,
        };
        ferry_bprintf(hn.reason, sizeof(hn.reason), "%s",
                      a->result == -ETIMEDOUT ? "timed out waiting for the migration socket"
                                              : strerror(-a->result));
        /* Recorded as the latest even without a subscriber, so a later one sees it (§F.5). */
        mig_notification_from_host(&hn, s->origin, &n);
        broadcast(s, &n);
        return 0;
}

/* ---- actions: cancel and finalize -------------------------------------------------- */

int migration_action_note_nothing_to_cancel(struct mig_session *s, void *arg)
{
        set_error(s, "cancel: nothing left to abort (the host had already ended the transfer); "
                     "the session is cancelled");
        return 0;
}

int migration_action_cancel_migration(struct mig_session *s, void *arg)
{
        timer_stop(s); /* a parked transfer gives up at once */
        struct mig_op *op = op_new(s, MIGRATION_E_CANCEL_DONE, MIGRATION_E_CANCEL_FAILED, true);
        if (!op)
                return -ENOMEM;
        int r = CTRL_ASK(s->ops->cancel(s->sb, s->origin, op_done, op));
        if (r < 0) {
                op_release(op);
                set_error(s, "cancel: %s", refusal(r));
                return r;
        }
        return FSM_PENDING;
}

static int finalize_with(struct mig_session *s, bool resume, bool skip_host, bool terminate)
{
        s->finalize_from = fsm_state(&s->fsm); /* where a failure returns (spec's guards) */
        struct mig_op *op = op_new(s, MIGRATION_E_FINALIZE_DONE, MIGRATION_E_FINALIZE_FAILED, true);
        if (!op)
                return -ENOMEM;
        int r = CTRL_ASK(terminate
                             ? s->ops->terminate(s->sb, op_done, op)
                             : s->ops->finalize(s->sb, s->origin, resume, skip_host, op_done, op));
        if (r < 0) {
                op_release(op);
                set_error(s, "finalize: %s", refusal(r));
                return r;
        }
        return FSM_PENDING;
}

int migration_action_finalize_and_resume(struct mig_session *s, void *arg)
{
        return finalize_with(s, true, false, false);
}

int migration_action_resume_sandbox(struct mig_session *s, void *arg)
{
        return finalize_with(s, true, true, false);
}

int migration_action_finalize_and_stop(struct mig_session *s, void *arg)
{
        return finalize_with(s, false, false, false);
}

int migration_action_terminate_vm(struct mig_session *s, void *arg)
{
        return finalize_with(s, false, false, true);
}

/* The VM is gone (its exit, or an earlier stop): a rollback has nothing left to resume. The spec
 * finalizes the session either way so cleanup can end it; the caller hears why. */
int migration_action_report_vm_gone(struct mig_session *s, void *arg)
{
        set_error(s,
                  "finalize_resume in %s: the VM is terminated (it exited, or an earlier stop "
                  "finalize tore it down); nothing is left to resume; the session is finalized, "
                  "clean up next",
                  fsm_state_name(&s->fsm));
        return -ENOENT;
}

/* ---- actions: cleanup and notifications ---------------------------------------------- */

int migration_action_release_session(struct mig_session *s, void *arg)
{
        timer_stop(s);
        if (s->fd >= 0) {
                close(s->fd);
                s->fd = -1;
        }
        end_subscribers(s);
        if (s->ops->cleanup)
                s->ops->cleanup(s->sb);
        s->id[0] = '\0';
        s->sandbox_id[0] = '\0';
        s->origin = MIG_ORIGIN_NONE;
        s->has_latest = false;
        s->generation++;
        return 0;
}

int migration_action_subscribe(struct mig_session *s, void *arg)
{
        struct mig_arg *a = arg;
        struct mig_subscriber *sub = calloc(1, sizeof(*sub));
        if (!sub)
                return -ENOMEM;
        sub->s = s;
        sub->ops = a->sub_ops;
        sub->userdata = a->sub_userdata;
        sub->next = s->subs;
        s->subs = sub;
        s->n_subs++;
        *a->ret_sub = sub;
        if (s->has_latest && sub->ops->on_note(&s->latest, 0, sub->userdata) < 0) {
                sub->dropped++;
                s->dropped++;
        }
        return 0;
}

/* ---- public calls ------------------------------------------------------------------- */

int mig_session_new(uv_loop_t *loop, const struct migration_sandbox_ops *ops, void *sb,
                    struct mig_session **ret)
{
        struct mig_session *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->ops = ops;
        s->sb = sb;
        s->fd = -1;
        s->generation = 1;
        fsm_init(&s->fsm, &migration_machine, s, "migration");
        uv_timer_init(loop, &s->timer);
        s->timer.data = s;
        *ret = s;
        return 0;
}

static void session_free_cb(uv_handle_t *h)
{
        free(h->data);
}

int mig_session_free(struct mig_session *s)
{
        if (!s)
                return 0;
        if (s->inflight || s->call_done)
                return -EBUSY;
        s->freeing = true;
        timer_stop(s);
        if (s->fd >= 0)
                close(s->fd);
        end_subscribers(s);
        uv_close((uv_handle_t *)&s->timer, session_free_cb);
        return 0;
}

void mig_session_set_handoff(struct mig_session *s, struct mig_handoff *h)
{
        s->handoff = h;
}

unsigned mig_session_state(const struct mig_session *s)
{
        return fsm_state(&s->fsm);
}

const char *mig_session_state_name(const struct mig_session *s)
{
        return fsm_state_name(&s->fsm);
}

const char *mig_session_id(const struct mig_session *s)
{
        return s->id;
}

enum mig_origin mig_session_origin(const struct mig_session *s)
{
        return s->origin;
}

const char *mig_session_sandbox_id(const struct mig_session *s)
{
        return s->sandbox_id;
}

const char *mig_session_error(const struct mig_session *s)
{
        return s->error;
}

uint64_t mig_session_generation(const struct mig_session *s)
{
        return s->generation;
}

uint64_t mig_session_dropped(const struct mig_session *s)
{
        return s->dropped;
}

unsigned mig_session_subscribers(const struct mig_session *s)
{
        return s->n_subs;
}

static bool valid_id(const char *id, size_t max)
{
        return id && *id && strlen(id) <= max;
}

/* A call whose step may go pending: done runs now, or when the step's completion arrives. */
static int call_async(struct mig_session *s, enum migration_event ev, struct mig_arg *a,
                      mig_done_fn done, void *userdata)
{
        /* The spec lets one step wait for its completion at a time (cancel and finalize are
         * refused while another step is in flight), so one slot holds the waiting caller. */
        bool owned = !s->call_done;
        if (owned) {
                s->call_done = done;
                s->call_userdata = userdata;
        }
        int r = dispatch(s, ev, a);
        if (r == FSM_PENDING) {
                if (!owned)
                        abort(); /* the spec let two steps wait at once: a spec bug */
                return 0;
        }
        if (owned) {
                s->call_done = NULL;
                s->call_userdata = NULL;
        }
        if (r < 0)
                return r;
        if (done)
                done(0, userdata);
        return 0;
}

static void clear_error(struct mig_session *s)
{
        s->error[0] = '\0';
}

int mig_session_prepare_source(struct mig_session *s, const char *session_id, const char *opts_json,
                               mig_done_fn done, void *userdata)
{
        clear_error(s);
        if (!valid_id(session_id, MIG_SESSION_ID_MAX)) {
                set_error(s, "prepare: a session id (1..%d bytes) is required", MIG_SESSION_ID_MAX);
                return -EINVAL;
        }
        struct mig_arg a = {.session_id = session_id, .opts_json = opts_json, .fd = -1};
        return call_async(s, MIGRATION_E_PREPARE_SOURCE, &a, done, userdata);
}

int mig_session_export(struct mig_session *s, const char *session_id, uint8_t **ret,
                       size_t *ret_len)
{
        clear_error(s);
        struct mig_arg a = {.session_id = session_id, .ret = ret, .ret_len = ret_len, .fd = -1};
        int r = dispatch(s, MIGRATION_E_EXPORT, &a);
        return r < 0 ? r : 0;
}

int mig_session_import(struct mig_session *s, const char *session_id, const char *sandbox_id,
                       const char *type_url, const uint8_t *buf, size_t len)
{
        clear_error(s);
        if (!valid_id(session_id, MIG_SESSION_ID_MAX)) {
                set_error(s, "import: a session id (1..%d bytes) is required", MIG_SESSION_ID_MAX);
                return -EINVAL;
        }
        if (!valid_id(sandbox_id, MIG_SANDBOX_ID_MAX)) {
                set_error(s, "import: a sandbox id (1..%d bytes) is required", MIG_SANDBOX_ID_MAX);
                return -EINVAL;
        }
        if (!type_url || strcmp(type_url, MIG_SNAPSHOT_TYPE_URL) != 0 || !buf) {
                set_error(s, "import: the snapshot's type URL must be %s", MIG_SNAPSHOT_TYPE_URL);
                return -EINVAL;
        }
        struct mig_arg a = {
            .session_id = session_id, .sandbox_id = sandbox_id, .buf = buf, .len = len, .fd = -1};
        int r = dispatch(s, MIGRATION_E_IMPORT, &a);
        return r < 0 ? r : 0;
}

int mig_session_patch_container(struct mig_session *s, const struct mig_patch *patch)
{
        clear_error(s);
        if (!patch || !valid_id(patch->container_id, MIG_SANDBOX_ID_MAX) ||
            !valid_id(patch->source_container_id, MIG_SANDBOX_ID_MAX)) {
                set_error(s, "patch: the container id and the source container id are required");
                return -EINVAL;
        }
        struct mig_arg a = {.patch = patch, .fd = -1};
        int r = dispatch(s, MIGRATION_E_PATCH_CONTAINER, &a);
        return r < 0 ? r : 0;
}

int mig_session_prepare_destination(struct mig_session *s, const char *session_id,
                                    const char *opts_json, mig_done_fn done, void *userdata)
{
        clear_error(s);
        s->pending_n = 0;
        struct mig_arg a = {.session_id = session_id, .opts_json = opts_json, .fd = -1};
        int r = call_async(s, MIGRATION_E_PREPARE_DESTINATION, &a, done, userdata);
        if (r == -EBUSY && s->pending_n > 0) /* the spec's message is static: add the ids */
                set_error(s, "%d container patches still pending [%s]", s->pending_n,
                          s->pending_ids);
        return r;
}

static int register_socket(struct mig_session *s, const char *session_id, int fd, const void *info,
                           size_t len)
{
        struct mig_arg a = {.session_id = session_id, .fd = fd, .info = info, .info_len = len};
        int r = dispatch(s, MIGRATION_E_REGISTER_SOCKET, &a);
        if (a.fd >= 0)
                close(a.fd); /* rejected before the action took it */
        return r < 0 ? r : 0;
}

int mig_session_register_socket(struct mig_session *s, const char *session_id,
                                const void *protocol_info, size_t len)
{
        clear_error(s);
        int r = mig_socket_parse(protocol_info, len, NULL);
        if (r < 0) {
                set_error(s, "register socket: protocol_info is not a ferry socket reference "
                             "(\"ferry-socket-v1 token=<32 hex>\" or \"... pid=<n> fd=<n>\")");
                return r;
        }
        return register_socket(s, session_id, -1, protocol_info, len);
}

int mig_session_adopt_fd(struct mig_session *s, const char *session_id, int fd)
{
        clear_error(s);
        if (fd < 0) {
                set_error(s, "register socket: no fd");
                return -EBADF;
        }
        return register_socket(s, session_id, fd, NULL, 0);
}

int mig_session_transfer(struct mig_session *s, const char *session_id, uint64_t timeout_us)
{
        clear_error(s);
        struct mig_arg a = {.session_id = session_id, .timeout_us = timeout_us, .fd = -1};
        int r = dispatch(s, MIGRATION_E_TRANSFER, &a);
        return r < 0 ? r : 0;
}

int mig_session_finalize(struct mig_session *s, const char *session_id, int action,
                         mig_done_fn done, void *userdata)
{
        clear_error(s);
        if (action != MIG_FINALIZE_STOP && action != MIG_FINALIZE_RESUME) {
                set_error(s, "finalize: action %d is not STOP (1) or RESUME (2)", action);
                return -EINVAL;
        }
        struct mig_arg a = {.session_id = session_id, .fd = -1};
        return call_async(s,
                          action == MIG_FINALIZE_RESUME ? MIGRATION_E_FINALIZE_RESUME
                                                        : MIGRATION_E_FINALIZE_STOP,
                          &a, done, userdata);
}

int mig_session_cancel(struct mig_session *s, const char *session_id, mig_done_fn done,
                       void *userdata)
{
        clear_error(s);
        struct mig_arg a = {.session_id = session_id, .fd = -1};
        return call_async(s, MIGRATION_E_CANCEL, &a, done, userdata);
}

int mig_session_cleanup(struct mig_session *s, const char *session_id)
{
        clear_error(s);
        struct mig_arg a = {.session_id = session_id, .fd = -1};
        int r = dispatch(s, MIGRATION_E_CLEANUP, &a);
        return r < 0 ? r : 0;
}

int mig_session_subscribe(struct mig_session *s, const char *session_id,
                          const struct mig_subscriber_ops *ops, void *userdata,
                          struct mig_subscriber **ret)
{
        clear_error(s);
        if (!ops || !ops->on_note)
                return -EINVAL;
        struct mig_arg a = {.session_id = session_id,
                            .sub_ops = ops,
                            .sub_userdata = userdata,
                            .ret_sub = ret,
                            .fd = -1};
        int r = dispatch(s, MIGRATION_E_SUBSCRIBE, &a);
        return r < 0 ? r : 0;
}

void mig_subscriber_detach(struct mig_subscriber *sub)
{
        struct mig_session *s = sub->s;
        for (struct mig_subscriber **p = &s->subs; *p; p = &(*p)->next) {
                if (*p == sub) {
                        *p = sub->next;
                        s->n_subs--;
                        free(sub);
                        return;
                }
        }
}

int mig_session_ensure_idle(const struct mig_session *s, char *msg, size_t size)
{
        if (fsm_state(&s->fsm) == migration_machine.initial)
                return 0;
        if (msg)
                ferry_bprintf(msg, size, "migration session is in progress (state: %s)",
                              fsm_state_name(&s->fsm));
        return -EBUSY;
}

uint32_t mig_session_number(const char *session_id)
{
        char canon[MIG_SESSION_ID_MAX + 1];
        size_t n = strlen(session_id);
        ferry_strscpy(canon, session_id, sizeof(canon));
        /* A GUID in its 36-character form is compared case-insensitively. */
        bool guid = n == 36;
        for (size_t i = 0; guid && i < n; i++) {
                char c = canon[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? c != '-'
                         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                             (c >= 'A' && c <= 'F')))
                        guid = false;
        }
        if (guid)
                for (size_t i = 0; i < n; i++)
                        if (canon[i] >= 'A' && canon[i] <= 'F')
                                canon[i] = (char)(canon[i] - 'A' + 'a');
        uint8_t d[32];
        mig_sha256(canon, strlen(canon), d);
        return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}
