/* SPDX-License-Identifier: MIT */
#include "rpc/ttrpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "rpc/io.h"
#include "util/util.h"

struct pending {
        uint32_t sid;
        const ProtobufCMessageDescriptor *resp_desc;
        ttrpc_msg_fn on_msg; /* NULL for unary */
        ttrpc_done_fn done;
        void *userdata;
        struct pending *prev, *next;
};

struct ttrpc_client {
        struct ttrpc_io io; /* first: the io callbacks find the client from it */
        struct pending *pending;
        uint32_t n_pending;
        int broken; /* the connection is gone; calls fail with -ENOTCONN */
        int closing;
};

static struct pending *pending_find(struct ttrpc_client *c, uint32_t sid)
{
        for (struct pending *p = c->pending; p; p = p->next)
                if (p->sid == sid)
                        return p;
        return NULL;
}

static void pending_unlink(struct ttrpc_client *c, struct pending *p)
{
        if (p->prev)
                p->prev->next = p->next;
        else
                c->pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        c->n_pending--;
}

/* ends p with a status; frees p */
static void pending_done(struct ttrpc_client *c, struct pending *p, enum ferry_code code,
                         const char *msg, ProtobufCMessage *resp)
{
        pending_unlink(c, p);
        ttrpc_done_fn done = p->done;
        void *ud = p->userdata;
        free(p);
        done(code, msg, resp, ud);
}

static int on_response(struct ttrpc_session *s, uint32_t sid, const Ttrpc__Response *resp,
                       void *userdata)
{
        struct ttrpc_client *c = userdata;
        struct pending *p = pending_find(c, sid);
        if (!p)
                return 0;
        enum ferry_code code = FERRY_CODE_OK;
        const char *msg = NULL;
        if (resp->status && resp->status->code != 0) {
                int32_t v = resp->status->code;
                code = (v > 0 && v < FERRY_CODE__COUNT) ? (enum ferry_code)v : FERRY_CODE_UNKNOWN;
                msg = resp->status->message;
        }
        if (code != FERRY_CODE_OK || p->on_msg) {
                /* a stream ended by a Response: OK ends it like RC|ND does */
                pending_done(c, p, code, msg, NULL);
                return 0;
        }
        ProtobufCMessage *m =
            protobuf_c_message_unpack(p->resp_desc, NULL, resp->payload.len, resp->payload.data);
        if (!m) {
                pending_done(c, p, FERRY_CODE_INTERNAL, "ttrpc: error unmarshalling payload", NULL);
                return 0;
        }
        pending_done(c, p, FERRY_CODE_OK, NULL, m);
        return 0;
}

static int on_data(struct ttrpc_session *s, uint32_t sid, uint8_t flags, const uint8_t *data,
                   size_t len, void *userdata)
{
        struct ttrpc_client *c = userdata;
        struct pending *p = pending_find(c, sid);
        if (!p)
                return 0;
        if (!p->on_msg) {
                /* Data on a unary call is a protocol error (Go: ErrProtocol) */
                if (!(flags & TTRPC_FLAG_REMOTE_CLOSED))
                        ttrpc_session_forget(s, sid);
                pending_done(c, p, FERRY_CODE_INTERNAL, "ttrpc: protocol error", NULL);
                return 0;
        }
        if (!(flags & TTRPC_FLAG_NO_DATA)) {
                ProtobufCMessage *m = protobuf_c_message_unpack(p->resp_desc, NULL, len, data);
                if (!m) {
                        if (!(flags & TTRPC_FLAG_REMOTE_CLOSED))
                                ttrpc_session_forget(s, sid);
                        pending_done(c, p, FERRY_CODE_INTERNAL,
                                     "ttrpc: error unmarshalling payload", NULL);
                        return 0;
                }
                p->on_msg(m, p->userdata);
                p = pending_find(c, sid); /* the callback may have closed the client */
                if (!p)
                        return 0;
        }
        if (flags & TTRPC_FLAG_REMOTE_CLOSED)
                pending_done(c, p, FERRY_CODE_OK, NULL, NULL);
        return 0;
}

static void on_stream_closed(struct ttrpc_session *s, uint32_t sid, enum ferry_code code,
                             const char *msg, void *userdata)
{
        struct ttrpc_client *c = userdata;
        struct pending *p = pending_find(c, sid);
        if (p)
                pending_done(c, p, code, msg, NULL);
}

static const struct ttrpc_session_callbacks client_cbs = {
    .on_response = on_response,
    .on_data = on_data,
    .on_stream_closed = on_stream_closed,
};

static void client_on_fatal(struct ttrpc_io *io, int err)
{
        struct ttrpc_client *c = (struct ttrpc_client *)io;
        c->broken = 1;
        ttrpc_session_abort_all(c->io.sess, FERRY_CODE_UNAVAILABLE, "ttrpc: connection closed");
}

static void client_on_closed(struct ttrpc_io *io)
{
        struct ttrpc_client *c = (struct ttrpc_client *)io;
        ttrpc_session_free(c->io.sess);
        free(c);
}

