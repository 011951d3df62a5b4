/* SPDX-License-Identifier: MIT */
#include "service/migration.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration.pb-c.h"
#include "migration/options.h"
#include "util/util.h"

/* One RPC waiting for a session step. */
struct pending_call {
        struct ttrpc_call *call;
        struct mig_session *s;
        char session_id[MIG_SESSION_ID_MAX + 1];
        bool export_after;
};

void mig_service_timestamp(uint64_t unix_us, int64_t *ret_seconds, int32_t *ret_nanos)
{
        *ret_seconds = (int64_t)(unix_us / 1000000);
        *ret_nanos = (int32_t)(unix_us % 1000000) * 1000;
}

static void fail(struct ttrpc_call *call, struct mig_session *s, int r, const char *what)
{
        const char *msg = mig_session_error(s);
        char buf[400];
        ferry_bprintf(buf, sizeof(buf), "%s: %s", what, *msg ? msg : strerror(-r));
        ttrpc_call_fail(call, r, buf);
}

static struct pending_call *pending_new(struct ttrpc_call *call, struct mig_session *s,
                                        const char *session_id)
{
        struct pending_call *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->call = call;
        p->s = s;
        ferry_strscpy(p->session_id, session_id ? session_id : "", sizeof(p->session_id));
        return p;
}

/* Ends a call waiting for a step: OK with an empty message, or the error. */
static void step_done(int r, void *userdata)
{
        struct pending_call *p = userdata;
        if (r < 0)
                fail(p->call, p->s, r, ttrpc_call_method(p->call));
        else
                ttrpc_call_reply(p->call, NULL);
        free(p);
}

/* ---- source ----------------------------------------------------------------------------- */

static void export_now(struct pending_call *p)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = mig_session_export(p->s, p->session_id, &buf, &len);
        if (r < 0) {
                fail(p->call, p->s, r, "source: export migration state");
                return;
        }
        ProtobufAny any = PROTOBUF_ANY__INIT;
        any.type_url = (char *)MIG_SNAPSHOT_TYPE_URL;
        any.value.data = buf;
        any.value.len = len;
        PrepareAndExportSandboxResponse resp = PREPARE_AND_EXPORT_SANDBOX_RESPONSE__INIT;
        resp.config = &any;
        ttrpc_call_reply(p->call, &resp.base);
}

static void prepared_source(int r, void *userdata)
{
        struct pending_call *p = userdata;
        if (r < 0)
                fail(p->call, p->s, r, "source: prepare migration");
        else
                export_now(p);
        free(p);
}

static void handle_prepare_and_export(struct ttrpc_call *call, const ProtobufCMessage *msg,
                                      void *userdata)
{
        struct mig_session *s = userdata;
        const PrepareAndExportSandboxRequest *req = (const PrepareAndExportSandboxRequest *)msg;
        _cleanup_free_ char *opts = NULL;
        if (mig_options_to_json(req->init_options, &opts) < 0) {
                ttrpc_call_fail(call, -EINVAL,
                                "source: prepare migration: unsupported memory "
                                "transport (only MEMORY_TRANSPORT_TCP)");
                return;
        }
        struct pending_call *p = pending_new(call, s, req->session_id);
        if (!p) {
                ttrpc_call_fail(call, -ENOMEM, NULL);
                return;
        }
        int r = mig_session_prepare_source(s, req->session_id, opts, prepared_source, p);
        if (r < 0) {
                fail(call, s, r, "source: prepare migration");
                free(p);
        }
}

/* ---- destination ------------------------------------------------------------------------ */

static void handle_import(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct mig_session *s = userdata;
        const ImportSandboxRequest *req = (const ImportSandboxRequest *)msg;
        if (!req->config) {
                ttrpc_call_fail(call, -EINVAL, "destination: import migration state: no config");
                return;
        }
        int r = mig_session_import(s, req->session_id, req->sandbox_id, req->config->type_url,
                                   req->config->value.data ? req->config->value.data
                                                           : (const uint8_t *)"",
                                   req->config->value.len);
        if (r < 0)
                fail(call, s, r, "destination: import migration state");
        else
                ttrpc_call_reply(call, NULL);
}

