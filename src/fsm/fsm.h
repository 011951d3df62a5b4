/* SPDX-License-Identifier: MIT */
/*
 * The ferry state-machine runtime.
 *
 * Every controller's lifecycle is a spec (spec/<machine>.yaml) that codegen/fsmc.py compiles
 * into a const `struct fsm_machine`: a cell per (state, event) pointing at a run of "arms"
 * (guarded alternatives, tried in declared order). This runtime only executes those tables:
 *
 *   - run to completion: events raised while a transition runs (fsm_raise) are queued and run
 *     after it, in order;
 *   - an arm's guard is called first; the first arm whose guard passes (or that has none) decides;
 *   - an arm either rejects (the cell's error and message, state untouched), ignores (nothing
 *     happens), or transitions: the action is called, then the state becomes `to` on success,
 *     `on_error` when the action returns a negative errno, or the action's in-flight state when it
 *     returns FSM_PENDING (a later completion event ends it);
 *   - a trace hook sees every dispatch for logging, coverage and replay.
 *
 * All machines of a process live on one thread (the event loop); nothing here locks.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An action's return value that leaves the machine in the action's in-flight state. */
#define FSM_PENDING 1

/* What an arm does. */
enum fsm_kind {
        FSM_TRANSITION = 0,
        FSM_IGNORE = 1,
        FSM_REJECT = 2,
};

/* The outcome of one dispatch, as the trace hook and fsm_outcome report it. */
enum fsm_result {
        FSM_RESULT_OK = 0,   /* transition taken, action (if any) succeeded */
        FSM_RESULT_PENDING,  /* action returned FSM_PENDING: resting in the in-flight state */
        FSM_RESULT_FAILED,   /* action failed: state is the arm's on_error target */
        FSM_RESULT_IGNORED,  /* the cell says ignore */
        FSM_RESULT_REJECTED, /* the cell says reject: state untouched */
        FSM_RESULT__COUNT
};

typedef bool (*fsm_guard_fn)(void *ctx, void *arg);
typedef int (*fsm_action_fn)(void *ctx, void *arg);

/*
 * One guarded alternative of a cell. Generated; never written by hand.
 *
 * A machine's arms array starts with the first arm of every cell, row-major by state with
 * rows padded to a power of two (cell (s, e) is arms[(s << ev_shift) + e]), so finding a
 * cell's decision is a shift, an add and one load;
 * further alternatives of guarded cells follow and are chained through `next`. The last arm
 * of every chain is unguarded, which the compiler guarantees.
 */
struct fsm_arm {
        fsm_guard_fn guard;   /* NULL: unguarded or `else` */
        fsm_action_fn action; /* NULL: no action (never fails) */
        const char *message;  /* FSM_REJECT: the spec's message */
        uint16_t kind;        /* enum fsm_kind */
        uint16_t to;          /* target state on success */
        uint16_t on_error;    /* target state when the action fails */
        uint16_t pending;     /* in-flight state when the action returns FSM_PENDING */
        int16_t err;          /* FSM_REJECT: negative errno of the error class */
        uint16_t guard_id;    /* index into machine->guard_names, FSM_NONE for none */
        uint16_t next;        /* next alternative when the guard fails, FSM_NONE for none */
        uint16_t line;        /* the spec line that decided it */
};

#define FSM_NONE 0xffff

/* A compiled machine. Generated from a spec; never written by hand. */
struct fsm_machine {
        const char *name;
        const char *spec_hash; /* hash of the spec text, for traces and replays */
        uint16_t n_states;
        uint16_t n_events;
        uint16_t n_arms; /* n_states << ev_shift first arms, then further alternatives */
        uint16_t n_guards;
        uint16_t initial;
        uint16_t ev_shift; /* log2 of the row length: the smallest power of two >= n_events */
        const char *const *state_names;
        const char *const *event_names;
        const char *const *guard_names;
        const uint8_t *state_flags; /* FSM_STATE_* per state */
        const uint8_t *event_kinds; /* FSM_EVENT_* per event */
        const struct fsm_arm *arms;
};

enum {
        FSM_STATE_INITIAL = 1 << 0,
        FSM_STATE_TERMINAL = 1 << 1,
        FSM_STATE_REST = 1 << 2,
        FSM_STATE_FROZEN = 1 << 3,
        FSM_STATE_INFLIGHT = 1 << 4,
};

