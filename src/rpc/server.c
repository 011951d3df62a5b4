/* SPDX-License-Identifier: MIT */
#include "rpc/ttrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "rpc/io.h"
#include "util/util.h"

#define DEFAULT_MAX_CONNECTIONS 256u

struct service {
        const ProtobufCServiceDescriptor *desc;
        const struct ttrpc_method *methods;
        void *userdata;
};

struct conn {
        struct ttrpc_io io; /* first: the io callbacks find the conn from it */
        struct ttrpc_server *srv;
        struct ttrpc_call *calls;
        struct conn *prev, *next;
};

struct ttrpc_server {
        uv_loop_t *loop;
        struct ttrpc_server_options opts;
        struct service *services;
        size_t n_services;
        uv_poll_t listener; /* polled listening socket: we accept4() ourselves */
        int listen_fd;
        int listening;
        int closing;
        int handles; /* listener + connections still to close */
        struct conn *conns;
        uint32_t n_conns;
};

struct ttrpc_call {
        struct conn *conn; /* NULL once the connection is gone */
        uint32_t sid;
        int cancelled;
        enum ttrpc_method_kind kind;
        const ProtobufCMethodDescriptor *md;
        Ttrpc__Request *envelope;
        ProtobufCMessage *req;
        void (*on_cancel)(struct ttrpc_call *, void *);
        void *cancel_data;
        void (*on_recv)(struct ttrpc_call *, ProtobufCMessage *, void *);
        void *recv_data;
        uint64_t deadline_us;
        struct ttrpc_call *prev, *next;
};

static void server_maybe_free(struct ttrpc_server *srv)
{
        if (srv->closing && srv->handles == 0) {
                free(srv->services);
                free(srv);
        }
}

/* ---- calls ---- */

static void call_unlink(struct ttrpc_call *call)
{
        struct conn *c = call->conn;
        if (!c)
                return;
        if (call->prev)
                call->prev->next = call->next;
        else
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        call->prev = call->next = NULL;
        call->conn = NULL;
}

static void call_free(struct ttrpc_call *call)
{
        call_unlink(call);
        if (call->req)
                protobuf_c_message_free_unpacked(call->req, NULL);
        if (call->envelope)
                ttrpc__request__free_unpacked(call->envelope, NULL);
        free(call);
}

static void call_cancel(struct ttrpc_call *call)
{
        if (call->cancelled)
                return;
        call->cancelled = 1;
        if (call->on_cancel)
                call->on_cancel(call, call->cancel_data);
}

static struct ttrpc_call *call_find(struct conn *c, uint32_t sid)
{
        for (struct ttrpc_call *call = c->calls; call; call = call->next)
                if (call->sid == sid)
                        return call;
        return NULL;
}

const char *ttrpc_call_service(const struct ttrpc_call *call)
{
        return call->envelope->service;
}

const char *ttrpc_call_method(const struct ttrpc_call *call)
{
        return call->envelope->method;
}

uint32_t ttrpc_call_stream_id(const struct ttrpc_call *call)
{
        return call->sid;
}

const char *ttrpc_call_metadata(const struct ttrpc_call *call, const char *key)
{
        for (size_t i = 0; i < call->envelope->n_metadata; i++)
                if (strcasecmp(call->envelope->metadata[i]->key, key) == 0)
                        return call->envelope->metadata[i]->value;
        return NULL;
}

uint64_t ttrpc_call_deadline_us(const struct ttrpc_call *call)
{
        return call->deadline_us;
}

int ttrpc_call_cancelled(const struct ttrpc_call *call)
{
        return call->cancelled;
}

void ttrpc_call_on_cancel(struct ttrpc_call *call, void (*fn)(struct ttrpc_call *, void *),
                          void *userdata)
{
        call->on_cancel = fn;
        call->cancel_data = userdata;
}

void ttrpc_call_on_recv(struct ttrpc_call *call,
                        void (*fn)(struct ttrpc_call *, ProtobufCMessage *, void *), void *userdata)
{
        call->on_recv = fn;
        call->recv_data = userdata;
}

