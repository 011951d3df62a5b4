/* SPDX-License-Identifier: MIT */
#include "rpc/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* A status message we generate or forward is cut to this many bytes. */
#define STATUS_MSG_MAX 1024u

struct stream {
        uint32_t sid;
        uint8_t active;
        uint8_t remote_closed;
        uint64_t deadline_us; /* 0 = none */
};

enum frame_mode {
        MODE_HEADER,  /* between frames or inside a header */
        MODE_COLLECT, /* gathering a payload we will dispatch */
        MODE_DISCARD, /* dropping a payload we refused (oversized, unknown type) */
};

struct ttrpc_session {
        enum ttrpc_role role;
        struct ttrpc_limits limits;
        struct ttrpc_session_callbacks cbs;
        void *userdata;

        struct ttrpc_scanner scanner;
        enum frame_mode mode;
        int oversized;    /* the frame being discarded was over max_message */
        uint8_t *frame;   /* payload being collected */
        size_t frame_len; /* bytes collected */
        size_t frame_cap;
        uint64_t frame_start_us;

        uint8_t *out;
        size_t out_len, out_cap;

        struct stream *streams; /* max_streams slots */
        uint32_t n_streams;
        uint32_t last_sid; /* server: highest request id seen */
        uint32_t next_sid; /* client: next id to use */
};

void ttrpc_limits_fill(struct ttrpc_limits *l)
{
        if (!l->max_message || l->max_message > TTRPC_MESSAGE_MAX)
                l->max_message = TTRPC_MESSAGE_MAX;
        if (!l->max_streams)
                l->max_streams = TTRPC_DEFAULT_MAX_STREAMS;
        if (!l->max_metadata)
                l->max_metadata = TTRPC_DEFAULT_MAX_METADATA;
        if (!l->max_metadata_bytes)
                l->max_metadata_bytes = TTRPC_DEFAULT_MAX_METADATA_BYTES;
        if (!l->max_name)
                l->max_name = TTRPC_DEFAULT_MAX_NAME;
        if (!l->max_output)
                l->max_output = TTRPC_DEFAULT_MAX_OUTPUT;
        /* one maximal frame always fits, so a legal reply is never refused on an idle queue */
        if (l->max_output < (size_t)l->max_message + TTRPC_HEADER_LEN + 64)
                l->max_output = (size_t)l->max_message + TTRPC_HEADER_LEN + 64;
        if (!l->frame_timeout_us)
                l->frame_timeout_us = TTRPC_DEFAULT_FRAME_TIMEOUT_US;
}

int ttrpc_session_new(enum ttrpc_role role, const struct ttrpc_limits *limits,
                      const struct ttrpc_session_callbacks *cbs, void *userdata,
                      struct ttrpc_session **ret_s)
{
        _cleanup_free_ struct ttrpc_session *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->role = role;
        if (limits)
                s->limits = *limits;
        ttrpc_limits_fill(&s->limits);
        if (cbs)
                s->cbs = *cbs;
        s->userdata = userdata;
        s->streams = calloc(s->limits.max_streams, sizeof(*s->streams));
        if (!s->streams)
                return -ENOMEM;
        ttrpc_scanner_init(&s->scanner);
        s->next_sid = 1;
        *ret_s = TAKE_PTR(s);
        return 0;
}

struct ttrpc_session *ttrpc_session_free(struct ttrpc_session *s)
{
        if (!s)
                return NULL;
        free(s->streams);
        free(s->frame);
        free(s->out);
        free(s);
        return NULL;
}

const struct ttrpc_limits *ttrpc_session_limits(const struct ttrpc_session *s)
{
        return &s->limits;
}

uint32_t ttrpc_session_n_streams(const struct ttrpc_session *s)
{
        return s->n_streams;
}

/* ---- streams ---- */

static struct stream *stream_find(struct ttrpc_session *s, uint32_t sid)
{
        if (s->n_streams == 0)
                return NULL;
        for (uint32_t i = 0; i < s->limits.max_streams; i++)
                if (s->streams[i].active && s->streams[i].sid == sid)
                        return &s->streams[i];
        return NULL;
}

