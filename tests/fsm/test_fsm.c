/* SPDX-License-Identifier: MIT */
/* The runtime's rules, each checked through the sample machine generated from
 * tests/fsm/sample.yaml with the real generated tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fsm/cover.h"
#include "fsm/fsm.h"
#include "sample_fsm.h"
#include "util/status.h"
#include "util/util.h"

struct sample {
        struct fsm fsm;
        int budget;
        bool urgent;
        int begin_err;      /* begin returns this */
        int spend_err;      /* spend returns this */
        int halt_ret;       /* halt returns this: 0, FSM_PENDING or a negative errno */
        int raise_on_begin; /* begin raises this event on `raise_target` (-1: none) */
        int raise_count;    /* … this many times */
        int raise_err;      /* the first failed fsm_raise, and at which try */
        int raise_failed_at;
        struct fsm *raise_target;
        struct fsm *nested; /* begin dispatches `start` to this instance and records the result */
        int nested_result;
        unsigned nested_state_seen;
        bool busy_seen; /* fsm_busy(own instance) inside begin */
        int hook_op;    /* begin installs (1) or removes (2) the trace hook */
        char log[256];
};

static void record(const struct fsm_trace *rec, void *userdata);
static unsigned hook_calls;

static void logf_(struct sample *s, const char *what)
{
        size_t n = strlen(s->log);
        ferry_bprintf(s->log + n, sizeof(s->log) - n, "%s%s", n ? "," : "", what);
}

bool sample_guard_is_urgent(struct sample *s, void *arg)
{
        logf_(s, "g:urgent");
        return s->urgent;
}

bool sample_guard_has_budget(struct sample *s, void *arg)
{
        logf_(s, "g:budget");
        return s->budget > 0;
}

int sample_action_begin(struct sample *s, void *arg)
{
        logf_(s, "begin");
        /* during an action the machine is still in its source state */
        assert_int_equal(fsm_state(&s->fsm), SAMPLE_S_IDLE);
        for (int i = 0; s->raise_on_begin >= 0 && i < s->raise_count; i++) {
                int r = fsm_raise(s->raise_target, (unsigned)s->raise_on_begin, NULL);

                if (r < 0) {
                        s->raise_err = r;
                        s->raise_failed_at = i;
                        break;
                }
        }
        s->busy_seen = fsm_busy(&s->fsm);
        if (s->hook_op)
                fsm_set_trace(s->hook_op == 1 ? record : NULL,
                              s->hook_op == 1 ? &hook_calls : NULL);
        if (s->nested) {
                s->nested_result = fsm_dispatch(s->nested, SAMPLE_E_START, NULL, NULL);
                s->nested_state_seen = fsm_state(s->nested);
        }
        return s->begin_err;
}

int sample_action_work(struct sample *s, void *arg)
{
        logf_(s, "work");
        return 0;
}

int sample_action_spend(struct sample *s, void *arg)
{
        logf_(s, "spend");
        if (s->spend_err)
                return s->spend_err;
        s->budget--;
        return 0;
}

int sample_action_halt(struct sample *s, void *arg)
{
        logf_(s, "halt");
        return s->halt_ret;
}

int sample_action_note_stopped(struct sample *s, void *arg)
{
        logf_(s, "note_stopped");
        return 0;
}

int sample_action_cleanup(struct sample *s, void *arg)
{
        logf_(s, "cleanup");
        return 0;
}

static void sample_init(struct sample *s, const char *name)
{
        memset(s, 0, sizeof(*s));
        s->raise_on_begin = -1;
        s->raise_count = 1;
        fsm_init(&s->fsm, &sample_machine, s, name);
}

/* a trace recorder */
#define MAX_REC 64
static struct fsm_trace recs[MAX_REC];
static unsigned n_recs;

static void record(const struct fsm_trace *rec, void *userdata)
{
        struct fsm_cover *cover = fsm_cover_from_env(); /* FERRY_FSM_COVERAGE: spec coverage */

        if (cover)
                (void)fsm_cover_record(cover, rec);
        (*(unsigned *)userdata)++;
        if (n_recs < MAX_REC)
                recs[n_recs++] = *rec;
}