static int call_finish(struct ttrpc_call *call, enum ferry_code code, const char *msg,
                       const ProtobufCMessage *resp)
{
        int r = -ECANCELED;
        struct conn *c = call->conn;
        if (c && !call->cancelled) {
                struct ttrpc_payload pl = {.msg = resp};
                r = ttrpc_session_respond(c->io.sess, call->sid, code, msg, resp ? &pl : NULL);
                if (r == -ENOENT)
                        r = -ECANCELED;
                if (r == -ENOBUFS || r == -ENOMEM)
                        c->io.ops->on_fatal(&c->io, r);
                else
                        ttrpc_io_kick(&c->io);
        }
        call_free(call);
        return r;
}

int ttrpc_call_reply(struct ttrpc_call *call, const ProtobufCMessage *resp)
{
        return call_finish(call, FERRY_CODE_OK, NULL, resp);
}

int ttrpc_call_fail_code(struct ttrpc_call *call, enum ferry_code code, const char *msg)
{
        if (code == FERRY_CODE_OK || code >= FERRY_CODE__COUNT)
                code = FERRY_CODE_UNKNOWN;
        return call_finish(call, code, msg, NULL);
}

int ttrpc_call_fail(struct ttrpc_call *call, int err, const char *msg)
{
        return ttrpc_call_fail_code(call, ferry_errno_to_code(err), msg);
}

int ttrpc_call_send(struct ttrpc_call *call, const ProtobufCMessage *msg)
{
        if (call->kind == TTRPC_UNARY || call->kind == TTRPC_CLIENT_STREAM)
                return -EINVAL; /* Data on a single-reply call would break the client */
        struct conn *c = call->conn;
        if (!c || call->cancelled)
                return -ECANCELED;
        struct ttrpc_payload pl = {.msg = msg};
        int r = ttrpc_session_send_data(c->io.sess, call->sid, msg ? &pl : NULL);
        if (r == -ENOENT)
                return -ECANCELED;
        if (r < 0)
                return r;
        ttrpc_io_kick(&c->io);
        return 0;
}

int ttrpc_call_close(struct ttrpc_call *call)
{
        if (call->kind == TTRPC_UNARY || call->kind == TTRPC_CLIENT_STREAM)
                return ttrpc_call_reply(call, NULL); /* their clean end is a Response */
        int r = -ECANCELED;
        struct conn *c = call->conn;
        if (c && !call->cancelled) {
                r = ttrpc_session_close_send(c->io.sess, call->sid);
                if (r == -ENOENT)
                        r = -ECANCELED;
                if (r == -ENOBUFS || r == -ENOMEM)
                        c->io.ops->on_fatal(&c->io, r);
                else
                        ttrpc_io_kick(&c->io);
        }
        call_free(call);
        return r;
}

/* ---- session callbacks ---- */

static const struct service *service_find(struct ttrpc_server *srv, const char *name)
{
        for (size_t i = 0; i < srv->n_services; i++)
                if (strcmp(srv->services[i].desc->name, name) == 0)
                        return &srv->services[i];
        return NULL;
}

