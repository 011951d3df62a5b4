/* SPDX-License-Identifier: MIT */
/* SHA-256 (FIPS 180-4), only for deriving the host-compute session number from a session id
 * the way the reference does; not used for anything secret. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Hashes len bytes at p (borrowed) into out. */
void mig_sha256(const void *p, size_t len, uint8_t out[32]);
