/* SPDX-License-Identifier: MIT */
#include "fsm/fsm.h"

#include <errno.h>
#include <string.h>

#include "fsm/cover.h"
#include "util/util.h"

/* One event loop thread owns every machine, so the queue and hook are per thread. */
struct fsm_queued {
        struct fsm *m;
        void *arg;
        unsigned event;
};

/* initial-exec: the library is linked into its programs, so the dispatch path reads these
 * with one fs-relative load instead of a __tls_get_addr call per access (-fPIC default) */
#define FSM_TLS __thread __attribute__((tls_model("initial-exec")))

static FSM_TLS struct fsm_queued queue[FSM_QUEUE_MAX];
static FSM_TLS unsigned queue_head;
FSM_TLS struct fsm__rt fsm__rt;

#define depth          fsm__rt.depth
#define gate           fsm__rt.gate
#define queue_len      fsm__rt.queue_len
#define trace_fn       fsm__rt.trace
#define trace_userdata fsm__rt.trace_userdata

/* FERRY_FSM_COVERAGE: each thread that makes machines records spec coverage, unless it
 * installs a hook of its own (see fsm/cover.h). Looked up once per thread. */
static FSM_TLS bool cover_checked;

static void cover_install(void)
{
        cover_checked = true;
        struct fsm_cover *c = fsm_cover_from_env();
        if (c && !trace_fn)
                fsm_set_trace(fsm_cover_env_hook, c);
}

void fsm_init(struct fsm *m, const struct fsm_machine *machine, void *ctx, const char *name)
{
        if (unlikely(!cover_checked))
                cover_install();
        m->machine = machine;
        m->ctx = ctx;
        m->name = name;
        m->state = machine->initial;
        m->stepping = 0;
}

void fsm_set_trace(fsm_trace_fn fn, void *userdata)
{
        trace_fn = fn;
        trace_userdata = userdata;
        fsm__rt.traced = fn ? FSM__GATE_FULL : 0;
        /* a running dispatch keeps its gate; the fast path and enter/leave restore `traced` */
        if (gate == 0 || (gate == FSM__GATE_FULL && depth == 0))
                gate = fsm__rt.traced;
}

void fsm_rejection_forget(void)
{
        fsm__rt.rejected = NULL;
}

const char *fsm_rejection(int err)
{
        const struct fsm_arm *arm = fsm__rt.rejected;
        return arm && err < 0 && arm->err == err ? arm->message : NULL;
}

int fsm_set_state(struct fsm *m, unsigned state)
{
        if (state >= m->machine->n_states)
                return -EINVAL;
        m->state = (uint16_t)state;
        return 0;
}

static int enqueue(struct fsm *m, unsigned event, void *arg)
{
        if (queue_len == FSM_QUEUE_MAX)
                return -ENOBUFS;
        queue[(queue_head + queue_len) % FSM_QUEUE_MAX] = (struct fsm_queued){m, arg, event};
        queue_len++;
        return 0;
}

/* One event through one instance: pick the arm, run it, record it. Inlined into both
 * callers so the common dispatch is one function with no extra frame. */
static inline __attribute__((always_inline)) int step(struct fsm *m, unsigned event, void *arg,
                                                      struct fsm_outcome *ret_outcome)
{
        const struct fsm_machine *mc = m->machine;
        unsigned from = m->state, to = from;
        /* the compiler guarantees the last arm of every chain is unguarded */
        const struct fsm_arm *arm =
            fsm__pick(mc->arms, &mc->arms[(from << mc->ev_shift) + event], m->ctx, arg);
        enum fsm_result result;
        int r = 0;

        if (arm->kind == FSM_REJECT) {
                result = FSM_RESULT_REJECTED;
                r = arm->err;
                fsm__rt.rejected = arm;
        } else if (arm->kind == FSM_IGNORE) {
                result = FSM_RESULT_IGNORED;
        } else {
                result = FSM_RESULT_OK;
                to = arm->to;
                if (arm->action) {
                        m->stepping = 1;
                        r = arm->action(m->ctx, arg);
                        m->stepping = 0;
                        to = fsm__target(arm, r);
                        if (r < 0)
                                result = FSM_RESULT_FAILED;
                        else if (r == FSM_PENDING)
                                result = FSM_RESULT_PENDING;
                        else
                                r = 0;
                }
                m->state = (uint16_t)to;
        }