static int on_request(struct ttrpc_session *s, uint32_t sid, uint8_t flags, Ttrpc__Request *req,
                      void *userdata)
{
        struct conn *c = userdata;
        char msg[TTRPC_DEFAULT_MAX_NAME + 32];

        if (c->io.closing || c->io.failed) {
                /* a handler ended the connection earlier in this read: stop here */
                ttrpc__request__free_unpacked(req, NULL);
                return -ECONNRESET;
        }

        const struct service *svc = service_find(c->srv, req->service);
        if (!svc) {
                ferry_bprintf(msg, sizeof(msg), "service %s", req->service);
                ttrpc__request__free_unpacked(req, NULL);
                return ttrpc_session_respond(s, sid, FERRY_CODE_UNIMPLEMENTED, msg, NULL);
        }
        const ProtobufCMethodDescriptor *md =
            protobuf_c_service_descriptor_get_method_by_name(svc->desc, req->method);
        const struct ttrpc_method *m = md ? &svc->methods[md - svc->desc->methods] : NULL;
        if (!m || !m->handler) {
                ferry_bprintf(msg, sizeof(msg), "method %s", req->method);
                ttrpc__request__free_unpacked(req, NULL);
                return ttrpc_session_respond(s, sid, FERRY_CODE_UNIMPLEMENTED, msg, NULL);
        }

        struct ttrpc_call *call = calloc(1, sizeof(*call));
        if (!call) {
                ttrpc__request__free_unpacked(req, NULL);
                return ttrpc_session_respond(s, sid, FERRY_CODE_RESOURCE_EXHAUSTED,
                                             "ttrpc: out of memory", NULL);
        }
        call->sid = sid;
        call->kind = m->kind;
        call->md = md;
        call->envelope = req;
        if (req->timeout_nano) {
                /* the same rounding as the session's own deadline */
                uint64_t now = ferry_now_us();
                call->deadline_us =
                    req->timeout_nano < 0 ? now : now + ((uint64_t)req->timeout_nano + 999) / 1000;
        }
        /* a client-streaming method gets the request payload only when one was sent */
        int want = !(m->kind == TTRPC_CLIENT_STREAM || m->kind == TTRPC_BIDI_STREAM) ||
                   req->payload.len > 0;
        if (want) {
                call->req =
                    protobuf_c_message_unpack(md->input, NULL, req->payload.len, req->payload.data);
                if (!call->req) {
                        call_free(call);
                        return ttrpc_session_respond(s, sid, FERRY_CODE_INVALID_ARGUMENT,
                                                     "ttrpc: error unmarshalling payload", NULL);
                }
        }
        call->conn = c;
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        (void)flags; /* the registered kind decides, as in containerd's server */
        m->handler(call, call->req, svc->userdata);
        return 0;
}

static int on_data(struct ttrpc_session *s, uint32_t sid, uint8_t flags, const uint8_t *data,
                   size_t len, void *userdata)
{
        struct conn *c = userdata;
        struct ttrpc_call *call = call_find(c, sid);
        if (!call || !call->on_recv)
                return 0;
        if (!(flags & TTRPC_FLAG_NO_DATA)) {
                ProtobufCMessage *m = protobuf_c_message_unpack(call->md->input, NULL, len, data);
                if (!m) {
                        ttrpc_session_respond(s, sid, FERRY_CODE_INVALID_ARGUMENT,
                                              "ttrpc: error unmarshalling payload", NULL);
                        call_cancel(call);
                        return 0;
                }
                call->on_recv(call, m, call->recv_data);
                /* the handler may have ended the call */
                call = call_find(c, sid);
        }
        if (call && call->on_recv && (flags & TTRPC_FLAG_REMOTE_CLOSED))
                call->on_recv(call, NULL, call->recv_data);
        return 0;
}

static void on_stream_closed(struct ttrpc_session *s, uint32_t sid, enum ferry_code code,
                             const char *msg, void *userdata)
{
        struct conn *c = userdata;
        struct ttrpc_call *call = call_find(c, sid);
        if (call)
                call_cancel(call);
}

static const struct ttrpc_session_callbacks server_cbs = {
    .on_request = on_request,
    .on_data = on_data,
    .on_stream_closed = on_stream_closed,
};

/* ---- connections ---- */

static void conn_on_closed(struct ttrpc_io *io)
{
        struct conn *c = (struct conn *)io;
        struct ttrpc_server *srv = c->srv;
        ttrpc_session_free(c->io.sess);
        free(c);
        srv->handles--;
        server_maybe_free(srv);
}

static void conn_end(struct conn *c)
{
        struct ttrpc_server *srv = c->srv;
        if (c->io.closing)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                srv->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        srv->n_conns--;
        /* pending calls outlive the connection; their handlers still end them */
        while (c->calls) {
                struct ttrpc_call *call = c->calls;
                call_unlink(call);
                call_cancel(call);
        }
        ttrpc_io_close(&c->io);
}

static void conn_on_fatal(struct ttrpc_io *io, int err)
{
        conn_end((struct conn *)io);
}

