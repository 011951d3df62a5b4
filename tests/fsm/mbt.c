/* SPDX-License-Identifier: MIT */
#include "mbt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fsm/cover.h"
#include "fsm/trace.h"
#include "util/util.h"

/* The runner's state while a step runs: one runner per process, on the engine's thread. */
static struct {
        const struct fsm_machine *machine;
        const struct mbt_step *step;
        unsigned n_asked;   /* guards asked in this step */
        unsigned n_actions; /* actions called in this step */
        const char *action; /* the last one */
        bool failed;
        char why[512];
        char name[128]; /* the instance's name for this case */
} run;

static void fail(const char *fmt, ...) _printf_(1, 2);

static void fail(const char *fmt, ...)
{
        va_list ap;

        if (run.failed)
                return; /* the first problem explains the case */
        run.failed = true;
        va_start(ap, fmt);
        (void)vsnprintf(run.why, sizeof(run.why), fmt, ap);
        va_end(ap);
}

static const char *guard_name(unsigned id)
{
        return run.machine && id < run.machine->n_guards ? run.machine->guard_names[id] : "?";
}

void mbt_note_guard(unsigned guard_id, bool value)
{
        const struct mbt_step *st = run.step;

        if (!st) {
                fail("guard %s asked outside a step", guard_name(guard_id));
                return;
        }
        if (run.n_asked >= st->n_guards)
                fail("guard %s asked, but the step expects only %u guard(s)", guard_name(guard_id),
                     st->n_guards);
        else if (st->guards[run.n_asked].guard != guard_id)
                fail("guard %s asked where %s was expected", guard_name(guard_id),
                     guard_name(st->guards[run.n_asked].guard));
        run.n_asked++;
}

bool mbt_guard(unsigned guard_id)
{
        const struct mbt_step *st = run.step;
        unsigned i = run.n_asked;

        mbt_note_guard(guard_id, false);
        if (!st || i >= st->n_guards || st->guards[i].guard != guard_id)
                return false;
        return st->guards[i].value;
}

void mbt_note_action(const char *name)
{
        const struct mbt_step *st = run.step;

        if (!st) {
                fail("action %s called outside a step", name);
                return;
        }
        run.n_actions++;
        run.action = name;
        if (!st->action)
                fail("action %s called, but the step's arm has none", name);
        else if (strcmp(st->action, name) != 0)
                fail("action %s called where %s was expected", name, st->action);
}

int mbt_action(const char *name)
{
        const struct mbt_step *st = run.step;

        mbt_note_action(name);
        if (!st)
                return 0;
        switch (st->act) {
        case MBT_ACT_FAIL:
                return MBT_FAULT_ERR;
        case MBT_ACT_PENDING:
                return FSM_PENDING;
        default:
                return 0;
        }
}

bool mbt_guard_named(const char *name)
{
        for (unsigned i = 0; run.machine && i < run.machine->n_guards; i++)
                if (strcmp(run.machine->guard_names[i], name) == 0)
                        return mbt_guard(i);
        fail("unknown guard %s asked", name);
        return false;
}

const struct mbt_step *mbt_current_step(void)
{
        return run.step;
}

static const char *state_name(const struct fsm_machine *mc, unsigned s)
{
        return s < mc->n_states ? mc->state_names[s] : "?";
}

/* One step; problems go to fail(). */
static void run_step(const struct mbt_step *st, struct fsm *m, const struct mbt_ops *ops,
                     void *userdata, bool strict)
{
        const struct fsm_machine *mc = run.machine;
        struct fsm_outcome o = {0};
        void *arg = NULL;
        int r;

        if (fsm_state(m) != st->from) {
                fail("step %s starts in %s, expected %s", fsm_event_name(mc, st->event),
                     state_name(mc, fsm_state(m)), state_name(mc, st->from));
                return;
        }
        run.step = st;
        run.n_asked = 0;
        run.n_actions = 0;
        run.action = NULL;
        if (ops->arrange) {
                r = ops->arrange(userdata, m, st);
                if (r < 0) {
                        fail("arrange failed: %s", strerror(-r));
                        run.step = NULL;
                        return;
                }
        }
        if (ops->event_arg)
                arg = ops->event_arg(userdata, st);
        r = fsm_dispatch(m, st->event, arg, &o);
        run.step = NULL;

        if (st->ret == MBT_ERR_ANY && r >= 0)
                fail("returned %d, expected a negative errno", r);
        else if (st->ret != MBT_ERR_ANY && r != st->ret)
                fail("returned %d, expected %d", r, st->ret);
        if (o.result != st->result)
                fail("result %s, expected %s", fsm_result_name(o.result),
                     fsm_result_name((enum fsm_result)st->result));
        if (o.arm != st->arm)
                fail("decided by arm %u (line %u), expected arm %u (line %u)", o.arm,
                     o.arm < mc->n_arms ? mc->arms[o.arm].line : 0, st->arm,
                     st->arm < mc->n_arms ? mc->arms[st->arm].line : 0);
        if (fsm_state(m) != st->to)
                fail("ended in %s, expected %s", state_name(mc, fsm_state(m)),
                     state_name(mc, st->to));
        if (strict) {
                if (run.n_asked != st->n_guards)
                        fail("%u guard(s) asked, expected %u", run.n_asked, st->n_guards);
                if (run.n_actions != (st->action ? 1u : 0u))
                        fail("%u action call(s), expected %s", run.n_actions,
                             st->action ? st->action : "none");
        }
}