static struct stream *stream_add(struct ttrpc_session *s, uint32_t sid, uint64_t deadline_us)
{
        if (s->n_streams >= s->limits.max_streams)
                return NULL;
        for (uint32_t i = 0; i < s->limits.max_streams; i++)
                if (!s->streams[i].active) {
                        s->streams[i] =
                            (struct stream){.sid = sid, .active = 1, .deadline_us = deadline_us};
                        s->n_streams++;
                        return &s->streams[i];
                }
        return NULL;
}

static void stream_remove(struct ttrpc_session *s, struct stream *st)
{
        st->active = 0;
        s->n_streams--;
}

static uint64_t deadline_from(int64_t timeout_ns, uint64_t now_us)
{
        if (timeout_ns == 0)
                return 0;
        if (timeout_ns < 0)
                return now_us ? now_us : 1; /* already expired */
        uint64_t us = ((uint64_t)timeout_ns + 999) / 1000;
        if (us > UINT64_MAX - now_us)
                return UINT64_MAX;
        return now_us + us;
}

/* ---- output queue and encoding ---- */

static int out_reserve(struct ttrpc_session *s, size_t extra, uint8_t **ret_p)
{
        if (extra > s->limits.max_output || s->out_len > s->limits.max_output - extra)
                return -ENOBUFS;
        size_t need = s->out_len + extra;
        if (need > s->out_cap) {
                size_t cap = s->out_cap ? s->out_cap : 4096;
                while (cap < need)
                        cap *= 2;
                uint8_t *p = realloc(s->out, cap);
                if (!p)
                        return -ENOMEM;
                s->out = p;
                s->out_cap = cap;
        }
        *ret_p = s->out + s->out_len;
        return 0;
}

size_t ttrpc_session_output_len(const struct ttrpc_session *s)
{
        return s->out_len;
}

int ttrpc_session_take_output(struct ttrpc_session *s, uint8_t **ret_buf, size_t *ret_len)
{
        if (s->out_len == 0)
                return -ENODATA;
        *ret_buf = s->out;
        *ret_len = s->out_len;
        s->out = NULL;
        s->out_len = s->out_cap = 0;
        return 0;
}

