/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "cmd/ctl/ctl_migrate.h"
#include "cmd/ctl/ctl_proc.h"
#include "cmd/ctl/ctl_rpc.h"
#include "migration/socket.h"
#include "util/util.h"

#include "migration.pb-c.h"
#include "sandbox.pb-c.h"
#include "task.pb-c.h"

#define MIG_SERVICE     "Migration"
#define TASK_SERVICE    "containerd.task.v2.Task"
#define SANDBOX_SERVICE "containerd.runtime.sandbox.v1.Sandbox"
/* the annotation that routes a destination CreateTask to the patch path (B.8) */
#define SOURCE_CONTAINER_ANNOTATION "io.microsoft.migration.source-container-id"
/* how long rollback and finalize calls retry while the shim answers "in flight" */
#define RETRY_MS 15000
/* The destination's blackout ends when it resumes, so its DONE comes with FinalizeSandbox
 * (RESUME), not before: the source's DONE ends the transfer, and the destination is finalized
 * at once (every millisecond here is blackout). One still receiving the final pass answers
 * FAILED_PRECONDITION, which is retried; one that failed makes the finalize fail, and the
 * source is resumed. */

/* A source that will not stop while the destination runs is retried this many times. */
#define STOP_ATTEMPTS 3

/* mig_call retry flags: which answers mean "not yet" */
enum {
        RETRY_NONE = 0,
        RETRY_UNAVAILABLE = 1 << 0, /* a step is in flight */
        RETRY_BUSY = 1 << 1,        /* FAILED_PRECONDITION: e.g. the transfer is still running */
};

enum step {
        STEP_EXPORT,
        STEP_IMPORT,
        STEP_PATCH,
        STEP_PREPARE,
        STEP_SOCKET,
        STEP_TRANSFER,
        STEP_FINALIZE_RESUME,
        STEP_FINALIZE_STOP,
        STEP_CLEANUP,
        STEP__COUNT
};

static const char *const step_names[STEP__COUNT] = {
    "export (source)",
    "import (destination)",
    "patch tasks (destination)",
    "prepare (destination)",
    "socket handoff",
    "transfer",
    "finalize resume (destination)",
    "finalize stop (source)",
    "cleanup",
};

const char *ctl_step_name(size_t i)
{
        return i < STEP__COUNT ? step_names[i] : NULL;
}

static const char *const stop_names[CTL_STOP__COUNT] = {
    [CTL_STOP_EXPORT] = "export",
    [CTL_STOP_IMPORT] = "import",
    [CTL_STOP_PATCH] = "patch",
    [CTL_STOP_PREPARE] = "prepare",
    [CTL_STOP_TRANSFER_REQUESTED] = "transfer-requested",
    [CTL_STOP_SOCKET_SOURCE] = "socket-source",
    [CTL_STOP_SOCKET] = "socket",
    [CTL_STOP_TRANSFER_DESTINATION] = "transfer-destination",
    [CTL_STOP_TRANSFER_SOURCE] = "transfer-source",
    [CTL_STOP_TRANSFER_COMPLETED] = "transfer-completed",
};

const char *ctl_stop_name(enum ctl_stop st)
{
        return st > CTL_STOP_NONE && st < CTL_STOP__COUNT ? stop_names[st] : NULL;
}

int ctl_stop_parse(const char *name)
{
        for (int i = CTL_STOP_NONE + 1; i < CTL_STOP__COUNT; i++)
                if (strcmp(name, stop_names[i]) == 0)
                        return i;
        return -EINVAL;
}

/* One side of the migration: its connection and what its notifications said. */
struct side {
        const char *name; /* "source" / "destination" */
        struct ctl_conn conn;
        struct ctl_stream stream;
        bool streaming;
        bool started; /* a session exists on this side */
        bool done;    /* PHASE_DONE success */
        bool failed;  /* PHASE_FAILED or DONE without success */
        uint32_t pass;
        uint64_t bytes;
        uint64_t blackout_ms;
        uint64_t dropped;
        char reason[256];
        struct mig *m;
};

struct mig {
        const struct ctl_migrate_opts *opts;
        struct ctl_migrate_result *res;
        struct side src, dst;
        uv_loop_t loop;
        uint64_t t0;
        bool cancel_sent;
        bool dst_resumed;
        bool dst_unconfirmed;         /* the source said DONE, the destination said nothing */
        uint64_t blackout_started_at; /* the source's BLACKOUT_STARTED arrived */
        bool tty;                     /* stdout is a terminal: progress redraws one bar line */
        bool bar_open;                /* the bar line has no newline yet */
        struct ctl_relay *relay;      /* opts->drop_after_bytes: ferryctl relays the transport */
        bool stopped;                 /* opts->stop_after was reached */
        bool patched;                 /* the destination knows the containers by their new ids */
};

