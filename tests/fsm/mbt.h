/* SPDX-License-Identifier: MIT */
/*
 * Model-based tests: the runner for the cases `fsmc.py tests` generates from a spec
 * (<machine>_mbt.c). Each case is a shortest event path from the initial state to a target
 * (a transition arm, a rejected or ignored cell, an action failure, a pending action and its
 * completions). The runner dispatches every step through fsm_dispatch on the REAL generated
 * tables and checks the return value, the outcome's result and deciding arm, the resulting
 * state, and that exactly the expected guards and action were called.
 *
 * Steering: a step says which guard outcomes it needs (in the order the runtime asks them)
 * and what its action must return (MBT_ACT_OK, _FAIL, _PENDING). Two ways to obey it:
 *   - test-side handlers that ask the runner: a guard returns mbt_guard(id), an action returns
 *     mbt_action(name) (tests/fsm/test_sample_mbt.c does this for the sample machine);
 *   - a real controller's test keeps its real handlers and arms its fault points and inputs
 *     in mbt_ops.arrange before each step, calling mbt_note_guard/mbt_note_action from the
 *     handlers (or not: then only state, result and arm are checked).
 * The runner is single-threaded, like the engine.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "fsm/fsm.h"

#define MBT_MAX_GUARDS 8

/* What the step's action is steered to return. */
enum mbt_act {
        MBT_ACT_NONE = 0, /* the arm has no action */
        MBT_ACT_OK,       /* 0 */
        MBT_ACT_FAIL,     /* a negative errno (MBT_FAULT_ERR from mbt_action) */
        MBT_ACT_PENDING,  /* FSM_PENDING */
};

/* The errno mbt_action returns for MBT_ACT_FAIL. */
#define MBT_FAULT_ERR (-EIO)
/* Expected return of a failure step: any negative errno (a controller picks its own). */
#define MBT_ERR_ANY INT16_MIN

struct mbt_guard_outcome {
        uint16_t guard; /* index into machine->guard_names */
        bool value;
};

/* One dispatch. Generated. */
struct mbt_step {
        uint16_t event;
        uint16_t from; /* state the step starts in */
        uint16_t arm;  /* machine-wide index of the arm that must decide */
        uint16_t n_guards;
        struct mbt_guard_outcome guards[MBT_MAX_GUARDS]; /* in the order they are asked */
        const char *action; /* the action that must run, NULL for none */
        uint8_t act;        /* enum mbt_act */
        uint8_t result;     /* enum fsm_result expected */
        int ret;            /* fsm_dispatch's expected return; MBT_ERR_ANY: any negative */
        uint16_t to;        /* state after */
};

struct mbt_case {
        const char *kind;           /* transition, reject, ignore, failure, pending */
        const char *const *targets; /* what the case covers, NULL-terminated */
        const struct mbt_step *steps;
        unsigned n_steps;
};

/* A spec's cases. Generated as `const struct mbt_suite <machine>_mbt`. */
struct mbt_suite {
        const struct fsm_machine *machine;
        const struct mbt_case *cases;
        unsigned n_cases;
        unsigned n_targets; /* targets before prefixes were merged */
};

/* How a test makes and steers instances. Every callback but make is optional. */
struct mbt_ops {
        /* A fresh instance of suite->machine in its initial state; the runner does not own it,
         * but renames it "<name>#<case>" for the case. Returns 0 or a negative errno (the case
         * fails). */
        int (*make)(void *userdata, struct fsm **ret_fsm);
        /* Called after each case with the instance make returned. */
        void (*destroy)(void *userdata, struct fsm *m);
        /* Called before each step: arm fault points, set inputs. Returns 0 or a negative errno. */
        int (*arrange)(void *userdata, struct fsm *m, const struct mbt_step *step);
        /* The event's argument for a step (NULL when absent). */
        void *(*event_arg)(void *userdata, const struct mbt_step *step);
};

struct mbt_options {
        const struct fsm_machine *machine; /* run against these tables instead (mutation tests) */
        bool quiet;                        /* print nothing per failure */
};

/*
 * Runs every case of a suite. Prints one line per failed case to out (unless quiet) and a
 * final "N passed, N failed" line. The runner is not reentrant. Returns the number of failed
 * cases (0: all passed). opts may be NULL.
 */
unsigned mbt_run(const struct mbt_suite *suite, const struct mbt_ops *ops, void *userdata,
                 const struct mbt_options *opts, FILE *out);

/* For steering handlers: the outcome the running step wants from guard `guard_id` (the
 * index in machine->guard_names), recorded as asked. Outside a step, or for a guard the step
 * does not expect, the case fails and false is returned. */
bool mbt_guard(unsigned guard_id);

/* mbt_guard by the guard's name in the spec. */
bool mbt_guard_named(const char *name);

/* For steering handlers: what action `name` must return now (0, MBT_FAULT_ERR or
 * FSM_PENDING), recorded as called. */
int mbt_action(const char *name);

/* For real handlers that are steered through mbt_ops.arrange: record the call only. */
void mbt_note_guard(unsigned guard_id, bool value);
void mbt_note_action(const char *name);

/* The step now running, or NULL. Borrowed. */
const struct mbt_step *mbt_current_step(void);

/*
 * The main of a generated-case test program: runs the suite with the process's coverage
 * recorder (FERRY_FSM_COVERAGE) and, with `--trace FILE`, a trace recorder; checks that the
 * cases reach every arm of the tables; then runs the cases against one mutant of the tables
 * per arm and outcome they exercise (target, error, kind, on_error or in-flight state changed),
 * each of which must make a case fail. Prints "N passed, N failed"; returns the exit status.
 */
int mbt_main(const struct mbt_suite *suite, const struct mbt_ops *ops, int argc, char **argv);