enum {
        FSM_EVENT_CALL = 0,
        FSM_EVENT_EXTERNAL = 1,
        FSM_EVENT_COMPLETION = 2,
};

/* A machine instance: embed it in the controller it drives. Small and caller-owned. */
struct fsm {
        const struct fsm_machine *machine;
        void *ctx;        /* handed to guards and actions; borrowed */
        const char *name; /* instance name for traces, e.g. "container:abc"; borrowed */
        uint16_t state;
        uint8_t stepping; /* private: a full-path transition of this instance runs (see fsm_busy) */
};

/* Details of a dispatch, for callers that report errors (RPC services). */
struct fsm_outcome {
        enum fsm_result result;
        int err;             /* 0, or the negative errno returned by fsm_dispatch */
        uint16_t from;       /* state before */
        uint16_t to;         /* state after */
        uint16_t arm;        /* index of the arm that decided, machine-wide */
        const char *message; /* FSM_RESULT_REJECTED: the spec's message; else NULL */
};

/* A trace record. `time_us` is monotonic; `arm` indexes machine->arms. */
struct fsm_trace {
        const struct fsm_machine *machine;
        const struct fsm *instance;
        uint16_t from;
        uint16_t event;
        uint16_t to;
        uint16_t arm;
        enum fsm_result result;
        int err;
        uint64_t time_us;
};
/* Guard outcomes follow from `arm`: every guarded arm of the cell before it returned false,
 * and its own guard, if it has one, returned true. */

typedef void (*fsm_trace_fn)(const struct fsm_trace *rec, void *userdata);

/*
 * The inline fast path. Each generated header defines `<machine>_dispatch(m, event, arg)`,
 * which calls fsm__dispatch_fast with the machine's own tables as constants: the common case
 * (no trace hook, no outcome wanted, not inside another dispatch) then costs a table load and
 * the guard and action calls. Everything else takes fsm_dispatch. Not for direct use.
 *
 * `gate` is the one word the fast path reads to decide: 0 when it may run; FSM__GATE_FULL while
 * a trace hook is installed or a full dispatch runs; and, while a fast-path action runs, the
 * address of its instance, which is how a nested fsm_dispatch knows that instance is busy
 * without the fast path storing a busy flag in it (two stores per dispatch instead of four).
 */
#define FSM__GATE_FULL ((uintptr_t)1)

struct fsm__rt {
        uintptr_t gate;     /* 0, FSM__GATE_FULL, or the instance of the running fast action */
        uintptr_t traced;   /* FSM__GATE_FULL when a trace hook is installed, else 0 */
        unsigned depth;     /* full dispatches and drains running on this thread */
        unsigned queue_len; /* raised events waiting */
        fsm_trace_fn trace; /* the trace hook, or NULL */
        void *trace_userdata;
        const struct fsm_arm *rejected; /* the last rejecting arm, for fsm_rejection() */
};
extern __thread struct fsm__rt fsm__rt __attribute__((tls_model("initial-exec")));

void fsm__drain(void);

/* The arm that decides, following the chain of guarded alternatives from a cell's first arm. */
static inline const struct fsm_arm *fsm__pick(const struct fsm_arm *arms, const struct fsm_arm *arm,
                                              void *ctx, void *arg)
{
        while (arm->guard && !arm->guard(ctx, arg))
                arm = &arms[arm->next];
        return arm;
}

/* Where a transition arm leads once its action returned r. */
static inline unsigned fsm__target(const struct fsm_arm *arm, int r)
{
        return r < 0 ? arm->on_error : r == FSM_PENDING ? arm->pending : arm->to;
}

int fsm_dispatch(struct fsm *m, unsigned event, void *arg, struct fsm_outcome *ret_outcome);

