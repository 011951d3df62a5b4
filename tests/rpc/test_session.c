/* SPDX-License-Identifier: MIT */
/* rpc/session: the protocol core without I/O. Golden frames both ways (encode -> exact bytes,
 * bytes -> decoded fields), then one test per limit and per protocol error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "echo_test.pb-c.h"
#include "golden.h"
#include "rpc/session.h"
#include "util/util.h"

struct rec {
        int n_req, n_resp, n_data, n_closed;
        uint32_t sid;
        uint8_t flags;
        Ttrpc__Request *req;
        int32_t code;
        char msg[256];
        uint8_t data[64];
        size_t data_len;
        int respond_now; /* server: answer each request inside the callback */
};

static int on_request(struct ttrpc_session *s, uint32_t sid, uint8_t flags, Ttrpc__Request *req,
                      void *ud)
{
        struct rec *r = ud;
        r->n_req++;
        r->sid = sid;
        r->flags = flags;
        if (r->req)
                ttrpc__request__free_unpacked(r->req, NULL);
        r->req = req;
        if (r->respond_now)
                return ttrpc_session_respond(s, sid, FERRY_CODE_OK, NULL, NULL);
        return 0;
}

static int on_response(struct ttrpc_session *s, uint32_t sid, const Ttrpc__Response *resp, void *ud)
{
        struct rec *r = ud;
        r->n_resp++;
        r->sid = sid;
        r->code = resp->status ? resp->status->code : 0;
        ferry_strscpy(r->msg, resp->status ? resp->status->message : "", sizeof(r->msg));
        r->data_len = resp->payload.len < sizeof(r->data) ? resp->payload.len : 0;
        if (r->data_len)
                memcpy(r->data, resp->payload.data, r->data_len);
        return 0;
}

static int on_data(struct ttrpc_session *s, uint32_t sid, uint8_t flags, const uint8_t *data,
                   size_t len, void *ud)
{
        struct rec *r = ud;
        r->n_data++;
        r->sid = sid;
        r->flags = flags;
        r->data_len = len < sizeof(r->data) ? len : 0;
        if (r->data_len)
                memcpy(r->data, data, r->data_len);
        return 0;
}

static void on_closed(struct ttrpc_session *s, uint32_t sid, enum ferry_code code, const char *msg,
                      void *ud)
{
        struct rec *r = ud;
        r->n_closed++;
        r->sid = sid;
        r->code = (int32_t)code;
        ferry_strscpy(r->msg, msg, sizeof(r->msg));
}

static const struct ttrpc_session_callbacks cbs = {
    .on_request = on_request,
    .on_response = on_response,
    .on_data = on_data,
    .on_stream_closed = on_closed,
};

static struct ttrpc_session *mk(enum ttrpc_role role, struct rec *r, const struct ttrpc_limits *l)
{
        struct ttrpc_session *s;
        assert_int_equal(ttrpc_session_new(role, l, &cbs, r, &s), 0);
        return s;
}

static void rec_done(struct rec *r)
{
        if (r->req)
                ttrpc__request__free_unpacked(r->req, NULL);
        r->req = NULL;
}

/* takes the output and compares it with expected */
static void expect_out(struct ttrpc_session *s, const uint8_t *exp, size_t len)
{
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(buf, exp, len);
        free(buf);
}

static void expect_no_out(struct ttrpc_session *s)
{
        assert_int_equal(ttrpc_session_output_len(s), 0);
}

static void feed(struct ttrpc_session *s, const uint8_t *b, size_t n)
{
        assert_int_equal(ttrpc_session_recv(s, b, n, 1000), 0);
}

