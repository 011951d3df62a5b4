/* SPDX-License-Identifier: MIT */
/* rpc/ttrpc: the libuv server and client over real unix sockets, plus raw-socket peers that
 * misbehave (garbage, stalls, disconnects, bad stream ids, oversized frames). */
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "echo_service.h"
#include "golden.h"
#include "rpc/frame.h"
#include "util/util.h"

#include "../common/uvrun.h"

static struct echo_server es;

struct result {
        bool done;
        enum ferry_code code;
        char msg[256];
        Ferry__Test__EchoResponse *resp;
        unsigned n_msgs;
        uint32_t last_i;
};

static void on_done(enum ferry_code code, const char *message, ProtobufCMessage *resp, void *ud)
{
        struct result *r = ud;
        r->done = true;
        r->code = code;
        ferry_strscpy(r->msg, message ? message : "", sizeof(r->msg));
        r->resp = (Ferry__Test__EchoResponse *)resp;
}

static void on_msg(ProtobufCMessage *m, void *ud)
{
        struct result *r = ud;
        r->n_msgs++;
        r->last_i = ((Ferry__Test__CountResponse *)m)->i;
        protobuf_c_message_free_unpacked(m, NULL);
}

static void result_clear(struct result *r)
{
        if (r->resp)
                protobuf_c_message_free_unpacked(&r->resp->base, NULL);
        memset(r, 0, sizeof(*r));
}

static void run_until(uv_loop_t *loop, const bool *flag)
{
        assert_true(uvrun_until(loop, flag, 10000));
}

static int setup(void **state)
{
        struct ttrpc_server_options o = {.limits = {.frame_timeout_us = 300 * 1000},
                                         .max_connections = 16};
        return echo_server_start(&es, &o);
}

static int teardown(void **state)
{
        echo_server_stop(&es);
        return 0;
}

static struct ttrpc_client *connect_client(uv_loop_t *loop)
{
        struct ttrpc_client *c;
        assert_int_equal(ttrpc_client_connect(loop, es.path, NULL, &c), 0);
        return c;
}

static void close_client(uv_loop_t *loop, struct ttrpc_client *c)
{
        ttrpc_client_close(c);
        uv_run(loop, UV_RUN_DEFAULT);
}

static void echo(struct ttrpc_client *c, uv_loop_t *loop, const char *text,
                 const struct ttrpc_call_opts *o, struct result *r)
{
        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.text = (char *)text;
        assert_int_equal(ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                           &ferry__test__echo_response__descriptor, o, on_done, r),
                         0);
        run_until(loop, &r->done);
}

static void test_unary(void **state)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        struct result r = {0};
        struct ttrpc_kv md[] = {{"x-test", "v1"}};
        struct ttrpc_call_opts o = {.timeout_ns = 5000000000, .metadata = md, .n_metadata = 1};
        echo(c, &loop, "hello", &o, &r);
        assert_int_equal(r.code, FERRY_CODE_OK);
        assert_non_null(r.resp);
        assert_string_equal(r.resp->text, "hello");
        assert_string_equal(r.resp->metadata, "v1");
        assert_true(r.resp->deadline_left_ms > 4000 && r.resp->deadline_left_ms <= 5000);
        result_clear(&r);
        /* many in flight on one connection, answered asynchronously */
        struct result rs[20] = {0};
        for (int i = 0; i < 20; i++) {
                Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
                req.text = "x";
                req.delay_ms = (uint32_t)(20 - i);
                assert_int_equal(ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                                   &ferry__test__echo_response__descriptor, NULL,
                                                   on_done, &rs[i]),
                                 0);
        }
        for (int i = 0; i < 20; i++) {
                run_until(&loop, &rs[i].done);
                assert_int_equal(rs[i].code, FERRY_CODE_OK);
                result_clear(&rs[i]);
        }
        close_client(&loop, c);
        uv_loop_close(&loop);
}

