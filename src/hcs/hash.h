/* SPDX-License-Identifier: MIT */
/* A fast 64-bit non-cryptographic hash for memory-image checksums: four independent
 * multiply-rotate lanes over 8-byte words (xxh64-like structure, own constants), folded at the
 * end. It detects corruption and lost pages in a transfer; it is not a MAC. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Hashes size bytes at p (borrowed) with seed. */
uint64_t hcs_hash64(const void *p, size_t size, uint64_t seed);

/* Hashes size bytes at p (borrowed) with seed, built for large buffers such as memory pages:
 * eight 64-bit lanes, each adding a 32x32->64 product of the data word xor a key to its
 * accumulator (xxh3-like structure, own constants), with the key moving per 64-byte stripe
 * and the lanes scrambled every 1 KiB, so reordered stripes change the result. Runs with AVX2
 * where the CPU has it (chosen once at run time) and in portable C otherwise; both give the
 * same value. Not the same function as hcs_hash64: never mix the two for one checksum. */
uint64_t hcs_hash64_bulk(const void *p, size_t size, uint64_t seed);
/* The same function without the vector path: for tests that check both agree. */
uint64_t hcs_hash64_bulk_portable(const void *p, size_t size, uint64_t seed);
