/* SPDX-License-Identifier: MIT */
/* The ttrpc protocol core: one connection's state, with no I/O. Bytes go in through
 * ttrpc_session_recv(), events come out through callbacks, frames to send accumulate in an
 * output queue the caller drains, and time is passed in (microseconds, monotonic).
 * The server role validates stream ids and limits and answers protocol errors itself; the
 * client role allocates odd stream ids and demultiplexes replies. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/frame.h"
#include "ttrpc.pb-c.h"
#include "util/status.h"

enum ttrpc_role {
        TTRPC_ROLE_SERVER,
        TTRPC_ROLE_CLIENT,
};

/* Every quantity a peer controls is bounded here; zero fields take the defaults. */
struct ttrpc_limits {
        uint32_t max_message;        /* payload bytes per frame (default 4 MiB) */
        uint32_t max_streams;        /* concurrent streams per connection (default 128) */
        uint32_t max_metadata;       /* metadata entries per request (default 64) */
        uint32_t max_metadata_bytes; /* sum of key and value bytes per request (default 16 KiB) */
        uint32_t max_name;           /* bytes of a service or method name (default 256) */
        size_t max_output;           /* queued outbound bytes (default 16 MiB + one frame) */
        uint64_t frame_timeout_us;   /* a frame once begun must complete within (default 10 s) */
};

#define TTRPC_DEFAULT_MAX_STREAMS        128u
#define TTRPC_DEFAULT_MAX_METADATA       64u
#define TTRPC_DEFAULT_MAX_METADATA_BYTES (16u << 10)
#define TTRPC_DEFAULT_MAX_NAME           256u
#define TTRPC_DEFAULT_MAX_OUTPUT         ((size_t)(16u << 20))
#define TTRPC_DEFAULT_FRAME_TIMEOUT_US   (10ull * 1000 * 1000)

/* Fills zero fields of l with the defaults. */
void ttrpc_limits_fill(struct ttrpc_limits *l);

/* A metadata entry; both strings borrowed. */
struct ttrpc_kv {
        const char *key;
        const char *value;
};

/* A message body to send: either a protobuf-c message packed straight into the output queue,
 * or bytes already serialized. Both borrowed for the call. */
struct ttrpc_payload {
        const ProtobufCMessage *msg;
        const uint8_t *data;
        size_t len;
};

struct ttrpc_session;

struct ttrpc_session_callbacks {
        /* Server: a valid Request opened stream sid. req is owned by the callee (free it with
         * ttrpc__request__free_unpacked(req, NULL)). A negative return fails the connection. */
        int (*on_request)(struct ttrpc_session *s, uint32_t sid, uint8_t flags, Ttrpc__Request *req,
                          void *userdata);
        /* Client: the Response that ends stream sid; resp borrowed for the callback. */
        int (*on_response)(struct ttrpc_session *s, uint32_t sid, const Ttrpc__Response *resp,
                           void *userdata);
        /* Both: a Data frame on an active stream; data borrowed. TTRPC_FLAG_REMOTE_CLOSED in
         * flags means the peer's side is closed (with TTRPC_FLAG_NO_DATA, len is 0 and no
         * message is carried). On the client a remote-closed Data ends the stream. */
        int (*on_data)(struct ttrpc_session *s, uint32_t sid, uint8_t flags, const uint8_t *data,
                       size_t len, void *userdata);
        /* Both: stream sid ended without a normal end: deadline passed (the server core has
         * answered DEADLINE_EXCEEDED), an oversized or malformed reply, a protocol violation,
         * or connection loss. msg borrowed. */
        void (*on_stream_closed)(struct ttrpc_session *s, uint32_t sid, enum ferry_code code,
                                 const char *msg, void *userdata);
};

/* Creates a session. limits (may be NULL) and cbs are copied. Returns 0 or -ENOMEM; *ret_s is
 * new, free it with ttrpc_session_free(). */
int ttrpc_session_new(enum ttrpc_role role, const struct ttrpc_limits *limits,
                      const struct ttrpc_session_callbacks *cbs, void *userdata,
                      struct ttrpc_session **ret_s);

/* Frees s and its queued output; accepts NULL; returns NULL. No callbacks are made. */
struct ttrpc_session *ttrpc_session_free(struct ttrpc_session *s);

const struct ttrpc_limits *ttrpc_session_limits(const struct ttrpc_session *s);