static void test_server_stream(void **state)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        for (int interval = 0; interval <= 2; interval += 2) {
                struct result r = {0};
                Ferry__Test__CountRequest req = FERRY__TEST__COUNT_REQUEST__INIT;
                req.n = 5;
                req.interval_ms = (uint32_t)interval;
                assert_int_equal(ttrpc_client_stream(c, "ferry.test.Echo", "Count", &req.base,
                                                     &ferry__test__count_response__descriptor, NULL,
                                                     on_msg, on_done, &r),
                                 0);
                run_until(&loop, &r.done);
                assert_int_equal(r.code, FERRY_CODE_OK);
                assert_int_equal(r.n_msgs, 5);
                assert_int_equal(r.last_i, 5);
        }
        /* a stream that fails ends with a Response carrying the status */
        struct result r = {0};
        Ferry__Test__CountRequest req = FERRY__TEST__COUNT_REQUEST__INIT;
        req.n = 2;
        req.fail = 1;
        assert_int_equal(ttrpc_client_stream(c, "ferry.test.Echo", "Count", &req.base,
                                             &ferry__test__count_response__descriptor, NULL, on_msg,
                                             on_done, &r),
                         0);
        run_until(&loop, &r.done);
        assert_int_equal(r.n_msgs, 2);
        assert_int_equal(r.code, FERRY_CODE_FAILED_PRECONDITION); /* -EBUSY via the table */
        assert_string_equal(r.msg, "count failed");
        close_client(&loop, c);
        uv_loop_close(&loop);
}

static void test_unimplemented(void **state)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        const char *calls[][2] = {
            {"nope.Svc", "Echo"}, {"ferry.test.Echo", "Nope"}, {"ferry.test.Echo", "Unimpl"}};
        const char *msgs[] = {"service nope.Svc", "method Nope", "method Unimpl"};
        for (int i = 0; i < 3; i++) {
                struct result r = {0};
                Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
                assert_int_equal(ttrpc_client_call(c, calls[i][0], calls[i][1], &req.base,
                                                   &ferry__test__echo_response__descriptor, NULL,
                                                   on_done, &r),
                                 0);
                run_until(&loop, &r.done);
                assert_int_equal(r.code, FERRY_CODE_UNIMPLEMENTED);
                assert_string_equal(r.msg, msgs[i]);
        }
        close_client(&loop, c);
        uv_loop_close(&loop);
}

static void test_deadline(void **state)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        struct result r = {0};
        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.delay_ms = 2000;
        struct ttrpc_call_opts o = {.timeout_ns = 50 * 1000 * 1000};
        uint64_t t0 = ferry_now_us();
        assert_int_equal(ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                           &ferry__test__echo_response__descriptor, &o, on_done,
                                           &r),
                         0);
        run_until(&loop, &r.done);
        assert_int_equal(r.code, FERRY_CODE_DEADLINE_EXCEEDED);
        assert_true(ferry_now_us() - t0 < 1000 * 1000);
        /* the connection still serves */
        result_clear(&r);
        echo(c, &loop, "after", NULL, &r);
        assert_int_equal(r.code, FERRY_CODE_OK);
        result_clear(&r);
        close_client(&loop, c);
        uv_loop_close(&loop);
}

