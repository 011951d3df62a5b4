/* SPDX-License-Identifier: MIT */
/* ttrpc server and client on unix sockets and the libuv loop, wire-compatible with
 * containerd/ttrpc. Everything here runs on the loop thread that owns the handle; nothing is
 * thread-safe. The protocol itself lives in rpc/session.h (no I/O) and rpc/frame.h.
 *
 * libuv writes with write(2): a process that serves or calls over ttrpc must ignore SIGPIPE
 * (signal(SIGPIPE, SIG_IGN)), or a peer that goes away mid-reply kills it. */
#pragma once

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "rpc/session.h"
#include "util/status.h"

/* ---------------------------------------------------------------------------------------- */
/* server */

struct ttrpc_server;
struct ttrpc_call;

enum ttrpc_method_kind {
        TTRPC_UNARY = 0,
        TTRPC_SERVER_STREAM, /* one request, Data frames back, closed with RC|ND */
        TTRPC_CLIENT_STREAM, /* Data frames in, one Response back */
        TTRPC_BIDI_STREAM,
};

/* Called on the loop for each call. req is the decoded request (NULL for a client or
 * bidirectional stream opened without a payload), borrowed until the call ends. The handler
 * must end the call exactly once, now or later on the loop, with ttrpc_call_reply(),
 * ttrpc_call_fail() or (streams) ttrpc_call_close(); the call pointer is invalid after that. */
typedef void (*ttrpc_handler_fn)(struct ttrpc_call *call, const ProtobufCMessage *req,
                                 void *userdata);

/* One entry per method of a service descriptor, in the descriptor's method order. */
struct ttrpc_method {
        ttrpc_handler_fn handler; /* NULL = UNIMPLEMENTED */
        enum ttrpc_method_kind kind;
};

struct ttrpc_server_options {
        struct ttrpc_limits limits; /* per connection; zero fields = defaults */
        uint32_t max_connections;   /* default 256; extra connections are closed at once */
};

/* Creates a server on loop. opts may be NULL. Returns 0, -ENOMEM. *ret_srv is new; end it with
 * ttrpc_server_close(). */
int ttrpc_server_new(uv_loop_t *loop, const struct ttrpc_server_options *opts,
                     struct ttrpc_server **ret_srv);

/* Serves desc->name ("pkg.Service", or "Migration" for a package-less proto). methods has one
 * entry per method of desc, in the descriptor's order; n_methods must equal desc->n_methods so a
 * table that fell behind its .proto is caught here rather than read out of bounds. desc,
 * methods and userdata are borrowed and must outlive the server.
 * Returns 0, -EINVAL (n_methods mismatch), -EEXIST (name already served), -ENOMEM. */
int ttrpc_server_register(struct ttrpc_server *srv, const ProtobufCServiceDescriptor *desc,
                          const struct ttrpc_method *methods, size_t n_methods, void *userdata);

/* Binds a new unix socket at path (mode 0600, set right after bind) and starts accepting. The
 * caller removes path when done; a stale path is not replaced. Returns 0 or a negative errno
 * from socket/bind/listen (-EADDRINUSE when path exists, -ENAMETOOLONG). */
int ttrpc_server_listen(struct ttrpc_server *srv, const char *path);

/* Starts accepting on fd, a bound and listening unix stream socket (taken, even on error).
 * Returns 0 or a negative errno. */
int ttrpc_server_listen_fd(struct ttrpc_server *srv, int fd);

/* Serves one already-connected unix stream socket fd (taken, even on error), e.g. one end of
 * a socketpair. Returns 0, -EMFILE (connection limit) or a negative errno. */
int ttrpc_server_adopt(struct ttrpc_server *srv, int fd);

/* Connections open now. */
uint32_t ttrpc_server_n_connections(const struct ttrpc_server *srv);

/* Stops accepting, closes every connection (pending calls are cancelled: their handlers still
 * end them, which then only frees them) and frees srv once the loop has run the close
 * callbacks. Accepts NULL. */
void ttrpc_server_close(struct ttrpc_server *srv);

/* -- calls -- */

const char *ttrpc_call_service(const struct ttrpc_call *call);
const char *ttrpc_call_method(const struct ttrpc_call *call);
uint32_t ttrpc_call_stream_id(const struct ttrpc_call *call);

/* The first value of metadata key (compared case-insensitively), borrowed until the call ends,
 * or NULL. */
const char *ttrpc_call_metadata(const struct ttrpc_call *call, const char *key);

/* Absolute deadline in ferry_now_us() time, 0 = none. */
uint64_t ttrpc_call_deadline_us(const struct ttrpc_call *call);

/* True once the call can no longer be answered: the client went away or the deadline passed
 * (the client has then been told DEADLINE_EXCEEDED). */
int ttrpc_call_cancelled(const struct ttrpc_call *call);

/* fn(call, userdata) runs once when the call becomes cancelled; the handler must still end it. */
void ttrpc_call_on_cancel(struct ttrpc_call *call, void (*fn)(struct ttrpc_call *, void *),
                          void *userdata);

/* Client and bidirectional streams: fn(call, msg, userdata) gets each message the client sends
 * (msg owned by fn: free with protobuf_c_message_free_unpacked), then msg == NULL once the
 * client has closed its side. */
void ttrpc_call_on_recv(struct ttrpc_call *call,
                        void (*fn)(struct ttrpc_call *, ProtobufCMessage *, void *),
                        void *userdata);

/* Ends the call with OK and resp (borrowed; NULL = empty message). A reply larger than the
 * message limit goes out as RESOURCE_EXHAUSTED. Frees call. Returns 0, -ECANCELED (call was
 * cancelled; nothing sent), -ENOBUFS (the client does not read; the connection is closed). */