/* Feeds received bytes (borrowed; any split is fine). Returns 0, or a negative errno when the
 * connection must be closed: -ENOBUFS (the output queue is over its limit: the peer does not
 * read), -ENOMEM, or a callback's error. */
int ttrpc_session_recv(struct ttrpc_session *s, const uint8_t *data, size_t len, uint64_t now_us);

/* Ends every stream whose deadline is <= now_us (on_stream_closed with DEADLINE_EXCEEDED; the
 * server also answers it on the wire). Returns -ETIMEDOUT when the peer has stalled inside a
 * frame for longer than frame_timeout_us (close the connection), else 0. *ret_next_us (may be
 * NULL) gets the next time to call again, or 0 for never. */
int ttrpc_session_expire(struct ttrpc_session *s, uint64_t now_us, uint64_t *ret_next_us);

/* The next time ttrpc_session_expire() has work to do (a stream deadline or the stalled-frame
 * limit), or 0 for never. No side effects. */
uint64_t ttrpc_session_next_timeout(const struct ttrpc_session *s);

/* Bytes waiting in the output queue. */
size_t ttrpc_session_output_len(const struct ttrpc_session *s);

/* Hands the whole output queue to the caller: *ret_buf is new (free() it), *ret_len its size.
 * Returns 0, or -ENODATA when nothing is queued. */
int ttrpc_session_take_output(struct ttrpc_session *s, uint8_t **ret_buf, size_t *ret_len);

/* Client: opens a stream with a Request. flags: 0 unary, TTRPC_FLAG_REMOTE_CLOSED server
 * stream, TTRPC_FLAG_REMOTE_OPEN client or bidirectional stream. timeout_ns 0 = none; it also
 * sets the stream's local deadline. Metadata keys should be lowercase. Returns 0 and the new
 * odd stream id in *ret_sid, or -EINVAL (bad flags or names), -EMSGSIZE (over max_message),
 * -EAGAIN (max_streams in flight), -ERANGE (stream ids exhausted: reconnect), -ENOBUFS
 * (output queue full), -ENOMEM. */
int ttrpc_session_request(struct ttrpc_session *s, const char *service, const char *method,
                          const struct ttrpc_payload *payload, int64_t timeout_ns,
                          const struct ttrpc_kv *metadata, size_t n_metadata, uint8_t flags,
                          uint64_t now_us, uint32_t *ret_sid);

/* Both: queues a Data frame with payload (NULL or empty = a valid empty message) on active
 * stream sid. flags may only be 0. Returns 0, -ENOENT (stream not active), -EMSGSIZE,
 * -ENOBUFS or -ENOMEM. */
int ttrpc_session_send_data(struct ttrpc_session *s, uint32_t sid,
                            const struct ttrpc_payload *payload);

/* Both: closes the local side with an empty Data RC|ND frame. On the server this ends the
 * stream (a successful end of a server stream). Returns 0, -ENOENT, -ENOBUFS or -ENOMEM. */
int ttrpc_session_close_send(struct ttrpc_session *s, uint32_t sid);

/* Server: answers stream sid with a Response {status{code, msg}, payload} and ends it. A
 * payload over max_message is replaced by a RESOURCE_EXHAUSTED status. msg may be NULL.
 * Returns 0, -ENOENT (stream not active: ended by a deadline or never opened), -ENOBUFS or
 * -ENOMEM. */
int ttrpc_session_respond(struct ttrpc_session *s, uint32_t sid, enum ferry_code code,
                          const char *msg, const struct ttrpc_payload *payload);

/* Forgets stream sid locally without sending anything (a client giving up). Returns 0 or
 * -ENOENT. */
int ttrpc_session_forget(struct ttrpc_session *s, uint32_t sid);

/* Ends every active stream with on_stream_closed(code, msg): the connection is gone. */
void ttrpc_session_abort_all(struct ttrpc_session *s, enum ferry_code code, const char *msg);

/* Active streams now. */
uint32_t ttrpc_session_n_streams(const struct ttrpc_session *s);

/* Encodes a Response payload (status + body) into a new buffer without framing: for tests and
 * tools. Returns 0 or -ENOMEM / -EMSGSIZE. */
int ttrpc_encode_response(enum ferry_code code, const char *msg,
                          const struct ttrpc_payload *payload, uint8_t **ret_buf, size_t *ret_len);