static void test_oversize_then_connection_works(void **state)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        /* a reply over 4 MiB: the server answers RESOURCE_EXHAUSTED instead */
        struct result r = {0};
        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.reply_bytes = TTRPC_MESSAGE_MAX + 1;
        assert_int_equal(ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                           &ferry__test__echo_response__descriptor, NULL, on_done,
                                           &r),
                         0);
        run_until(&loop, &r.done);
        assert_int_equal(r.code, FERRY_CODE_RESOURCE_EXHAUSTED);
        result_clear(&r);
        /* a reply just under the limit arrives whole */
        req.reply_bytes = TTRPC_MESSAGE_MAX - 64;
        assert_int_equal(ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                           &ferry__test__echo_response__descriptor, NULL, on_done,
                                           &r),
                         0);
        run_until(&loop, &r.done);
        assert_int_equal(r.code, FERRY_CODE_OK);
        assert_int_equal(r.resp->blob.len, TTRPC_MESSAGE_MAX - 64);
        result_clear(&r);
        close_client(&loop, c);
        uv_loop_close(&loop);

        /* an oversized request frame from a raw peer: answered, connection kept */
        int fd = echo_connect_raw(es.path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, gold_oversize_header, sizeof(gold_oversize_header)),
                         sizeof(gold_oversize_header));
        uint8_t *junk = calloc(1, TTRPC_MESSAGE_MAX + 1);
        size_t off = 0;
        while (off < TTRPC_MESSAGE_MAX + 1) {
                ssize_t n = write(fd, junk + off, TTRPC_MESSAGE_MAX + 1 - off);
                assert_true(n > 0);
                off += (size_t)n;
        }
        free(junk);
        uint8_t buf[256];
        size_t got = 0;
        while (got < sizeof(gold_oversize_reply)) {
                ssize_t n = read(fd, buf + got, sizeof(buf) - got);
                assert_true(n > 0);
                got += (size_t)n;
        }
        assert_int_equal(got, sizeof(gold_oversize_reply));
        assert_memory_equal(buf, gold_oversize_reply, sizeof(gold_oversize_reply));
        /* then a normal request on sid 7 */
        uint8_t req2[sizeof(gold_unary_request)];
        memcpy(req2, gold_unary_request, sizeof(req2));
        req2[7] = 7;
        assert_int_equal(write(fd, req2, sizeof(req2)), sizeof(req2));
        ssize_t n = read(fd, buf, sizeof(buf));
        assert_true(n >= (ssize_t)TTRPC_HEADER_LEN);
        assert_int_equal(buf[7], 7);
        assert_int_equal(buf[8], TTRPC_TYPE_RESPONSE);
        assert_int_equal(buf[10], 0x0a);
        assert_int_equal(buf[11], 0x00); /* OK */
        close(fd);
}

/* reads one frame from a blocking fd with a deadline; returns payload length or -1 */
static int read_frame(int fd, struct ttrpc_frame_header *h, uint8_t *payload, size_t cap,
                      int timeout_ms)
{
        uint8_t hb[TTRPC_HEADER_LEN];
        size_t got = 0;
        while (got < TTRPC_HEADER_LEN) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, timeout_ms) <= 0)
                        return -1;
                ssize_t n = read(fd, hb + got, TTRPC_HEADER_LEN - got);
                if (n <= 0)
                        return -1;
                got += (size_t)n;
        }
        ttrpc_header_decode(hb, h);
        if (h->length > cap)
                return -1;
        got = 0;
        while (got < h->length) {
                ssize_t n = read(fd, payload + got, h->length - got);
                if (n <= 0)
                        return -1;
                got += (size_t)n;
        }
        return (int)h->length;
}

static void test_client_stream(void **state)
{
        /* the libuv client has no client-stream call yet: drive the server with the core */
        struct ttrpc_session *c;
        assert_int_equal(ttrpc_session_new(TTRPC_ROLE_CLIENT, NULL, NULL, NULL, &c), 0);
        uint32_t sid;
        assert_int_equal(ttrpc_session_request(c, "ferry.test.Echo", "Sum", NULL, 0, NULL, 0,
                                               TTRPC_FLAG_REMOTE_OPEN, 0, &sid),
                         0);
        for (uint32_t i = 1; i <= 3; i++) {
                Ferry__Test__CountResponse m = FERRY__TEST__COUNT_RESPONSE__INIT;
                m.i = i;
                struct ttrpc_payload pl = {.msg = &m.base};
                assert_int_equal(ttrpc_session_send_data(c, sid, &pl), 0);
        }
        assert_int_equal(ttrpc_session_close_send(c, sid), 0);
        uint8_t *out;
        size_t n;
        assert_int_equal(ttrpc_session_take_output(c, &out, &n), 0);
        int fd = echo_connect_raw(es.path);
        assert_true(fd >= 0);
        /* one byte at a time: the server reassembles across reads */
        for (size_t i = 0; i < n; i++)
                assert_int_equal(write(fd, out + i, 1), 1);
        free(out);
        ttrpc_session_free(c);
        struct ttrpc_frame_header h;
        uint8_t p[256];
        int len = read_frame(fd, &h, p, sizeof(p), 5000);
        assert_true(len > 0);
        assert_int_equal(h.type, TTRPC_TYPE_RESPONSE);
        assert_int_equal(h.stream_id, sid);
        Ttrpc__Response *resp = ttrpc__response__unpack(NULL, (size_t)len, p);
        assert_non_null(resp);
        assert_int_equal(resp->status ? resp->status->code : 0, 0);
        Ferry__Test__CountResponse *sum =
            ferry__test__count_response__unpack(NULL, resp->payload.len, resp->payload.data);
        assert_non_null(sum);
        assert_int_equal(sum->i, 6);
        ferry__test__count_response__free_unpacked(sum, NULL);
        ttrpc__response__free_unpacked(resp, NULL);
        close(fd);
}

