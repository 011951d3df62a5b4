/* SPDX-License-Identifier: MIT */
/* One asynchronous controller call run to its end, with its completion counted: CALL fails the
 * test unless the call is taken and done is called exactly once. Needs the loop of loop.h. */
#pragma once

#include "loop.h"

/* What a done callback reported, and how many times it was called. */
struct res {
        bool done;
        int r;
        unsigned calls;
};

/* A done callback (int r, void *ud) recording into a struct res. */
static _unused_ void on_res(int r, void *ud)
{
        struct res *x = ud;
        x->done = true;
        x->r = r;
        x->calls++;
}

/* Issues a call taking (…, done, ud), asserts it was taken, waits, asserts one completion and
 * returns its result. */
#define CALL(fn, ...)                                                                              \
        ({                                                                                         \
                struct res _x = {0};                                                               \
                assert_int_equal(fn(__VA_ARGS__, on_res, &_x), 0);                                 \
                run_until(&_x.done, 30000);                                                        \
                assert_int_equal(_x.calls, 1);                                                     \
                _x.r;                                                                              \
        })