static void say(struct mig *m, const char *fmt, ...) _printf_(2, 3);
static void say(struct mig *m, const char *fmt, ...)
{
        va_list ap;

        if (m->opts->json || m->opts->quiet)
                return;
        if (m->bar_open) {
                putchar('\n');
                m->bar_open = false;
        }
        printf("[%7.3f] ", (double)(ferry_now_us() - m->t0) / 1e6);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static void fail(struct mig *m, const char *fmt, ...) _printf_(2, 3);
static void fail(struct mig *m, const char *fmt, ...)
{
        va_list ap;

        if (m->res->failure[0])
                return;
        va_start(ap, fmt);
        (void)vsnprintf(m->res->failure, sizeof(m->res->failure), fmt, ap);
        va_end(ap);
        fprintf(stderr, "ferryctl: migrate: %s\n", m->res->failure);
}

static void fail_err(struct mig *m, const char *what, const struct ctl_error *err)
{
        fail(m, "%s: %s: %s", what, ferry_code_name(err->code), err->message);
}

/* ---- notifications ---------------------------------------------------------------------- */

static const char *phase_name(Phase p)
{
        static const char *const names[] = {
            "unspecified",
            "setup_done",
            "transfer_in_progress",
            "blackout_started",
            "offline_done",
            "blackout_exited",
            "done",
            "recovery_done",
            "failed",
        };

        return (size_t)p < ARRAY_SIZE(names) ? names[p] : "unknown";
}

static const char *phase_state_name(PhaseState s)
{
        static const char *const names[] = {
            "unspecified",     "success",       "cancelled",
            "guest_cancelled", "source_failed", "destination_failed",
            "recovery_failed",
        };

        return (size_t)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static void print_json_notification(const struct side *s, const NotificationsResponse *n)
{
        json_object *o = json_object_new_object();
        const Notification *no = n->notification;

        json_object_object_add(o, "side", json_object_new_string(s->name));
        json_object_object_add(o, "message_id", json_object_new_int64(n->message_id));
        if (no) {
                json_object_object_add(o, "phase", json_object_new_string(phase_name(no->phase)));
                json_object_object_add(o, "state",
                                       json_object_new_string(phase_state_name(no->state)));
                if (no->phase_details_case == NOTIFICATION__PHASE_DETAILS_BLACKOUT_EXITED &&
                    no->blackout_exited)
                        json_object_object_add(
                            o, "blackout_ms",
                            json_object_new_int64(
                                (int64_t)no->blackout_exited->blackout_duration_milliseconds));
        }
        if (n->progress) {
                json_object_object_add(o, "pass", json_object_new_int64(n->progress->pass));
                json_object_object_add(o, "bytes",
                                       json_object_new_int64((int64_t)n->progress->bytes));
                json_object_object_add(o, "dirty_pages",
                                       json_object_new_int64((int64_t)n->progress->dirty_pages));
        }
        if (n->reason && n->reason[0])
                json_object_object_add(o, "reason", json_object_new_string(n->reason));
        if (n->dropped)
                json_object_object_add(o, "dropped", json_object_new_int64((int64_t)n->dropped));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        fflush(stdout);
        json_object_put(o);
}

/* The bar fills with the passes (the sim stops pre-copy after 10 by default) and says how
 * much is left dirty. */
static void draw_bar(struct mig *m, uint32_t pass, double mib, uint64_t dirty)
{
        char bar[21];
        uint32_t fill = pass >= 10 ? 20 : pass * 2;

        memset(bar, '#', fill);
        memset(bar + fill, '.', 20 - fill);
        bar[20] = '\0';
        printf("\r[%7.3f] transfer [%s] pass %u, %.1f MiB sent, %" PRIu64 " pages dirty   ",
               (double)(ferry_now_us() - m->t0) / 1e6, bar, pass, mib, dirty);
        fflush(stdout);
        m->bar_open = true;
}

static void note_progress(struct side *s, const NotificationsResponse *n)
{
        struct mig *m = s->m;
        double mib;

        if (!n->progress)
                return;
        if (n->progress->pass > s->pass) {
                s->pass = n->progress->pass;
                if (s == &m->src && m->opts->on_pass)
                        m->opts->on_pass(s->pass, m->opts->userdata);
        }
        if (n->progress->bytes > s->bytes)
                s->bytes = n->progress->bytes;
        if (s != &m->src)
                return;
        mib = (double)n->progress->bytes / (1024.0 * 1024.0);
        if (m->tty && !m->opts->json && !m->opts->quiet) {
                draw_bar(m, n->progress->pass, mib, n->progress->dirty_pages);
                return;
        }
        say(m, "%s: pass %u, %.1f MiB sent, %" PRIu64 " pages dirty", s->name, n->progress->pass,
            mib, n->progress->dirty_pages);
}

static void on_notification(ProtobufCMessage *msg, void *userdata)
{
        struct side *s = userdata;
        struct mig *m = s->m;
        NotificationsResponse *n = (NotificationsResponse *)msg;
        const Notification *no = n->notification;

        if (n->dropped > s->dropped)
                s->dropped = n->dropped;
        if (m->opts->json)
                print_json_notification(s, n);
        if (!no)
                goto out;
        switch (no->phase) {
        case PHASE__PHASE_TRANSFER_IN_PROGRESS:
                note_progress(s, n);
                break;
        case PHASE__PHASE_BLACKOUT_STARTED:
                if (s == &m->src && !m->blackout_started_at)
                        m->blackout_started_at = ferry_now_us();
                say(m, "%s: blackout started", s->name);
                break;
        case PHASE__PHASE_BLACKOUT_EXITED:
                if (no->phase_details_case == NOTIFICATION__PHASE_DETAILS_BLACKOUT_EXITED &&
                    no->blackout_exited)
                        s->blackout_ms = no->blackout_exited->blackout_duration_milliseconds;
                say(m, "%s: blackout exited after %" PRIu64 " ms", s->name, s->blackout_ms);
                break;
        case PHASE__PHASE_DONE:
                note_progress(s, n);
                if (no->state == PHASE_STATE__PHASE_STATE_SUCCESS)
                        s->done = true;
                else
                        s->failed = true;
                say(m, "%s: transfer done (%s)", s->name, phase_state_name(no->state));
                break;
        case PHASE__PHASE_FAILED:
                s->failed = true;
                (void)ferry_strscpy(s->reason, n->reason ? n->reason : "", sizeof(s->reason));
                say(m, "%s: transfer failed (%s)%s%s", s->name, phase_state_name(no->state),
                    s->reason[0] ? ": " : "", s->reason);
                break;
        default:
                say(m, "%s: %s (%s)", s->name, phase_name(no->phase), phase_state_name(no->state));
                break;
        }
out:
        protobuf_c_message_free_unpacked(msg, NULL);
}

static int open_notifications(struct mig *m, struct side *s)
{
        NotificationsRequest req = NOTIFICATIONS_REQUEST__INIT;
        struct ctl_error err;
        int r;

        req.session_id = m->res->session_id;
        s->stream.on_msg = on_notification;
        s->stream.userdata = s;
        r = ctl_stream_open(&s->conn, MIG_SERVICE, "Notifications", &req.base,
                            &notifications_response__descriptor, &s->stream, &err);
        if (r < 0) {
                fail_err(m, "notifications", &err);
                return r;
        }
        s->streaming = true;
        return 0;
}

/* ---- small calls ------------------------------------------------------------------------ */

static bool never(void *userdata)
{
        return false;
}

/* Lets the loop run (streams are served) for ms. */
static void pause_ms(struct mig *m, uint64_t ms)
{
        (void)ctl_run_until(&m->loop, never, NULL, ms);
}

/* A unary Migration call; retried while the shim says a step is in flight (UNAVAILABLE on a
 * live connection) when retry is set. */
static int mig_call(struct side *s, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp,
                    unsigned retry, struct ctl_error *err)
{
        uint64_t deadline = ferry_now_us() + RETRY_MS * 1000ULL;
        unsigned wait_ms = 1;
        int r;

        for (;;) {
                r = ctl_call(&s->conn, MIG_SERVICE, method, req, resp_desc, ret_resp, err);
                bool again = (err->code == FERRY_CODE_UNAVAILABLE && (retry & RETRY_UNAVAILABLE)) ||
                             (err->code == FERRY_CODE_FAILED_PRECONDITION && (retry & RETRY_BUSY));

                if (r == 0 || !again || s->conn.lost || ferry_now_us() >= deadline ||
                    ctl_interrupted)
                        return r;
                /* from 1 ms, doubling to 20: the destination's FinalizeSandbox(RESUME) is
                 * retried inside the blackout, where its last pass is usually a millisecond
                 * from done (a flat 20 ms added 20 ms of blackout) */
                pause_ms(s->m, wait_ms);
                wait_ms = wait_ms < 10 ? wait_ms * 2 : 20;
        }
}

static int session_call(struct side *s, const char *method, unsigned retry, struct ctl_error *err)
{
        /* CancelRequest and CleanupRequest share this layout: one session_id string */
        if (strcmp(method, "Cancel") == 0) {
                CancelRequest req = CANCEL_REQUEST__INIT;

                req.session_id = s->m->res->session_id;
                return mig_call(s, method, &req.base, &cancel_response__descriptor, NULL, retry,
                                err);
        }
        CleanupRequest req = CLEANUP_REQUEST__INIT;

        req.session_id = s->m->res->session_id;
        return mig_call(s, method, &req.base, &cleanup_response__descriptor, NULL, retry, err);
}

static int finalize(struct side *s, FinalizeAction action, unsigned retry, struct ctl_error *err)
{
        FinalizeSandboxRequest req = FINALIZE_SANDBOX_REQUEST__INIT;

        req.session_id = s->m->res->session_id;
        req.action = action;
        return mig_call(s, "FinalizeSandbox", &req.base, &finalize_sandbox_response__descriptor,
                        NULL, retry, err);
}

/* ---- stop, hold and cancel points (--stop-after, --hold-after) ------------------------- */

/* The task this side knows the first container by, or NULL without --container. */
static const char *probe_task(const struct side *s)
{
        const struct ctl_migrate_opts *o = s->m->opts;
        const struct ctl_container_map *c = &o->containers[0];

        if (!o->n_containers)
                return NULL;
        if (s == &s->m->dst && s->m->patched && c->destination_id)
                return c->destination_id;
        return c->source_id;
}

/* The session's state on s in the shim's own words: Task.State on a task the shim knows is
 * refused with "migration session is in progress (state: X)" while a session exists, and
 * answered when it is idle (migration_service.md §B.7). Anything else is "unknown (CODE)". */
static void probe_state(struct side *s, char *ret, size_t size)
{
        Containerd__Task__V2__StateRequest req = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
        Containerd__Task__V2__StateResponse *resp = NULL;
        const char *id = probe_task(s), *p, *end;
        struct ctl_error err;

        if (!id || !s->conn.client || s->conn.lost) {
                (void)ferry_strscpy(ret, "unknown (no task to ask)", size);
                return;
        }
        req.id = (char *)id;
        if (ctl_call(&s->conn, TASK_SERVICE, "State", &req.base,
                     &containerd__task__v2__state_response__descriptor,
                     (ProtobufCMessage **)&resp, &err) == 0) {
                protobuf_c_message_free_unpacked(&resp->base, NULL);
                (void)ferry_strscpy(ret, "idle", size);
                return;
        }
        p = err.code == FERRY_CODE_FAILED_PRECONDITION ? strstr(err.message, "(state: ") : NULL;
        end = p ? strchr(p, ')') : NULL;
        if (end)
                (void)snprintf(ret, size, "%.*s", (int)(end - p - 8), p + 8);
        else
                (void)snprintf(ret, size, "unknown (%s)", ferry_code_name(err.code));
}

/* Polls s until its session is in state want or ms pass. Returns 0 or -ETIMEDOUT. */
static int wait_state(struct side *s, const char *want, uint64_t ms)
{
        uint64_t deadline = ferry_now_us() + ms * 1000;
        char st[48];

        for (;;) {
                probe_state(s, st, sizeof(st));
                if (strcmp(st, want) == 0)
                        return 0;
                if (ferry_now_us() >= deadline || ctl_interrupted || s->conn.lost)
                        return -ETIMEDOUT;
                pause_ms(s->m, 10);
        }
}

static bool stop_here(struct mig *m, enum ctl_stop at)
{
        if (m->opts->stop_after != at)
                return false;
        m->stopped = true;
        say(m, "stopped after %s as asked", stop_names[at]);
        return true;
}

static bool stdin_ready(void)
{
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};

        return poll(&p, 1, 0) != 0;
}

/* --hold-after: tells the caller where the orchestration waits, then serves the streams until
 * a line (or EOF) arrives on stdin. Returns 0, or -EINTR after a signal (a rollback follows). */
static int hold(struct mig *m, enum ctl_stop at)
{
        char c;

        if (!(m->opts->hold_mask & (1u << at)))
                return 0;
        printf("{\"held\":\"%s\",\"session_id\":\"%s\"}\n", stop_names[at], m->res->session_id);
        fflush(stdout);
        while (!ctl_interrupted && !stdin_ready())
                pause_ms(m, 20);
        while (!ctl_interrupted && read(STDIN_FILENO, &c, 1) == 1 && c != '\n')
                ;
        if (!ctl_interrupted)
                return 0;
        fail(m, "interrupted by signal %d while held after %s", (int)ctl_interrupted,
             stop_names[at]);
        return -EINTR;
}

/* --stop-after: Cancel on each side asked for, with the state it found the session in. The
 * answer is reported, not judged: a Cancel the spec refuses is what a test wants to see. */
static void cancel_at_stop(struct mig *m)
{
        struct side *sides[2] = {&m->src, &m->dst};
        struct ctl_error err;

        for (size_t i = 0; i < 2; i++) {
                struct ctl_cancel_report *rep = &m->res->cancel[i];

                if (!(m->opts->cancel_sides & (1u << i)))
                        continue;
                probe_state(sides[i], rep->state, sizeof(rep->state));
                rep->sent = true;
                if (session_call(sides[i], "Cancel", RETRY_UNAVAILABLE, &err) == 0)
                        err = (struct ctl_error){.code = FERRY_CODE_OK};
                rep->code = err.code;
                (void)ferry_strscpy(rep->message, err.message, sizeof(rep->message));
                say(m, "%s Cancel in %s: %s%s%s", sides[i]->name, rep->state,
                    ferry_code_name(rep->code), rep->message[0] ? ": " : "", rep->message);
        }
        m->cancel_sent = true;
}

/* ---- the steps -------------------------------------------------------------------------- */

static void step_begin(struct mig *m, enum step st, uint64_t *t)
{
        *t = ferry_now_us();
        say(m, "%s ...", step_names[st]);
}

static void step_end(struct mig *m, enum step st, uint64_t t)
{
        m->res->step_us[st] = ferry_now_us() - t;
}

static int source_sandbox_id(struct mig *m, char *ret_id, size_t size)
{
        Containerd__Runtime__Sandbox__V1__SandboxStatusRequest req =
            CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_REQUEST__INIT;
        Containerd__Runtime__Sandbox__V1__SandboxStatusResponse *resp = NULL;
        struct ctl_error err;
        int r;

        r = ctl_call(&m->src.conn, SANDBOX_SERVICE, "SandboxStatus", &req.base,
                     &containerd__runtime__sandbox__v1__sandbox_status_response__descriptor,
                     (ProtobufCMessage **)&resp, &err);
        if (r < 0) {
                fail_err(m, "source sandbox status", &err);
                return r;
        }
        r = ferry_strscpy(ret_id, resp->sandbox_id, size) < 0 ? -E2BIG : 0;
        if (r == 0 && !ret_id[0])
                r = -ENOENT;
        if (r < 0)
                fail(m, "the source shim has no sandbox");
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return r;
}

static int step_export(struct mig *m, ProtobufAny **ret_config)
{
        PrepareAndExportSandboxRequest req = PREPARE_AND_EXPORT_SANDBOX_REQUEST__INIT;
        InitializeOptions init = INITIALIZE_OPTIONS__INIT;
        PrepareAndExportSandboxResponse *resp = NULL;
        struct ctl_error err;
        uint64_t t;
        int r;

        step_begin(m, STEP_EXPORT, &t);
        init.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        /* the destination proves the image arrived whole: a mismatch fails the transfer */
        init.checksum_verification = true;
        req.session_id = m->res->session_id;
        req.init_options = &init;
        m->src.started = true;
        r = mig_call(&m->src, "PrepareAndExportSandbox", &req.base,
                     &prepare_and_export_sandbox_response__descriptor, (ProtobufCMessage **)&resp,
                     false, &err);
        step_end(m, STEP_EXPORT, t);
        if (r < 0) {
                fail_err(m, "source PrepareAndExportSandbox", &err);
                return r;
        }
        if (!resp->config) {
                fail(m, "source PrepareAndExportSandbox returned no snapshot");
                protobuf_c_message_free_unpacked(&resp->base, NULL);
                return -EBADMSG;
        }
        say(m, "snapshot %s, %zu bytes", resp->config->type_url, resp->config->value.len);
        *ret_config = resp->config;
        resp->config = NULL;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return 0;
}

static int step_import(struct mig *m, ProtobufAny *config, const char *sandbox_id)
{
        ImportSandboxRequest req = IMPORT_SANDBOX_REQUEST__INIT;
        struct ctl_error err;
        uint64_t t;
        int r;

        step_begin(m, STEP_IMPORT, &t);
        req.session_id = m->res->session_id;
        req.sandbox_id = (char *)sandbox_id;
        req.config = config;
        m->dst.started = true;
        r = mig_call(&m->dst, "ImportSandbox", &req.base, &import_sandbox_response__descriptor,
                     NULL, RETRY_NONE, &err);
        step_end(m, STEP_IMPORT, t);
        if (r < 0) {
                m->dst.started = false;
                fail_err(m, "destination ImportSandbox", &err);
        }
        return r;
}

/* Writes <dir>/<id>/config.json: an OCI spec whose annotations route CreateTask to the patch
 * path. Returns 0 and the bundle path, or a negative errno. */
static int write_patch_bundle(const char *dir, const struct ctl_container_map *c,
                              const char *sandbox_id, char *ret_bundle)
{
        const char *dst = c->destination_id ? c->destination_id : c->source_id;
        char path[PATH_MAX];
        json_object *o, *ann;
        int r;

        if (ferry_bprintf(ret_bundle, PATH_MAX, "%s/%s", dir, dst) < 0 ||
            ferry_bprintf(path, sizeof(path), "%s/config.json", ret_bundle) < 0)
                return -ENAMETOOLONG;
        if (mkdir(ret_bundle, 0700) < 0 && errno != EEXIST)
                return -errno;
        o = json_object_new_object();
        ann = json_object_new_object();
        json_object_object_add(o, "ociVersion", json_object_new_string("1.1.0"));
        json_object_object_add(ann, SOURCE_CONTAINER_ANNOTATION,
                               json_object_new_string(c->source_id));
        json_object_object_add(ann, "io.kubernetes.cri.sandbox-id",
                               json_object_new_string(sandbox_id));
        json_object_object_add(o, "annotations", ann);
        r = json_object_to_file_ext(path, o, JSON_C_TO_STRING_PRETTY) < 0 ? -EIO : 0;
        json_object_put(o);
        return r;
}

static int step_patch(struct mig *m, const char *sandbox_id)
{
        const struct ctl_migrate_opts *o = m->opts;
        struct ctl_error err;
        uint64_t t;
        int r = 0;

        step_begin(m, STEP_PATCH, &t);
        for (size_t i = 0; i < o->n_containers && r == 0; i++) {
                const struct ctl_container_map *c = &o->containers[i];
                Containerd__Task__V2__CreateTaskRequest req =
                    CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
                Containerd__Task__V2__CreateTaskResponse *resp = NULL;
                char bundle[PATH_MAX];

                r = write_patch_bundle(o->bundle_dir, c, sandbox_id, bundle);
                if (r < 0) {
                        fail(m, "bundle for %s in %s: %s", c->source_id, o->bundle_dir,
                             strerror(-r));
                        break;
                }
                req.id = (char *)(c->destination_id ? c->destination_id : c->source_id);
                req.bundle = bundle;
                r = ctl_call(&m->dst.conn, TASK_SERVICE, "Create", &req.base,
                             &containerd__task__v2__create_task_response__descriptor,
                             (ProtobufCMessage **)&resp, &err);
                if (r < 0) {
                        fail_err(m, "destination CreateTask (patch)", &err);
                        break;
                }
                say(m, "patched %s -> %s (pid %u)", c->source_id, req.id, resp->pid);
                protobuf_c_message_free_unpacked(&resp->base, NULL);
        }
        m->patched = r == 0;
        step_end(m, STEP_PATCH, t);
        return r;
}

static int step_prepare(struct mig *m)
{
        PrepareSandboxRequest req = PREPARE_SANDBOX_REQUEST__INIT;
        InitializeOptions init = INITIALIZE_OPTIONS__INIT;
        struct ctl_error err;
        uint64_t t;
        int r;

        step_begin(m, STEP_PREPARE, &t);
        init.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        /* the destination proves the image arrived whole: a mismatch fails the transfer */
        init.checksum_verification = true;
        req.session_id = m->res->session_id;
        req.init_options = &init;
        r = mig_call(&m->dst, "PrepareSandbox", &req.base, &prepare_sandbox_response__descriptor,
                     NULL, RETRY_NONE, &err);
        step_end(m, STEP_PREPARE, t);
        if (r < 0)
                fail_err(m, "destination PrepareSandbox", &err);
        return r;
}

/* A connected pair of stream sockets: loopback TCP or a unix socketpair. */
static int transport_pair(enum ctl_transport kind, int ret_fds[2])
{
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t alen = sizeof(a);
        _cleanup_close_ int l = -1, c = -1;
        int s;

        if (kind == CTL_TRANSPORT_UNIX)
                return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ret_fds) < 0 ? -errno : 0;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
            getsockname(l, (struct sockaddr *)&a, &alen) < 0)
                return -errno;
        c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
                return -errno;
        s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0)
                return -errno;
        ret_fds[0] = TAKE_FD(c);
        ret_fds[1] = s;
        return 0;
}