        if (ret_outcome)
                *ret_outcome = (struct fsm_outcome){
                    .result = result,
                    .err = r < 0 ? r : 0,
                    .from = (uint16_t)from,
                    .to = (uint16_t)to,
                    .arm = (uint16_t)(arm - mc->arms),
                    .message = result == FSM_RESULT_REJECTED ? arm->message : NULL,
                };
        if (unlikely(trace_fn != NULL))
                trace_fn(&(struct fsm_trace){.machine = mc,
                                             .instance = m,
                                             .from = (uint16_t)from,
                                             .event = (uint16_t)event,
                                             .to = (uint16_t)to,
                                             .arm = (uint16_t)(arm - mc->arms),
                                             .result = result,
                                             .err = r < 0 ? r : 0,
                                             .time_us = ferry_now_us()},
                         trace_userdata);
        return r;
}

/* A full dispatch or a drain starts: the fast path stays off until the matching leave. The
 * gate it found (0, FULL, or the instance of a fast action it runs inside) is returned. */
static inline uintptr_t enter(void)
{
        uintptr_t saved = gate;

        if (saved == 0)
                gate = FSM__GATE_FULL;
        depth++;
        return saved;
}

/* Whether a fast-path action is running (the gate then holds its instance). */
static inline bool is_fast(uintptr_t g)
{
        return g > FSM__GATE_FULL;
}

static inline void leave(uintptr_t saved)
{
        depth--;
        gate = is_fast(saved) ? saved : depth > 0 ? FSM__GATE_FULL : fsm__rt.traced;
}

void fsm__drain(void)
{
        uintptr_t saved = enter();

        while (queue_len > 0) {
                struct fsm_queued q = queue[queue_head];

                queue_head = (queue_head + 1) % FSM_QUEUE_MAX;
                queue_len--;
                /* a queued event's result has no caller: the trace hook records it */
                (void)step(q.m, q.event, q.arg, NULL);
        }
        leave(saved);
}

int fsm_dispatch(struct fsm *m, unsigned event, void *arg, struct fsm_outcome *ret_outcome)
{
        uintptr_t saved;
        int r;

        if (unlikely(event >= m->machine->n_events))
                return -EINVAL;
        if (unlikely(fsm_busy(m)))
                return enqueue(m, event, arg);

        saved = enter();
        r = step(m, event, arg, ret_outcome);
        leave(saved);
        /* the outermost dispatch runs what its transitions raised; inside a fast-path action
         * that is the fast path's job, when the action returns */
        if (depth == 0 && !is_fast(saved) && unlikely(queue_len > 0))
                fsm__drain();
        return r;
}

int fsm_raise(struct fsm *m, unsigned event, void *arg)
{
        if (event >= m->machine->n_events)
                return -EINVAL;
        if (depth > 0 || is_fast(gate))
                return enqueue(m, event, arg);
        /* nobody waits for a raised event's result: the trace hook records it */
        (void)fsm_dispatch(m, event, arg, NULL);
        return 0;
}

const char *fsm_event_name(const struct fsm_machine *machine, unsigned event)
{
        return event < machine->n_events ? machine->event_names[event] : NULL;
}

int fsm_state_by_name(const struct fsm_machine *machine, const char *name)
{
        for (unsigned i = 0; i < machine->n_states; i++)
                if (strcmp(machine->state_names[i], name) == 0)
                        return (int)i;
        return -ENOENT;
}

int fsm_event_by_name(const struct fsm_machine *machine, const char *name)
{
        for (unsigned i = 0; i < machine->n_events; i++)
                if (strcmp(machine->event_names[i], name) == 0)
                        return (int)i;
        return -ENOENT;
}

const char *fsm_result_name(enum fsm_result result)
{
        static const char *const names[FSM_RESULT__COUNT] = {
            [FSM_RESULT_OK] = "ok",
            [FSM_RESULT_PENDING] = "pending",
            [FSM_RESULT_FAILED] = "failed",
            [FSM_RESULT_IGNORED] = "ignored",
            [FSM_RESULT_REJECTED] = "rejected",
        };
        return (unsigned)result < FSM_RESULT__COUNT ? names[result] : "unknown";
}

const struct fsm_arm *fsm_cell_arm(const struct fsm_machine *machine, unsigned state,
                                   unsigned event, unsigned *ret_count)
{
        const struct fsm_arm *first, *a;
        unsigned n = 1;

        if (state >= machine->n_states || event >= machine->n_events)
                return NULL;
        first = &machine->arms[(state << machine->ev_shift) + event];
        for (a = first; a->next != FSM_NONE; a = &machine->arms[a->next])
                n++;
        if (ret_count)
                *ret_count = n;
        return first;
}
