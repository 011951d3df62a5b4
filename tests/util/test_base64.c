/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/base64.h"
#include "util/util.h"

/* RFC 4648 §10 */
static const struct {
        const char *plain, *encoded;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_vectors(void **state)
{
        for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
                size_t n = strlen(vectors[i].plain);
                char enc[FERRY_BASE64_SIZE(8)];
                uint8_t dec[8];
                ferry_base64_encode((const uint8_t *)vectors[i].plain, n, enc);
                assert_string_equal(enc, vectors[i].encoded);
                assert_int_equal(strlen(enc) + 1, FERRY_BASE64_SIZE(n));
                assert_int_equal(ferry_base64_decode(vectors[i].encoded, dec, sizeof(dec)), n);
                assert_memory_equal(dec, vectors[i].plain, n);
        }
}

/* Every byte value and every tail length survive the round trip. */
static void test_round_trip(void **state)
{
        uint8_t src[256], dec[256];
        char enc[FERRY_BASE64_SIZE(256)];
        for (size_t i = 0; i < sizeof(src); i++)
                src[i] = (uint8_t)(255 - i);
        for (size_t n = 0; n <= sizeof(src); n++) {
                memset(dec, 0, sizeof(dec));
                ferry_base64_encode(src, n, enc);
                assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
                assert_int_equal(ferry_base64_decode(enc, dec, n), n);
                assert_memory_equal(dec, src, n);
        }
}

static void test_malformed(void **state)
{
        static const char *const bad[] = {
            "Zg=",      /* not a whole quantum */
            "Zm9vY",    /* likewise */
            "Zg=a",     /* data after padding */
            "Z===",     /* padding in the second place */
            "====",     /* only padding */
            "Zg==Zm9v", /* padding before the last quantum */
            "Zm9*",     /* not in the alphabet */
            "Zm9v\n",   /* no white space */
            "Zm-_",     /* the URL alphabet is not this one */
        };
        uint8_t dec[16];
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                assert_int_equal(ferry_base64_decode(bad[i], dec, sizeof(dec)), -EINVAL);
}

static void test_capacity(void **state)
{
        uint8_t dec[6];
        assert_int_equal(ferry_base64_decode("Zm9vYmFy", dec, 6), 6);
        assert_int_equal(ferry_base64_decode("Zm9vYmFy", dec, 5), -EINVAL);
        assert_int_equal(ferry_base64_decode("Zm9vYg==", dec, 4), 4);
        assert_int_equal(ferry_base64_decode("Zm9vYg==", dec, 3), -EINVAL);
        assert_int_equal(ferry_base64_decode("", dec, 0), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_vectors),
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_capacity),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