/* The shim's handoff socket, "<address>.handoff", when it listens on one. */
static bool handoff_path(const struct side *s, char *path, size_t size)
{
        const char *addr = s == &s->m->src ? s->m->opts->source : s->m->opts->destination;
        struct stat st;

        if (ferry_bprintf(path, size, "%s.handoff", addr) < 0)
                return false;
        return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Hands fd to the shim behind s (docs/migration.md, "socket adoption"): over the shim's handoff
 * socket with a one-time token when it has one (needs no ptrace rights, and works for a shim
 * under valgrind, which lacks pidfd_getfd), else as "pid=<pid> fd=<fd>" for pidfd_getfd(2),
 * which the shim does while the call is in flight. */
static int hand_socket(struct side *s, int fd, struct ctl_error *err)
{
        CreateDuplicateSocketRequest req = CREATE_DUPLICATE_SOCKET_REQUEST__INIT;
        char info[96], path[PATH_MAX], token[MIG_TOKEN_LEN + 1];
        int n, r;

        if (handoff_path(s, path, sizeof(path))) {
                r = mig_token_new(token);
                if (r == 0)
                        r = mig_handoff_send(path, fd, token, 5000);
                if (r < 0) {
                        *err = (struct ctl_error){.code = FERRY_CODE_UNAVAILABLE};
                        (void)ferry_bprintf(err->message, sizeof(err->message),
                                            "handoff %.400s: %s", path, strerror(-r));
                        return r;
                }
                n = snprintf(info, sizeof(info), "ferry-socket-v1 token=%s", token);
        } else {
                n = snprintf(info, sizeof(info), "ferry-socket-v1 pid=%d fd=%d", (int)getpid(), fd);
        }
        req.session_id = s->m->res->session_id;
        req.protocol_info.data = (uint8_t *)info;
        req.protocol_info.len = (size_t)n;
        return mig_call(s, "CreateDuplicateSocket", &req.base,
                        &create_duplicate_socket_response__descriptor, NULL, RETRY_NONE, err);
}

/* Two pairs with ferryctl's relay between them: ret_fds gets the shims' ends. */
static int relay_pairs(struct mig *m, int ret_fds[2])
{
        int a[2], b[2], r;

        r = transport_pair(m->opts->transport, a);
        if (r < 0)
                return r;
        r = transport_pair(m->opts->transport, b);
        if (r < 0) {
                close(a[0]);
                close(a[1]);
                return r;
        }
        r = ctl_relay_start(a[1], b[0], m->opts->drop_after_bytes, m->opts->drop_side, &m->relay);
        if (r < 0) {
                close(a[0]);
                close(b[1]);
                return r;
        }
        say(m, "transport relayed by ferryctl: dropped (%s) after %" PRIu64 " bytes",
            ctl_drop_side_name(m->opts->drop_side), m->opts->drop_after_bytes);
        ret_fds[0] = a[0];
        ret_fds[1] = b[1];
        return 0;
}

/* Hands one end of a new transport to each shim; source_only: the source's end only (the
 * destination's is closed, as a peer that never came). */
static int step_socket(struct mig *m, bool source_only)
{
        int fds[2] = {-1, -1};
        struct ctl_error err;
        uint64_t t;
        int r;

        step_begin(m, STEP_SOCKET, &t);
        r = m->opts->drop_after_bytes ? relay_pairs(m, fds)
                                      : transport_pair(m->opts->transport, fds);
        if (r < 0) {
                fail(m, "transport: %s", strerror(-r));
                return r;
        }
        r = hand_socket(&m->src, fds[0], &err);
        if (r < 0)
                fail_err(m, "source CreateDuplicateSocket", &err);
        else if (!source_only && (r = hand_socket(&m->dst, fds[1], &err)) < 0)
                fail_err(m, "destination CreateDuplicateSocket", &err);
        /* each shim holds its own duplicate now; ferryctl's copies must not keep it open */
        close(fds[0]);
        close(fds[1]);
        step_end(m, STEP_SOCKET, t);
        return r;
}

static void maybe_cancel(struct mig *m)
{
        struct ctl_error err;
        int r;

        if (m->opts->cancel_after_pass < 0 || m->cancel_sent ||
            m->src.pass < m->opts->cancel_after_pass)
                return;
        m->cancel_sent = true;
        say(m, "cancelling at pass %u as asked", m->src.pass);
        r = session_call(&m->src, "Cancel", RETRY_UNAVAILABLE, &err);
        if (r < 0)
                say(m, "source Cancel: %s: %s", ferry_code_name(err.code), err.message);
        r = session_call(&m->dst, "Cancel", RETRY_UNAVAILABLE, &err);
        if (r < 0)
                say(m, "destination Cancel: %s: %s", ferry_code_name(err.code), err.message);
}

static bool transfer_over(void *userdata)
{
        struct mig *m = userdata;

        if (ctl_interrupted || m->cancel_sent)
                return true;
        if (m->src.failed || m->dst.failed)
                return true;
        if (m->src.done && m->dst.done)
                return true;
        if (m->src.done)
                return true;
        /* a stream that ended (shim gone, or cleaned up) cannot report any more */
        return m->src.stream.done || m->dst.stream.done;
}

static int transfer_start(struct side *s, struct ctl_error *err)
{
        TransferSandboxRequest req = TRANSFER_SANDBOX_REQUEST__INIT;
        ProtobufDuration timeout = PROTOBUF_DURATION__INIT;

        timeout.seconds = s->m->opts->timeout_s ? s->m->opts->timeout_s : 120;
        req.session_id = s->m->res->session_id;
        req.timeout = &timeout;
        return mig_call(s, "TransferSandbox", &req.base, &transfer_sandbox_response__descriptor,
                        NULL, RETRY_NONE, err);
}

static int step_transfer(struct mig *m)
{
        uint64_t limit_us = (m->opts->timeout_s ? m->opts->timeout_s : 120) * 1000000ULL;
        struct ctl_error err;
        uint64_t t;
        int r;

        step_begin(m, STEP_TRANSFER, &t);
        r = transfer_start(&m->dst, &err);
        if (r < 0) {
                fail_err(m, "destination TransferSandbox", &err);
                return r;
        }
        r = transfer_start(&m->src, &err);
        if (r < 0) {
                fail_err(m, "source TransferSandbox", &err);
                return r;
        }
        if (m->opts->on_pass)
                m->opts->on_pass(0, m->opts->userdata);
        while (!transfer_over(m)) {
                if (ferry_now_us() - t > limit_us) {
                        fail(m, "transfer did not end within %" PRIu64 " s", limit_us / 1000000);
                        r = -ETIMEDOUT;
                        break;
                }
                maybe_cancel(m);
                (void)ctl_run_until(&m->loop, transfer_over, m, 50);
        }
        step_end(m, STEP_TRANSFER, t);
        m->res->transfer_us = m->res->step_us[STEP_TRANSFER];
        if (r < 0 || m->cancel_sent)
                return r;
        if (ctl_interrupted) {
                fail(m, "interrupted by signal %d", (int)ctl_interrupted);
                return -EINTR;
        }
        if (m->src.failed || m->dst.failed) {
                struct side *s = m->src.failed ? &m->src : &m->dst;

                fail(m, "%s reported the transfer failed%s%s", s->name, s->reason[0] ? ": " : "",
                     s->reason);
                return -ECANCELED;
        }
        if (m->src.done && !m->dst.done && !m->dst.stream.done) {
                m->dst_unconfirmed = true;
                return 0;
        }
        if (!(m->src.done && m->dst.done)) {
                struct side *s = m->src.stream.done ? &m->src : &m->dst;

                fail(m, "%s notifications ended before the transfer did: %s %s", s->name,
                     ferry_code_name(s->stream.code), s->stream.message);
                return -EPIPE;
        }
        return 0;
}

/* Success: the destination resumes first, so a failure there can still roll back to the
 * source (paused since the blackout); then the source stops. */
static int step_finalize(struct mig *m)
{
        struct ctl_error err;
        uint64_t t;
        int r;

        step_begin(m, STEP_FINALIZE_RESUME, &t);
        r = finalize(&m->dst, FINALIZE_ACTION__FINALIZE_ACTION_RESUME,
                     RETRY_UNAVAILABLE | (m->dst_unconfirmed ? RETRY_BUSY : 0), &err);
        step_end(m, STEP_FINALIZE_RESUME, t);
        if (r < 0) {
                fail_err(m, "destination FinalizeSandbox(RESUME)", &err);
                return r;
        }
        m->dst_resumed = true;
        if (m->blackout_started_at)
                m->res->blackout_observed_us = ferry_now_us() - m->blackout_started_at;
        m->res->resumed_on_destination = true;
        step_begin(m, STEP_FINALIZE_STOP, &t);
        /* the destination runs now, so the source must stop: a failed finalize leaves the
         * session where it was and a retry is reconciled with the VM's real state */
        for (int attempt = 1;; attempt++) {
                r = finalize(&m->src, FINALIZE_ACTION__FINALIZE_ACTION_STOP, RETRY_UNAVAILABLE,
                             &err);
                if (r == 0 || attempt == STOP_ATTEMPTS || m->src.conn.lost || ctl_interrupted)
                        break;
                say(m, "source FinalizeSandbox(STOP) failed (%s: %s), retrying",
                    ferry_code_name(err.code), err.message);
                pause_ms(m, 100);
        }
        step_end(m, STEP_FINALIZE_STOP, t);
        if (r < 0) {
                /* a source that would not stop is reported, never resumed */
                fail_err(m, "source FinalizeSandbox(STOP)", &err);
                return r;
        }
        return 0;
}

static int step_cleanup(struct mig *m)
{
        struct ctl_error err;
        uint64_t t;
        int r, r2;

        step_begin(m, STEP_CLEANUP, &t);
        r = session_call(&m->dst, "Cleanup", RETRY_UNAVAILABLE, &err);
        if (r < 0)
                fail_err(m, "destination Cleanup", &err);
        r2 = session_call(&m->src, "Cleanup", RETRY_UNAVAILABLE, &err);
        if (r2 < 0)
                fail_err(m, "source Cleanup", &err);
        step_end(m, STEP_CLEANUP, t);
        return r < 0 ? r : r2;
}

/* The destination's copy is discarded: Cancel (a no-op where nothing is left to abort),
 * Cleanup (after a FinalizeSandbox(STOP) when cleanup alone is refused), then StopSandbox, as
 * containerd's teardown would, so no imported task is left reporting itself running. Best
 * effort: the destination may be gone. */
static void discard_destination(struct mig *m)
{
        Containerd__Runtime__Sandbox__V1__StopSandboxRequest stop =
            CONTAINERD__RUNTIME__SANDBOX__V1__STOP_SANDBOX_REQUEST__INIT;
        struct ctl_error err;

        if (!m->dst.started || !m->dst.conn.client || m->dst.conn.lost)
                return;
        (void)session_call(&m->dst, "Cancel", RETRY_UNAVAILABLE, &err);
        if (session_call(&m->dst, "Cleanup", RETRY_UNAVAILABLE, &err) < 0) {
                (void)finalize(&m->dst, FINALIZE_ACTION__FINALIZE_ACTION_STOP, RETRY_UNAVAILABLE,
                               &err);
                if (session_call(&m->dst, "Cleanup", RETRY_UNAVAILABLE, &err) < 0)
                        say(m, "destination Cleanup: %s: %s", ferry_code_name(err.code),
                            err.message);
        }
        stop.sandbox_id = (char *)"";
        if (ctl_call(&m->dst.conn, SANDBOX_SERVICE, "StopSandbox", &stop.base,
                     &containerd__runtime__sandbox__v1__stop_sandbox_response__descriptor, NULL,
                     &err) < 0)
                say(m, "destination StopSandbox: %s: %s", ferry_code_name(err.code), err.message);
        else
                say(m, "destination discarded");
}

/* After a failure or a cancel the source must keep running: the destination is discarded
 * first (the two never run at once), then the source is cancelled (a no-op where there is
 * nothing to abort), resumed and cleaned up. The source's resume decides the outcome. */
#define ROLLBACK_RESUME_TRIES 3

static int rollback(struct mig *m)
{
        struct ctl_error err;
        int r = 0;

        say(m, "rolling back: the source resumes");
        discard_destination(m);
        if (!m->src.started)
                return 0;
        (void)session_call(&m->src, "Cancel", RETRY_UNAVAILABLE, &err);
        /* the pod must not stay paused: a resume that failed (the session stays cancelled and
         * asks for a finalize again) is retried a few times before giving up */
        for (unsigned i = 0; i < ROLLBACK_RESUME_TRIES; i++) {
                if (i)
                        pause_ms(m, 50);
                r = finalize(&m->src, FINALIZE_ACTION__FINALIZE_ACTION_RESUME, RETRY_UNAVAILABLE,
                             &err);
                if (r == 0 || m->src.conn.lost || ctl_interrupted)
                        break;
                say(m, "source FinalizeSandbox(RESUME): %s: %s%s", ferry_code_name(err.code),
                    err.message, i + 1 < ROLLBACK_RESUME_TRIES ? "; retrying" : "");
        }
        if (r < 0) {
                fprintf(stderr, "ferryctl: rollback: source FinalizeSandbox(RESUME): %s: %s\n",
                        ferry_code_name(err.code), err.message);
        } else {
                m->res->rolled_back = true;
                say(m, "source resumed");
        }
        if (session_call(&m->src, "Cleanup", RETRY_UNAVAILABLE, &err) < 0) {
                fprintf(stderr, "ferryctl: rollback: source Cleanup: %s: %s\n",
                        ferry_code_name(err.code), err.message);
                if (r == 0)
                        r = ferry_code_to_errno(err.code);
        }
        return r;
}

static int connect_sides(struct mig *m)
{
        struct ctl_error err;
        int r;

        r = ctl_connect(&m->loop, m->opts->source, 5000, &m->src.conn, &err);
        if (r < 0) {
                fail_err(m, "source", &err);
                return r;
        }
        r = ctl_connect(&m->loop, m->opts->destination, 5000, &m->dst.conn, &err);
        if (r < 0)
                fail_err(m, "destination", &err);
        return r;
}

/* The steps up to PrepareSandbox, in the reference's order; each point may hold or stop the
 * orchestration (--hold-after, --stop-after). Returns 0 or the first failure. */
static int run_setup(struct mig *m, const char *sandbox_id)
{
        ProtobufAny *config = NULL;
        int r;

        r = step_export(m, &config);
        if (r < 0)
                return r;
        r = open_notifications(m, &m->src);
        if (r == 0)
                r = hold(m, CTL_STOP_EXPORT);
        if (r == 0 && !stop_here(m, CTL_STOP_EXPORT))
                r = step_import(m, config, sandbox_id);
        protobuf_c_message_free_unpacked(&config->base, NULL);
        if (r < 0 || m->stopped)
                return r;
        r = open_notifications(m, &m->dst);
        if (r == 0)
                r = hold(m, CTL_STOP_IMPORT);
        if (r < 0 || stop_here(m, CTL_STOP_IMPORT))
                return r;
        r = step_patch(m, sandbox_id);
        if (r == 0)
                r = hold(m, CTL_STOP_PATCH);
        if (r < 0 || stop_here(m, CTL_STOP_PATCH))
                return r;
        r = step_prepare(m);
        if (r == 0)
                r = hold(m, CTL_STOP_PREPARE);
        if (r < 0 || stop_here(m, CTL_STOP_PREPARE))
                return r;
        return 0;
}

/* TransferSandbox on the sides in mask only, for the stop points that leave a transfer
 * waiting for its peer or for its socket. */
static int transfer_only(struct mig *m, unsigned mask)
{
        struct ctl_error err;
        int r = 0;

        if (mask & CTL_SIDE_DESTINATION)
                r = transfer_start(&m->dst, &err);
        if (r == 0 && (mask & CTL_SIDE_SOURCE))
                r = transfer_start(&m->src, &err);
        if (r < 0)
                fail_err(m, "TransferSandbox", &err);
        return r;
}

/* Every step up to the transfer's end. Returns 0 when the transfer succeeded or the
 * orchestration stopped as asked (m->stopped), else the first failure. */
static int run_steps(struct mig *m, const char *sandbox_id)
{
        enum ctl_stop stop = m->opts->stop_after;
        int r;

        r = run_setup(m, sandbox_id);
        if (r < 0 || m->stopped)
                return r;
        if (stop == CTL_STOP_TRANSFER_REQUESTED) {
                r = transfer_only(m, CTL_SIDE_SOURCE | CTL_SIDE_DESTINATION);
                if (r == 0)
                        (void)stop_here(m, stop);
                return r;
        }
        r = step_socket(m, stop == CTL_STOP_SOCKET_SOURCE);
        if (r == 0)
                r = hold(m, CTL_STOP_SOCKET);
        if (r < 0 || stop_here(m, CTL_STOP_SOCKET_SOURCE) || stop_here(m, CTL_STOP_SOCKET))
                return r;
        if (stop == CTL_STOP_TRANSFER_DESTINATION || stop == CTL_STOP_TRANSFER_SOURCE) {
                r = transfer_only(m, stop == CTL_STOP_TRANSFER_SOURCE ? CTL_SIDE_SOURCE
                                                                      : CTL_SIDE_DESTINATION);
                /* the side claims transferring when its VM step starts */
                if (r == 0 &&
                    wait_state(stop == CTL_STOP_TRANSFER_SOURCE ? &m->src : &m->dst,
                               "transferring", 5000) < 0) {
                        fail(m, "the transfer did not start");
                        r = -ETIMEDOUT;
                }
                if (r == 0)
                        (void)stop_here(m, stop);
                return r;
        }
        r = step_transfer(m);
        if (r == 0 && (stop == CTL_STOP_TRANSFER_COMPLETED ||
                       (m->opts->hold_mask & (1u << CTL_STOP_TRANSFER_COMPLETED)))) {
                /* the source's DONE ends the transfer; the destination may still be taking the
                 * final records: both must be there before anything is sent */
                r = wait_state(&m->src, "transfer_completed", 10000);
                if (r == 0)
                        r = wait_state(&m->dst, "transfer_completed", 10000);
                if (r < 0)
                        fail(m, "the sessions did not reach transfer_completed");
                if (r == 0)
                        r = hold(m, CTL_STOP_TRANSFER_COMPLETED);
                if (r == 0)
                        (void)stop_here(m, CTL_STOP_TRANSFER_COMPLETED);
        }
        return r;
}

static void close_side(struct mig *m, struct side *s)
{
        if (s->streaming && !s->stream.done && s->conn.client) {
                /* Cleanup ends the stream; give it a moment, then drop it with the client */
                (void)ctl_run_until(&m->loop, never, NULL, 1);
        }
        ctl_disconnect(&s->conn);
}

static void init_mig(struct mig *m, const struct ctl_migrate_opts *opts,
                     struct ctl_migrate_result *res)
{
        *res = (struct ctl_migrate_result){0};
        *m = (struct mig){.opts = opts, .res = res, .t0 = ferry_now_us()};
        if (opts->t0_us)
                m->t0 = opts->t0_us;
        m->tty = isatty(STDOUT_FILENO);
        m->src = (struct side){.name = "source", .m = m};
        m->dst = (struct side){.name = "destination", .m = m};
        if (opts->session_id)
                (void)ferry_strscpy(res->session_id, opts->session_id, sizeof(res->session_id));
        else
                (void)snprintf(res->session_id, sizeof(res->session_id), "ferry-%d-%" PRIu64,
                               (int)getpid(), ferry_now_us());
}

int ctl_migrate(const struct ctl_migrate_opts *opts, struct ctl_migrate_result *res)
{
        char sandbox_id[128];
        uint64_t t_start;
        struct mig m;
        int r;

        init_mig(&m, opts, res);
        t_start = ferry_now_us();
        if (uv_loop_init(&m.loop) < 0) {
                fail(&m, "uv_loop_init failed");
                return -ENOMEM;
        }
        say(&m, "session %s: %s -> %s", res->session_id, opts->source, opts->destination);
        r = connect_sides(&m);
        if (r == 0 && opts->sandbox_id)
                r = ferry_strscpy(sandbox_id, opts->sandbox_id, sizeof(sandbox_id)) < 0 ? -E2BIG
                                                                                        : 0;
        else if (r == 0)
                r = source_sandbox_id(&m, sandbox_id, sizeof(sandbox_id));
        if (r == 0)
                r = run_steps(&m, sandbox_id);
        if (r == 0 && m.stopped)
                cancel_at_stop(&m);
        if (m.cancel_sent) {
                res->cancelled = true;
                r = rollback(&m);
                if (m.stopped) {
                        res->stopped_after = opts->stop_after;
                        probe_state(&m.src, res->state_after[0], sizeof(res->state_after[0]));
                        probe_state(&m.dst, res->state_after[1], sizeof(res->state_after[1]));
                }
        } else if (r == 0) {
                r = step_finalize(&m);
                if (r == 0 || m.dst_resumed) {
                        int r2 = step_cleanup(&m);

                        if (r == 0)
                                r = r2;
                } else {
                        (void)rollback(&m);
                }
                res->succeeded = r == 0;
        } else {
                (void)rollback(&m);
        }
        res->passes = m.src.pass;
        res->bytes = m.src.bytes;
        res->blackout_ms = m.src.blackout_ms;
        res->blackout_dst_ms = m.dst.blackout_ms;
        res->dropped = m.src.dropped + m.dst.dropped;
        res->total_us = ferry_now_us() - t_start;
        res->transport_dropped = ctl_relay_dropped(m.relay);
        res->relay_bytes = ctl_relay_bytes(m.relay);
        ctl_relay_free(m.relay);
        close_side(&m, &m.src);
        close_side(&m, &m.dst);
        uv_run(&m.loop, UV_RUN_NOWAIT);
        if (uv_loop_close(&m.loop) == UV_EBUSY) {
                uv_run(&m.loop, UV_RUN_DEFAULT);
                (void)uv_loop_close(&m.loop);
        }
        return r;
}

/* ---- output and command lines --------------------------------------------------------- */

/* --stop-after: "cancel": {side: {state, code, message}} and "state_after": {side: state}. */
static void add_stop_json(json_object *o, const struct ctl_migrate_result *res)
{
        static const char *const side_names[2] = {"source", "destination"};
        json_object *cancel = json_object_new_object(), *after = json_object_new_object();

        for (size_t i = 0; i < 2; i++) {
                const struct ctl_cancel_report *rep = &res->cancel[i];

                json_object_object_add(after, side_names[i],
                                       json_object_new_string(res->state_after[i]));
                if (!rep->sent)
                        continue;
                json_object *c = json_object_new_object();

                json_object_object_add(c, "state", json_object_new_string(rep->state));
                json_object_object_add(c, "code",
                                       json_object_new_string(ferry_code_name(rep->code)));
                json_object_object_add(c, "message", json_object_new_string(rep->message));
                json_object_object_add(cancel, side_names[i], c);
        }
        json_object_object_add(o, "stopped_after",
                               json_object_new_string(ctl_stop_name(res->stopped_after)));
        json_object_object_add(o, "cancel", cancel);
        json_object_object_add(o, "state_after", after);
}

static void print_summary_json(const struct ctl_migrate_result *res)
{
        json_object *o = json_object_new_object(), *steps = json_object_new_object();

        json_object_object_add(o, "session_id", json_object_new_string(res->session_id));
        json_object_object_add(o, "succeeded", json_object_new_boolean(res->succeeded));
        json_object_object_add(o, "cancelled", json_object_new_boolean(res->cancelled));
        json_object_object_add(o, "rolled_back", json_object_new_boolean(res->rolled_back));
        json_object_object_add(o, "resumed_on_destination",
                               json_object_new_boolean(res->resumed_on_destination));
        json_object_object_add(o, "passes", json_object_new_int64(res->passes));
        json_object_object_add(o, "bytes", json_object_new_int64((int64_t)res->bytes));
        json_object_object_add(o, "blackout_ms", json_object_new_int64((int64_t)res->blackout_ms));
        json_object_object_add(o, "blackout_observed_ms",
                               json_object_new_double((double)res->blackout_observed_us / 1e3));
        json_object_object_add(o, "blackout_destination_ms",
                               json_object_new_int64((int64_t)res->blackout_dst_ms));
        json_object_object_add(o, "transfer_ms",
                               json_object_new_double((double)res->transfer_us / 1e3));
        json_object_object_add(o, "total_ms", json_object_new_double((double)res->total_us / 1e3));
        json_object_object_add(o, "notifications_dropped",
                               json_object_new_int64((int64_t)res->dropped));
        for (size_t i = 0; i < STEP__COUNT; i++)
                json_object_object_add(steps, step_names[i],
                                       json_object_new_double((double)res->step_us[i] / 1e3));
        json_object_object_add(o, "steps_ms", steps);
        if (res->relay_bytes || res->transport_dropped) {
                json_object_object_add(o, "transport_dropped",
                                       json_object_new_boolean(res->transport_dropped));
                json_object_object_add(o, "relay_bytes",
                                       json_object_new_int64((int64_t)res->relay_bytes));
        }
        if (res->failure[0])
                json_object_object_add(o, "failure", json_object_new_string(res->failure));
        if (res->stopped_after)
                add_stop_json(o, res);
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
}

void ctl_migrate_print_summary(const struct ctl_migrate_result *res, bool json)
{
        const char *outcome = res->succeeded     ? "migrated"
                              : res->cancelled   ? "cancelled, source resumed"
                              : res->rolled_back ? "FAILED, source resumed"
                                                 : "FAILED";

        if (json) {
                print_summary_json(res);
                return;
        }
        printf("\nsession %s: %s\n", res->session_id, outcome);
        if (res->stopped_after)
                printf("  stopped after %s as asked\n", ctl_stop_name(res->stopped_after));
        for (size_t i = 0; i < STEP__COUNT; i++)
                if (res->step_us[i])
                        printf("  %-30s %9.1f ms\n", step_names[i], (double)res->step_us[i] / 1e3);
        printf("  %-30s %9u\n", "pre-copy passes", res->passes);
        printf("  %-30s %9.1f MiB\n", "bytes sent", (double)res->bytes / (1024.0 * 1024.0));
        printf("  %-30s %9" PRIu64 " ms\n", "blackout, source's report", res->blackout_ms);
        printf("  %-30s %9" PRIu64 " ms\n", "blackout, destination's report", res->blackout_dst_ms);
        if (res->blackout_observed_us)
                printf("  %-30s %9.1f ms\n", "blackout, pause to resume",
                       (double)res->blackout_observed_us / 1e3);
        printf("  %-30s %9.1f ms\n", "total", (double)res->total_us / 1e3);
        if (res->dropped)
                printf("  %-30s %9" PRIu64 "\n", "notifications dropped", res->dropped);
        if (res->relay_bytes || res->transport_dropped)
                printf("  %-30s %9" PRIu64 " bytes%s\n", "relayed by ferryctl", res->relay_bytes,
                       res->transport_dropped ? ", then dropped" : "");
        if (res->failure[0])
                printf("  failure: %s\n", res->failure);
        for (size_t i = 0; res->stopped_after && i < 2; i++) {
                const struct ctl_cancel_report *rep = &res->cancel[i];

                if (rep->sent)
                        printf("  %s Cancel in %s: %s%s%s\n", i ? "destination" : "source",
                               rep->state, ferry_code_name(rep->code),
                               rep->message[0] ? ": " : "", rep->message);
                printf("  %s session after the rollback: %s\n", i ? "destination" : "source",
                       res->state_after[i]);
        }
        fflush(stdout);
}

static int parse_container(const char *arg, struct ctl_migrate_opts *o)
{
        static char buf[CTL_MAX_CONTAINERS][160];
        char *eq;

        if (o->n_containers >= CTL_MAX_CONTAINERS)
                return -E2BIG;
        if (ferry_strscpy(buf[o->n_containers], arg, sizeof(buf[0])) < 0)
                return -ENAMETOOLONG;
        eq = strchr(buf[o->n_containers], '=');
        o->containers[o->n_containers].source_id = buf[o->n_containers];
        o->containers[o->n_containers].destination_id = NULL;
        if (eq) {
                *eq = '\0';
                o->containers[o->n_containers].destination_id = eq + 1;
        }
        o->n_containers++;
        return 0;
}

static int parse_u32(const char *s, uint32_t *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

static void migrate_usage(FILE *f)
{
        fprintf(
            f,
            "usage: ferryctl migrate --source SOCK --destination SOCK [--container SRC[=DST]]...\n"
            "         [--session ID] [--sandbox-id ID] [--bundle-dir DIR] [--transport tcp|unix]\n"
            "         [--timeout SECONDS] [--cancel-after-pass N]\n"
            "         [--stop-after STEP [--cancel-side source|destination|both|none]]\n"
            "         [--hold-after STEP]...\n"
            "         [--drop-transport-after N[k|m][:source|:destination|:both]] [--json] "
            "[--quiet]\n"
            "STEP: export, import, patch, prepare, transfer-requested, socket-source, socket,\n"
            "      transfer-destination, transfer-source, transfer-completed (--hold-after:\n"
            "      export, import, patch, prepare, socket, transfer-completed)\n");
}

static int parse_side(const char *arg, unsigned *ret)
{
        if (strcmp(arg, "source") == 0)
                *ret = CTL_SIDE_SOURCE;
        else if (strcmp(arg, "destination") == 0)
                *ret = CTL_SIDE_DESTINATION;
        else if (strcmp(arg, "both") == 0)
                *ret = CTL_SIDE_SOURCE | CTL_SIDE_DESTINATION;
        else if (strcmp(arg, "none") == 0)
                *ret = 0;
        else
                return -EINVAL;
        return 0;
}

/* The points of the normal path, where a hold does not change the orchestration. */
static int parse_hold(const char *arg, unsigned *mask)
{
        int st = ctl_stop_parse(arg);

        if (st != CTL_STOP_EXPORT && st != CTL_STOP_IMPORT && st != CTL_STOP_PATCH &&
            st != CTL_STOP_PREPARE && st != CTL_STOP_SOCKET && st != CTL_STOP_TRANSFER_COMPLETED)
                return -EINVAL;
        *mask |= 1u << st;
        return 0;
}

int ctl_migrate_main(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"source", required_argument, NULL, 's'},
            {"destination", required_argument, NULL, 'd'},
            {"container", required_argument, NULL, 'c'},
            {"session", required_argument, NULL, 'S'},
            {"sandbox-id", required_argument, NULL, 'i'},
            {"bundle-dir", required_argument, NULL, 'b'},
            {"transport", required_argument, NULL, 't'},
            {"timeout", required_argument, NULL, 'T'},
            {"cancel-after-pass", required_argument, NULL, 'C'},
            {"drop-transport-after", required_argument, NULL, 'D'},
            {"stop-after", required_argument, NULL, 'P'},
            {"cancel-side", required_argument, NULL, 'X'},
            {"hold-after", required_argument, NULL, 'H'},
            {"json", no_argument, NULL, 'j'},
            {"quiet", no_argument, NULL, 'q'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        struct ctl_migrate_opts o = {.cancel_after_pass = -1,
                                     .cancel_sides = CTL_SIDE_SOURCE | CTL_SIDE_DESTINATION};
        struct ctl_migrate_result res;
        char tmp[PATH_MAX];
        uint32_t u = 0;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                r = 0;
                switch (c) {
                case 's':
                        o.source = optarg;
                        break;
                case 'd':
                        o.destination = optarg;
                        break;
                case 'c':
                        r = parse_container(optarg, &o);
                        break;
                case 'S':
                        o.session_id = optarg;
                        break;
                case 'i':
                        o.sandbox_id = optarg;
                        break;
                case 'b':
                        o.bundle_dir = optarg;
                        break;
                case 't':
                        if (strcmp(optarg, "tcp") == 0)
                                o.transport = CTL_TRANSPORT_TCP;
                        else if (strcmp(optarg, "unix") == 0)
                                o.transport = CTL_TRANSPORT_UNIX;
                        else
                                r = -EINVAL;
                        break;
                case 'T':
                        r = parse_u32(optarg, &o.timeout_s);
                        break;
                case 'C':
                        r = parse_u32(optarg, &u);
                        o.cancel_after_pass = u;
                        break;
                case 'D':
                        r = ctl_relay_parse(optarg, &o.drop_after_bytes, &o.drop_side);
                        break;
                case 'P':
                        r = ctl_stop_parse(optarg);
                        if (r > 0)
                                o.stop_after = (enum ctl_stop)r;
                        break;
                case 'X':
                        r = parse_side(optarg, &o.cancel_sides);
                        break;
                case 'H':
                        r = parse_hold(optarg, &o.hold_mask);
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 'q':
                        o.quiet = true;
                        break;
                case 'h':
                        migrate_usage(stdout);
                        return 0;
                default:
                        migrate_usage(stderr);
                        return 2;
                }
                if (r < 0) {
                        fprintf(stderr, "ferryctl: migrate: bad value '%s': %s\n", optarg,
                                strerror(-r));
                        return 2;
                }
        }
        /* a stop point cancels on its own: a second cancel trigger would race it */
        if (!o.source || !o.destination || optind != argc ||
            (o.stop_after && o.cancel_after_pass >= 0)) {
                migrate_usage(stderr);
                return 2;
        }
        if (!o.bundle_dir) {
                /* the destination keeps reading its bundles: this directory is left in place */
                r = ctl_mkdtemp("ferryctl-bundles", tmp);
                if (r < 0) {
                        fprintf(stderr, "ferryctl: migrate: bundle dir: %s\n", strerror(-r));
                        return 1;
                }
                o.bundle_dir = tmp;
        }
        ctl_proc_install_signals();
        r = ctl_migrate(&o, &res);
        ctl_migrate_print_summary(&res, o.json);
        return r == 0 ? 0 : 1;
}

/* ---- watch ------------------------------------------------------------------------------ */

struct watch {
        struct side side;
        struct mig m;
        struct ctl_migrate_opts opts;
        struct ctl_migrate_result res;
};

static bool stream_ended(void *userdata)
{
        return ((struct ctl_stream *)userdata)->done || ctl_interrupted;
}

int ctl_watch_main(const char *address, int argc, char **argv)
{
        static const struct option longopts[] = {
            {"session", required_argument, NULL, 'S'},
            {"json", no_argument, NULL, 'j'},
            {0},
        };
        struct watch w = {0};
        struct ctl_error err;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                if (c == 'S')
                        w.opts.session_id = optarg;
                else if (c == 'j')
                        w.opts.json = true;
                else
                        return 2;
        }
        if (!address || !w.opts.session_id) {
                fprintf(stderr, "usage: ferryctl --address SOCK watch --session ID [--json]\n");
                return 2;
        }
        init_mig(&w.m, &w.opts, &w.res);
        w.m.src.name = "shim";
        if (uv_loop_init(&w.m.loop) < 0)
                return 1;
        ctl_proc_install_signals();
        r = ctl_connect(&w.m.loop, address, 2000, &w.m.src.conn, &err);
        if (r == 0)
                r = open_notifications(&w.m, &w.m.src);
        else
                ctl_error_print(&err, "watch");
        if (r == 0)
                r = ctl_run_until(&w.m.loop, stream_ended, &w.m.src.stream, 0);
        if (r == 0 && w.m.src.stream.code != FERRY_CODE_OK) {
                fprintf(stderr, "ferryctl: watch: %s: %s\n", ferry_code_name(w.m.src.stream.code),
                        w.m.src.stream.message);
                r = -EIO;
        }
        if (ctl_interrupted) {
                /* the stream did not end: the watcher was told to stop */
                fprintf(stderr, "ferryctl: watch: interrupted\n");
                r = -EINTR;
        }
        ctl_disconnect(&w.m.src.conn);
        uv_run(&w.m.loop, UV_RUN_NOWAIT);
        (void)uv_loop_close(&w.m.loop);
        return r == 0 ? 0 : 1;
}