static void test_unary_both_ways(void **state)
{
        struct rec cr = {0}, sr = {0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, NULL);
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);

        /* encode: client request -> golden bytes */
        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.text = "hi";
        struct ttrpc_payload pl = {.msg = &req.base};
        uint32_t sid;
        assert_int_equal(
            ttrpc_session_request(c, "ferry.test.Echo", "Echo", &pl, 0, NULL, 0, 0, 1000, &sid), 0);
        assert_int_equal(sid, 1);
        expect_out(c, gold_unary_request, sizeof(gold_unary_request));

        /* decode: golden bytes -> server request fields */
        feed(s, gold_unary_request, sizeof(gold_unary_request));
        assert_int_equal(sr.n_req, 1);
        assert_int_equal(sr.sid, 1);
        assert_int_equal(sr.flags, 0);
        assert_string_equal(sr.req->service, "ferry.test.Echo");
        assert_string_equal(sr.req->method, "Echo");
        assert_int_equal(sr.req->timeout_nano, 0);
        assert_int_equal(sr.req->n_metadata, 0);
        assert_int_equal(sr.req->payload.len, 4);
        assert_memory_equal(sr.req->payload.data, "\x0a\x02hi", 4);

        /* encode: server reply -> golden bytes (bytes payload and message payload alike) */
        Ferry__Test__EchoResponse resp = FERRY__TEST__ECHO_RESPONSE__INIT;
        resp.text = "hi";
        struct ttrpc_payload rp = {.msg = &resp.base};
        assert_int_equal(ttrpc_session_respond(s, 1, FERRY_CODE_OK, NULL, &rp), 0);
        expect_out(s, gold_unary_reply, sizeof(gold_unary_reply));
        assert_int_equal(ttrpc_session_n_streams(s), 0);

        /* decode: golden reply -> client response */
        feed(c, gold_unary_reply, sizeof(gold_unary_reply));
        assert_int_equal(cr.n_resp, 1);
        assert_int_equal(cr.sid, 1);
        assert_int_equal(cr.code, 0);
        assert_int_equal(cr.data_len, 4);
        assert_memory_equal(cr.data, "\x0a\x02hi", 4);
        assert_int_equal(ttrpc_session_n_streams(c), 0);

        rec_done(&sr);
        ttrpc_session_free(c);
        ttrpc_session_free(s);
}

static void test_metadata_timeout_both_ways(void **state)
{
        struct rec cr = {0}, sr = {0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, NULL);
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);
        const uint8_t payload[] = {0x0a, 0x02, 'h', 'i'};
        struct ttrpc_payload pl = {.data = payload, .len = sizeof(payload)};
        struct ttrpc_kv md[] = {{"containerd-namespace-ttrpc", "k8s.io"}};
        uint32_t sid;
        assert_int_equal(ttrpc_session_request(c, "ferry.test.Echo", "Echo", &pl, 1000000000, md, 1,
                                               0, 1000, &sid),
                         0);
        expect_out(c, gold_unary_request_md, sizeof(gold_unary_request_md));

        feed(s, gold_unary_request_md, sizeof(gold_unary_request_md));
        assert_int_equal(sr.n_req, 1);
        assert_int_equal(sr.req->timeout_nano, 1000000000);
        assert_int_equal(sr.req->n_metadata, 1);
        assert_string_equal(sr.req->metadata[0]->key, "containerd-namespace-ttrpc");
        assert_string_equal(sr.req->metadata[0]->value, "k8s.io");

        /* the deadline (1 s after t=1000us) is enforced by the server core with time injected */
        uint64_t next;
        assert_int_equal(ttrpc_session_expire(s, 2000, &next), 0);
        assert_int_equal(next, 1000 + 1000000);
        expect_no_out(s);
        assert_int_equal(ttrpc_session_expire(s, next, &next), 0);
        assert_int_equal(sr.n_closed, 1);
        assert_int_equal(sr.code, FERRY_CODE_DEADLINE_EXCEEDED);
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        feed(c, buf, n);
        free(buf);
        assert_int_equal(cr.n_resp, 1);
        assert_int_equal(cr.code, FERRY_CODE_DEADLINE_EXCEEDED);
        /* a handler answering after the deadline finds the stream gone */
        assert_int_equal(ttrpc_session_respond(s, 1, FERRY_CODE_OK, NULL, NULL), -ENOENT);
        expect_no_out(s);

        rec_done(&sr);
        ttrpc_session_free(c);
        ttrpc_session_free(s);
}