static void handle_prepare_sandbox(struct ttrpc_call *call, const ProtobufCMessage *msg,
                                   void *userdata)
{
        struct mig_session *s = userdata;
        const PrepareSandboxRequest *req = (const PrepareSandboxRequest *)msg;
        _cleanup_free_ char *opts = NULL;
        if (mig_options_to_json(req->init_options, &opts) < 0) {
                ttrpc_call_fail(call, -EINVAL,
                                "destination: prepare migration: unsupported "
                                "memory transport (only MEMORY_TRANSPORT_TCP)");
                return;
        }
        struct pending_call *p = pending_new(call, s, req->session_id);
        if (!p) {
                ttrpc_call_fail(call, -ENOMEM, NULL);
                return;
        }
        int r = mig_session_prepare_destination(s, req->session_id, opts, step_done, p);
        if (r < 0) {
                fail(call, s, r, "destination: prepare migration");
                free(p);
        }
}

/* ---- both sides ------------------------------------------------------------------------- */

static void handle_transfer(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct mig_session *s = userdata;
        const TransferSandboxRequest *req = (const TransferSandboxRequest *)msg;
        uint64_t us = 0;
        if (req->timeout &&
            (req->timeout->seconds > 0 || (req->timeout->seconds == 0 && req->timeout->nanos > 0)))
                us = (uint64_t)req->timeout->seconds * 1000000 +
                     (uint64_t)(req->timeout->nanos > 0 ? req->timeout->nanos : 0) / 1000;
        if (req->timeout && us == 0 && req->timeout->nanos > 0)
                us = 1;
        int r = mig_session_transfer(s, req->session_id, us);
        if (r < 0)
                fail(call, s, r, "transfer migration state");
        else
                ttrpc_call_reply(call, NULL);
}

static void handle_finalize(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct mig_session *s = userdata;
        const FinalizeSandboxRequest *req = (const FinalizeSandboxRequest *)msg;
        struct pending_call *p = pending_new(call, s, req->session_id);
        if (!p) {
                ttrpc_call_fail(call, -ENOMEM, NULL);
                return;
        }
        int r = mig_session_finalize(s, req->session_id, (int)req->action, step_done, p);
        if (r < 0) {
                fail(call, s, r, "finalize migration session");
                free(p);
        }
}

static void handle_socket(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct mig_session *s = userdata;
        const CreateDuplicateSocketRequest *req = (const CreateDuplicateSocketRequest *)msg;
        int r = mig_session_register_socket(s, req->session_id, req->protocol_info.data,
                                            req->protocol_info.len);
        if (r < 0)
                fail(call, s, r, "register duplicate migration socket");
        else
                ttrpc_call_reply(call, NULL);
}

static void handle_cancel(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct mig_session *s = userdata;
        const CancelRequest *req = (const CancelRequest *)msg;
        struct pending_call *p = pending_new(call, s, req->session_id);
        if (!p) {
                ttrpc_call_fail(call, -ENOMEM, NULL);
                return;
        }
        int r = mig_session_cancel(s, req->session_id, step_done, p);
        if (r < 0) {
                fail(call, s, r, "cancel migration session");
                free(p);
        }
}

static void handle_cleanup(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct mig_session *s = userdata;
        const CleanupRequest *req = (const CleanupRequest *)msg;
        int r = mig_session_cleanup(s, req->session_id);
        if (r < 0)
                fail(call, s, r, "cleanup migration session");
        else
                ttrpc_call_reply(call, NULL);
}

/* ---- notifications ---------------------------------------------------------------------- */

struct stream {
        struct ttrpc_call *call;
        struct mig_subscriber *sub;
};