/* ---- migration: raw calls --------------------------------------------------------------- */

struct raw {
        const char *session; /* "" when not given: the idle session's id */
        const char *sandbox_id, *config, *type_url, *out, *action, *info;
        uint32_t timeout_s;
};

/* a snapshot file's bound: far above any sandbox envelope, so a wrong path fails fast */
#define RAW_FILE_MAX (64L << 20)

static int read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
        FILE *f = fopen(path, "re");
        uint8_t *buf = NULL;
        long n = -1;
        int r = -EIO;

        if (!f)
                return -errno;
        if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n <= RAW_FILE_MAX &&
            fseek(f, 0, SEEK_SET) == 0) {
                buf = malloc((size_t)n + 1);
                r = !buf ? -ENOMEM : fread(buf, 1, (size_t)n, f) == (size_t)n ? 0 : -EIO;
        }
        fclose(f);
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        *ret_len = (size_t)n;
        return 0;
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
        FILE *f = fopen(path, "we");
        int r;

        if (!f)
                return -errno;
        r = fwrite(data, 1, len, f) == len ? 0 : -EIO;
        if (fclose(f) != 0 && r == 0)
                r = -EIO;
        return r;
}

static int raw_prepare_export(struct ctl_conn *c, const struct raw *a, struct ctl_error *err)
{
        PrepareAndExportSandboxRequest req = PREPARE_AND_EXPORT_SANDBOX_REQUEST__INIT;
        InitializeOptions init = INITIALIZE_OPTIONS__INIT;
        PrepareAndExportSandboxResponse *resp = NULL;
        int r;

        init.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        req.session_id = (char *)a->session;
        req.init_options = &init;
        r = ctl_call(c, MIG_SERVICE, "PrepareAndExportSandbox", &req.base,
                     &prepare_and_export_sandbox_response__descriptor, (ProtobufCMessage **)&resp,
                     err);
        if (r < 0)
                return r;
        if (resp->config) {
                printf("snapshot %s, %zu bytes\n", resp->config->type_url,
                       resp->config->value.len);
                if (a->out)
                        r = write_file(a->out, resp->config->value.data, resp->config->value.len);
        }
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        if (r < 0)
                ctl_error_set(err, r, "writing %s", a->out);
        return r;
}