static void test_server_stream_both_ways(void **state)
{
        struct rec cr = {0}, sr = {0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, NULL);
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);
        uint32_t sid;
        /* burn sid 1 so the stream is sid 3 as in the golden vectors */
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, NULL, 0, 0, 0, &sid), 0);
        assert_int_equal(ttrpc_session_forget(c, sid), 0);
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(c, &buf, &n), 0);
        free(buf);

        Ferry__Test__CountRequest creq = FERRY__TEST__COUNT_REQUEST__INIT;
        creq.n = 2;
        struct ttrpc_payload pl = {.msg = &creq.base};
        assert_int_equal(ttrpc_session_request(c, "ferry.test.Echo", "Count", &pl, 0, NULL, 0,
                                               TTRPC_FLAG_REMOTE_CLOSED, 0, &sid),
                         0);
        assert_int_equal(sid, 3);
        expect_out(c, gold_stream_request, sizeof(gold_stream_request));

        feed(s, gold_stream_request, sizeof(gold_stream_request));
        assert_int_equal(sr.n_req, 1);
        assert_int_equal(sr.sid, 3);
        assert_int_equal(sr.flags, TTRPC_FLAG_REMOTE_CLOSED);
        assert_string_equal(sr.req->method, "Count");

        for (uint32_t i = 1; i <= 2; i++) {
                Ferry__Test__CountResponse m = FERRY__TEST__COUNT_RESPONSE__INIT;
                m.i = i;
                struct ttrpc_payload mp = {.msg = &m.base};
                assert_int_equal(ttrpc_session_send_data(s, 3, &mp), 0);
        }
        assert_int_equal(ttrpc_session_close_send(s, 3), 0);
        uint8_t
            exp[sizeof(gold_stream_data1) + sizeof(gold_stream_data2) + sizeof(gold_stream_close)];
        memcpy(exp, gold_stream_data1, sizeof(gold_stream_data1));
        memcpy(exp + sizeof(gold_stream_data1), gold_stream_data2, sizeof(gold_stream_data2));
        memcpy(exp + sizeof(gold_stream_data1) + sizeof(gold_stream_data2), gold_stream_close,
               sizeof(gold_stream_close));
        expect_out(s, exp, sizeof(exp));
        assert_int_equal(ttrpc_session_n_streams(s), 0);
        assert_int_equal(ttrpc_session_send_data(s, 3, NULL), -ENOENT);

        feed(c, gold_stream_data1, sizeof(gold_stream_data1));
        assert_int_equal(cr.n_data, 1);
        assert_int_equal(cr.flags, 0);
        assert_memory_equal(cr.data, "\x08\x01", 2);
        feed(c, gold_stream_data2, sizeof(gold_stream_data2));
        assert_int_equal(cr.n_data, 2);
        assert_memory_equal(cr.data, "\x08\x02", 2);
        assert_int_equal(ttrpc_session_n_streams(c), 1);
        feed(c, gold_stream_close, sizeof(gold_stream_close));
        assert_int_equal(cr.n_data, 3);
        assert_int_equal(cr.flags, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA);
        assert_int_equal(cr.data_len, 0);
        assert_int_equal(ttrpc_session_n_streams(c), 0);

        rec_done(&sr);
        ttrpc_session_free(c);
        ttrpc_session_free(s);
}

static void test_client_stream_framing(void **state)
{
        struct rec cr = {0}, sr = {0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, NULL);
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);
        uint32_t sid;
        assert_int_equal(ttrpc_session_request(c, "svc", "Up", NULL, 0, NULL, 0,
                                               TTRPC_FLAG_REMOTE_OPEN, 0, &sid),
                         0);
        const uint8_t msg[] = {0x08, 0x07};
        struct ttrpc_payload pl = {.data = msg, .len = 2};
        assert_int_equal(ttrpc_session_send_data(c, sid, &pl), 0);
        assert_int_equal(ttrpc_session_send_data(c, sid, NULL), 0); /* an empty message */
        assert_int_equal(ttrpc_session_close_send(c, sid), 0);
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(c, &buf, &n), 0);
        /* Request RO, Data, empty Data, Data RC|ND */
        static const uint8_t tail[] = {0, 0, 0, 2, 0, 0, 0, 1, 3, 0, 0x08, 0x07, 0, 0, 0, 0,
                                       0, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0,    0,    0, 1, 3, 5};
        assert_int_equal(buf[8], TTRPC_TYPE_REQUEST);
        assert_int_equal(buf[9], TTRPC_FLAG_REMOTE_OPEN);
        assert_memory_equal(buf + n - sizeof(tail), tail, sizeof(tail));
        /* byte at a time into the server */
        for (size_t i = 0; i < n; i++)
                feed(s, buf + i, 1);
        free(buf);
        assert_int_equal(sr.n_req, 1);
        assert_int_equal(sr.n_data, 3);
        assert_int_equal(sr.flags, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA);
        expect_no_out(s);
        /* more data after the client's close is a protocol error on that stream */
        static const uint8_t late[] = {0, 0, 0, 0, 0, 0, 0, 1, 3, 0};
        feed(s, late, sizeof(late));
        assert_int_not_equal(ttrpc_session_output_len(s), 0);
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        feed(c, buf, n);
        free(buf);
        assert_int_equal(cr.n_resp, 1);
        assert_int_equal(cr.code, FERRY_CODE_INVALID_ARGUMENT);
        assert_string_equal(cr.msg, "StreamID is no longer active");
        rec_done(&sr);
        ttrpc_session_free(c);
        ttrpc_session_free(s);
}

