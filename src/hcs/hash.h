/* SPDX-License-Identifier: MIT */
/* A fast 64-bit non-cryptographic hash for memory-image checksums: four independent
 * multiply-rotate lanes over 8-byte words (xxh64-like structure, own constants), folded at the
 * end. It detects corruption and lost pages in a transfer; it is not a MAC. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Hashes size bytes at p (borrowed) with seed. */
uint64_t hcs_hash64(const void *p, size_t size, uint64_t seed);