/* hangs up on the server and waits until it has closed its end (so its connection count is
 * down again) */
static void hang_up(int fd)
{
        shutdown(fd, SHUT_WR);
        uint8_t b[4096];
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 5000) <= 0)
                        break;
                if (read(fd, b, sizeof(b)) <= 0)
                        break;
        }
        close(fd);
}

static void test_client_and_bidi_streams_libuv(void **state)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        /* client stream: three messages, one answer */
        struct result r = {0};
        uint32_t sid;
        assert_int_equal(ttrpc_client_open(c, "ferry.test.Echo", "Sum", NULL,
                                           &ferry__test__count_response__descriptor, NULL, NULL,
                                           on_done, &r, &sid),
                         0);
        for (uint32_t i = 1; i <= 3; i++) {
                Ferry__Test__CountResponse m = FERRY__TEST__COUNT_RESPONSE__INIT;
                m.i = i * 10;
                assert_int_equal(ttrpc_client_send(c, sid, &m.base), 0);
        }
        assert_int_equal(ttrpc_client_close_send(c, sid), 0);
        run_until(&loop, &r.done);
        assert_int_equal(r.code, FERRY_CODE_OK);
        assert_int_equal(((Ferry__Test__CountResponse *)r.resp)->i, 60);
        result_clear(&r);
        /* bidirectional: a first message in the envelope, two more, answers for each */
        Ferry__Test__CountResponse first = FERRY__TEST__COUNT_RESPONSE__INIT;
        first.i = 1;
        assert_int_equal(ttrpc_client_open(c, "ferry.test.Echo", "Twice", &first.base,
                                           &ferry__test__count_response__descriptor, NULL, on_msg,
                                           on_done, &r, &sid),
                         0);
        for (uint32_t i = 2; i <= 3; i++) {
                Ferry__Test__CountResponse m = FERRY__TEST__COUNT_RESPONSE__INIT;
                m.i = i;
                assert_int_equal(ttrpc_client_send(c, sid, &m.base), 0);
        }
        assert_int_equal(ttrpc_client_close_send(c, sid), 0);
        run_until(&loop, &r.done);
        assert_int_equal(r.code, FERRY_CODE_OK);
        assert_int_equal(r.n_msgs, 3);
        assert_int_equal(r.last_i, 6);
        assert_int_equal(ttrpc_client_send(c, sid, &first.base), -ENOENT);
        close_client(&loop, c);
        uv_loop_close(&loop);
}

static void test_bad_stream_ids(void **state)
{
        int fd = echo_connect_raw(es.path);
        assert_true(fd >= 0);
        uint8_t req[sizeof(gold_unary_request)];
        memcpy(req, gold_unary_request, sizeof(req));
        req[7] = 2; /* even */
        assert_int_equal(write(fd, req, sizeof(req)), sizeof(req));
        struct ttrpc_frame_header h;
        uint8_t p[512];
        assert_int_equal(read_frame(fd, &h, p, sizeof(p), 5000),
                         sizeof(gold_even_sid_reply) - TTRPC_HEADER_LEN);
        assert_memory_equal(p, gold_even_sid_reply + TTRPC_HEADER_LEN, h.length);
        assert_int_equal(h.stream_id, 2);
        req[7] = 9;
        assert_int_equal(write(fd, req, sizeof(req)), sizeof(req));
        assert_true(read_frame(fd, &h, p, sizeof(p), 5000) > 0);
        assert_int_equal(h.stream_id, 9);
        assert_int_equal(p[1], 0x00); /* OK: empty status... */
        req[7] = 9;                   /* reused */
        assert_int_equal(write(fd, req, sizeof(req)), sizeof(req));
        assert_true(read_frame(fd, &h, p, sizeof(p), 5000) > 0);
        assert_int_equal(h.stream_id, 9);
        assert_int_equal(p[3], FERRY_CODE_INVALID_ARGUMENT);
        req[7] = 11; /* still alive */
        assert_int_equal(write(fd, req, sizeof(req)), sizeof(req));
        assert_true(read_frame(fd, &h, p, sizeof(p), 5000) > 0);
        assert_int_equal(h.stream_id, 11);
        assert_int_equal(p[1], 0x00);
        close(fd);
}

