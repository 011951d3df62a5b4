/* SPDX-License-Identifier: MIT */
#include "hcs/hash.h"

#include <stdatomic.h>
#include <string.h>

#define K1 0x9e3779b185ebca87ULL
#define K2 0xc2b2ae3d27d4eb4fULL
#define K3 0x165667b19e3779f9ULL

static inline uint64_t rotl(uint64_t x, int r)
{
        return (x << r) | (x >> (64 - r));
}

static inline uint64_t lane(uint64_t acc, uint64_t w)
{
        acc += w * K2;
        acc = rotl(acc, 31);
        return acc * K1;
}

static inline uint64_t load64(const unsigned char *p)
{
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return v;
}

uint64_t hcs_hash64(const void *data, size_t size, uint64_t seed)
{
        const unsigned char *p = data;
        const unsigned char *end = p + size;
        uint64_t a = seed + K1 + K2, b = seed + K2, c = seed, d = seed - K1;

        while (end - p >= 32) {
                a = lane(a, load64(p));
                b = lane(b, load64(p + 8));
                c = lane(c, load64(p + 16));
                d = lane(d, load64(p + 24));
                p += 32;
        }
        uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18);
        h = (h ^ lane(0, a)) * K1 + K3;
        h = (h ^ lane(0, b)) * K1 + K3;
        h = (h ^ lane(0, c)) * K1 + K3;
        h = (h ^ lane(0, d)) * K1 + K3;
        h += (uint64_t)size;
        while (end - p >= 8) {
                h ^= lane(0, load64(p));
                h = rotl(h, 27) * K1 + K3;
                p += 8;
        }
        while (p < end) {
                h ^= (uint64_t)(*p++) * 0x27d4eb2f165667c5ULL;
                h = rotl(h, 11) * K1;
        }
        h ^= h >> 33;
        h *= K2;
        h ^= h >> 29;
        h *= K3;
        h ^= h >> 32;
        return h;
}

/* ---- hcs_hash64_bulk ------------------------------------------------------------------------
 * State: acc[8]. Per 64-byte stripe s of a 1 KiB block, lane i (word w = data[i]):
 *   k = w ^ key[s + i];  acc[i ^ 1] += w;  acc[i] += (k & 0xffffffff) * (k >> 32)
 * After each full block: acc[i] = (acc[i] ^ (acc[i] >> 47) ^ key[16 + i]) * P32.
 * The multiply is 32x32->64 so one vector instruction does four (AVX2) lanes; the cross-lane
 * add keeps each word in the state even when its product is zero. */

#define BULK_STRIPE 64
#define BULK_BLOCK  1024 /* 16 stripes */
#define BULK_P32    0x9e3779b1u

/* 24 keys: stripe s uses key[s..s+7] (s < 16); key[16..23] scramble. Fixed odd-ish mixes of
 * the constants above (any fixed values work; these are just not zero). */
static const uint64_t bulk_key[24] = {
    0xbe4ba423396cfeb8ULL, 0x1cad21f72c81017cULL, 0xdb979083e96dd4deULL, 0x1f67b3b7a4a44072ULL,
    0x78e5c0cc4ee679cbULL, 0x2172ffcc7dd05a82ULL, 0x8e2443f7744608b8ULL, 0x4c263a81e69035e0ULL,
    0xcb00c391bb52283cULL, 0xa32e531b8b65d088ULL, 0x4ef90da297486471ULL, 0xd8acdea946ef1938ULL,
    0x3f349ce33f76faa8ULL, 0x1d4f0bc7c7bbdcf9ULL, 0x3159b4cd4be0518aULL, 0x647378d9c97e9fc8ULL,
    0xc3ebd33483acc5eaULL, 0xeb6313faffa081c5ULL, 0x49daf0b751dd0d17ULL, 0x9e68d429265516d3ULL,
    0xfca1477d58be162bULL, 0xce31d07ad1b8f88fULL, 0x280416958f3acb45ULL, 0x7e404bbbcafbd7afULL,
};

static void bulk_block_c(uint64_t acc[8], const unsigned char *p, size_t nstripes)
{
        for (size_t s = 0; s < nstripes; s++) {
                for (int i = 0; i < 8; i++) {
                        uint64_t w = load64(p + s * BULK_STRIPE + 8 * i);
                        uint64_t k = w ^ bulk_key[s + i];
                        acc[i ^ 1] += w;
                        acc[i] += (k & 0xffffffffu) * (k >> 32);
                }
        }
}

static void bulk_scramble(uint64_t acc[8])
{
        for (int i = 0; i < 8; i++)
                acc[i] = (acc[i] ^ (acc[i] >> 47) ^ bulk_key[16 + i]) * BULK_P32;
}

/* Returns the size consumed (whole stripes) and leaves the state in acc. */
static size_t bulk_loop_c(uint64_t acc[8], const unsigned char *p, size_t size)
{
        size_t off = 0;
        for (; size - off >= BULK_BLOCK; off += BULK_BLOCK) {
                bulk_block_c(acc, p + off, BULK_BLOCK / BULK_STRIPE);
                bulk_scramble(acc);
        }
        size_t tail = (size - off) / BULK_STRIPE;
        bulk_block_c(acc, p + off, tail);
        return off + tail * BULK_STRIPE;
}

