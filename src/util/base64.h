/* SPDX-License-Identifier: MIT */
/* Standard base64 (RFC 4648 alphabet, padded), as host compute documents carry binary blobs
 * (the compatibility data of a live migration). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The size of the encoding of n bytes, with its terminating NUL. */
#define FERRY_BASE64_SIZE(n) (((n) + 2) / 3 * 4 + 1)

/* Encodes n bytes of src (borrowed) into dst, which holds FERRY_BASE64_SIZE(n) bytes, and
 * terminates it. */
void ferry_base64_encode(const uint8_t *src, size_t n, char *dst);

/* Decodes src (borrowed, NUL-terminated; padded, no white space) into dst (cap bytes).
 * Returns the decoded length, or -EINVAL when src is not padded base64 or does not fit. */
ssize_t ferry_base64_decode(const char *src, uint8_t *dst, size_t cap);
