/* SPDX-License-Identifier: MIT */
/* ctl_run_until (src/cmd/ctl/ctl_rpc.c): a timeout must end the wait even when the loop has
 * nothing else to do. With libuv 1.44 a UV_RUN_ONCE runs due timers before it polls: a timer
 * already due when uv_run starts (the process was descheduled longer than the timeout, e.g. on
 * a loaded CI machine) fired there, and the poll then blocked with no timeout left while an
 * idle connection kept the loop alive. ferryctl hung in `migrate --hold-after` that way. */
/* assert() is this test's check: the release build (NDEBUG) must not remove it */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cmd/ctl/ctl_proc.h"
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

static void close_idle(uv_loop_t *loop, uv_async_t *idle)
{
        bool closed = false;

        idle->data = &closed;
        uv_close((uv_handle_t *)idle, async_closed);
        while (!closed)
                uv_run(loop, UV_RUN_NOWAIT);
}

/* A wait for nothing lasts about its 30 ms timeout. */
static void assert_waits_30ms(uv_loop_t *loop)
{
        uint64_t t0 = ferry_now_us();

        assert(ctl_run_until(loop, never, NULL, 30) == -ETIMEDOUT);
        assert(ferry_now_us() - t0 >= 25000);
}

/* The loop's cached time is older than the timeout when ctl_run_until starts its timer, so the
 * timer is due before the first poll. An async handle keeps the loop alive without events,
 * like an idle ttrpc connection. SIGALRM's default action fails the test if the wait hangs. */
static void test_timer_due_before_first_poll(void)
{
        uv_loop_t loop;
        uv_async_t idle;
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
        assert_waits_30ms(&loop);
        alarm(0);
        close_idle(&loop, &idle);
        assert(uv_loop_close(&loop) == 0);
}

static void *send_sigterm(void *arg)
{
        sleep_ms(50);
        kill(getpid(), SIGTERM);
        return arg;
}

/* SIGTERM while ctl_run_until waits for an event that never comes (the loop kept alive by an
 * idle handle, as a silent shim's connection does): the handler wakes the loop from
 * another thread and the wait ends with -EINTR at once. Before, libuv went back to epoll after
 * the EINTR and ferryctl sat there until SIGKILL. A signal that came before a wait does not end
 * it, and a loop with nothing to do still says -EIO (the wake pipe keeps nothing alive). */
static void test_signal_ends_wait(void)
{
        uv_loop_t loop;
        uv_async_t idle;
        pthread_t th;
        uint64_t t0;

        ctl_proc_install_signals();
        assert(uv_loop_init(&loop) == 0);
        assert(uv_async_init(&loop, &idle, NULL) == 0);
        alarm(5);
        assert(pthread_create(&th, NULL, send_sigterm, NULL) == 0);
        t0 = ferry_now_us();
        assert(ctl_run_until(&loop, never, NULL, 0) == -EINTR);
        assert(ferry_now_us() - t0 < 1000000);
        assert(ctl_interrupted == SIGTERM);
        assert(pthread_join(th, NULL) == 0);
        /* the signal was before this wait: it runs to its timeout */
        assert_waits_30ms(&loop);
        alarm(0);
        close_idle(&loop, &idle);
        assert(ctl_run_until(&loop, never, NULL, 0) == -EIO);
        assert(uv_loop_close(&loop) == 0);
}

int main(void)
{
        test_timer_due_before_first_poll();
        test_signal_ends_wait();
        printf("ctl_run_until: ok\n");
        return 0;
}