static size_t varint_len(uint64_t v)
{
        size_t n = 1;
        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
        while (v >= 0x80) {
                *p++ = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        *p++ = (uint8_t)v;
        return p;
}

/* a length-delimited field: tag, length, then the caller writes len bytes */
static size_t ld_len(size_t len)
{
        return 1 + varint_len(len) + len;
}

static uint8_t *put_ld(uint8_t *p, uint8_t tag, const void *data, size_t len)
{
        *p++ = tag;
        p = put_varint(p, len);
        if (len && data)
                memcpy(p, data, len);
        return p + len;
}

static size_t payload_len(const struct ttrpc_payload *pl)
{
        if (!pl)
                return 0;
        if (pl->msg)
                return protobuf_c_message_get_packed_size(pl->msg);
        return pl->len;
}

static uint8_t *put_payload(uint8_t *p, const struct ttrpc_payload *pl, size_t len)
{
        if (len == 0)
                return p;
        if (pl->msg)
                protobuf_c_message_pack(pl->msg, p);
        else
                memcpy(p, pl->data, len);
        return p + len;
}

static uint8_t *put_header(uint8_t *p, uint32_t len, uint32_t sid, uint8_t type, uint8_t flags)
{
        struct ttrpc_frame_header h = {
            .length = len, .stream_id = sid, .type = type, .flags = flags};
        ttrpc_header_encode(&h, p);
        return p + TTRPC_HEADER_LEN;
}

static size_t status_body_len(enum ferry_code code, size_t mlen)
{
        size_t n = 0;
        if (code != FERRY_CODE_OK)
                n += 1 + varint_len((uint64_t)code);
        if (mlen)
                n += ld_len(mlen);
        return n;
}

/* Response{status{code,msg}, payload} body; Go's server always sends status, so do we. */
static size_t response_len(enum ferry_code code, size_t mlen, size_t plen)
{
        return ld_len(status_body_len(code, mlen)) + (plen ? ld_len(plen) : 0);
}

static uint8_t *put_response(uint8_t *p, enum ferry_code code, const char *msg, size_t mlen,
                             const struct ttrpc_payload *pl, size_t plen)
{
        *p++ = 0x0a;
        p = put_varint(p, status_body_len(code, mlen));
        if (code != FERRY_CODE_OK) {
                *p++ = 0x08;
                p = put_varint(p, (uint64_t)code);
        }
        if (mlen)
                p = put_ld(p, 0x12, msg, mlen);
        if (plen) {
                *p++ = 0x12;
                p = put_varint(p, plen);
                p = put_payload(p, pl, plen);
        }
        return p;
}

static size_t msg_len(const char *msg)
{
        return msg ? strnlen(msg, STATUS_MSG_MAX) : 0;
}

int ttrpc_encode_response(enum ferry_code code, const char *msg,
                          const struct ttrpc_payload *payload, uint8_t **ret_buf, size_t *ret_len)
{
        size_t mlen = msg_len(msg), plen = payload_len(payload);
        if (plen > TTRPC_MESSAGE_MAX)
                return -EMSGSIZE;
        size_t n = response_len(code, mlen, plen);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf)
                return -ENOMEM;
        put_response(buf, code, msg, mlen, payload, plen);
        *ret_buf = buf;
        *ret_len = n;
        return 0;
}

/* queues a Response on sid whether or not the stream is active */
static int queue_response(struct ttrpc_session *s, uint32_t sid, enum ferry_code code,
                          const char *msg, const struct ttrpc_payload *pl)
{
        size_t mlen = msg_len(msg), plen = payload_len(pl);
        if (plen > s->limits.max_message ||
            response_len(code, mlen, plen) > s->limits.max_message) {
                code = FERRY_CODE_RESOURCE_EXHAUSTED;
                msg = "ttrpc: response exceeds the maximum message size";
                mlen = strlen(msg);
                plen = 0;
        }
        size_t body = response_len(code, mlen, plen);
        uint8_t *p;
        int r = out_reserve(s, TTRPC_HEADER_LEN + body, &p);
        if (r < 0)
                return r;
        p = put_header(p, (uint32_t)body, sid, TTRPC_TYPE_RESPONSE, 0);
        put_response(p, code, msg, mlen, pl, plen);
        s->out_len += TTRPC_HEADER_LEN + body;
        return 0;
}

static int queue_data(struct ttrpc_session *s, uint32_t sid, uint8_t flags,
                      const struct ttrpc_payload *pl)
{
        size_t plen = payload_len(pl);
        if (plen > s->limits.max_message)
                return -EMSGSIZE;
        uint8_t *p;
        int r = out_reserve(s, TTRPC_HEADER_LEN + plen, &p);
        if (r < 0)
                return r;
        p = put_header(p, (uint32_t)plen, sid, TTRPC_TYPE_DATA, flags);
        put_payload(p, pl, plen);
        s->out_len += TTRPC_HEADER_LEN + plen;
        return 0;
}

/* ---- sending ---- */