static void test_oversize_answered_and_connection_kept(void **state)
{
        struct rec sr = {.respond_now = 1};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);
        feed(s, gold_oversize_header, sizeof(gold_oversize_header));
        uint8_t *junk = calloc(1, TTRPC_MESSAGE_MAX + 1);
        /* the payload arrives in pieces and is discarded, never buffered */
        for (size_t off = 0; off < TTRPC_MESSAGE_MAX + 1; off += 65536) {
                size_t k =
                    TTRPC_MESSAGE_MAX + 1 - off < 65536 ? TTRPC_MESSAGE_MAX + 1 - off : 65536;
                feed(s, junk + off, k);
        }
        free(junk);
        expect_out(s, gold_oversize_reply, sizeof(gold_oversize_reply));
        assert_int_equal(sr.n_req, 0);
        /* the connection is in sync: a following request on a higher id is served */
        uint8_t req[sizeof(gold_unary_request)];
        memcpy(req, gold_unary_request, sizeof(req));
        req[7] = 7;
        feed(s, req, sizeof(req));
        assert_int_equal(sr.n_req, 1);
        assert_int_equal(sr.sid, 7);
        rec_done(&sr);
        ttrpc_session_free(s);
}

static void test_exactly_max_is_allowed(void **state)
{
        struct ttrpc_limits l = {.max_message = 64};
        struct rec sr = {.respond_now = 1};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, &l);
        /* Request body of exactly 64 bytes: service (2+30) method (2+30) */
        uint8_t f[TTRPC_HEADER_LEN + 64] = {0, 0, 0, 64, 0, 0, 0, 1, 1, 0};
        f[10] = 0x0a;
        f[11] = 30;
        memset(f + 12, 'a', 30);
        f[42] = 0x12;
        f[43] = 30;
        memset(f + 44, 'b', 30);
        feed(s, f, sizeof(f));
        assert_int_equal(sr.n_req, 1);
        rec_done(&sr);
        ttrpc_session_free(s);
}

static void test_even_stream_id_rejected(void **state)
{
        struct rec sr = {0};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);
        uint8_t req[sizeof(gold_unary_request)];
        memcpy(req, gold_unary_request, sizeof(req));
        req[7] = 2;
        feed(s, req, sizeof(req));
        assert_int_equal(sr.n_req, 0);
        expect_out(s, gold_even_sid_reply, sizeof(gold_even_sid_reply));
        /* and the connection lives on: id 1 is still usable */
        feed(s, gold_unary_request, sizeof(gold_unary_request));
        assert_int_equal(sr.n_req, 1);
        rec_done(&sr);
        ttrpc_session_free(s);
}

