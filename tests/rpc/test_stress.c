/* SPDX-License-Identifier: MIT */
/* Many concurrent clients over one loopback unix socket: 64 clients x 200 calls each, every
 * fourth client also running server streams, all on one client loop against one server loop. */
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "echo_service.h"
#include "util/util.h"

#define N_CLIENTS 64
#define N_CALLS   200

struct worker {
        struct ttrpc_client *c;
        unsigned sent, ok, failed, msgs;
        int streams;
        Ferry__Test__EchoRequest req;
        char text[32];
};

static unsigned finished;

static void next_call(struct worker *w);

static void on_done(enum ferry_code code, const char *message, ProtobufCMessage *resp, void *ud)
{
        struct worker *w = ud;
        if (code == FERRY_CODE_OK)
                w->ok++;
        else
                w->failed++;
        if (resp) {
                Ferry__Test__EchoResponse *r = (Ferry__Test__EchoResponse *)resp;
                if (strcmp(r->text, w->text) != 0)
                        w->failed++;
                protobuf_c_message_free_unpacked(resp, NULL);
        }
        next_call(w);
}

static void on_msg(ProtobufCMessage *m, void *ud)
{
        struct worker *w = ud;
        w->msgs++;
        protobuf_c_message_free_unpacked(m, NULL);
}

static void next_call(struct worker *w)
{
        if (w->sent == N_CALLS) {
                finished++;
                return;
        }
        w->sent++;
        int r;
        if (w->streams && w->sent % 10 == 0) {
                Ferry__Test__CountRequest cr = FERRY__TEST__COUNT_REQUEST__INIT;
                cr.n = 3;
                r = ttrpc_client_stream(w->c, "ferry.test.Echo", "Count", &cr.base,
                                        &ferry__test__count_response__descriptor, NULL, on_msg,
                                        on_done, w);
        } else {
                ferry_bprintf(w->text, sizeof(w->text), "w%p-%u", (void *)w, w->sent);
                w->req.text = w->text;
                r = ttrpc_client_call(w->c, "ferry.test.Echo", "Echo", &w->req.base,
                                      &ferry__test__echo_response__descriptor, NULL, on_done, w);
        }
        if (r < 0) {
                w->failed++;
                finished++;
        }
}

static void test_many_clients(void **state)
{
        struct echo_server es;
        assert_int_equal(echo_server_start(&es, NULL), 0);
        uv_loop_t loop;
        uv_loop_init(&loop);
        static struct worker ws[N_CLIENTS];
        for (int i = 0; i < N_CLIENTS; i++) {
                Ferry__Test__EchoRequest init = FERRY__TEST__ECHO_REQUEST__INIT;
                ws[i].req = init;
                ws[i].streams = i % 4 == 0;
                assert_int_equal(ttrpc_client_connect(&loop, es.path, NULL, &ws[i].c), 0);
        }
        uint64_t t0 = ferry_now_us();
        for (int i = 0; i < N_CLIENTS; i++)
                next_call(&ws[i]);
        uint64_t end = t0 + 60ull * 1000 * 1000;
        while (finished < N_CLIENTS && ferry_now_us() < end)
                uv_run(&loop, UV_RUN_ONCE);
        uint64_t dt = ferry_now_us() - t0;
        unsigned ok = 0, failed = 0, msgs = 0;
        for (int i = 0; i < N_CLIENTS; i++) {
                ok += ws[i].ok;
                failed += ws[i].failed;
                msgs += ws[i].msgs;
                ttrpc_client_close(ws[i].c);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&loop), 0);
        echo_server_stop(&es);
        printf("# %u calls ok, %u failed, %u stream messages in %.2f s (%.0f calls/s)\n", ok,
               failed, msgs, dt / 1e6, ok / (dt / 1e6));
        assert_int_equal(finished, N_CLIENTS);
        assert_int_equal(failed, 0);
        assert_int_equal(ok, N_CLIENTS * N_CALLS);
        assert_int_equal(msgs, (N_CLIENTS / 4) * (N_CALLS / 10) * 3);
        assert_int_equal(es.calls, N_CLIENTS * N_CALLS);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN); /* a peer that goes away must not kill the test */
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_many_clients),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