static void test_garbage_input(void **state)
{
        /* undecodable envelope: INVALID_ARGUMENT on that stream */
        int fd = echo_connect_raw(es.path);
        static const uint8_t bad[] = {0, 0, 0, 3, 0, 0, 0, 1, 1, 0, 0x0a, 100, 'x'};
        assert_int_equal(write(fd, bad, sizeof(bad)), sizeof(bad));
        struct ttrpc_frame_header h;
        uint8_t p[512];
        assert_true(read_frame(fd, &h, p, sizeof(p), 5000) > 0);
        assert_int_equal(p[3], FERRY_CODE_INVALID_ARGUMENT);
        close(fd);
        /* random bytes: whatever they mean, the server survives and serves others */
        srand(7);
        for (int round = 0; round < 20; round++) {
                fd = echo_connect_raw(es.path);
                assert_true(fd >= 0);
                uint8_t junk[4096];
                for (size_t i = 0; i < sizeof(junk); i++)
                        junk[i] = (uint8_t)rand();
                if (round % 2)
                        junk[0] = 0; /* plausible lengths */
                (void)!write(fd, junk, sizeof(junk));
                hang_up(fd); /* the server allows 16 connections: wait for it to let go */
        }
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        struct result r = {0};
        echo(c, &loop, "still here", NULL, &r);
        assert_int_equal(r.code, FERRY_CODE_OK);
        result_clear(&r);
        close_client(&loop, c);
        uv_loop_close(&loop);
}

static void test_stall_mid_frame(void **state)
{
        /* a peer that stops inside a frame does not hold up another client, and is cut off
         * after the frame timeout (300 ms in this server) */
        int fd = echo_connect_raw(es.path);
        assert_int_equal(write(fd, gold_unary_request, 15), 15);
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        struct result r = {0};
        echo(c, &loop, "other", NULL, &r);
        assert_int_equal(r.code, FERRY_CODE_OK);
        result_clear(&r);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        uint8_t b[16];
        assert_int_equal(read(fd, b, sizeof(b)), 0); /* EOF: the server closed it */
        close(fd);
        close_client(&loop, c);
        uv_loop_close(&loop);
}

static void test_disconnect_mid_call(void **state)
{
        unsigned cancels = __atomic_load_n(&es.cancels, __ATOMIC_RELAXED);
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c = connect_client(&loop);
        struct result r = {0}, r2 = {0};
        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.delay_ms = 200;
        assert_int_equal(ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                           &ferry__test__echo_response__descriptor, NULL, on_done,
                                           &r),
                         0);
        Ferry__Test__CountRequest creq = FERRY__TEST__COUNT_REQUEST__INIT;
        creq.n = 1000;
        creq.interval_ms = 5;
        assert_int_equal(ttrpc_client_stream(c, "ferry.test.Echo", "Count", &creq.base,
                                             &ferry__test__count_response__descriptor, NULL, on_msg,
                                             on_done, &r2),
                         0);
        for (int i = 0; i < 5; i++)
                uv_run(&loop, UV_RUN_NOWAIT);
        usleep(20 * 1000);
        ttrpc_client_close(c); /* pending calls end locally with UNAVAILABLE */
        assert_true(r.done);
        assert_int_equal(r.code, FERRY_CODE_UNAVAILABLE);
        assert_true(r2.done);
        assert_int_equal(r2.code, FERRY_CODE_UNAVAILABLE);
        uv_run(&loop, UV_RUN_DEFAULT);
        /* the server cancels both calls when it sees the hang-up */
        for (int i = 0; i < 500 && __atomic_load_n(&es.cancels, __ATOMIC_RELAXED) < cancels + 2;
             i++)
                usleep(10 * 1000);
        assert_true(__atomic_load_n(&es.cancels, __ATOMIC_RELAXED) >= cancels + 2);
        /* the server is fine */
        c = connect_client(&loop);
        struct result r3 = {0};
        echo(c, &loop, "alive", NULL, &r3);
        assert_int_equal(r3.code, FERRY_CODE_OK);
        result_clear(&r3);
        close_client(&loop, c);
        uv_loop_close(&loop);

        /* raw: half a request then hang up */
        int fd = echo_connect_raw(es.path);
        assert_int_equal(write(fd, gold_unary_request, 20), 20);
        close(fd);
}