static int setup(void **state)
{
        n_recs = 0;
        hook_calls = 0;
        fsm_set_trace(record, &hook_calls);
        return 0;
}

static int teardown(void **state)
{
        fsm_set_trace(NULL, NULL);
        return 0;
}

static void test_init_is_initial(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_IDLE);
        assert_string_equal(fsm_state_name(&s.fsm), "idle");
        assert_true(sample_machine.state_flags[SAMPLE_S_IDLE] & FSM_STATE_INITIAL);
        assert_int_equal(sample_machine.initial, SAMPLE_S_IDLE);
}

static void test_action_success_takes_to(void **state)
{
        struct sample s;
        struct fsm_outcome o;

        sample_init(&s, "job");
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, &o), 0);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_RUNNING);
        assert_int_equal(o.result, FSM_RESULT_OK);
        assert_int_equal(o.from, SAMPLE_S_IDLE);
        assert_int_equal(o.to, SAMPLE_S_RUNNING);
        assert_null(o.message);
        assert_string_equal(s.log, "begin");
}

static void test_action_failure_takes_on_error(void **state)
{
        struct sample s;
        struct fsm_outcome o;

        sample_init(&s, "job");
        s.begin_err = -EIO;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, &o), -EIO);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_FAILED);
        assert_int_equal(o.result, FSM_RESULT_FAILED);
        assert_int_equal(o.err, -EIO);
        /* reset's action runs and returns to idle */
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_RESET, NULL, NULL), 0);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_IDLE);
}

static void test_on_error_stay_keeps_state(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL), 0);
        s.halt_ret = -ETIMEDOUT;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOP, NULL, NULL), -ETIMEDOUT);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_RUNNING);
}

static void test_guards_run_in_declared_order(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);

        /* first alternative passes: the second guard is never asked */
        s.log[0] = '\0';
        s.urgent = true;
        s.budget = 5;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, NULL), 0);
        assert_string_equal(s.log, "g:urgent,work");
        assert_int_equal(s.budget, 5);

        /* first fails, second passes */
        s.log[0] = '\0';
        s.urgent = false;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, NULL), 0);
        assert_string_equal(s.log, "g:urgent,g:budget,spend");
        assert_int_equal(s.budget, 4);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_RUNNING);
}

static void test_guard_else_rejects(void **state)
{
        struct sample s;
        struct fsm_outcome o;

        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        s.log[0] = '\0';
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, &o),
                         -FERRY_ERRNO_RESOURCE_EXHAUSTED);
        assert_int_equal(ferry_errno_to_code(o.err), FERRY_CODE_RESOURCE_EXHAUSTED);
        assert_int_equal(o.result, FSM_RESULT_REJECTED);
        assert_string_equal(o.message, "tick in running: budget spent");
        assert_string_equal(s.log, "g:urgent,g:budget");
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_RUNNING);
}

static void test_guarded_failure_takes_alternative_on_error(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        s.budget = 1;
        s.spend_err = -ENOSPC;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, NULL), -ENOSPC);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_PAUSED);
}

static void test_reject_leaves_state_and_calls_nothing(void **state)
{
        struct sample s;
        struct fsm_outcome o;

        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        fsm_dispatch(&s.fsm, SAMPLE_E_PAUSE, NULL, NULL);
        assert_true(fsm_is_frozen(&s.fsm));
        s.log[0] = '\0';
        s.urgent = true;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, &o),
                         -FERRY_ERRNO_FAILED_PRECONDITION);
        assert_int_equal(o.result, FSM_RESULT_REJECTED);
        assert_string_equal(o.message, "tick rejected: the job is paused");
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_PAUSED);
        assert_string_equal(s.log, ""); /* no guard, no action */
}

static void test_default_rejection_names_cell(void **state)
{
        struct sample s;
        struct fsm_outcome o;

        sample_init(&s, "job");
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_RESET, NULL, &o),
                         -FERRY_ERRNO_FAILED_PRECONDITION);
        assert_string_equal(o.message, "reset is not allowed in state idle");
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_IDLE);
}

/* The last rejection on the thread is kept for services that word a refusal, through the
 * inline fast path and the full dispatch alike; ignores and accepted calls leave it. */
