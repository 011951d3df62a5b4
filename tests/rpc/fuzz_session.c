/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the frame scanner, the server and client protocol cores and the Request
 * decoder, fed arbitrary bytes split at arbitrary points. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rpc/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_request(struct ttrpc_session *s, uint32_t sid, uint8_t flags, Ttrpc__Request *req,
                      void *ud)
{
        int r = 0;
        /* vary the server's reaction with the input so every answer path is exercised */
        switch (req->payload.len % 4) {
        case 0:
                r = ttrpc_session_respond(s, sid, FERRY_CODE_OK, NULL, NULL);
                break;
        case 1: {
                struct ttrpc_payload pl = {.data = req->payload.data, .len = req->payload.len};
                r = ttrpc_session_send_data(s, sid, &pl);
                if (r == 0)
                        r = ttrpc_session_close_send(s, sid);
                break;
        }
        case 2:
                r = ttrpc_session_respond(s, sid, FERRY_CODE_NOT_FOUND, req->method, NULL);
                break;
        default:
                break; /* left open: a deadline or the end of input ends it */
        }
        ttrpc__request__free_unpacked(req, NULL);
        return r == -ENOENT ? 0 : r;
}

static int on_data(struct ttrpc_session *s, uint32_t sid, uint8_t flags, const uint8_t *data,
                   size_t len, void *ud)
{
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < len; i++)
                sink ^= data[i];
        (void)sink;
        return 0;
}

static int on_response(struct ttrpc_session *s, uint32_t sid, const Ttrpc__Response *resp, void *ud)
{
        return 0;
}

static const struct ttrpc_session_callbacks cbs = {
    .on_request = on_request,
    .on_response = on_response,
    .on_data = on_data,
};

static void feed(struct ttrpc_session *s, const uint8_t *data, size_t size, unsigned seed)
{
        uint64_t now = 1;
        size_t off = 0;
        while (off < size) {
                seed = seed * 1103515245u + 12345u;
                size_t k = 1 + (seed >> 16) % 97;
                if (k > size - off)
                        k = size - off;
                if (ttrpc_session_recv(s, data + off, k, now) < 0)
                        return;
                off += k;
                now += 1000;
                if (ttrpc_session_expire(s, now, NULL) < 0)
                        return;
                if (ttrpc_session_output_len(s) > (64u << 10)) {
                        uint8_t *out;
                        size_t n;
                        if (ttrpc_session_take_output(s, &out, &n) == 0)
                                free(out);
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        unsigned seed = data[0];
        data++;
        size--;
        struct ttrpc_limits l = {.max_message = 64u << 10,
                                 .max_streams = 8,
                                 .max_metadata = 8,
                                 .max_metadata_bytes = 512,
                                 .max_output = 256u << 10,
                                 .frame_timeout_us = 50000};

        struct ttrpc_session *s;
        if (ttrpc_session_new(TTRPC_ROLE_SERVER, &l, &cbs, NULL, &s) == 0) {
                feed(s, data, size, seed);
                ttrpc_session_free(s);
        }

        struct ttrpc_session *c;
        if (ttrpc_session_new(TTRPC_ROLE_CLIENT, &l, &cbs, NULL, &c) == 0) {
                uint32_t sid;
                for (int i = 0; i < 4; i++)
                        (void)ttrpc_session_request(c, "svc", "M", NULL, i * 10000, NULL, 0,
                                                    (uint8_t)(i & 1), 0, &sid);
                feed(c, data, size, seed + 1);
                ttrpc_session_abort_all(c, FERRY_CODE_UNAVAILABLE, "end");
                ttrpc_session_free(c);
        }

        Ttrpc__Request *req = ttrpc__request__unpack(NULL, size, data);
        if (req)
                ttrpc__request__free_unpacked(req, NULL);
        return 0;
}