static const struct ttrpc_io_ops conn_ops = {
    .on_fatal = conn_on_fatal,
    .on_closed = conn_on_closed,
};

int ttrpc_server_adopt(struct ttrpc_server *srv, int fd)
{
        if (srv->closing || srv->n_conns >= srv->opts.max_connections) {
                close(fd);
                return -EMFILE;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->srv = srv;
        int r =
            ttrpc_session_new(TTRPC_ROLE_SERVER, &srv->opts.limits, &server_cbs, c, &c->io.sess);
        if (r < 0) {
                close(fd);
                free(c);
                return r;
        }
        srv->handles++;
        r = ttrpc_io_start(&c->io, srv->loop, fd, &conn_ops);
        if (r < 0)
                return r; /* conn_on_closed frees c */
        c->next = srv->conns;
        if (srv->conns)
                srv->conns->prev = c;
        srv->conns = c;
        srv->n_conns++;
        return 0;
}

static void on_connection(uv_poll_t *l, int status, int events)
{
        struct ttrpc_server *srv = l->data;
        if (status < 0)
                return;
        /* bounded per wake-up so a connection storm cannot starve the loop */
        for (int i = 0; i < 64 && !srv->closing; i++) {
                int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0)
                        return;
                (void)ttrpc_server_adopt(srv, fd); /* over the limit: closed at once */
        }
}

/* ---- server ---- */

int ttrpc_server_new(uv_loop_t *loop, const struct ttrpc_server_options *opts,
                     struct ttrpc_server **ret_srv)
{
        struct ttrpc_server *srv = calloc(1, sizeof(*srv));
        if (!srv)
                return -ENOMEM;
        srv->loop = loop;
        if (opts)
                srv->opts = *opts;
        ttrpc_limits_fill(&srv->opts.limits);
        if (!srv->opts.max_connections)
                srv->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
        *ret_srv = srv;
        return 0;
}

int ttrpc_server_register(struct ttrpc_server *srv, const ProtobufCServiceDescriptor *desc,
                          const struct ttrpc_method *methods, size_t n_methods, void *userdata)
{
        if (!desc || !methods || n_methods != desc->n_methods)
                return -EINVAL;
        if (service_find(srv, desc->name))
                return -EEXIST;
        struct service *s = realloc(srv->services, (srv->n_services + 1) * sizeof(*s));
        if (!s)
                return -ENOMEM;
        srv->services = s;
        s[srv->n_services++] = (struct service){desc, methods, userdata};
        return 0;
}

static void listener_closed(uv_handle_t *h)
{
        struct ttrpc_server *srv = h->data;
        close(srv->listen_fd);
        srv->handles--;
        server_maybe_free(srv);
}

int ttrpc_server_listen_fd(struct ttrpc_server *srv, int fd)
{
        if (srv->listening || srv->closing) {
                close(fd);
                return -EBUSY;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        int r = uv_poll_init(srv->loop, &srv->listener, fd);
        if (r < 0) {
                close(fd);
                return r;
        }
        srv->listener.data = srv;
        srv->listen_fd = fd;
        srv->listening = 1;
        srv->handles++;
        return uv_poll_start(&srv->listener, UV_READABLE, on_connection);
}

int ttrpc_server_listen(struct ttrpc_server *srv, const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (ferry_strscpy(sa.sun_path, path, sizeof(sa.sun_path)) < 0)
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        if (chmod(path, 0600) < 0 || listen(fd, 128) < 0) {
                int r = -errno;
                unlink(path);
                return r;
        }
        return ttrpc_server_listen_fd(srv, TAKE_FD(fd));
}

uint32_t ttrpc_server_n_connections(const struct ttrpc_server *srv)
{
        return srv->n_conns;
}

void ttrpc_server_close(struct ttrpc_server *srv)
{
        if (!srv || srv->closing)
                return;
        srv->closing = 1;
        if (srv->listening)
                uv_close((uv_handle_t *)&srv->listener, listener_closed);
        while (srv->conns)
                conn_end(srv->conns);
        server_maybe_free(srv);
}