static void test_rejection_is_kept_for_the_caller(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        fsm_rejection_forget();
        assert_null(fsm_rejection(-FERRY_ERRNO_FAILED_PRECONDITION));
        assert_int_equal(sample_dispatch(&s.fsm, SAMPLE_E_RESET, NULL),
                         -FERRY_ERRNO_FAILED_PRECONDITION);
        assert_string_equal(fsm_rejection(-FERRY_ERRNO_FAILED_PRECONDITION),
                            "reset is not allowed in state idle");
        /* another error class: the call failed elsewhere, the rejection is not its reason */
        assert_null(fsm_rejection(-EIO));
        assert_null(fsm_rejection(0));
        assert_int_equal(sample_dispatch(&s.fsm, SAMPLE_E_STOPPED, NULL), 0); /* ignored */
        assert_int_equal(sample_dispatch(&s.fsm, SAMPLE_E_START, NULL), 0);   /* taken */
        assert_string_equal(fsm_rejection(-FERRY_ERRNO_FAILED_PRECONDITION),
                            "reset is not allowed in state idle");
        fsm_rejection_forget();
        assert_null(fsm_rejection(-FERRY_ERRNO_FAILED_PRECONDITION));
        /* the full path, as under a trace hook */
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL),
                         -FERRY_ERRNO_FAILED_PRECONDITION);
        const char *msg = fsm_rejection(-FERRY_ERRNO_FAILED_PRECONDITION);
        assert_non_null(msg);
        assert_non_null(strstr(msg, "start"));
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_RUNNING);
}

static void test_ignore_changes_nothing(void **state)
{
        struct sample s;
        struct fsm_outcome o;

        sample_init(&s, "job");
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOPPED, NULL, &o), 0);
        assert_int_equal(o.result, FSM_RESULT_IGNORED);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_IDLE);
        assert_string_equal(s.log, "");
}

static void test_pending_rests_until_completion(void **state)
{
        struct sample s;
        struct fsm_outcome o;

        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        s.halt_ret = FSM_PENDING;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOP, NULL, &o), FSM_PENDING);
        assert_int_equal(o.result, FSM_RESULT_PENDING);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_STOPPING);
        assert_true(sample_machine.state_flags[SAMPLE_S_STOPPING] & FSM_STATE_INFLIGHT);
        /* calls in flight are rejected by default */
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL),
                         -FERRY_ERRNO_FAILED_PRECONDITION);
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOPPED, NULL, NULL), 0);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_IDLE);
        assert_string_equal(s.log, "begin,halt,note_stopped");
        /* a late completion is ignored */
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOPPED, NULL, &o), 0);
        assert_int_equal(o.result, FSM_RESULT_IGNORED);
}

static void test_pending_failure_completion(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        fsm_dispatch(&s.fsm, SAMPLE_E_PAUSE, NULL, NULL);
        s.halt_ret = FSM_PENDING;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOP, NULL, NULL), FSM_PENDING);
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOP_FAILED, NULL, NULL), 0);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_FAILED);
}

static void test_pending_synchronous_completion(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        s.halt_ret = 0; /* finished at once: the transition's own target */
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOP, NULL, NULL), 0);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_IDLE);
}

static void test_raised_event_runs_after_transition(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        s.raise_on_begin = SAMPLE_E_PAUSE;
        s.raise_target = &s.fsm;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL), 0);
        /* start → running completed first, then the queued pause ran in running */
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_PAUSED);
        assert_int_equal(n_recs, 2);
        assert_int_equal(recs[0].event, SAMPLE_E_START);
        assert_int_equal(recs[0].to, SAMPLE_S_RUNNING);
        assert_int_equal(recs[1].event, SAMPLE_E_PAUSE);
        assert_int_equal(recs[1].from, SAMPLE_S_RUNNING);
        assert_int_equal(recs[1].to, SAMPLE_S_PAUSED);
}

