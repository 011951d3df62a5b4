/* SPDX-License-Identifier: MIT */
/* Driving a test's event loop: until a callback has set a flag, or for a while. Both keep a
 * timer running so that the loop wakes and reads the clock even when nothing else fires (a
 * bare UV_RUN_ONCE with nothing due blocks for ever, deadline or not). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util/util.h"

static void uvrun_tick(uv_timer_t *t)
{
}

/* Runs loop, waking every tick_ms, until *flag (when flag is not NULL) or ms have passed. */
static inline void uvrun_while(uv_loop_t *loop, const bool *flag, uint64_t ms, uint64_t tick_ms)
{
        uv_timer_t t;
        uv_timer_init(loop, &t);
        uv_timer_start(&t, uvrun_tick, tick_ms, tick_ms);
        uint64_t deadline = ferry_now_us() + ms * 1000;
        while (!(flag && *flag) && ferry_now_us() < deadline)
                uv_run(loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs loop until *flag or timeout_ms have passed; returns *flag. */
static inline bool uvrun_until(uv_loop_t *loop, const bool *flag, uint64_t timeout_ms)
{
        uvrun_while(loop, flag, timeout_ms, 5);
        return *flag;
}

/* Runs loop for ms milliseconds (waking at least every 5 ms, so a short run stays short). */
static inline void uvrun_for_ms(uv_loop_t *loop, uint64_t ms)
{
        uvrun_while(loop, NULL, ms, ms < 5 ? (ms ? ms : 1) : 5);
}