static int raw_import(struct ctl_conn *c, const struct raw *a, struct ctl_error *err)
{
        ImportSandboxRequest req = IMPORT_SANDBOX_REQUEST__INIT;
        ProtobufAny any = PROTOBUF_ANY__INIT;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        if (a->config) {
                r = read_file(a->config, &buf, &len);
                if (r < 0) {
                        ctl_error_set(err, r, "reading %s: %s", a->config, strerror(-r));
                        return r;
                }
        }
        /* the default is the snapshot's type (MIG_SNAPSHOT_TYPE_URL, src/migration/session.h) */
        any.type_url = (char *)(a->type_url ? a->type_url
                                            : "type.ferry.dev/ferry.migration.save.v1.Payload");
        any.value.data = buf;
        any.value.len = len;
        req.session_id = (char *)a->session;
        req.sandbox_id = (char *)(a->sandbox_id ? a->sandbox_id : "");
        req.config = &any;
        return ctl_call(c, MIG_SERVICE, "ImportSandbox", &req.base,
                        &import_sandbox_response__descriptor, NULL, err);
}

static int raw_prepare(struct ctl_conn *c, const struct raw *a, struct ctl_error *err)
{
        PrepareSandboxRequest req = PREPARE_SANDBOX_REQUEST__INIT;
        InitializeOptions init = INITIALIZE_OPTIONS__INIT;

        init.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        req.session_id = (char *)a->session;
        req.init_options = &init;
        return ctl_call(c, MIG_SERVICE, "PrepareSandbox", &req.base,
                        &prepare_sandbox_response__descriptor, NULL, err);
}

