/* SPDX-License-Identifier: MIT */
/* ferry's side of the interop check against containerd's Go ttrpc (tests/rpc/interop/):
 *   interop-peer serve      serves ferry.test.Echo, prints the socket path, runs until stdin
 *                           closes;
 *   interop-peer call PATH  drives the Go server at PATH with ferry's C client. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echo_service.h"
#include "util/util.h"

struct result {
        int done;
        enum ferry_code code;
        char msg[256];
        Ferry__Test__EchoResponse *resp;
};

static void on_done(enum ferry_code code, const char *message, ProtobufCMessage *resp, void *ud)
{
        struct result *r = ud;
        r->done = 1;
        r->code = code;
        ferry_strscpy(r->msg, message ? message : "", sizeof(r->msg));
        r->resp = (Ferry__Test__EchoResponse *)resp;
}

static int failures;

#define CHECK(cond, ...)                                                                           \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "interop-peer: FAIL: " __VA_ARGS__);                       \
                        fputc('\n', stderr);                                                       \
                        failures++;                                                                \
                }                                                                                  \
        } while (0)

static void call(uv_loop_t *loop, struct ttrpc_client *c, const char *text,
                 const struct ttrpc_call_opts *o, struct result *r)
{
        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.text = (char *)text;
        memset(r, 0, sizeof(*r));
        int e = ttrpc_client_call(c, "ferry.test.Echo", "Echo", &req.base,
                                  &ferry__test__echo_response__descriptor, o, on_done, r);
        CHECK(e == 0, "call %s: %s", text, strerror(-e));
        uint64_t end = ferry_now_us() + 10 * 1000 * 1000;
        while (e == 0 && !r->done && ferry_now_us() < end)
                uv_run(loop, UV_RUN_ONCE);
        CHECK(r->done, "call %s: no answer in 10 s", text);
}

static int run_call(const char *path)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct ttrpc_client *c;
        int e = ttrpc_client_connect(&loop, path, NULL, &c);
        if (e < 0) {
                fprintf(stderr, "interop-peer: connect %s: %s\n", path, strerror(-e));
                return 1;
        }
        struct result r;
        struct ttrpc_kv md[] = {{"x-test", "from-c"}};
        struct ttrpc_call_opts o = {.timeout_ns = 5000000000, .metadata = md, .n_metadata = 1};
        call(&loop, c, "hello from c", &o, &r);
        CHECK(r.code == FERRY_CODE_OK, "Echo: %s %s", ferry_code_name(r.code), r.msg);
        if (r.resp) {
                CHECK(strcmp(r.resp->text, "go:hello from c") == 0, "text %s", r.resp->text);
                CHECK(strcmp(r.resp->metadata, "from-c") == 0, "metadata %s", r.resp->metadata);
                CHECK(r.resp->deadline_left_ms > 0 && r.resp->deadline_left_ms <= 5000,
                      "deadline left %lld ms", (long long)r.resp->deadline_left_ms);
                protobuf_c_message_free_unpacked(&r.resp->base, NULL);
        }
        if (!failures)
                printf("interop-peer: ok: unary call, metadata and timeout reach the Go server\n");

        int before = failures;
        call(&loop, c, "fail:not now", NULL, &r);
        CHECK(r.code == FERRY_CODE_FAILED_PRECONDITION && strcmp(r.msg, "not now") == 0,
              "want FAILED_PRECONDITION \"not now\", got %s \"%s\"", ferry_code_name(r.code),
              r.msg);
        if (r.resp)
                protobuf_c_message_free_unpacked(&r.resp->base, NULL);

        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.text = "x";
        memset(&r, 0, sizeof(r));
        e = ttrpc_client_call(c, "ferry.test.Echo", "Unimpl", &req.base,
                              &ferry__test__echo_response__descriptor, NULL, on_done, &r);
        uint64_t end = ferry_now_us() + 10 * 1000 * 1000;
        while (e == 0 && !r.done && ferry_now_us() < end)
                uv_run(&loop, UV_RUN_ONCE);
        CHECK(e == 0 && r.code == FERRY_CODE_UNIMPLEMENTED, "Unimpl: want UNIMPLEMENTED, got %s",
              ferry_code_name(r.code));
        if (failures == before)
                printf("interop-peer: ok: Go's status codes and messages decode\n");

        ttrpc_client_close(c);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return failures ? 1 : 0;
}

static int run_serve(void)
{
        struct echo_server es;
        int e = echo_server_start(&es, NULL);
        if (e < 0) {
                fprintf(stderr, "interop-peer: server: %s\n", strerror(-e));
                return 1;
        }
        printf("%s\n", es.path);
        fflush(stdout);
        char buf[64];
        while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
                ;
        echo_server_stop(&es);
        return 0;
}

int main(int argc, char **argv)
{
        signal(SIGPIPE, SIG_IGN); /* a peer that goes away must not kill the test */
        if (argc == 2 && strcmp(argv[1], "serve") == 0)
                return run_serve();
        if (argc == 3 && strcmp(argv[1], "call") == 0)
                return run_call(argv[2]);
        fprintf(stderr, "usage: interop-peer serve | interop-peer call PATH\n");
        return 2;
}