static const struct ttrpc_io_ops client_ops = {
    .on_fatal = client_on_fatal,
    .on_closed = client_on_closed,
};

int ttrpc_client_adopt(uv_loop_t *loop, int fd, const struct ttrpc_limits *limits,
                       struct ttrpc_client **ret_c)
{
        struct ttrpc_client *c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        int r = ttrpc_session_new(TTRPC_ROLE_CLIENT, limits, &client_cbs, c, &c->io.sess);
        if (r < 0) {
                close(fd);
                free(c);
                return r;
        }
        r = ttrpc_io_start(&c->io, loop, fd, &client_ops);
        if (r < 0)
                return r; /* client_on_closed frees c */
        *ret_c = c;
        return 0;
}

int ttrpc_client_connect(uv_loop_t *loop, const char *path, const struct ttrpc_limits *limits,
                         struct ttrpc_client **ret_c)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (ferry_strscpy(sa.sun_path, path, sizeof(sa.sun_path)) < 0)
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* a unix connect completes at once or fails at once; non-blocking, a listener whose
         * backlog is full answers -EAGAIN instead of making the loop wait */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        return ttrpc_client_adopt(loop, TAKE_FD(fd), limits, ret_c);
}

static int start(struct ttrpc_client *c, const char *service, const char *method,
                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                 const struct ttrpc_call_opts *opts, uint8_t flags, ttrpc_msg_fn on_msg,
                 ttrpc_done_fn done, void *userdata, uint32_t *ret_sid)
{
        if (!done || !resp_desc)
                return -EINVAL;
        if (c->broken || c->closing)
                return -ENOTCONN;
        struct pending *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        struct ttrpc_payload pl = {.msg = req};
        uint32_t sid;
        int r = ttrpc_session_request(c->io.sess, service, method, req ? &pl : NULL,
                                      opts ? opts->timeout_ns : 0, opts ? opts->metadata : NULL,
                                      opts ? opts->n_metadata : 0, flags, ferry_now_us(), &sid);
        if (r < 0) {
                free(p);
                return r;
        }
        *p = (struct pending){.sid = sid,
                              .resp_desc = resp_desc,
                              .on_msg = on_msg,
                              .done = done,
                              .userdata = userdata,
                              .next = c->pending};
        if (c->pending)
                c->pending->prev = p;
        c->pending = p;
        c->n_pending++;
        ttrpc_io_kick(&c->io);
        if (ret_sid)
                *ret_sid = sid;
        return 0;
}

int ttrpc_client_call(struct ttrpc_client *c, const char *service, const char *method,
                      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                      const struct ttrpc_call_opts *opts, ttrpc_done_fn done, void *userdata)
{
        return start(c, service, method, req, resp_desc, opts, 0, NULL, done, userdata, NULL);
}

int ttrpc_client_stream(struct ttrpc_client *c, const char *service, const char *method,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                        const struct ttrpc_call_opts *opts, ttrpc_msg_fn on_msg, ttrpc_done_fn done,
                        void *userdata)
{
        if (!on_msg)
                return -EINVAL;
        return start(c, service, method, req, resp_desc, opts, TTRPC_FLAG_REMOTE_CLOSED, on_msg,
                     done, userdata, NULL);
}

int ttrpc_client_open(struct ttrpc_client *c, const char *service, const char *method,
                      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                      const struct ttrpc_call_opts *opts, ttrpc_msg_fn on_msg, ttrpc_done_fn done,
                      void *userdata, uint32_t *ret_sid)
{
        return start(c, service, method, req, resp_desc, opts, TTRPC_FLAG_REMOTE_OPEN, on_msg, done,
                     userdata, ret_sid);
}

int ttrpc_client_send(struct ttrpc_client *c, uint32_t sid, const ProtobufCMessage *msg)
{
        if (c->broken || c->closing)
                return -ENOTCONN;
        struct ttrpc_payload pl = {.msg = msg};
        int r = ttrpc_session_send_data(c->io.sess, sid, msg ? &pl : NULL);
        if (r < 0)
                return r;
        ttrpc_io_kick(&c->io);
        return 0;
}

int ttrpc_client_close_send(struct ttrpc_client *c, uint32_t sid)
{
        if (c->broken || c->closing)
                return -ENOTCONN;
        int r = ttrpc_session_close_send(c->io.sess, sid);
        if (r < 0)
                return r;
        ttrpc_io_kick(&c->io);
        return 0;
}

uint32_t ttrpc_client_n_pending(const struct ttrpc_client *c)
{
        return c->n_pending;
}

void ttrpc_client_close(struct ttrpc_client *c)
{
        if (!c || c->closing)
                return;
        c->closing = 1;
        c->broken = 1;
        ttrpc_session_abort_all(c->io.sess, FERRY_CODE_UNAVAILABLE, "ttrpc: client closed");
        ttrpc_io_close(&c->io);
}