static int raw_transfer(struct ctl_conn *c, const struct raw *a, struct ctl_error *err)
{
        TransferSandboxRequest req = TRANSFER_SANDBOX_REQUEST__INIT;
        ProtobufDuration timeout = PROTOBUF_DURATION__INIT;

        req.session_id = (char *)a->session;
        if (a->timeout_s) {
                timeout.seconds = a->timeout_s;
                req.timeout = &timeout;
        }
        return ctl_call(c, MIG_SERVICE, "TransferSandbox", &req.base,
                        &transfer_sandbox_response__descriptor, NULL, err);
}

static int raw_finalize(struct ctl_conn *c, const struct raw *a, struct ctl_error *err)
{
        FinalizeSandboxRequest req = FINALIZE_SANDBOX_REQUEST__INIT;
        const char *action = a->action ? a->action : "";

        if (strcmp(action, "resume") == 0)
                req.action = FINALIZE_ACTION__FINALIZE_ACTION_RESUME;
        else if (strcmp(action, "stop") == 0)
                req.action = FINALIZE_ACTION__FINALIZE_ACTION_STOP;
        else if (strcmp(action, "unspecified") != 0)
                return -EDOM; /* a usage error */
        req.session_id = (char *)a->session;
        return ctl_call(c, MIG_SERVICE, "FinalizeSandbox", &req.base,
                        &finalize_sandbox_response__descriptor, NULL, err);
}