static void test_raise_to_other_instance_is_queued(void **state)
{
        struct sample a, b;

        sample_init(&a, "a");
        sample_init(&b, "b");
        a.raise_on_begin = SAMPLE_E_START;
        a.raise_target = &b.fsm;
        b.raise_on_begin = -1;
        assert_int_equal(fsm_dispatch(&a.fsm, SAMPLE_E_START, NULL, NULL), 0);
        assert_int_equal(fsm_state(&b.fsm), SAMPLE_S_RUNNING);
        assert_int_equal(n_recs, 2);
        assert_ptr_equal(recs[0].instance, &a.fsm);
        assert_ptr_equal(recs[1].instance, &b.fsm);
}

static void test_nested_dispatch_to_child_is_synchronous(void **state)
{
        struct sample parent, child;

        sample_init(&parent, "parent");
        sample_init(&child, "child");
        parent.nested = &child.fsm;
        child.begin_err = -EPERM;
        assert_int_equal(fsm_dispatch(&parent.fsm, SAMPLE_E_START, NULL, NULL), 0);
        /* the parent saw the child's result and state inside its own action */
        assert_int_equal(parent.nested_result, -EPERM);
        assert_int_equal(parent.nested_state_seen, SAMPLE_S_FAILED);
        assert_int_equal(n_recs, 2);
        assert_ptr_equal(recs[0].instance, &child.fsm); /* child finished first */
        assert_ptr_equal(recs[1].instance, &parent.fsm);
}

static void test_self_dispatch_inside_action_is_queued(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        s.nested = &s.fsm; /* begin dispatches start to itself */
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL), 0);
        assert_int_equal(s.nested_result, 0);                 /* queued */
        assert_int_equal(s.nested_state_seen, SAMPLE_S_IDLE); /* not run yet */
        /* the queued start ran in running, where the default rejects it */
        assert_int_equal(n_recs, 2);
        assert_int_equal(recs[1].result, FSM_RESULT_REJECTED);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_RUNNING);
}

static void test_trace_hook_sees_everything(void **state)
{
        struct sample s;
        uint64_t before = ferry_now_us();

        sample_init(&s, "job-7");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        fsm_dispatch(&s.fsm, SAMPLE_E_RESET, NULL, NULL);
        assert_int_equal(hook_calls, 2);
        assert_ptr_equal(recs[0].machine, &sample_machine);
        assert_string_equal(recs[0].instance->name, "job-7");
        assert_int_equal(recs[0].from, SAMPLE_S_IDLE);
        assert_int_equal(recs[0].event, SAMPLE_E_START);
        assert_int_equal(recs[0].to, SAMPLE_S_RUNNING);
        assert_int_equal(recs[0].result, FSM_RESULT_OK);
        assert_true(recs[0].time_us >= before);
        assert_true(recs[1].time_us >= recs[0].time_us);
        assert_int_equal(recs[1].result, FSM_RESULT_REJECTED);
        assert_int_equal(recs[1].err, -FERRY_ERRNO_FAILED_PRECONDITION);
        assert_int_equal(recs[1].to, SAMPLE_S_RUNNING);
        assert_string_equal(fsm_result_name(recs[1].result), "rejected");

        fsm_set_trace(NULL, NULL);
        fsm_dispatch(&s.fsm, SAMPLE_E_PAUSE, NULL, NULL);
        assert_int_equal(hook_calls, 2);
}

static void test_trace_arm_identifies_guard_outcomes(void **state)
{
        struct sample s;
        unsigned count;
        const struct fsm_arm *arms;

        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        s.budget = 1;
        fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, NULL);
        arms = fsm_cell_arm(&sample_machine, SAMPLE_S_RUNNING, SAMPLE_E_TICK, &count);
        assert_non_null(arms);
        assert_int_equal(count, 3);
        assert_int_equal(arms - sample_machine.arms,
                         (SAMPLE_S_RUNNING << sample_machine.ev_shift) + SAMPLE_E_TICK);
        assert_true((1u << sample_machine.ev_shift) >= SAMPLE_E__COUNT);
        assert_string_equal(sample_machine.guard_names[arms->guard_id], "is_urgent");
        /* the second arm (has_budget) decided */
        const struct fsm_arm *second = &sample_machine.arms[arms->next];
        assert_int_equal(recs[1].arm, arms->next);
        assert_string_equal(sample_machine.guard_names[second->guard_id], "has_budget");
        assert_null(sample_machine.arms[second->next].guard);
        assert_int_equal(sample_machine.arms[second->next].next, FSM_NONE);
}