int ttrpc_session_request(struct ttrpc_session *s, const char *service, const char *method,
                          const struct ttrpc_payload *payload, int64_t timeout_ns,
                          const struct ttrpc_kv *metadata, size_t n_metadata, uint8_t flags,
                          uint64_t now_us, uint32_t *ret_sid)
{
        if (s->role != TTRPC_ROLE_CLIENT || !service || !method)
                return -EINVAL;
        if (flags & ~(TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_REMOTE_OPEN))
                return -EINVAL;
        size_t slen = strnlen(service, s->limits.max_name + 1);
        size_t mlen = strnlen(method, s->limits.max_name + 1);
        if (slen == 0 || mlen == 0 || slen > s->limits.max_name || mlen > s->limits.max_name)
                return -EINVAL;
        if (n_metadata > s->limits.max_metadata)
                return -E2BIG;
        if (s->next_sid > INT32_MAX)
                return -ERANGE;
        if (s->n_streams >= s->limits.max_streams)
                return -EAGAIN;

        size_t plen = payload_len(payload);
        size_t body = ld_len(slen) + ld_len(mlen) + (plen ? ld_len(plen) : 0);
        if (timeout_ns)
                body += 1 + varint_len((uint64_t)timeout_ns);
        size_t md_bytes = 0;
        for (size_t i = 0; i < n_metadata; i++) {
                size_t k = strlen(metadata[i].key), v = strlen(metadata[i].value);
                md_bytes += k + v;
                body += ld_len((k ? ld_len(k) : 0) + (v ? ld_len(v) : 0));
        }
        if (md_bytes > s->limits.max_metadata_bytes)
                return -E2BIG;
        if (body > s->limits.max_message)
                return -EMSGSIZE;

        uint8_t *p;
        int r = out_reserve(s, TTRPC_HEADER_LEN + body, &p);
        if (r < 0)
                return r;
        uint32_t sid = s->next_sid;
        if (!stream_add(s, sid, deadline_from(timeout_ns, now_us)))
                return -EAGAIN;
        s->next_sid += 2;

        p = put_header(p, (uint32_t)body, sid, TTRPC_TYPE_REQUEST, flags);
        p = put_ld(p, 0x0a, service, slen);
        p = put_ld(p, 0x12, method, mlen);
        if (plen) {
                *p++ = 0x1a;
                p = put_varint(p, plen);
                p = put_payload(p, payload, plen);
        }
        if (timeout_ns) {
                *p++ = 0x20;
                p = put_varint(p, (uint64_t)timeout_ns);
        }
        for (size_t i = 0; i < n_metadata; i++) {
                size_t k = strlen(metadata[i].key), v = strlen(metadata[i].value);
                *p++ = 0x2a;
                p = put_varint(p, (k ? ld_len(k) : 0) + (v ? ld_len(v) : 0));
                if (k)
                        p = put_ld(p, 0x0a, metadata[i].key, k);
                if (v)
                        p = put_ld(p, 0x12, metadata[i].value, v);
        }
        s->out_len += TTRPC_HEADER_LEN + body;
        *ret_sid = sid;
        return 0;
}

int ttrpc_session_send_data(struct ttrpc_session *s, uint32_t sid,
                            const struct ttrpc_payload *payload)
{
        if (!stream_find(s, sid))
                return -ENOENT;
        return queue_data(s, sid, 0, payload);
}

int ttrpc_session_close_send(struct ttrpc_session *s, uint32_t sid)
{
        struct stream *st = stream_find(s, sid);
        if (!st)
                return -ENOENT;
        int r = queue_data(s, sid, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA, NULL);
        if (r < 0)
                return r;
        /* the server is never local-closed while remote-open: closing ends the stream */
        if (s->role == TTRPC_ROLE_SERVER)
                stream_remove(s, st);
        return 0;
}

int ttrpc_session_respond(struct ttrpc_session *s, uint32_t sid, enum ferry_code code,
                          const char *msg, const struct ttrpc_payload *payload)
{
        if (s->role != TTRPC_ROLE_SERVER)
                return -EINVAL;
        struct stream *st = stream_find(s, sid);
        if (!st)
                return -ENOENT;
        int r = queue_response(s, sid, code, msg, payload);
        if (r < 0)
                return r;
        stream_remove(s, st);
        return 0;
}

int ttrpc_session_forget(struct ttrpc_session *s, uint32_t sid)
{
        struct stream *st = stream_find(s, sid);
        if (!st)
                return -ENOENT;
        stream_remove(s, st);
        return 0;
}

