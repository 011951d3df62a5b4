/* SPDX-License-Identifier: MIT */
/* Tests of the page hash the transfer checksums with (hcs_hash64_bulk): the vector and
 * portable paths agree on every size and alignment, the value is pinned (both ends of a
 * transfer must compute the same function), the corruptions a transfer can suffer — a
 * flipped bit, reordered stripes or words, a page at the wrong index — change it, and a
 * destination refuses, at the handshake, a verifying source that does not say it uses it. */
/* helpers.h serves the sim tests; this file uses only part of it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "helpers.h"
#pragma GCC diagnostic pop

#define PAGE 4096

static void fill(unsigned char *p, size_t n, uint64_t x)
{
        for (size_t i = 0; i < n; i++) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                p[i] = (unsigned char)(x >> 56);
        }
}

static void test_paths_agree(void **state)
{
        static unsigned char buf[3 * PAGE + 64];
        fill(buf, sizeof(buf), 1);
        for (size_t align = 0; align < 8; align += 3)
                for (size_t n = 0; n <= 3 * PAGE; n += n < 256 ? 1 : 61)
                        assert_true(hcs_hash64_bulk(buf + align, n, n * 7 + align) ==
                                    hcs_hash64_bulk_portable(buf + align, n, n * 7 + align));
}

static void test_known_value(void **state)
{
        static unsigned char page[PAGE];
        fill(page, sizeof(page), 42);
        /* Pinned: the checksum on the wire depends on it. Changing the function needs a new
         * handshake flag in sim_xfer.c (as XFER_FLAG_BULK was added), not just a new value. */
        assert_true(hcs_hash64_bulk(page, PAGE, 7) == 0x94a0f80ef19c3fa2ULL);
        memset(page, 0, sizeof(page));
        assert_true(hcs_hash64_bulk(page, PAGE, 0) != 0);
}

static void test_detects_corruption(void **state)
{
        static unsigned char page[PAGE], copy[PAGE];
        fill(page, sizeof(page), 3);
        uint64_t h = hcs_hash64_bulk(page, PAGE, 11);
        /* Every bit of the first and last stripe, and every 97th bit elsewhere. */
        for (size_t bit = 0; bit < PAGE * 8; bit += (bit < 512 || bit >= PAGE * 8 - 512) ? 1 : 97) {
                memcpy(copy, page, PAGE);
                copy[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                assert_true(hcs_hash64_bulk(copy, PAGE, 11) != h);
        }
        /* Two 64-byte stripes swapped, in one 1 KiB block and across blocks. */
        static const size_t pairs[][2] = {{0, 1}, {3, 15}, {0, 16}, {20, 63}};
        for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
                memcpy(copy, page, PAGE);
                memcpy(copy + pairs[i][0] * 64, page + pairs[i][1] * 64, 64);
                memcpy(copy + pairs[i][1] * 64, page + pairs[i][0] * 64, 64);
                assert_true(hcs_hash64_bulk(copy, PAGE, 11) != h);
        }
        /* Two 8-byte words of one stripe swapped (lanes i and i ^ 1 share an accumulator). */
        memcpy(copy, page, PAGE);
        memcpy(copy, page + 8, 8);
        memcpy(copy + 8, page, 8);
        assert_true(hcs_hash64_bulk(copy, PAGE, 11) != h);
        /* The same page at another index (the seed is the page number). */
        assert_true(hcs_hash64_bulk(page, PAGE, 12) != h);
        /* Zero pages at different indexes differ too. */
        memset(copy, 0, PAGE);
        assert_true(hcs_hash64_bulk(copy, PAGE, 1) != hcs_hash64_bulk(copy, PAGE, 2));
}

/* Sends a HELLO with flags to a fresh destination; returns the status it replies with. */
static int32_t hello_status(uint16_t flags)
{
        struct notes nd = {0};
        struct result rd = {0};
        int peer;
        struct hcs_system *dst = peer_destination(&nd, &rd, &peer);
        int32_t status = send_hello(dst, peer, flags);
        close(peer); /* a refused destination has failed already; an accepted one fails now */
        run_until(&rd.done, 5000);
        assert_true(rd.r < 0);
        close_system(dst);
        return status;
}

static void test_handshake_names_the_hash(void **state)
{
        assert_int_equal(hello_status(0), 0);       /* not verifying: any hash */
        assert_int_equal(hello_status(1 | 2), 0);   /* verifying with hcs_hash64_bulk */
        assert_int_equal(hello_status(1), -EINVAL); /* verifying with the old page hash */
        assert_int_equal(hello_status(4), -EINVAL); /* unknown flag */
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_paths_agree),
            cmocka_unit_test(test_known_value),
            cmocka_unit_test(test_detects_corruption),
            LOOP_TEST(test_handshake_names_the_hash),
        };
        return cmocka_run_group_tests_name("hash", tests, NULL, NULL);
}
