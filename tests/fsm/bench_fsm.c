/* SPDX-License-Identifier: MIT */
/*
 * Dispatch cost: the turnstile of tests/fsm/bench.yaml driven through the generated tables
 * and through an equivalent hand-written switch, in one run, over the same event sequence,
 * calling the same guard and action functions. Prints ns/event for each and their ratio.
 *
 *   bench_fsm            full run (meson test --benchmark)
 *   bench_fsm --check    short run that only checks both ends agree (a test)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_fsm.h"
#include "fsm/fsm.h"
#include "util/status.h"
#include "util/util.h"

struct bench {
        struct fsm fsm;
        unsigned state; /* the switch's own state */
        bool busy;      /* the switch's own "a transition runs" flag */
        uint64_t seq;
        uint64_t accepted, refunded, passed, alarms, repairs, repair_tries;
};

#define NOINLINE __attribute__((noinline))

NOINLINE bool bench_guard_coin_valid(struct bench *b, void *arg)
{
        return (b->seq++ & 7) != 0;
}

NOINLINE int bench_action_accept(struct bench *b, void *arg)
{
        b->accepted++;
        return 0;
}

NOINLINE int bench_action_refund(struct bench *b, void *arg)
{
        b->refunded++;
        return 0;
}

NOINLINE int bench_action_pass(struct bench *b, void *arg)
{
        b->passed++;
        return 0;
}

NOINLINE int bench_action_alarm(struct bench *b, void *arg)
{
        b->alarms++;
        return 0;
}

NOINLINE int bench_action_repair(struct bench *b, void *arg)
{
        if (++b->repair_tries % 3 == 0)
                return -EIO;
        b->repairs++;
        return 0;
}

/* The same machine, written by hand as a switch. */
static int switch_dispatch(struct bench *b, unsigned ev, void *arg)
{
        switch (b->state) {
        case BENCH_S_LOCKED:
                switch (ev) {
                case BENCH_E_COIN:
                        if (bench_guard_coin_valid(b, arg)) {
                                bench_action_accept(b, arg);
                                b->state = BENCH_S_UNLOCKED;
                                return 0;
                        }
                        return -FERRY_ERRNO_INVALID_ARGUMENT;
                case BENCH_E_PUSH:
                        return -FERRY_ERRNO_FAILED_PRECONDITION;
                case BENCH_E_FAIL:
                        bench_action_alarm(b, arg);
                        b->state = BENCH_S_BROKEN;
                        return 0;
                case BENCH_E_FIX:
                        return 0;
                }
                break;
        case BENCH_S_UNLOCKED:
                switch (ev) {
                case BENCH_E_COIN:
                        bench_action_refund(b, arg);
                        return 0;
                case BENCH_E_PUSH:
                        bench_action_pass(b, arg);
                        b->state = BENCH_S_LOCKED;
                        return 0;
                case BENCH_E_FAIL:
                        bench_action_alarm(b, arg);
                        b->state = BENCH_S_BROKEN;
                        return 0;
                case BENCH_E_FIX:
                        return 0;
                }
                break;
        case BENCH_S_BROKEN:
                switch (ev) {
                case BENCH_E_FIX: {
                        int r = bench_action_repair(b, arg);

                        if (r < 0)
                                return r;
                        b->state = BENCH_S_LOCKED;
                        return 0;
                }
                default:
                        return -FERRY_ERRNO_UNAVAILABLE;
                }
        }
        return -EINVAL;
}

/*
 * The same switch with what the engine guarantees its callers, written by hand as a careful
 * controller would: a rejection reports its error class and message when asked, a trace hook
 * (none installed here, as in the engine run) sees every dispatch, and an instance is marked
 * busy while its action runs so that an event it sends itself is queued, not nested.
 */
struct sw_queued {
        struct bench *b;
        unsigned ev;
};
/* Installable at run time, as the engine's hook is: static and never written, the compiler
 * would delete the hook's check from the switch and the baseline would not pay for it. */
fsm_trace_fn bench_switch_trace;
#define sw_trace bench_switch_trace
static unsigned sw_depth, sw_queue_len;
/* The last rejection, as the engine keeps it for fsm_rejection() */
static const char *sw_rejected;
static int sw_rejected_err;
static struct sw_queued sw_queue[FSM_QUEUE_MAX];
static int switch_full(struct bench *b, unsigned ev, void *arg, struct fsm_outcome *o);

static void sw_drain(void)
{
        for (unsigned i = 0; i < sw_queue_len; i++)
                switch_full(sw_queue[i].b, sw_queue[i].ev, NULL, NULL);
        sw_queue_len = 0;
}

#define SW_ACTION(call)                                                                            \
        ({                                                                                         \
                b->busy = 1;                                                                       \
                int _r = (call);                                                                   \
                b->busy = 0;                                                                       \
                _r;                                                                                \
        })

/* The body, compiled twice: once for the common call (no hook, no outcome wanted), which the
 * compiler then trims as it trims the engine's inline fast path, and once for the rest. */