static void end_stream(struct ttrpc_session *s, struct stream *st, enum ferry_code code,
                       const char *msg)
{
        uint32_t sid = st->sid;
        stream_remove(s, st);
        if (s->cbs.on_stream_closed)
                s->cbs.on_stream_closed(s, sid, code, msg, s->userdata);
}

void ttrpc_session_abort_all(struct ttrpc_session *s, enum ferry_code code, const char *msg)
{
        for (uint32_t i = 0; i < s->limits.max_streams && s->n_streams; i++)
                if (s->streams[i].active)
                        end_stream(s, &s->streams[i], code, msg);
}

int ttrpc_session_expire(struct ttrpc_session *s, uint64_t now_us, uint64_t *ret_next_us)
{
        uint64_t next = 0;
        for (uint32_t i = 0; i < s->limits.max_streams && s->n_streams; i++) {
                struct stream *st = &s->streams[i];
                if (!st->active || !st->deadline_us)
                        continue;
                if (st->deadline_us <= now_us) {
                        if (s->role == TTRPC_ROLE_SERVER) {
                                int r = queue_response(s, st->sid, FERRY_CODE_DEADLINE_EXCEEDED,
                                                       "ttrpc: deadline exceeded", NULL);
                                if (r < 0)
                                        return r;
                        }
                        end_stream(s, st, FERRY_CODE_DEADLINE_EXCEEDED, "deadline exceeded");
                } else if (!next || st->deadline_us < next) {
                        next = st->deadline_us;
                }
        }
        if (ttrpc_scanner_mid_frame(&s->scanner)) {
                uint64_t limit = s->frame_start_us + s->limits.frame_timeout_us;
                if (now_us >= limit)
                        return -ETIMEDOUT;
                if (!next || limit < next)
                        next = limit;
        }
        if (ret_next_us)
                *ret_next_us = next;
        return 0;
}

uint64_t ttrpc_session_next_timeout(const struct ttrpc_session *s)
{
        uint64_t next = 0;
        for (uint32_t i = 0, seen = 0; i < s->limits.max_streams && seen < s->n_streams; i++) {
                const struct stream *st = &s->streams[i];
                if (!st->active)
                        continue;
                seen++;
                if (st->deadline_us && (!next || st->deadline_us < next))
                        next = st->deadline_us;
        }
        if (ttrpc_scanner_mid_frame(&s->scanner)) {
                uint64_t limit = s->frame_start_us + s->limits.frame_timeout_us;
                if (!next || limit < next)
                        next = limit;
        }
        return next;
}

/* ---- receiving ---- */

static int reply_error(struct ttrpc_session *s, uint32_t sid, enum ferry_code code, const char *msg)
{
        /* a protocol error ends the stream it names, if that stream is open */
        struct stream *st = stream_find(s, sid);
        int r = queue_response(s, sid, code, msg, NULL);
        if (r < 0)
                return r;
        if (st)
                end_stream(s, st, code, msg);
        return 0;
}

static int check_request(struct ttrpc_session *s, const Ttrpc__Request *req, enum ferry_code *code,
                         const char **msg)
{
        if (strnlen(req->service, s->limits.max_name + 1) > s->limits.max_name ||
            strnlen(req->method, s->limits.max_name + 1) > s->limits.max_name) {
                *code = FERRY_CODE_INVALID_ARGUMENT;
                *msg = "ttrpc: service or method name too long";
                return -1;
        }
        if (req->n_metadata > s->limits.max_metadata) {
                *code = FERRY_CODE_RESOURCE_EXHAUSTED;
                *msg = "ttrpc: too many metadata entries";
                return -1;
        }
        size_t bytes = 0;
        for (size_t i = 0; i < req->n_metadata; i++)
                bytes += strlen(req->metadata[i]->key) + strlen(req->metadata[i]->value);
        if (bytes > s->limits.max_metadata_bytes) {
                *code = FERRY_CODE_RESOURCE_EXHAUSTED;
                *msg = "ttrpc: metadata too large";
                return -1;
        }
        return 0;
}

