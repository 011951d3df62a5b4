/* SPDX-License-Identifier: MIT */
/* ctl_run_until (src/cmd/ctl/ctl_rpc.c): a timeout must end the wait even when the loop has
 * nothing else to do. With libuv 1.44 a UV_RUN_ONCE runs due timers before it polls: a timer
 * already due when uv_run starts (the process was descheduled longer than the timeout, e.g. on
 * a loaded CI machine) fired there, and the poll then blocked with no timeout left while an
 * idle connection kept the loop alive. ferryctl hung in `migrate --hold-after` that way. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cmd/ctl/ctl_rpc.h"
#include "util/util.h"

static bool never(void *userdata)
{
        return false;
}

static void sleep_ms(long ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void async_closed(uv_handle_t *h)
{
        *(bool *)h->data = true;
}

/* The loop's cached time is older than the timeout when ctl_run_until starts its timer, so the
 * timer is due before the first poll. An async handle keeps the loop alive without events,
 * like an idle ttrpc connection. SIGALRM's default action fails the test if the wait hangs. */
static void test_timer_due_before_first_poll(void)
{
        uv_loop_t loop;
        uv_async_t idle;
        bool closed = false;
        uint64_t t0;

        assert(uv_loop_init(&loop) == 0);
        assert(uv_async_init(&loop, &idle, NULL) == 0);
        uv_update_time(&loop);
        sleep_ms(60);
        alarm(5);
        t0 = ferry_now_us();
        assert(ctl_run_until(&loop, never, NULL, 20) == -ETIMEDOUT);
        assert(ferry_now_us() - t0 < 1000000);
        /* and a normal wait still lasts about its timeout */
        t0 = ferry_now_us();
        assert(ctl_run_until(&loop, never, NULL, 30) == -ETIMEDOUT);
        assert(ferry_now_us() - t0 >= 25000);
        alarm(0);
        idle.data = &closed;
        uv_close((uv_handle_t *)&idle, async_closed);
        while (!closed)
                uv_run(&loop, UV_RUN_NOWAIT);
        assert(uv_loop_close(&loop) == 0);
}

int main(void)
{
        test_timer_due_before_first_poll();
        printf("ctl_run_until: ok\n");
        return 0;
}
