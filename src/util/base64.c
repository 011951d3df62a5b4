/* SPDX-License-Identifier: MIT */
#include "util/base64.h"

#include <errno.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void ferry_base64_encode(const uint8_t *src, size_t n, char *dst)
{
        size_t o = 0;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)src[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t)src[i + 1] << 8;
                if (i + 2 < n)
                        v |= src[i + 2];
                dst[o++] = alphabet[(v >> 18) & 63];
                dst[o++] = alphabet[(v >> 12) & 63];
                dst[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
                dst[o++] = i + 2 < n ? alphabet[v & 63] : '=';
        }
        dst[o] = '\0';
}

static int value_of(char c)
{
        const char *p = c ? strchr(alphabet, c) : NULL;
        return p ? (int)(p - alphabet) : -1;
}

ssize_t ferry_base64_decode(const char *src, uint8_t *dst, size_t cap)
{
        size_t n = strlen(src), o = 0;
        if (n % 4 != 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i += 4) {
                int v[4];
                int pad = 0;
                /* '=' only in the last quantum's last two places, and nothing after one */
                for (int k = 0; k < 4; k++) {
                        if (src[i + k] == '=' && i + 4 == n && k >= 2) {
                                v[k] = 0;
                                pad++;
                        } else if (pad || (v[k] = value_of(src[i + k])) < 0) {
                                return -EINVAL;
                        }
                }
                uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                             (uint32_t)v[3];
                size_t take = 3 - (size_t)pad;
                if (o + take > cap)
                        return -EINVAL;
                for (size_t k = 0; k < take; k++)
                        dst[o++] = (uint8_t)(w >> (16 - 8 * k));
        }
        return (ssize_t)o;
}