static void test_wildcards_and_exceptions(void **state)
{
        struct sample s;
        struct fsm_outcome o;

        sample_init(&s, "job");
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_FINISH, NULL, NULL), 0);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_DONE);
        assert_true(fsm_is_terminal(&s.fsm));
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOPPED, NULL, &o),
                         -FERRY_ERRNO_FAILED_PRECONDITION);
        assert_string_equal(o.message, "stopped rejected: the job is done");

        /* stopping is excepted from finish: the default decides */
        sample_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        s.halt_ret = FSM_PENDING;
        fsm_dispatch(&s.fsm, SAMPLE_E_STOP, NULL, NULL);
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_FINISH, NULL, &o),
                         -FERRY_ERRNO_FAILED_PRECONDITION);
        assert_string_equal(o.message, "finish is not allowed in state stopping");
}

static void test_bad_event_and_state(void **state)
{
        struct sample s;

        sample_init(&s, "job");
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E__COUNT, NULL, NULL), -EINVAL);
        assert_int_equal(fsm_raise(&s.fsm, 999, NULL), -EINVAL);
        assert_int_equal(fsm_set_state(&s.fsm, SAMPLE_S__COUNT), -EINVAL);
        assert_int_equal(fsm_set_state(&s.fsm, SAMPLE_S_PAUSED), 0);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_PAUSED);
        assert_int_equal(n_recs, 0);
        assert_null(fsm_cell_arm(&sample_machine, SAMPLE_S__COUNT, 0, NULL));
}

static void test_queue_overflow_is_reported(void **state)
{
        struct sample s, t;

        sample_init(&s, "job");
        sample_init(&t, "peer");
        /* begin raises FSM_QUEUE_MAX + 1 events at the peer (ignored there): the last is refused */
        s.raise_on_begin = SAMPLE_E_STOPPED;
        s.raise_target = &t.fsm;
        s.raise_count = FSM_QUEUE_MAX + 1;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL), 0);
        assert_int_equal(s.raise_err, -ENOBUFS);
        assert_int_equal(s.raise_failed_at, FSM_QUEUE_MAX);
        /* the transition and every queued event ran */
        assert_int_equal(hook_calls, 1 + FSM_QUEUE_MAX);
        assert_int_equal(fsm_state(&s.fsm), SAMPLE_S_RUNNING);
        assert_int_equal(fsm_state(&t.fsm), SAMPLE_S_IDLE);
        /* and the queue is usable again */
        sample_init(&s, "job");
        s.raise_on_begin = SAMPLE_E_STOPPED;
        s.raise_target = &t.fsm;
        s.raise_count = FSM_QUEUE_MAX;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL), 0);
        assert_int_equal(s.raise_err, 0);
}

/* the generated inline <machine>_dispatch decides exactly as fsm_dispatch does */
static void test_inline_dispatch_matches(void **state)
{
        static const unsigned seq[] = {SAMPLE_E_TICK,   SAMPLE_E_START,   SAMPLE_E_TICK,
                                       SAMPLE_E_PAUSE,  SAMPLE_E_TICK,    SAMPLE_E_RESUME,
                                       SAMPLE_E_STOP,   SAMPLE_E_STOPPED, SAMPLE_E_START,
                                       SAMPLE_E_FINISH, SAMPLE_E_RESET};
        struct sample a, b;

        sample_init(&a, "a");
        sample_init(&b, "b");
        a.budget = b.budget = 1;
        a.halt_ret = b.halt_ret = FSM_PENDING;
        fsm_set_trace(NULL, NULL); /* no hook: the inline path runs */
        for (unsigned i = 0; i < ARRAY_SIZE(seq); i++) {
                int ra = fsm_dispatch(&a.fsm, seq[i], NULL, NULL);
                int rb = sample_dispatch(&b.fsm, seq[i], NULL);

                assert_int_equal(ra, rb);
                assert_int_equal(fsm_state(&a.fsm), fsm_state(&b.fsm));
        }
        assert_string_equal(a.log, b.log);
        assert_int_equal(sample_dispatch(&b.fsm, SAMPLE_E__COUNT, NULL), -EINVAL);

        /* with a hook installed the inline path hands over, so nothing escapes the trace */
        fsm_set_trace(record, &hook_calls);
        sample_init(&b, "b");
        assert_int_equal(sample_dispatch(&b.fsm, SAMPLE_E_START, NULL), 0);
        assert_int_equal(hook_calls, 1);
        /* events raised by an action run through the inline path are drained too */
        fsm_set_trace(NULL, NULL);
        sample_init(&b, "b");
        b.raise_on_begin = SAMPLE_E_PAUSE;
        b.raise_target = &b.fsm;
        assert_int_equal(sample_dispatch(&b.fsm, SAMPLE_E_START, NULL), 0);
        assert_int_equal(fsm_state(&b.fsm), SAMPLE_S_PAUSED);
}