static inline __attribute__((always_inline)) int
switch_body(struct bench *b, unsigned ev, void *arg, struct fsm_outcome *o, fsm_trace_fn trace)
{
        unsigned from = b->state;
        const char *msg = NULL;
        int r = 0;

        if (ev >= BENCH_E__COUNT)
                return -EINVAL;
        if (b->busy) {
                sw_queue[sw_queue_len++] = (struct sw_queued){b, ev};
                return 0;
        }
        sw_depth++;
        switch (b->state) {
        case BENCH_S_LOCKED:
                switch (ev) {
                case BENCH_E_COIN:
                        if (bench_guard_coin_valid(b, arg)) {
                                SW_ACTION(bench_action_accept(b, arg));
                                b->state = BENCH_S_UNLOCKED;
                        } else {
                                r = -FERRY_ERRNO_INVALID_ARGUMENT;
                                msg = "bad coin";
                        }
                        break;
                case BENCH_E_PUSH:
                        r = -FERRY_ERRNO_FAILED_PRECONDITION;
                        msg = "the turnstile is locked";
                        break;
                case BENCH_E_FAIL:
                        SW_ACTION(bench_action_alarm(b, arg));
                        b->state = BENCH_S_BROKEN;
                        break;
                case BENCH_E_FIX:
                        break;
                }
                break;
        case BENCH_S_UNLOCKED:
                switch (ev) {
                case BENCH_E_COIN:
                        SW_ACTION(bench_action_refund(b, arg));
                        break;
                case BENCH_E_PUSH:
                        SW_ACTION(bench_action_pass(b, arg));
                        b->state = BENCH_S_LOCKED;
                        break;
                case BENCH_E_FAIL:
                        SW_ACTION(bench_action_alarm(b, arg));
                        b->state = BENCH_S_BROKEN;
                        break;
                case BENCH_E_FIX:
                        break;
                }
                break;
        case BENCH_S_BROKEN:
                switch (ev) {
                case BENCH_E_FIX:
                        r = SW_ACTION(bench_action_repair(b, arg));
                        if (r >= 0)
                                b->state = BENCH_S_LOCKED;
                        break;
                case BENCH_E_COIN:
                        r = -FERRY_ERRNO_UNAVAILABLE;
                        msg = "coin: the turnstile is broken";
                        break;
                case BENCH_E_PUSH:
                        r = -FERRY_ERRNO_UNAVAILABLE;
                        msg = "push: the turnstile is broken";
                        break;
                case BENCH_E_FAIL:
                        r = -FERRY_ERRNO_UNAVAILABLE;
                        msg = "fail: the turnstile is broken";
                        break;
                }
                break;
        }
        if (msg) {
                sw_rejected = msg;
                sw_rejected_err = r;
        }
        if (o)
                *o = (struct fsm_outcome){
                    .err = r, .from = (uint16_t)from, .to = (uint16_t)b->state, .message = msg};
        if (trace)
                trace(&(struct fsm_trace){.from = (uint16_t)from,
                                          .event = (uint16_t)ev,
                                          .to = (uint16_t)b->state,
                                          .err = r},
                      NULL);
        if (--sw_depth == 0 && sw_queue_len)
                sw_drain();
        return r;
}

static NOINLINE int switch_slow(struct bench *b, unsigned ev, void *arg, struct fsm_outcome *o)
{
        return switch_body(b, ev, arg, o, sw_trace);
}

static int switch_full(struct bench *b, unsigned ev, void *arg, struct fsm_outcome *o)
{
        if (__builtin_expect(o != NULL || sw_trace != NULL, 0))
                return switch_slow(b, ev, arg, o);
        return switch_body(b, ev, arg, NULL, NULL);
}

/* A fixed pseudo-random event mix: mostly coin/push, a few failures and fixes. */
#define N_EVENTS 4096
static uint8_t events[N_EVENTS];

static void make_events(void)
{
        uint64_t x = 0x9e3779b97f4a7c15u;

        for (unsigned i = 0; i < N_EVENTS; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                unsigned r = (unsigned)(x % 100);
                events[i] = r < 45   ? BENCH_E_COIN
                            : r < 90 ? BENCH_E_PUSH
                            : r < 94 ? BENCH_E_FAIL
                                     : BENCH_E_FIX;
        }
}

static void bench_reset(struct bench *b)
{
        memset(b, 0, sizeof(*b));
        fsm_init(&b->fsm, &bench_machine, b, "turnstile");
        b->state = BENCH_S_LOCKED;
}

static volatile int sink;

static NOINLINE uint64_t run_engine(struct bench *b, unsigned rounds)
{
        uint64_t t0 = ferry_now_ns();
        int acc = 0;

        for (unsigned r = 0; r < rounds; r++)
                for (unsigned i = 0; i < N_EVENTS; i++)
                        acc += bench_dispatch(&b->fsm, events[i], NULL);
        sink = acc;
        return ferry_now_ns() - t0;
}