static inline int fsm__dispatch_fast(struct fsm *m, const struct fsm_arm *arms, unsigned ev_shift,
                                     unsigned n_events, unsigned event, void *arg)
{
        const struct fsm_arm *arm;
        unsigned to;
        int r;

        /* gate 0: no dispatch runs on this thread, so no instance is busy, and no hook */
        if (__builtin_expect(event >= n_events || fsm__rt.gate, 0))
                return fsm_dispatch(m, event, arg, NULL);
        arm = fsm__pick(arms, &arms[((unsigned)m->state << ev_shift) + event], m->ctx, arg);
        if (arm->kind != FSM_TRANSITION) {
                if (arm->err) /* a rejection (an ignore's is 0): kept for fsm_rejection() */
                        fsm__rt.rejected = arm;
                return arm->err;
        }
        if (!arm->action) {
                m->state = arm->to;
                return 0;
        }
        fsm__rt.gate = (uintptr_t)m;
        r = arm->action(m->ctx, arg);
        fsm__rt.gate = fsm__rt.traced; /* the action may have installed a hook */
        to = r == 0 ? arm->to : fsm__target(arm, r);
        /* self-transitions are common (a refused retry, a counter): a store the next
         * dispatch's load would wait on is skipped */
        if (to != m->state)
                m->state = (uint16_t)to;
        if (__builtin_expect(fsm__rt.queue_len != 0, 0))
                fsm__drain();
        return r < 0 || r == FSM_PENDING ? r : 0;
}

/*
 * The spec's words for a refusal, for services that answer a client. A controller's public call
 * returns only the errno of the cell that rejected it; the runtime keeps the rejecting arm of the
 * last rejection on this thread. Call fsm_rejection_forget() before the controller call and
 * fsm_rejection(r) after it returned r < 0: the message of the rejection it met, or NULL when
 * none was met since, or its error class is not r (the call failed in an action instead).
 */
void fsm_rejection_forget(void);
const char *fsm_rejection(int err);

/* Binds an instance to its machine in the machine's initial state. ctx and name are borrowed. */
void fsm_init(struct fsm *m, const struct fsm_machine *machine, void *ctx, const char *name);

/*
 * Sends an event to a machine and runs it to completion, together with every event raised
 * while it runs.
 *
 * Returns 0 when a transition was taken or the cell ignores the event; FSM_PENDING when the
 * action went pending; the cell's negative errno when it rejects (state untouched); the action's
 * negative errno when it failed (state is the on_error target). -EINVAL for an event out of
 * range. `arg` is borrowed for the duration of the call. ret_outcome may be NULL.
 *
 * Inside an action, dispatching to another instance runs it at once (nested, so a parent can
 * drive a child and see its result); dispatching to an instance whose own transition is
 * running queues the event as fsm_raise does and returns 0.
 */
/* (declared above, for the fast path) */

/*
 * Queues an event to run after the transition now running; outside a dispatch it runs at
 * once. `arg` must stay valid until the event runs. Returns 0, or -ENOBUFS when the queue
 * (FSM_QUEUE_MAX events) is full, or -EINVAL for an event out of range.
 */
#define FSM_QUEUE_MAX 256
int fsm_raise(struct fsm *m, unsigned event, void *arg);

/* Installs the thread's trace hook (NULL removes it). */
void fsm_set_trace(fsm_trace_fn fn, void *userdata);

/* Forces an instance into a state without a transition: for restoring a replayed or imported
 * position and for tests. Returns 0 or -EINVAL when the state is out of range. */
int fsm_set_state(struct fsm *m, unsigned state);

/* Whether a transition of m is running: an event sent to it now would be queued. */
static inline bool fsm_busy(const struct fsm *m)
{
        return m->stepping || fsm__rt.gate == (uintptr_t)m;
}

static inline unsigned fsm_state(const struct fsm *m)
{
        return m->state;
}

static inline const char *fsm_state_name(const struct fsm *m)
{
        return m->machine->state_names[m->state];
}

static inline bool fsm_is_frozen(const struct fsm *m)
{
        return m->machine->state_flags[m->state] & FSM_STATE_FROZEN;
}

static inline bool fsm_is_terminal(const struct fsm *m)
{
        return m->machine->state_flags[m->state] & FSM_STATE_TERMINAL;
}

/* Name lookups; NULL or -ENOENT for unknown names. */
const char *fsm_event_name(const struct fsm_machine *machine, unsigned event);
int fsm_state_by_name(const struct fsm_machine *machine, const char *name);
int fsm_event_by_name(const struct fsm_machine *machine, const char *name);

/* "ok", "pending", "failed", "ignored", "rejected". */
const char *fsm_result_name(enum fsm_result result);

/* The first arm of the cell (state, event); its alternatives follow through `next`, and
 * ret_count (may be NULL) gets the length of the chain. Returns NULL for a state or event
 * out of range. Used by offline replay and coverage. */
const struct fsm_arm *fsm_cell_arm(const struct fsm_machine *machine, unsigned state,
                                   unsigned event, unsigned *ret_count);