static int server_request(struct ttrpc_session *s, uint32_t sid, uint8_t flags, const uint8_t *data,
                          size_t len, uint64_t now_us)
{
        if ((sid & 1) == 0)
                return reply_error(s, sid, FERRY_CODE_INVALID_ARGUMENT,
                                   "StreamID must be odd for client initiated streams");
        if (sid <= s->last_sid)
                return queue_response(s, sid, FERRY_CODE_INVALID_ARGUMENT,
                                      "StreamID cannot be re-used and must increment", NULL);
        s->last_sid = sid;
        if (s->n_streams >= s->limits.max_streams)
                return queue_response(s, sid, FERRY_CODE_RESOURCE_EXHAUSTED,
                                      "ttrpc: too many concurrent streams", NULL);

        Ttrpc__Request *req = ttrpc__request__unpack(NULL, len, data);
        if (!req)
                return queue_response(s, sid, FERRY_CODE_INVALID_ARGUMENT,
                                      "unmarshal request error", NULL);
        enum ferry_code code;
        const char *msg;
        if (check_request(s, req, &code, &msg) < 0) {
                ttrpc__request__free_unpacked(req, NULL);
                return queue_response(s, sid, code, msg, NULL);
        }
        struct stream *st = stream_add(s, sid, deadline_from(req->timeout_nano, now_us));
        if (!st) {
                ttrpc__request__free_unpacked(req, NULL);
                return -ENOMEM; /* cannot happen: checked above */
        }
        if (!s->cbs.on_request) {
                ttrpc__request__free_unpacked(req, NULL);
                return reply_error(s, sid, FERRY_CODE_UNIMPLEMENTED, "ttrpc: no services");
        }
        return s->cbs.on_request(s, sid, flags, req, s->userdata);
}

static int server_data(struct ttrpc_session *s, uint32_t sid, uint8_t flags, const uint8_t *data,
                       size_t len)
{
        struct stream *st = stream_find(s, sid);
        if (!st || st->remote_closed)
                return queue_response(s, sid, FERRY_CODE_INVALID_ARGUMENT,
                                      "StreamID is no longer active", NULL);
        if (flags & TTRPC_FLAG_NO_DATA)
                len = 0;
        if (flags & TTRPC_FLAG_REMOTE_CLOSED)
                st->remote_closed = 1;
        if (s->cbs.on_data) {
                int r = s->cbs.on_data(s, sid, flags, data, len, s->userdata);
                if (r < 0)
                        return r;
        }
        if ((flags & TTRPC_FLAG_REMOTE_CLOSED) && len > 0)
                return reply_error(s, sid, FERRY_CODE_INVALID_ARGUMENT,
                                   "data close message cannot include data");
        return 0;
}

static int client_response(struct ttrpc_session *s, uint32_t sid, const uint8_t *data, size_t len)
{
        struct stream *st = stream_find(s, sid);
        if (!st)
                return 0; /* a late reply to a stream we gave up on */
        Ttrpc__Response *resp = ttrpc__response__unpack(NULL, len, data);
        if (!resp) {
                end_stream(s, st, FERRY_CODE_INTERNAL, "ttrpc: malformed response");
                return 0;
        }
        stream_remove(s, st);
        int r = 0;
        if (s->cbs.on_response)
                r = s->cbs.on_response(s, sid, resp, s->userdata);
        ttrpc__response__free_unpacked(resp, NULL);
        return r;
}

static int client_data(struct ttrpc_session *s, uint32_t sid, uint8_t flags, const uint8_t *data,
                       size_t len)
{
        struct stream *st = stream_find(s, sid);
        if (!st)
                return 0;
        if (flags & TTRPC_FLAG_NO_DATA)
                len = 0;
        if (flags & TTRPC_FLAG_REMOTE_CLOSED)
                stream_remove(s, st);
        if (s->cbs.on_data)
                return s->cbs.on_data(s, sid, flags, data, len, s->userdata);
        return 0;
}