static int raw_socket(struct ctl_conn *c, const struct raw *a, struct ctl_error *err)
{
        CreateDuplicateSocketRequest req = CREATE_DUPLICATE_SOCKET_REQUEST__INIT;

        req.session_id = (char *)a->session;
        req.protocol_info.data = (uint8_t *)(a->info ? a->info : "");
        req.protocol_info.len = a->info ? strlen(a->info) : 0;
        return ctl_call(c, MIG_SERVICE, "CreateDuplicateSocket", &req.base,
                        &create_duplicate_socket_response__descriptor, NULL, err);
}

static int raw_cancel(struct ctl_conn *c, const struct raw *a, struct ctl_error *err)
{
        CancelRequest req = CANCEL_REQUEST__INIT;

        req.session_id = (char *)a->session;
        return ctl_call(c, MIG_SERVICE, "Cancel", &req.base, &cancel_response__descriptor, NULL,
                        err);
}

static int raw_cleanup(struct ctl_conn *c, const struct raw *a, struct ctl_error *err)
{
        CleanupRequest req = CLEANUP_REQUEST__INIT;

        req.session_id = (char *)a->session;
        return ctl_call(c, MIG_SERVICE, "Cleanup", &req.base, &cleanup_response__descriptor, NULL,
                        err);
}

