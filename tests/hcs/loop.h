/* SPDX-License-Identifier: MIT */
/* The event loop of a test program and the sim backend on it (each translation unit holds its
 * own pointers; the program's setup fills them), and the two ways to drive it: until a callback
 * has fired, or for a while. Shared by the hcs, guest and controller tests. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <uv.h>

#include "hcs/fault.h"
#include "hcs/hcs.h"
#include "util/util.h"

#include "../common/uvrun.h"

static uv_loop_t *loop;
static struct hcs_backend *backend;

/* Runs the loop until *flag, failing the test after timeout_ms. */
static _unused_ void run_until_at(const bool *flag, uint64_t timeout_ms, const char *file, int line)
{
        _assert_true(uvrun_until(loop, flag, timeout_ms), "callback within the timeout", file,
                     line);
}
#define run_until(flag, ms) run_until_at(flag, ms, __FILE__, __LINE__)

/* Runs the loop until a thread is held at fault point (hcs_fault_spec.hold), failing the test
 * after 10 s: a step that never comes must fail the test, not hang it. */
static _unused_ void wait_held_at(const char *point, const char *file, int line)
{
        uint64_t deadline = ferry_now_us() + 10 * 1000 * 1000;
        while (!hcs_fault_held(point) && ferry_now_us() < deadline)
                uvrun_for_ms(loop, 2);
        _assert_true(hcs_fault_held(point), point, file, line);
}
#define wait_held(point) wait_held_at(point, __FILE__, __LINE__)

/* Runs the loop until cond holds, failing the test after ms milliseconds. */
#define run_until_cond(cond, ms)                                                                   \
        do {                                                                                       \
                uint64_t _end = ferry_now_us() + (uint64_t)(ms)*1000;                              \
                while (!(cond) && ferry_now_us() < _end)                                           \
                        uvrun_for_ms(loop, 2);                                                     \
                _assert_true((cond), #cond, __FILE__, __LINE__);                                   \
        } while (0)

/* Runs the loop for ms milliseconds. */
static _unused_ void run_for_ms(uint64_t ms)
{
        uvrun_for_ms(loop, ms);
}

/* A cmocka setup: a fresh loop and sim backend, no faults armed. */
static _unused_ int setup_loop(void **state)
{
        hcs_fault_reset();
        loop = calloc(1, sizeof(*loop));
        assert_non_null(loop);
        assert_int_equal(uv_loop_init(loop), 0);
        assert_int_equal(hcs_backend_open(loop, "sim", "{}", &backend), 0);
        return 0;
}

/* The matching teardown: fails when a test left systems behind on the backend. */
static _unused_ int teardown_loop(void **state)
{
        hcs_fault_reset();
        backend = hcs_backend_free(backend);
        if (backend)
                return -1; /* a failed test left systems behind; cmocka reports the failure */
        uv_run(loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(loop), 0);
        free(loop);
        loop = NULL;
        return 0;
}

/* A cmocka case run on a fresh loop and sim backend (setup_loop, teardown_loop). */
#define LOOP_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_loop, teardown_loop)
