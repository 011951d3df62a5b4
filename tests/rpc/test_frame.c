/* SPDX-License-Identifier: MIT */
/* rpc/frame: header codec and the ragel scanner against golden frames and every split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "golden.h"
#include "rpc/frame.h"

struct golden {
        const uint8_t *bytes;
        size_t len;
        struct ttrpc_frame_header hdr;
};

#define G(a, l, s, t, f)                                                                           \
        {                                                                                          \
                a, sizeof(a),                                                                      \
                {                                                                                  \
                        l, s, t, f                                                                 \
                }                                                                                  \
        }
static const struct golden goldens[] = {
    G(gold_unary_request, 0x1d, 1, TTRPC_TYPE_REQUEST, 0),
    G(gold_unary_request_md, 0x49, 1, TTRPC_TYPE_REQUEST, 0),
    G(gold_unary_reply, 8, 1, TTRPC_TYPE_RESPONSE, 0),
    G(gold_stream_request, 0x1c, 3, TTRPC_TYPE_REQUEST, TTRPC_FLAG_REMOTE_CLOSED),
    G(gold_stream_data1, 2, 3, TTRPC_TYPE_DATA, 0),
    G(gold_stream_data2, 2, 3, TTRPC_TYPE_DATA, 0),
    G(gold_stream_close, 0, 3, TTRPC_TYPE_DATA, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA),
    G(gold_oversize_reply, 0x43, 5, TTRPC_TYPE_RESPONSE, 0),
    G(gold_even_sid_reply, 0x37, 2, TTRPC_TYPE_RESPONSE, 0),
    G(gold_unimplemented_reply, 0x16, 1, TTRPC_TYPE_RESPONSE, 0),
};

static void test_header_both_ways(void **state)
{
        for (size_t i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++) {
                const struct golden *g = &goldens[i];
                struct ttrpc_frame_header h;
                ttrpc_header_decode(g->bytes, &h);
                assert_int_equal(h.length, g->hdr.length);
                assert_int_equal(h.length + TTRPC_HEADER_LEN, g->len);
                assert_int_equal(h.stream_id, g->hdr.stream_id);
                assert_int_equal(h.type, g->hdr.type);
                assert_int_equal(h.flags, g->hdr.flags);
                uint8_t out[TTRPC_HEADER_LEN];
                ttrpc_header_encode(&g->hdr, out);
                assert_memory_equal(out, g->bytes, TTRPC_HEADER_LEN);
        }
        struct ttrpc_frame_header h;
        ttrpc_header_decode(gold_oversize_header, &h);
        assert_int_equal(h.length, TTRPC_MESSAGE_MAX + 1);
        assert_int_equal(h.stream_id, 5);
}

/* all goldens back to back */
static uint8_t *stream_bytes(size_t *ret_len)
{
        size_t n = 0;
        for (size_t i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++)
                n += goldens[i].len;
        uint8_t *b = malloc(n), *p = b;
        for (size_t i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++) {
                memcpy(p, goldens[i].bytes, goldens[i].len);
                p += goldens[i].len;
        }
        *ret_len = n;
        return b;
}

struct collector {
        size_t frame; /* index of the golden expected next */
        uint8_t payload[256];
        size_t payload_len;
};

static void collect(struct ttrpc_scanner *sc, struct collector *col, const uint8_t *p, size_t n)
{
        for (;;) {
                size_t used = 0, plen = 0;
                const uint8_t *piece = NULL;
                enum ttrpc_scan_event ev = ttrpc_scanner_next(sc, p, n, &used, &piece, &plen);
                assert_true(used <= n);
                p += used;
                n -= used;
                const struct golden *g = &goldens[col->frame];
                switch (ev) {
                case TTRPC_SCAN_NEED_MORE:
                        assert_int_equal(n, 0);
                        return;
                case TTRPC_SCAN_HEADER:
                        assert_int_equal(sc->header.length, g->hdr.length);
                        assert_int_equal(sc->header.stream_id, g->hdr.stream_id);
                        assert_int_equal(sc->header.type, g->hdr.type);
                        assert_int_equal(sc->header.flags, g->hdr.flags);
                        col->payload_len = 0;
                        break;
                case TTRPC_SCAN_PAYLOAD:
                        assert_true(col->payload_len + plen <= sizeof(col->payload));
                        memcpy(col->payload + col->payload_len, piece, plen);
                        col->payload_len += plen;
                        break;
                case TTRPC_SCAN_FRAME_END:
                        assert_int_equal(col->payload_len, g->hdr.length);
                        assert_memory_equal(col->payload, g->bytes + TTRPC_HEADER_LEN,
                                            col->payload_len);
                        col->frame++;
                        break;
                }
        }
}