/* The inline path marks its running instance through the thread's gate, not in the instance:
 * every rule about busy instances must hold as on the full path. */
static void test_inline_dispatch_busy_rules(void **state)
{
        struct sample a, b;

        fsm_set_trace(NULL, NULL);
        sample_init(&a, "a");
        assert_false(fsm_busy(&a.fsm));
        a.nested = &a.fsm; /* a's begin sends itself start: queued, run after begin */
        assert_int_equal(sample_dispatch(&a.fsm, SAMPLE_E_START, NULL), 0);
        assert_true(a.busy_seen);
        assert_int_equal(a.nested_result, 0);
        assert_int_equal(a.nested_state_seen, SAMPLE_S_IDLE);
        assert_int_equal(fsm_state(&a.fsm), SAMPLE_S_RUNNING);
        assert_false(fsm_busy(&a.fsm));
        assert_int_equal(fsm__rt.gate, 0);

        /* a (inline) runs b (full path, synchronous); b's begin sends a start, which waits
         * for a's transition to end and then is rejected in running */
        sample_init(&a, "a");
        sample_init(&b, "b");
        a.nested = &b.fsm;
        b.nested = &a.fsm;
        assert_int_equal(sample_dispatch(&a.fsm, SAMPLE_E_START, NULL), 0);
        assert_int_equal(a.nested_result, 0);
        assert_int_equal(a.nested_state_seen, SAMPLE_S_RUNNING);
        assert_true(b.busy_seen);
        assert_int_equal(b.nested_result, 0);                 /* queued */
        assert_int_equal(b.nested_state_seen, SAMPLE_S_IDLE); /* a had not moved yet */
        assert_int_equal(fsm_state(&a.fsm), SAMPLE_S_RUNNING);
        assert_int_equal(fsm__rt.gate, 0);

        /* fsm_raise from an inline action queues too */
        sample_init(&a, "a");
        a.raise_on_begin = SAMPLE_E_PAUSE;
        a.raise_target = &a.fsm;
        assert_int_equal(sample_dispatch(&a.fsm, SAMPLE_E_START, NULL), 0);
        assert_int_equal(a.raise_err, 0);
        assert_int_equal(fsm_state(&a.fsm), SAMPLE_S_PAUSED);
}

/* A hook installed or removed inside an action takes effect from the next dispatch on. */
static void test_hook_changed_inside_action(void **state)
{
        struct sample a;

        fsm_set_trace(NULL, NULL);
        hook_calls = 0;
        sample_init(&a, "a");
        a.hook_op = 1;
        assert_int_equal(sample_dispatch(&a.fsm, SAMPLE_E_START, NULL), 0);
        assert_int_equal(hook_calls, 0); /* that dispatch began untraced */
        assert_int_not_equal(fsm__rt.gate, 0);
        a.hook_op = 0;
        assert_int_equal(sample_dispatch(&a.fsm, SAMPLE_E_PAUSE, NULL), 0);
        assert_int_equal(hook_calls, 1);

        /* removed from inside a traced dispatch: the inline path is back on afterwards */
        sample_init(&a, "a");
        a.hook_op = 2;
        assert_int_equal(sample_dispatch(&a.fsm, SAMPLE_E_START, NULL), 0);
        assert_int_equal(hook_calls, 1); /* the hook left before its record was made */
        assert_int_equal(fsm__rt.gate, 0);
        assert_int_equal(fsm_state(&a.fsm), SAMPLE_S_RUNNING);
}