unsigned mbt_run(const struct mbt_suite *suite, const struct mbt_ops *ops, void *userdata,
                 const struct mbt_options *opts, FILE *out)
{
        const struct fsm_machine *mc = opts && opts->machine ? opts->machine : suite->machine;
        bool quiet = opts && opts->quiet;
        unsigned passed = 0, failed = 0;

        for (unsigned i = 0; i < suite->n_cases; i++) {
                const struct mbt_case *c = &suite->cases[i];
                struct fsm *m = NULL;
                unsigned k = 0;
                int r;

                memset(&run, 0, sizeof(run));
                run.machine = mc;
                r = ops->make(userdata, &m);
                if (r < 0 || !m) {
                        fail("make failed: %s", strerror(r < 0 ? -r : EINVAL));
                } else {
                        /* mutation tests swap the tables under the same handlers */
                        m->machine = mc;
                        /* a fresh instance per case: a name per case keeps a recorded
                         * trace's chains apart */
                        (void)ferry_bprintf(run.name, sizeof(run.name), "%s#%u",
                                            m->name ? m->name : "mbt", i);
                        m->name = run.name;
                        for (k = 0; k < c->n_steps && !run.failed; k++)
                                run_step(&c->steps[k], m, ops, userdata, ops->arrange == NULL);
                }
                if (m && ops->destroy)
                        ops->destroy(userdata, m);
                if (!run.failed) {
                        passed++;
                        continue;
                }
                failed++;
                if (!quiet && out)
                        fprintf(out, "FAIL %s case %u (%s: %s), step %u of %u: %s\n",
                                suite->machine->name, i, c->kind,
                                c->targets[0] ? c->targets[0] : "?", k, c->n_steps, run.why);
        }
        if (out)
                fprintf(out, "%s: %u passed, %u failed\n", suite->machine->name, passed, failed);
        return failed;
}

/* The run's own hook: the process's coverage recorder and an optional trace file. */
static struct fsm_cover *hook_cover;
static FILE *hook_trace;

static void hook(const struct fsm_trace *rec, void *userdata)
{
        if (hook_cover)
                (void)fsm_cover_record(hook_cover, rec);
        if (hook_trace)
                (void)fsm_trace_write(hook_trace, rec);
}

static void mbt_install_hooks(FILE *trace)
{
        hook_cover = fsm_cover_from_env();
        hook_trace = trace;
        fsm_set_trace(hook_cover || hook_trace ? hook : NULL, NULL);
}

static void mbt_saved_hooks(fsm_trace_fn *ret_fn, void **ret_userdata)
{
        *ret_fn = hook_cover || hook_trace ? hook : NULL;
        *ret_userdata = NULL;
}

static bool is_pad(const struct fsm_machine *mc, unsigned i)
{
        unsigned stride = 1u << mc->ev_shift;

        return i < ((unsigned)mc->n_states << mc->ev_shift) && (i & (stride - 1)) >= mc->n_events;
}

/* Does some step decide by arm `arm` with action outcome `act` (MBT_ACT_NONE: any)? */
static bool suite_uses(const struct mbt_suite *suite, unsigned arm, int act)
{
        for (unsigned i = 0; i < suite->n_cases; i++)
                for (unsigned k = 0; k < suite->cases[i].n_steps; k++) {
                        const struct mbt_step *st = &suite->cases[i].steps[k];

                        if (st->arm == arm && (act == MBT_ACT_NONE || st->act == act))
                                return true;
                }
        return false;
}

#define MBT_MAX_ARMS 4096

/* One mutant: arm `i` changed by `mutate`; true when some case failed (the mutant is killed). */
static bool killed(const struct mbt_suite *suite, const struct mbt_ops *ops,
                   const struct fsm_arm *mutant_arm, unsigned i)
{
        static struct fsm_arm arms[MBT_MAX_ARMS];
        struct fsm_machine mc = *suite->machine;

        memcpy(arms, mc.arms, mc.n_arms * sizeof(arms[0]));
        arms[i] = *mutant_arm;
        mc.arms = arms;
        return mbt_run(suite, ops, NULL, &(struct mbt_options){.machine = &mc, .quiet = true},
                       NULL) > 0;
}

