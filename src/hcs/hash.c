/* SPDX-License-Identifier: MIT */
#include "hcs/hash.h"

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