static void test_reused_stream_id_rejected(void **state)
{
        struct rec sr = {.respond_now = 1}, cr = {0};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, NULL);
        uint8_t req[sizeof(gold_unary_request)];
        memcpy(req, gold_unary_request, sizeof(req));
        req[7] = 5;
        feed(s, req, sizeof(req));
        assert_int_equal(sr.n_req, 1);
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        free(buf);
        req[7] = 5; /* reused */
        feed(s, req, sizeof(req));
        req[7] = 3; /* lower */
        feed(s, req, sizeof(req));
        assert_int_equal(sr.n_req, 1);
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        const char *m = "StreamID cannot be re-used and must increment";
        assert_int_equal(n, 2 * (TTRPC_HEADER_LEN + 2 + 2 + 2 + strlen(m)));
        assert_int_equal(buf[7], 5);
        assert_int_equal(buf[8], TTRPC_TYPE_RESPONSE);
        assert_memory_equal(buf + TTRPC_HEADER_LEN + 6, "StreamID cannot be re-used", 26);
        free(buf);
        rec_done(&sr);
        ttrpc_session_free(s);
        ttrpc_session_free(c);
}

static void test_garbage_request_envelope(void **state)
{
        struct rec sr = {0};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);
        /* field 1 claims 100 bytes of a 3-byte body */
        static const uint8_t f[] = {0, 0, 0, 3, 0, 0, 0, 1, 1, 0, 0x0a, 100, 'x'};
        feed(s, f, sizeof(f));
        assert_int_equal(sr.n_req, 0);
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        assert_int_equal(buf[8], TTRPC_TYPE_RESPONSE);
        assert_int_equal(buf[12], 0x08);
        assert_int_equal(buf[13], FERRY_CODE_INVALID_ARGUMENT);
        free(buf);
        /* unknown frame types are skipped for forward compatibility */
        static const uint8_t unk[] = {0, 0, 0, 2, 0, 0, 0, 3, 0x7f, 0, 1, 2};
        feed(s, unk, sizeof(unk));
        expect_no_out(s);
        rec_done(&sr);
        ttrpc_session_free(s);
}

static void test_close_with_data_rejected(void **state)
{
        struct rec sr = {0};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, NULL);
        uint8_t req[sizeof(gold_unary_request)];
        memcpy(req, gold_unary_request, sizeof(req));
        req[9] = TTRPC_FLAG_REMOTE_OPEN;
        feed(s, req, sizeof(req));
        static const uint8_t d[] = {0, 0, 0, 2, 0, 0, 0, 1, 3, TTRPC_FLAG_REMOTE_CLOSED, 8, 1};
        feed(s, d, sizeof(d));
        assert_int_equal(sr.n_data, 1);   /* delivered first, as containerd does */
        assert_int_equal(sr.n_closed, 1); /* then the stream fails */
        assert_int_equal(sr.code, FERRY_CODE_INVALID_ARGUMENT);
        assert_string_equal(sr.msg, "data close message cannot include data");
        assert_int_equal(ttrpc_session_n_streams(s), 0);
        rec_done(&sr);
        ttrpc_session_free(s);
}

static void test_limit_streams_per_connection(void **state)
{
        struct ttrpc_limits l = {.max_streams = 2};
        struct rec sr = {0};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, &l);
        uint8_t req[sizeof(gold_unary_request)];
        memcpy(req, gold_unary_request, sizeof(req));
        for (uint8_t sid = 1; sid <= 5; sid += 2) {
                req[7] = sid;
                feed(s, req, sizeof(req));
        }
        assert_int_equal(sr.n_req, 2);
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        assert_int_equal(buf[7], 5);
        assert_int_equal(buf[13], FERRY_CODE_RESOURCE_EXHAUSTED);
        free(buf);
        /* the client side refuses a third concurrent call locally */
        struct rec cr = {0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, &l);
        uint32_t sid;
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, NULL, 0, 0, 0, &sid), 0);
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, NULL, 0, 0, 0, &sid), 0);
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, NULL, 0, 0, 0, &sid), -EAGAIN);
        rec_done(&sr);
        ttrpc_session_free(s);
        ttrpc_session_free(c);
}