int mbt_main(const struct mbt_suite *suite, const struct mbt_ops *ops, int argc, char **argv)
{
        const struct fsm_machine *mc = suite->machine;
        unsigned passed = 0, failed = 0, reached = 0, real = 0, mutants = 0, kills = 0;
        FILE *trace = NULL;
        fsm_trace_fn saved_fn;
        void *saved_ud;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc) {
                        trace = fopen(argv[++i], "we");
                        if (!trace) {
                                fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                                return 2;
                        }
                } else {
                        fprintf(stderr, "usage: %s [--trace FILE]\n", argv[0]);
                        return 2;
                }
        }
        mbt_install_hooks(trace);

        /* 1. the generated cases on the real tables */
        if (mbt_run(suite, ops, NULL, NULL, stdout) == 0)
                passed++;
        else
                failed++;

        /* 2. every arm of the tables is the target of some step */
        for (unsigned i = 0; i < mc->n_arms; i++) {
                if (is_pad(mc, i))
                        continue;
                real++;
                if (suite_uses(suite, i, MBT_ACT_NONE))
                        reached++;
                else
                        printf("FAIL %s: arm %u (line %u) is reached by no case\n", mc->name, i,
                               mc->arms[i].line);
        }
        printf("%s: %u of %u arms reached by %u cases (%u targets)\n", mc->name, reached, real,
               suite->n_cases, suite->n_targets);
        if (reached == real)
                passed++;
        else
                failed++;

        /* 3. mutants: without the hooks, so they count no coverage and record no trace */
        mbt_saved_hooks(&saved_fn, &saved_ud);
        fsm_set_trace(NULL, NULL);
        if (mc->n_arms > MBT_MAX_ARMS) {
                printf("FAIL %s: %u arms, mutation tests handle %u\n", mc->name, mc->n_arms,
                       MBT_MAX_ARMS);
                failed++;
        } else {
                for (unsigned i = 0; i < mc->n_arms; i++) {
                        const struct fsm_arm *a = &mc->arms[i];
                        struct fsm_arm mut[4];
                        const char *what[4];
                        unsigned n = 0;

                        if (is_pad(mc, i) || !suite_uses(suite, i, MBT_ACT_NONE))
                                continue;
                        if (a->kind == FSM_TRANSITION) {
                                mut[n] = *a;
                                mut[n].to = (uint16_t)((a->to + 1) % mc->n_states);
                                what[n++] = "to";
                                mut[n] = *a;
                                mut[n].kind = FSM_IGNORE;
                                what[n++] = "kind";
                                if (suite_uses(suite, i, MBT_ACT_FAIL)) {
                                        mut[n] = *a;
                                        mut[n].on_error =
                                            (uint16_t)((a->on_error + 1) % mc->n_states);
                                        what[n++] = "on_error";
                                }
                                if (suite_uses(suite, i, MBT_ACT_PENDING)) {
                                        mut[n] = *a;
                                        mut[n].pending =
                                            (uint16_t)((a->pending + 1) % mc->n_states);
                                        what[n++] = "pending";
                                }
                        } else if (a->kind == FSM_REJECT) {
                                mut[n] = *a;
                                mut[n].err = (int16_t)(a->err == -EFAULT ? -EPERM : -EFAULT);
                                what[n++] = "err";
                                mut[n] = *a;
                                mut[n].kind = FSM_IGNORE;
                                what[n++] = "kind";
                        } else {
                                mut[n] = *a;
                                mut[n].kind = FSM_REJECT;
                                mut[n].err = -EFAULT;
                                what[n++] = "kind";
                        }
                        for (unsigned k = 0; k < n; k++) {
                                mutants++;
                                if (killed(suite, ops, &mut[k], i))
                                        kills++;
                                else
                                        printf("FAIL %s: mutant arm %u (line %u) %s survives every "
                                               "case\n",
                                               mc->name, i, a->line, what[k]);
                        }
                }
                printf("%s: %u of %u mutants of the tables killed\n", mc->name, kills, mutants);
                if (kills == mutants && mutants > 0)
                        passed++;
                else
                        failed++;
        }
        fsm_set_trace(saved_fn, saved_ud);
        if (trace && fclose(trace) != 0) {
                printf("FAIL writing the trace: %s\n", strerror(errno));
                failed++;
        }
        printf("%u passed, %u failed\n", passed, failed);
        return failed ? 1 : 0;
}