static void test_server_closes_connection(void **state)
{
        /* the server going away fails pending calls with UNAVAILABLE */
        struct echo_server es2;
        assert_int_equal(echo_server_start(&es2, NULL), 0);
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c;
        assert_int_equal(ttrpc_client_connect(&loop, es2.path, NULL, &c), 0);
        struct result r = {0};
        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.delay_ms = 5000;
        assert_int_equal(ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                           &ferry__test__echo_response__descriptor, NULL, on_done,
                                           &r),
                         0);
        for (int i = 0; i < 5; i++)
                uv_run(&loop, UV_RUN_NOWAIT);
        echo_server_stop(&es2);
        run_until(&loop, &r.done);
        assert_int_equal(r.code, FERRY_CODE_UNAVAILABLE);
        assert_int_equal(ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                           &ferry__test__echo_response__descriptor, NULL, on_done,
                                           &r),
                         -ENOTCONN);
        close_client(&loop, c);
        uv_loop_close(&loop);
        assert_int_equal(ttrpc_client_connect(&loop, es2.path, NULL, &c), -ENOENT);
}

static void test_limit_connections(void **state)
{
        /* this server allows 16 connections; the 17th is closed at once */
        int fds[17];
        for (int i = 0; i < 17; i++) {
                fds[i] = echo_connect_raw(es.path);
                assert_true(fds[i] >= 0);
        }
        struct pollfd pf = {.fd = fds[16], .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        uint8_t b[4];
        assert_int_equal(read(fds[16], b, sizeof(b)), 0);
        /* the first ones still work */
        assert_int_equal(write(fds[0], gold_unary_request, sizeof(gold_unary_request)),
                         sizeof(gold_unary_request));
        struct ttrpc_frame_header h;
        uint8_t p[256];
        assert_true(read_frame(fds[0], &h, p, sizeof(p), 5000) > 0);
        for (int i = 0; i < 17; i++)
                hang_up(fds[i]);
}

static void test_listen_errors(void **state)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_server *srv;
        assert_int_equal(ttrpc_server_new(&loop, NULL, &srv), 0);
        static const struct ttrpc_method m4[5];
        assert_int_equal(ttrpc_server_register(srv, &ferry__test__echo__descriptor, m4, 3, NULL),
                         -EINVAL);
        assert_int_equal(ttrpc_server_register(srv, &ferry__test__echo__descriptor, m4, 5, NULL),
                         0);
        assert_int_equal(ttrpc_server_register(srv, &ferry__test__echo__descriptor, m4, 5, NULL),
                         -EEXIST);
        assert_int_equal(ttrpc_server_listen(srv, es.path), -EADDRINUSE);
        char longp[200];
        memset(longp, 'a', sizeof(longp) - 1);
        longp[sizeof(longp) - 1] = 0;
        assert_int_equal(ttrpc_server_listen(srv, longp), -ENAMETOOLONG);
        ttrpc_server_close(srv);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN); /* a peer that goes away must not kill the test */
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_unary),
            cmocka_unit_test(test_server_stream),
            cmocka_unit_test(test_unimplemented),
            cmocka_unit_test(test_deadline),
            cmocka_unit_test(test_oversize_then_connection_works),
            cmocka_unit_test(test_client_stream),
            cmocka_unit_test(test_client_and_bidi_streams_libuv),
            cmocka_unit_test(test_bad_stream_ids),
            cmocka_unit_test(test_garbage_input),
            cmocka_unit_test(test_stall_mid_frame),
            cmocka_unit_test(test_disconnect_mid_call),
            cmocka_unit_test(test_server_closes_connection),
            cmocka_unit_test(test_limit_connections),
            cmocka_unit_test(test_listen_errors),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