static int dispatch(struct ttrpc_session *s, const struct ttrpc_frame_header *h,
                    const uint8_t *data, size_t len, uint64_t now_us)
{
        if (s->role == TTRPC_ROLE_SERVER) {
                if (h->type == TTRPC_TYPE_REQUEST)
                        return server_request(s, h->stream_id, h->flags, data, len, now_us);
                if (h->type == TTRPC_TYPE_DATA)
                        return server_data(s, h->stream_id, h->flags, data, len);
                return 0; /* Responses from a client and unknown types: ignored (future compat) */
        }
        if (h->type == TTRPC_TYPE_RESPONSE)
                return client_response(s, h->stream_id, data, len);
        if (h->type == TTRPC_TYPE_DATA)
                return client_data(s, h->stream_id, h->flags, data, len);
        return 0;
}

static int oversized(struct ttrpc_session *s, const struct ttrpc_frame_header *h)
{
        char msg[128];
        ferry_bprintf(msg, sizeof(msg), "message length %u exceed maximum message size of %u",
                      h->length, s->limits.max_message);
        if (s->role == TTRPC_ROLE_SERVER)
                return reply_error(s, h->stream_id, FERRY_CODE_RESOURCE_EXHAUSTED, msg);
        struct stream *st = stream_find(s, h->stream_id);
        if (st)
                end_stream(s, st, FERRY_CODE_RESOURCE_EXHAUSTED, msg);
        return 0;
}

int ttrpc_session_recv(struct ttrpc_session *s, const uint8_t *data, size_t len, uint64_t now_us)
{
        if (!ttrpc_scanner_mid_frame(&s->scanner))
                s->frame_start_us = now_us;
        while (len > 0 || s->scanner.in_payload) {
                size_t used = 0, piece_len = 0;
                const uint8_t *piece = NULL;
                enum ttrpc_scan_event ev =
                    ttrpc_scanner_next(&s->scanner, data, len, &used, &piece, &piece_len);
                data += used;
                len -= used;
                const struct ttrpc_frame_header *h = &s->scanner.header;
                int r;

                switch (ev) {
                case TTRPC_SCAN_NEED_MORE:
                        return 0;
                case TTRPC_SCAN_HEADER:
                        s->frame_len = 0;
                        s->oversized = h->length > s->limits.max_message;
                        if (s->oversized || h->type < TTRPC_TYPE_REQUEST ||
                            h->type > TTRPC_TYPE_DATA)
                                s->mode = MODE_DISCARD;
                        else
                                s->mode = MODE_COLLECT;
                        break;
                case TTRPC_SCAN_PAYLOAD:
                        if (s->mode == MODE_DISCARD)
                                break;
                        if (s->frame_len == 0 && piece_len == h->length) {
                                /* the whole payload is in this read: dispatch it in place */
                                r = dispatch(s, h, piece, piece_len, now_us);
                                if (r < 0)
                                        return r;
                                s->mode = MODE_HEADER;
                                break;
                        }
                        if (s->frame_cap < h->length) {
                                uint8_t *f = realloc(s->frame, h->length);
                                if (!f)
                                        return -ENOMEM;
                                s->frame = f;
                                s->frame_cap = h->length;
                        }
                        memcpy(s->frame + s->frame_len, piece, piece_len);
                        s->frame_len += piece_len;
                        break;
                case TTRPC_SCAN_FRAME_END:
                        s->frame_start_us = now_us;
                        if (s->mode == MODE_COLLECT) {
                                r = dispatch(s, h, s->frame, s->frame_len, now_us);
                                if (r < 0)
                                        return r;
                        } else if (s->mode == MODE_DISCARD && s->oversized) {
                                r = oversized(s, h);
                                if (r < 0)
                                        return r;
                        }
                        s->mode = MODE_HEADER;
                        s->oversized = 0;
                        break;
                }
        }
        return 0;
}