static NOINLINE uint64_t run_engine_call(struct bench *b, unsigned rounds)
{
        uint64_t t0 = ferry_now_ns();
        int acc = 0;

        for (unsigned r = 0; r < rounds; r++)
                for (unsigned i = 0; i < N_EVENTS; i++)
                        acc += fsm_dispatch(&b->fsm, events[i], NULL, NULL);
        sink = acc;
        return ferry_now_ns() - t0;
}

static NOINLINE uint64_t run_switch(struct bench *b, unsigned rounds)
{
        uint64_t t0 = ferry_now_ns();
        int acc = 0;

        for (unsigned r = 0; r < rounds; r++)
                for (unsigned i = 0; i < N_EVENTS; i++)
                        acc += switch_dispatch(b, events[i], NULL);
        sink = acc;
        return ferry_now_ns() - t0;
}

static NOINLINE uint64_t run_switch_full(struct bench *b, unsigned rounds)
{
        uint64_t t0 = ferry_now_ns();
        int acc = 0;

        for (unsigned r = 0; r < rounds; r++)
                for (unsigned i = 0; i < N_EVENTS; i++)
                        acc += switch_full(b, events[i], NULL, NULL);
        sink = acc;
        return ferry_now_ns() - t0;
}

static bool same_counters(const struct bench *e, const struct bench *s)
{
        return e->seq == s->seq && e->accepted == s->accepted && e->refunded == s->refunded &&
               e->passed == s->passed && e->alarms == s->alarms && e->repairs == s->repairs &&
               e->repair_tries == s->repair_tries;
}

int main(int argc, char **argv)
{
        bool check = argc > 1 && strcmp(argv[1], "--check") == 0;
        unsigned rounds = check ? 16 : 2500; /* 10M events per sample */
        unsigned samples = check ? 1 : 7;
        uint64_t best_engine = UINT64_MAX, best_switch = UINT64_MAX, best_full = UINT64_MAX;
        uint64_t best_call = UINT64_MAX;
        struct bench e, s, f, c;

        make_events();
        for (unsigned k = 0; k < samples; k++) {
                bench_reset(&e);
                bench_reset(&s);
                bench_reset(&f);
                bench_reset(&c);
                /* alternate the order so neither side always runs on a warmer cache */
                uint64_t te, ts, tf, tc;
                if (k & 1) {
                        tf = run_switch_full(&f, rounds);
                        ts = run_switch(&s, rounds);
                        tc = run_engine_call(&c, rounds);
                        te = run_engine(&e, rounds);
                } else {
                        te = run_engine(&e, rounds);
                        tc = run_engine_call(&c, rounds);
                        ts = run_switch(&s, rounds);
                        tf = run_switch_full(&f, rounds);
                }
                /* engines keep their state in the instance, switches in their own field */
                unsigned end = fsm_state(&e.fsm);
                if (end != fsm_state(&c.fsm) || end != s.state || end != f.state ||
                    !same_counters(&e, &s) || !same_counters(&e, &f) || !same_counters(&e, &c)) {
                        fprintf(stderr, "engine and switch disagree\n");
                        return 1;
                }
                /* both keep the last rejection's words for the caller */
                const char *said = fsm_rejection(sw_rejected_err);
                if (!sw_rejected || !said || strcmp(said, sw_rejected) != 0) {
                        fprintf(stderr, "engine and switch keep different rejections: %s / %s\n",
                                said ? said : "(none)", sw_rejected ? sw_rejected : "(none)");
                        return 1;
                }
                if (te < best_engine)
                        best_engine = te;
                if (ts < best_switch)
                        best_switch = ts;
                if (tf < best_full)
                        best_full = tf;
                if (tc < best_call)
                        best_call = tc;
        }

        double n = (double)rounds * N_EVENTS;
        double ns_engine = (double)best_engine / n, ns_switch = (double)best_switch / n;
        double ns_full = (double)best_full / n, ns_call = (double)best_call / n;
        printf("fsm dispatch: %.0f events, best of %u\n", n, samples);
        printf("  engine (generated tables, inline):     %6.2f ns/event\n", ns_engine);
        printf("  engine (fsm_dispatch, out of line):    %6.2f ns/event\n", ns_call);
        printf("  hand-written switch, same guarantees:  %6.2f ns/event\n", ns_full);
        printf("  hand-written switch, bare:             %6.2f ns/event\n", ns_switch);
        printf("  ratio engine/switch (same guarantees): %6.2f\n", ns_engine / ns_full);
        printf("  ratio engine/switch (bare):            %6.2f\n", ns_engine / ns_switch);
        printf("  end state %s, %llu accepted, %llu passed, %llu alarms, %llu repairs\n",
               fsm_state_name(&e.fsm), (unsigned long long)e.accepted, (unsigned long long)e.passed,
               (unsigned long long)e.alarms, (unsigned long long)e.repairs);
        return 0;
}
