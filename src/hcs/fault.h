/* SPDX-License-Identifier: MIT */
/* Named fault-injection points for the host compute and guest backends.
 *
 * Every backend and guest call checks its point before doing anything, so a test (or a later
 * failure sweep) can make the Nth call fail with a chosen errno, stall, or — for the byte-stream
 * points of the transfer — drop the socket after N bytes. The registry is process-global and
 * thread-safe: points are checked on worker threads, armed from the test's thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hcs_fault_spec {
        /* Trigger on the Nth check after arming (1 = the next one), then disarm; 0 = every check
         * until disarmed. */
        uint32_t nth;
        /* Negative errno the call fails with when triggered; 0 = do not fail (stall/drop only). */
        int error;
        /* Stream points only: the socket is shut down once this many bytes have crossed it. */
        uint64_t drop_after_bytes;
        /* Sleep this long when triggered, before failing or proceeding. */
        uint32_t stall_ms;
        /* Block when triggered (after any stall) until hcs_fault_release() or hcs_fault_reset():
         * a test that must land a call while a step runs waits for hcs_fault_held(), makes the
         * call, then releases, with no race against the clock. */
        bool hold;
};

/* Arms point name (borrowed) with a copy of spec, resetting its trigger count.
 * Returns 0, -ENOENT for an unknown name, -EINVAL for a spec that does nothing. */
int hcs_fault_arm(const char *name, const struct hcs_fault_spec *spec);

/* Disarms one point (-ENOENT if unknown) / every point, zeroes all counters and releases every
 * held thread. */
int hcs_fault_disarm(const char *name);
void hcs_fault_reset(void);

/* Whether a thread is held at point name now (false for unknown names). */
bool hcs_fault_held(const char *name);

/* Lets every thread held at point name now go on (-ENOENT if unknown); a thread that reaches
 * the point later is held again: wait for hcs_fault_held() first. */
int hcs_fault_release(const char *name);

/* Called by backends at the top of each call: counts the call and, if the point triggers, stalls
 * and returns the armed error (0 when the trigger only stalls). Returns 0 when not triggered.
 * An unknown name is a programmer error (asserted). */
int hcs_fault_check(const char *name);

/* Stream points: if name triggers now, writes its byte budget to *ret_bytes and returns true
 * (stalls as armed first). */
bool hcs_fault_take_drop(const char *name, uint64_t *ret_bytes);

/* How many times point name has been checked since the last reset (0 for unknown names). */
uint64_t hcs_fault_calls(const char *name);

/* The catalogue, for sweeps: the number of points and the name of point i (NULL past the end). */
size_t hcs_fault_count(void);
const char *hcs_fault_name(size_t i);