static void test_scanner_byte_at_a_time(void **state)
{
        size_t n;
        uint8_t *b = stream_bytes(&n);
        struct ttrpc_scanner sc;
        ttrpc_scanner_init(&sc);
        struct collector col = {0};
        for (size_t i = 0; i < n; i++) {
                collect(&sc, &col, b + i, 1);
        }
        collect(&sc, &col, (const uint8_t *)"",
                0); /* the last zero-length frame ends without more bytes */
        assert_int_equal(col.frame, sizeof(goldens) / sizeof(goldens[0]));
        assert_false(ttrpc_scanner_mid_frame(&sc));
        free(b);
}

static void test_scanner_random_splits(void **state)
{
        size_t n;
        uint8_t *b = stream_bytes(&n);
        srand(42);
        for (int round = 0; round < 2000; round++) {
                struct ttrpc_scanner sc;
                ttrpc_scanner_init(&sc);
                struct collector col = {0};
                size_t off = 0;
                while (off < n) {
                        size_t k = 1 + (size_t)rand() % 40;
                        if (k > n - off)
                                k = n - off;
                        collect(&sc, &col, b + off, k);
                        off += k;
                }
                collect(&sc, &col, (const uint8_t *)"", 0);
                assert_int_equal(col.frame, sizeof(goldens) / sizeof(goldens[0]));
        }
        free(b);
}

static void test_scanner_mid_frame_and_oversize(void **state)
{
        struct ttrpc_scanner sc;
        ttrpc_scanner_init(&sc);
        assert_false(ttrpc_scanner_mid_frame(&sc));
        size_t used, plen;
        const uint8_t *piece;
        assert_int_equal(ttrpc_scanner_next(&sc, gold_oversize_header, 3, &used, &piece, &plen),
                         TTRPC_SCAN_NEED_MORE);
        assert_int_equal(used, 3);
        assert_true(ttrpc_scanner_mid_frame(&sc));
        assert_int_equal(ttrpc_scanner_next(&sc, gold_oversize_header + 3, 7, &used, &piece, &plen),
                         TTRPC_SCAN_HEADER);
        assert_int_equal(used, 7);
        /* the scanner reports an oversized payload like any other: the session discards it */
        assert_int_equal(sc.header.length, TTRPC_MESSAGE_MAX + 1);
        static uint8_t zeros[4096];
        size_t left = TTRPC_MESSAGE_MAX + 1;
        while (left) {
                size_t k = left < sizeof(zeros) ? left : sizeof(zeros);
                assert_int_equal(ttrpc_scanner_next(&sc, zeros, k, &used, &piece, &plen),
                                 TTRPC_SCAN_PAYLOAD);
                assert_int_equal(used, k);
                left -= k;
        }
        assert_true(ttrpc_scanner_mid_frame(&sc));
        assert_int_equal(ttrpc_scanner_next(&sc, NULL, 0, &used, &piece, &plen),
                         TTRPC_SCAN_FRAME_END);
        assert_false(ttrpc_scanner_mid_frame(&sc));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_header_both_ways),
            cmocka_unit_test(test_scanner_byte_at_a_time),
            cmocka_unit_test(test_scanner_random_splits),
            cmocka_unit_test(test_scanner_mid_frame_and_oversize),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