static void test_names(void **state)
{
        assert_int_equal(fsm_state_by_name(&sample_machine, "stopping"), SAMPLE_S_STOPPING);
        assert_int_equal(fsm_state_by_name(&sample_machine, "nope"), -ENOENT);
        assert_int_equal(fsm_event_by_name(&sample_machine, "stop_failed"), SAMPLE_E_STOP_FAILED);
        assert_int_equal(fsm_event_by_name(&sample_machine, "nope"), -ENOENT);
        assert_string_equal(fsm_event_name(&sample_machine, SAMPLE_E_RESUME), "resume");
        assert_null(fsm_event_name(&sample_machine, SAMPLE_E__COUNT));
        assert_int_equal(sample_machine.event_kinds[SAMPLE_E_FINISH], FSM_EVENT_EXTERNAL);
        assert_int_equal(sample_machine.event_kinds[SAMPLE_E_STOPPED], FSM_EVENT_COMPLETION);
        assert_int_equal(strlen(sample_machine.spec_hash), 16);
}

static void test_every_cell_ends_unguarded(void **state)
{
        for (unsigned s = 0; s < sample_machine.n_states; s++)
                for (unsigned e = 0; e < sample_machine.n_events; e++) {
                        unsigned n = 0, seen = 1;
                        const struct fsm_arm *a = fsm_cell_arm(&sample_machine, s, e, &n);

                        assert_true(n >= 1);
                        for (; a->next != FSM_NONE; a = &sample_machine.arms[a->next], seen++) {
                                assert_non_null(a->guard);
                                assert_true(a->next < sample_machine.n_arms);
                        }
                        assert_null(a->guard);
                        assert_int_equal(seen, n);
                }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_init_is_initial, setup, teardown),
            cmocka_unit_test_setup_teardown(test_action_success_takes_to, setup, teardown),
            cmocka_unit_test_setup_teardown(test_action_failure_takes_on_error, setup, teardown),
            cmocka_unit_test_setup_teardown(test_on_error_stay_keeps_state, setup, teardown),
            cmocka_unit_test_setup_teardown(test_guards_run_in_declared_order, setup, teardown),
            cmocka_unit_test_setup_teardown(test_guard_else_rejects, setup, teardown),
            cmocka_unit_test_setup_teardown(test_guarded_failure_takes_alternative_on_error, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_reject_leaves_state_and_calls_nothing, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_default_rejection_names_cell, setup, teardown),
            cmocka_unit_test_setup_teardown(test_rejection_is_kept_for_the_caller, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ignore_changes_nothing, setup, teardown),
            cmocka_unit_test_setup_teardown(test_pending_rests_until_completion, setup, teardown),
            cmocka_unit_test_setup_teardown(test_pending_failure_completion, setup, teardown),
            cmocka_unit_test_setup_teardown(test_pending_synchronous_completion, setup, teardown),
            cmocka_unit_test_setup_teardown(test_raised_event_runs_after_transition, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_raise_to_other_instance_is_queued, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_nested_dispatch_to_child_is_synchronous, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_self_dispatch_inside_action_is_queued, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_trace_hook_sees_everything, setup, teardown),
            cmocka_unit_test_setup_teardown(test_trace_arm_identifies_guard_outcomes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_wildcards_and_exceptions, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bad_event_and_state, setup, teardown),
            cmocka_unit_test_setup_teardown(test_queue_overflow_is_reported, setup, teardown),
            cmocka_unit_test_setup_teardown(test_inline_dispatch_matches, setup, teardown),
            cmocka_unit_test_setup_teardown(test_inline_dispatch_busy_rules, setup, teardown),
            cmocka_unit_test_setup_teardown(test_hook_changed_inside_action, setup, teardown),
            cmocka_unit_test_setup_teardown(test_names, setup, teardown),
            cmocka_unit_test_setup_teardown(test_every_cell_ends_unguarded, setup, teardown),
        };
        return cmocka_run_group_tests_name("fsm", tests, NULL, NULL);
}