static void test_limit_metadata_count_and_size(void **state)
{
        struct ttrpc_limits l = {.max_metadata = 2, .max_metadata_bytes = 16};
        struct rec cr = {0}, sr = {0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, NULL);
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, &l);
        struct ttrpc_kv three[] = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
        struct ttrpc_kv big[] = {{"key", "a-value-longer-than-16"}};
        uint32_t sid;
        uint8_t *buf;
        size_t n;
        for (int i = 0; i < 2; i++) {
                assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, i ? big : three,
                                                       i ? 1 : 3, 0, 0, &sid),
                                 0);
                assert_int_equal(ttrpc_session_take_output(c, &buf, &n), 0);
                feed(s, buf, n);
                free(buf);
                assert_int_equal(sr.n_req, 0);
                assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
                assert_int_equal(buf[13], FERRY_CODE_RESOURCE_EXHAUSTED);
                free(buf);
        }
        /* the sender's own limit refuses before anything is queued */
        struct ttrpc_session *c2 = mk(TTRPC_ROLE_CLIENT, &cr, &l);
        assert_int_equal(ttrpc_session_request(c2, "a", "b", NULL, 0, three, 3, 0, 0, &sid),
                         -E2BIG);
        assert_int_equal(ttrpc_session_request(c2, "a", "b", NULL, 0, big, 1, 0, 0, &sid), -E2BIG);
        expect_no_out(c2);
        ttrpc_session_free(c2);
        ttrpc_session_free(c);
        ttrpc_session_free(s);
}

static void test_limit_name_length(void **state)
{
        struct ttrpc_limits l = {.max_name = 8};
        struct rec cr = {0}, sr = {0};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, &l);
        feed(s, gold_unary_request, sizeof(gold_unary_request)); /* "ferry.test.Echo" > 8 */
        assert_int_equal(sr.n_req, 0);
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        assert_int_equal(buf[13], FERRY_CODE_INVALID_ARGUMENT);
        free(buf);
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, &l);
        uint32_t sid;
        assert_int_equal(
            ttrpc_session_request(c, "ferry.test.Echo", "b", NULL, 0, NULL, 0, 0, 0, &sid),
            -EINVAL);
        ttrpc_session_free(c);
        ttrpc_session_free(s);
}

static void test_limit_outgoing_message(void **state)
{
        struct ttrpc_limits l = {.max_message = 100};
        struct rec cr = {0}, sr = {.respond_now = 0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, &l);
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, &l);
        uint8_t big[128] = {0};
        struct ttrpc_payload pl = {.data = big, .len = sizeof(big)};
        uint32_t sid;
        assert_int_equal(ttrpc_session_request(c, "a", "b", &pl, 0, NULL, 0, 0, 0, &sid),
                         -EMSGSIZE);
        expect_no_out(c);
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, NULL, 0, 0, 0, &sid), 0);
        uint8_t *buf;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(c, &buf, &n), 0);
        feed(s, buf, n);
        free(buf);
        /* an oversized reply becomes RESOURCE_EXHAUSTED instead of a dropped connection */
        assert_int_equal(ttrpc_session_respond(s, sid, FERRY_CODE_OK, NULL, &pl), 0);
        assert_int_equal(ttrpc_session_take_output(s, &buf, &n), 0);
        feed(c, buf, n);
        free(buf);
        assert_int_equal(cr.n_resp, 1);
        assert_int_equal(cr.code, FERRY_CODE_RESOURCE_EXHAUSTED);
        rec_done(&sr);
        ttrpc_session_free(c);
        ttrpc_session_free(s);
}

static void test_client_oversized_reply_fails_only_that_stream(void **state)
{
        struct ttrpc_limits l = {.max_message = 16};
        struct rec cr = {0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, &l);
        uint32_t s1, s2;
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, NULL, 0, 0, 0, &s1), 0);
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, NULL, 0, 0, 0, &s2), 0);
        uint8_t f[TTRPC_HEADER_LEN + 20] = {0, 0, 0, 20, 0, 0, 0, 1, 2, 0};
        feed(c, f, sizeof(f));
        assert_int_equal(cr.n_closed, 1);
        assert_int_equal(cr.sid, 1);
        assert_int_equal(cr.code, FERRY_CODE_RESOURCE_EXHAUSTED);
        assert_int_equal(ttrpc_session_n_streams(c), 1);
        feed(c, gold_unary_reply, sizeof(gold_unary_reply)); /* sid 1: gone, dropped */
        assert_int_equal(cr.n_resp, 0);
        static const uint8_t ok3[] = {0, 0, 0, 2, 0, 0, 0, 3, 2, 0, 0x0a, 0x00};
        feed(c, ok3, sizeof(ok3));
        assert_int_equal(cr.n_resp, 1);
        assert_int_equal(cr.code, 0);
        ttrpc_session_free(c);
}