typedef size_t (*bulk_loop_fn)(uint64_t *acc, const unsigned char *p, size_t size);

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static inline __m256i
bulk_stripe_avx2(__m256i acc, const unsigned char *p, const uint64_t *key)
{
        __m256i w = _mm256_loadu_si256((const __m256i *)p);
        __m256i k = _mm256_xor_si256(w, _mm256_loadu_si256((const __m256i *)key));
        __m256i prod = _mm256_mul_epu32(k, _mm256_srli_epi64(k, 32));
        /* acc[i ^ 1] += w: swap the 64-bit words of each 128-bit half. */
        acc = _mm256_add_epi64(acc, _mm256_shuffle_epi32(w, _MM_SHUFFLE(1, 0, 3, 2)));
        return _mm256_add_epi64(acc, prod);
}

__attribute__((target("avx2"))) static size_t bulk_loop_avx2(uint64_t acc[8],
                                                             const unsigned char *p, size_t size)
{
        __m256i a0 = _mm256_loadu_si256((const __m256i *)acc);
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(acc + 4));
        size_t off = 0;
        for (; size - off >= BULK_BLOCK; off += BULK_BLOCK) {
                for (size_t s = 0; s < BULK_BLOCK / BULK_STRIPE; s++) {
                        const unsigned char *q = p + off + s * BULK_STRIPE;
                        a0 = bulk_stripe_avx2(a0, q, bulk_key + s);
                        a1 = bulk_stripe_avx2(a1, q + 32, bulk_key + s + 4);
                }
                /* Scramble: (a ^ a >> 47 ^ key) * P32, the multiply as 32x32 on each half. */
                const __m256i p32 = _mm256_set1_epi64x(BULK_P32);
                __m256i k0 = _mm256_loadu_si256((const __m256i *)(bulk_key + 16));
                __m256i k1 = _mm256_loadu_si256((const __m256i *)(bulk_key + 20));
                a0 = _mm256_xor_si256(_mm256_xor_si256(a0, _mm256_srli_epi64(a0, 47)), k0);
                a1 = _mm256_xor_si256(_mm256_xor_si256(a1, _mm256_srli_epi64(a1, 47)), k1);
                a0 = _mm256_add_epi64(
                    _mm256_mul_epu32(a0, p32),
                    _mm256_slli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a0, 32), p32), 32));
                a1 = _mm256_add_epi64(
                    _mm256_mul_epu32(a1, p32),
                    _mm256_slli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a1, 32), p32), 32));
        }
        size_t tail = (size - off) / BULK_STRIPE;
        for (size_t s = 0; s < tail; s++) {
                const unsigned char *q = p + off + s * BULK_STRIPE;
                a0 = bulk_stripe_avx2(a0, q, bulk_key + s);
                a1 = bulk_stripe_avx2(a1, q + 32, bulk_key + s + 4);
        }
        _mm256_storeu_si256((__m256i *)acc, a0);
        _mm256_storeu_si256((__m256i *)(acc + 4), a1);
        return off + tail * BULK_STRIPE;
}

static bulk_loop_fn bulk_loop_pick(void)
{
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") ? bulk_loop_avx2 : bulk_loop_c;
}
#else
static bulk_loop_fn bulk_loop_pick(void)
{
        return bulk_loop_c;
}
#endif

static inline uint64_t mul_fold(uint64_t a, uint64_t b)
{
        unsigned __int128 m = (unsigned __int128)a * b;
        return (uint64_t)m ^ (uint64_t)(m >> 64);
}

static uint64_t bulk_hash(bulk_loop_fn loop, const void *data, size_t size, uint64_t seed)
{
        const unsigned char *p = data;
        uint64_t acc[8];
        for (int i = 0; i < 8; i++)
                acc[i] = seed * K1 + bulk_key[i] + (uint64_t)i * K3;
        size_t done = loop(acc, p, size);
        uint64_t h = (uint64_t)size * K1 ^ seed;
        for (int i = 0; i < 8; i += 2)
                h += mul_fold(acc[i] ^ bulk_key[16 + i], acc[i + 1] ^ bulk_key[17 + i]);
        if (done < size) /* the last partial stripe */
                h ^= hcs_hash64(p + done, size - done, h);
        h ^= h >> 37;
        h *= K3;
        h ^= h >> 32;
        return h;
}

uint64_t hcs_hash64_bulk(const void *data, size_t size, uint64_t seed)
{
        static _Atomic(bulk_loop_fn) picked;
        bulk_loop_fn loop = atomic_load_explicit(&picked, memory_order_relaxed);
        if (!loop) {
                loop = bulk_loop_pick(); /* a race just stores the same pointer twice */
                atomic_store_explicit(&picked, loop, memory_order_relaxed);
        }
        return bulk_hash(loop, data, size, seed);
}

uint64_t hcs_hash64_bulk_portable(const void *data, size_t size, uint64_t seed)
{
        return bulk_hash(bulk_loop_c, data, size, seed);
}