static int stream_note(const struct mig_notification *n, uint64_t dropped, void *userdata)
{
        struct stream *st = userdata;
        ProtobufTimestamp start = PROTOBUF_TIMESTAMP__INIT, update = PROTOBUF_TIMESTAMP__INIT;
        ProtobufTimestamp stop = PROTOBUF_TIMESTAMP__INIT;
        BlackoutExitedEventDetails bo = BLACKOUT_EXITED_EVENT_DETAILS__INIT;
        Notification note = NOTIFICATION__INIT;
        FerryProgress progress = FERRY_PROGRESS__INIT;
        NotificationsResponse resp = NOTIFICATIONS_RESPONSE__INIT;
        note.origin = (Origin)n->origin;
        note.phase = (Phase)n->phase;
        note.state = (PhaseState)n->state;
        if (n->has_blackout) {
                bo.blackout_duration_milliseconds = n->blackout_ms;
                mig_service_timestamp(n->blackout_stop_unix_us, &stop.seconds, &stop.nanos);
                bo.blackout_stop_timestamp = &stop;
                note.phase_details_case = NOTIFICATION__PHASE_DETAILS_BLACKOUT_EXITED;
                note.blackout_exited = &bo;
        }
        mig_service_timestamp(n->start_unix_us, &start.seconds, &start.nanos);
        mig_service_timestamp(n->update_unix_us, &update.seconds, &update.nanos);
        resp.message_id = n->message_id;
        resp.notification = &note;
        resp.start_time = &start;
        resp.update_time = &update;
        if (n->pass || n->bytes) {
                progress.bytes = n->bytes;
                progress.pass = n->pass;
                progress.dirty_pages = n->dirty_pages;
                resp.progress = &progress;
        }
        resp.dropped = dropped;
        resp.reason = (char *)n->reason;
        /* Never waits: a client that does not read loses messages (counted), not the session. */
        return ttrpc_call_send(st->call, &resp.base);
}

static void stream_end(void *userdata)
{
        struct stream *st = userdata;
        ttrpc_call_close(st->call); /* cleanup ended the session: the stream ends normally */
        free(st);
}

static void stream_cancelled(struct ttrpc_call *call, void *userdata)
{
        struct stream *st = userdata;
        mig_subscriber_detach(st->sub);
        ttrpc_call_fail(call, -ECANCELED, "client went away");
        free(st);
}

static const struct mig_subscriber_ops stream_ops = {
    .on_note = stream_note,
    .on_end = stream_end,
};

static void handle_notifications(struct ttrpc_call *call, const ProtobufCMessage *msg,
                                 void *userdata)
{
        struct mig_session *s = userdata;
        const NotificationsRequest *req = (const NotificationsRequest *)msg;
        struct stream *st = calloc(1, sizeof(*st));
        if (!st) {
                ttrpc_call_fail(call, -ENOMEM, NULL);
                return;
        }
        st->call = call;
        int r = mig_session_subscribe(s, req->session_id, &stream_ops, st, &st->sub);
        if (r < 0) {
                fail(call, s, r, "migration notifications");
                free(st);
                return;
        }
        ttrpc_call_on_cancel(call, stream_cancelled, st);
}

/* In the descriptor's method order (proto/migration.proto). */
static const struct ttrpc_method migration_methods[] = {
    {handle_prepare_and_export, TTRPC_UNARY},
    {handle_import, TTRPC_UNARY},
    {handle_prepare_sandbox, TTRPC_UNARY},
    {handle_transfer, TTRPC_UNARY},
    {handle_finalize, TTRPC_UNARY},
    {handle_notifications, TTRPC_SERVER_STREAM},
    {handle_socket, TTRPC_UNARY},
    {handle_cancel, TTRPC_UNARY},
    {handle_cleanup, TTRPC_UNARY},
};

int mig_service_register(struct ttrpc_server *srv, struct mig_session *s)
{
        return ttrpc_server_register(srv, &migration__descriptor, migration_methods,
                                     ARRAY_SIZE(migration_methods), s);
}