static void test_limit_stall_mid_frame(void **state)
{
        struct ttrpc_limits l = {.frame_timeout_us = 500};
        struct rec sr = {0};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, &l);
        uint64_t next;
        assert_int_equal(ttrpc_session_expire(s, 100000, &next), 0);
        assert_int_equal(next, 0); /* idle between frames: no timer */
        assert_int_equal(ttrpc_session_recv(s, gold_unary_request, 12, 1000), 0);
        assert_int_equal(ttrpc_session_next_timeout(s), 1500);
        assert_int_equal(ttrpc_session_expire(s, 1200, &next), 0);
        assert_int_equal(next, 1500);
        assert_int_equal(ttrpc_session_expire(s, 1500, &next), -ETIMEDOUT);
        ttrpc_session_free(s);
}

static void test_limit_output_queue(void **state)
{
        /* a client that sends requests and never reads: the queue is bounded */
        struct ttrpc_limits l = {.max_message = 128, .max_output = 256};
        struct rec sr = {.respond_now = 1};
        struct ttrpc_session *s = mk(TTRPC_ROLE_SERVER, &sr, &l);
        uint8_t req[sizeof(gold_unary_request)];
        memcpy(req, gold_unary_request, sizeof(req));
        int r = 0;
        for (uint32_t sid = 1; sid < 200 && r == 0; sid += 2) {
                req[7] = (uint8_t)sid;
                r = ttrpc_session_recv(s, req, sizeof(req), 0);
        }
        assert_int_equal(r, -ENOBUFS);
        assert_true(ttrpc_session_output_len(s) <= 256 + 128 + TTRPC_HEADER_LEN + 64);
        rec_done(&sr);
        ttrpc_session_free(s);
}

static void test_client_deadline_and_abort(void **state)
{
        struct rec cr = {0};
        struct ttrpc_session *c = mk(TTRPC_ROLE_CLIENT, &cr, NULL);
        uint32_t sid;
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 5000, NULL, 0, 0, 100, &sid), 0);
        assert_int_equal(ttrpc_session_request(c, "a", "b", NULL, 0, NULL, 0, 0, 100, &sid), 0);
        uint64_t next;
        assert_int_equal(ttrpc_session_next_timeout(c), 105);
        assert_int_equal(ttrpc_session_expire(c, 104, &next), 0);
        assert_int_equal(next, 105);
        assert_int_equal(ttrpc_session_expire(c, 105, &next), 0);
        assert_int_equal(cr.n_closed, 1);
        assert_int_equal(cr.code, FERRY_CODE_DEADLINE_EXCEEDED);
        ttrpc_session_abort_all(c, FERRY_CODE_UNAVAILABLE, "gone");
        assert_int_equal(cr.n_closed, 2);
        assert_int_equal(cr.sid, 3);
        assert_int_equal(cr.code, FERRY_CODE_UNAVAILABLE);
        assert_int_equal(ttrpc_session_n_streams(c), 0);
        ttrpc_session_free(c);
}

/* ---- allocation failures: every allocation of a full exchange fails once, in turn ---- */

#if defined(__SANITIZE_ADDRESS__)
#define ALLOC_INJECTION 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALLOC_INJECTION 0
#endif
#endif
#ifndef ALLOC_INJECTION
#define ALLOC_INJECTION 1
#endif

#if ALLOC_INJECTION
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static int alloc_countdown = -1; /* -1: never fail */
static int alloc_failed;
static long alloc_live; /* blocks allocated minus blocks freed while counting */
static int alloc_counting;

static int alloc_should_fail(void)
{
        if (alloc_countdown < 0)
                return 0;
        if (alloc_countdown-- == 0) {
                alloc_failed = 1;
                return 1;
        }
        return 0;
}

void *malloc(size_t n)
{
        void *p = alloc_should_fail() ? NULL : __libc_malloc(n);
        if (p && alloc_counting)
                alloc_live++;
        return p;
}

void *calloc(size_t n, size_t m)
{
        void *p = alloc_should_fail() ? NULL : __libc_calloc(n, m);
        if (p && alloc_counting)
                alloc_live++;
        return p;
}