int ttrpc_call_reply(struct ttrpc_call *call, const ProtobufCMessage *resp);

/* Ends the call with the status ferry_errno_to_code(err) and msg (borrowed, may be NULL).
 * Frees call. Returns as ttrpc_call_reply(). */
int ttrpc_call_fail(struct ttrpc_call *call, int err, const char *msg);

/* As ttrpc_call_fail() with an explicit code; OK or an out-of-range code is sent as UNKNOWN. */
int ttrpc_call_fail_code(struct ttrpc_call *call, enum ferry_code code, const char *msg);

/* Server or bidirectional stream: sends msg (borrowed) as a Data frame. The call stays open.
 * Returns 0, -EINVAL (a unary or client-stream call: answer it with ttrpc_call_reply()),
 * -ECANCELED, -EMSGSIZE (over the limit; nothing sent), -ENOBUFS (the client's queue is full:
 * slow down or fail the call). */
int ttrpc_call_send(struct ttrpc_call *call, const ProtobufCMessage *msg);

/* Ends a server or bidirectional stream successfully (Data RC|ND); on a unary or
 * client-stream call it is ttrpc_call_reply(call, NULL). Frees call. Returns 0 or
 * -ECANCELED. */
int ttrpc_call_close(struct ttrpc_call *call);

/* ---------------------------------------------------------------------------------------- */
/* client */

struct ttrpc_client;

/* A call's end. code/message: the status (message borrowed for the callback, may be NULL);
 * resp: the decoded reply on OK for a unary call (owned by the callback: free with
 * protobuf_c_message_free_unpacked), else NULL. Locally generated codes: DEADLINE_EXCEEDED
 * (timeout), UNAVAILABLE (connection lost or closed), RESOURCE_EXHAUSTED (oversized reply),
 * INTERNAL (undecodable reply or protocol violation). */
typedef void (*ttrpc_done_fn)(enum ferry_code code, const char *message, ProtobufCMessage *resp,
                              void *userdata);

/* A server-stream message; msg owned by the callback. */
typedef void (*ttrpc_msg_fn)(ProtobufCMessage *msg, void *userdata);

struct ttrpc_call_opts {
        int64_t timeout_ns;              /* 0 = none */
        const struct ttrpc_kv *metadata; /* borrowed */
        size_t n_metadata;
};

/* Connects to the unix socket at path, never blocking. limits may be NULL. Returns 0 or a
 * negative errno from socket/connect (-ENOENT, -ECONNREFUSED, -EAGAIN: the listener's backlog
 * is full, -ENAMETOOLONG), -ENOMEM. *ret_c is new; end it with ttrpc_client_close(). */
int ttrpc_client_connect(uv_loop_t *loop, const char *path, const struct ttrpc_limits *limits,
                         struct ttrpc_client **ret_c);

/* As ttrpc_client_connect() on a connected unix stream socket fd (taken, even on error). */
int ttrpc_client_adopt(uv_loop_t *loop, int fd, const struct ttrpc_limits *limits,
                       struct ttrpc_client **ret_c);

/* Starts a unary call: req borrowed (packed before return); the reply is decoded with
 * resp_desc; done runs later on the loop, exactly once, unless this returns an error.
 * Returns 0, -ENOTCONN (connection lost), -EAGAIN (too many calls in flight), -EMSGSIZE,
 * -EINVAL, -ENOBUFS, -ENOMEM. */
int ttrpc_client_call(struct ttrpc_client *c, const char *service, const char *method,
                      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                      const struct ttrpc_call_opts *opts, ttrpc_done_fn done, void *userdata);

/* Starts a server-streaming call: on_msg gets each message, then done(OK) at the server's
 * close, or done(error). Returns as ttrpc_client_call(). */
int ttrpc_client_stream(struct ttrpc_client *c, const char *service, const char *method,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                        const struct ttrpc_call_opts *opts, ttrpc_msg_fn on_msg, ttrpc_done_fn done,
                        void *userdata);

/* Opens a client stream (on_msg NULL: the server answers once, decoded with resp_desc and
 * given to done) or a bidirectional stream (on_msg gets each server message, then done(OK) at
 * the server's close). req (borrowed, may be NULL) travels in the Request envelope as the
 * first message. Send with ttrpc_client_send(), finish with ttrpc_client_close_send(). Stores
 * the stream id in *ret_sid. Returns as ttrpc_client_call(). */
int ttrpc_client_open(struct ttrpc_client *c, const char *service, const char *method,
                      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                      const struct ttrpc_call_opts *opts, ttrpc_msg_fn on_msg, ttrpc_done_fn done,
                      void *userdata, uint32_t *ret_sid);

/* Sends msg (borrowed) on an open stream. Returns 0, -ENOENT (the stream has ended),
 * -ENOTCONN, -EMSGSIZE, -ENOBUFS, -ENOMEM. */
int ttrpc_client_send(struct ttrpc_client *c, uint32_t sid, const ProtobufCMessage *msg);

/* Closes the client's side of an open stream (Data RC|ND); the call ends when the server
 * answers. Returns 0, -ENOENT, -ENOTCONN, -ENOBUFS, -ENOMEM. */
int ttrpc_client_close_send(struct ttrpc_client *c, uint32_t sid);

/* Calls in flight. */
uint32_t ttrpc_client_n_pending(const struct ttrpc_client *c);

/* Fails every pending call with UNAVAILABLE, closes the socket and frees c once the loop has
 * run the close callbacks. Accepts NULL. */
void ttrpc_client_close(struct ttrpc_client *c);