static const struct {
        const char *name;
        int (*call)(struct ctl_conn *c, const struct raw *a, struct ctl_error *err);
} raw_methods[] = {
    {"prepare-export", raw_prepare_export}, {"import", raw_import},
    {"prepare", raw_prepare},               {"transfer", raw_transfer},
    {"finalize", raw_finalize},             {"socket", raw_socket},
    {"cancel", raw_cancel},                 {"cleanup", raw_cleanup},
};

static void migration_usage(FILE *f)
{
        fprintf(f, "usage: ferryctl --address SOCK migration METHOD [--session ID] [options]\n"
                   "  prepare-export [--out FILE]     PrepareAndExportSandbox (FILE: snapshot)\n"
                   "  import --sandbox-id ID [--config FILE] [--type-url URL]   ImportSandbox\n"
                   "  prepare                         PrepareSandbox\n"
                   "  transfer [--timeout S]          TransferSandbox\n"
                   "  finalize --action resume|stop|unspecified   FinalizeSandbox\n"
                   "  socket --info TEXT              CreateDuplicateSocket (protocol_info)\n"
                   "  cancel | cleanup                Cancel, Cleanup\n"
                   "--session defaults to \"\" (the id of an idle session). A refused call prints\n"
                   "`ferryctl: migration METHOD: CODE: message` and exits 1.\n");
}

int ctl_migration_main(const char *address, int argc, char **argv)
{
        static const struct option longopts[] = {
            {"session", required_argument, NULL, 'S'},
            {"sandbox-id", required_argument, NULL, 'i'},
            {"config", required_argument, NULL, 'c'},
            {"type-url", required_argument, NULL, 'u'},
            {"out", required_argument, NULL, 'o'},
            {"action", required_argument, NULL, 'a'},
            {"info", required_argument, NULL, 'I'},
            {"timeout", required_argument, NULL, 'T'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        struct raw a = {.session = ""};
        struct ctl_conn conn = {0};
        struct ctl_error err = {0};
        const char *method;
        char what[64];
        uv_loop_t loop;
        size_t i;
        int c, r;

        /* argv[0] is the command word, argv[1] the method */
        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                migration_usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        method = argv[1];
        for (i = 0; i < ARRAY_SIZE(raw_methods); i++)
                if (strcmp(method, raw_methods[i].name) == 0)
                        break;
        optind = 2;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 'S':
                        a.session = optarg;
                        break;
                case 'i':
                        a.sandbox_id = optarg;
                        break;
                case 'c':
                        a.config = optarg;
                        break;
                case 'u':
                        a.type_url = optarg;
                        break;
                case 'o':
                        a.out = optarg;
                        break;
                case 'a':
                        a.action = optarg;
                        break;
                case 'I':
                        a.info = optarg;
                        break;
                case 'T':
                        if (parse_u32(optarg, &a.timeout_s) < 0) {
                                migration_usage(stderr);
                                return 2;
                        }
                        break;
                case 'h':
                        migration_usage(stdout);
                        return 0;
                default:
                        migration_usage(stderr);
                        return 2;
                }
        }
        if (i == ARRAY_SIZE(raw_methods) || optind != argc || !address ||
            (strcmp(method, "finalize") == 0 && !a.action)) {
                migration_usage(stderr);
                return 2;
        }
        if (uv_loop_init(&loop) < 0)
                return 1;
        (void)snprintf(what, sizeof(what), "migration %s", method);
        r = ctl_connect(&loop, address, 2000, &conn, &err);
        if (r == 0)
                r = raw_methods[i].call(&conn, &a, &err);
        if (r == -EDOM) {
                migration_usage(stderr);
        } else if (r < 0) {
                ctl_error_print(&err, what);
        } else {
                printf("%s: OK\n", what);
                fflush(stdout);
        }
        ctl_disconnect(&conn);
        uv_run(&loop, UV_RUN_NOWAIT);
        (void)uv_loop_close(&loop);
        return r == -EDOM ? 2 : r < 0 ? 1 : 0;
}