void *realloc(void *p, size_t n)
{
        void *q = alloc_should_fail() ? NULL : __libc_realloc(p, n);
        if (q && !p && alloc_counting)
                alloc_live++;
        return q;
}

void free(void *p)
{
        if (p && alloc_counting)
                alloc_live--;
        __libc_free(p);
}

/* a unary exchange through both cores; returns 0 when it completed */
static int exchange(void)
{
        struct rec cr = {0}, sr = {.respond_now = 1};
        struct ttrpc_session *c = NULL, *s = NULL;
        uint8_t *buf = NULL;
        size_t n;
        int r = ttrpc_session_new(TTRPC_ROLE_CLIENT, NULL, &cbs, &cr, &c);
        if (r == 0)
                r = ttrpc_session_new(TTRPC_ROLE_SERVER, NULL, &cbs, &sr, &s);
        uint32_t sid;
        struct ttrpc_kv md[] = {{"k", "v"}};
        if (r == 0)
                r = ttrpc_session_request(c, "ferry.test.Echo", "Echo", NULL, 1000, md, 1, 0, 0,
                                          &sid);
        if (r == 0)
                r = ttrpc_session_take_output(c, &buf, &n);
        /* split so the server must assemble the payload in its own buffer */
        if (r == 0)
                r = ttrpc_session_recv(s, buf, n / 2, 0);
        if (r == 0)
                r = ttrpc_session_recv(s, buf + n / 2, n - n / 2, 0);
        free(buf);
        buf = NULL;
        if (r == 0 && ttrpc_session_output_len(s) == 0)
                r = -EIO; /* the request was lost: only acceptable after a failure */
        if (r == 0)
                r = ttrpc_session_take_output(s, &buf, &n);
        if (r == 0)
                r = ttrpc_session_recv(c, buf, n, 0);
        free(buf);
        if (r == 0 && cr.n_resp + cr.n_closed != 1)
                r = -EIO;
        rec_done(&sr);
        ttrpc_session_free(c);
        ttrpc_session_free(s);
        return r;
}

static void test_alloc_failures(void **state)
{
        /* under valgrind these wrappers are bypassed: probe before trusting them */
        void *(*volatile probe_alloc)(size_t) = malloc;
        alloc_live = 0;
        alloc_counting = 1;
        void *probe = probe_alloc(1);
        int ours = alloc_live == 1;
        alloc_counting = 0;
        free(probe);
        if (!ours)
                skip();
        int points = 0;
        for (int i = 0; i < 1000; i++) {
                alloc_failed = 0;
                alloc_live = 0;
                alloc_counting = 1;
                alloc_countdown = i;
                int r = exchange();
                alloc_countdown = -1;
                alloc_counting = 0;
                assert_int_equal(alloc_live, 0); /* every error path freed what it took */
                if (!alloc_failed) {
                        assert_int_equal(r, 0);
                        break;
                }
                points++;
        }
        /* the exchange allocates in several places, and each failure was survived */
        assert_true(points >= 5);
}
#else
static void test_alloc_failures(void **state)
{
        skip(); /* the sanitizer owns malloc */
}
#endif

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_unary_both_ways),
            cmocka_unit_test(test_metadata_timeout_both_ways),
            cmocka_unit_test(test_server_stream_both_ways),
            cmocka_unit_test(test_client_stream_framing),
            cmocka_unit_test(test_oversize_answered_and_connection_kept),
            cmocka_unit_test(test_exactly_max_is_allowed),
            cmocka_unit_test(test_even_stream_id_rejected),
            cmocka_unit_test(test_reused_stream_id_rejected),
            cmocka_unit_test(test_garbage_request_envelope),
            cmocka_unit_test(test_close_with_data_rejected),
            cmocka_unit_test(test_limit_streams_per_connection),
            cmocka_unit_test(test_limit_metadata_count_and_size),
            cmocka_unit_test(test_limit_name_length),
            cmocka_unit_test(test_limit_outgoing_message),
            cmocka_unit_test(test_client_oversized_reply_fails_only_that_stream),
            cmocka_unit_test(test_limit_stall_mid_frame),
            cmocka_unit_test(test_limit_output_queue),
            cmocka_unit_test(test_client_deadline_and_abort),
            cmocka_unit_test(test_alloc_failures),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
