/* SPDX-License-Identifier: MIT */
/*
 * The generated model-based cases of tests/fsm/sample.yaml (sample_mbt.c), run against the
 * real generated tables with steering handlers: every guard and action of the sample machine
 * asks the runner what the current step needs. Then the same cases against mutants of the
 * tables (one arm's target, error, kind, failure or in-flight state changed at a time): every
 * mutant must make some case fail, or the cases would not notice that bug. First, handlers
 * that misbehave (ask the wrong guard, run an action twice, ignore the steering) must make
 * cases fail, or the runner would not notice a broken controller.
 *
 *   test_sample_mbt [--trace FILE]   FILE: record the run's transition trace (fsm/trace.h)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/cover.h"
#include "fsm/fsm.h"
#include "mbt.h"
#include "sample_fsm.h"
#include "util/util.h"

struct sample {
        struct fsm fsm;
};

/* The harness's own check: handlers that misbehave must make cases fail. */
static enum { BEHAVE, WRONG_GUARD, ACTION_TWICE, IGNORE_STEERING } misbehave;

bool sample_guard_is_urgent(struct sample *s, void *arg)
{
        return mbt_guard_named(misbehave == WRONG_GUARD ? "has_budget" : "is_urgent");
}

bool sample_guard_has_budget(struct sample *s, void *arg)
{
        return mbt_guard_named("has_budget");
}

int sample_action_begin(struct sample *s, void *arg)
{
        return mbt_action("begin");
}

int sample_action_work(struct sample *s, void *arg)
{
        int r = mbt_action("work");

        return misbehave == IGNORE_STEERING ? -EIO : r;
}

int sample_action_spend(struct sample *s, void *arg)
{
        return mbt_action("spend");
}

int sample_action_halt(struct sample *s, void *arg)
{
        return mbt_action("halt");
}

int sample_action_note_stopped(struct sample *s, void *arg)
{
        return mbt_action("note_stopped");
}

int sample_action_cleanup(struct sample *s, void *arg)
{
        if (misbehave == ACTION_TWICE)
                (void)mbt_action("cleanup");
        return mbt_action("cleanup");
}

extern const struct mbt_suite sample_mbt;

static struct sample instance;

static int make(void *userdata, struct fsm **ret_fsm)
{
        fsm_init(&instance.fsm, &sample_machine, &instance, "sample:mbt");
        *ret_fsm = &instance.fsm;
        return 0;
}

static const struct mbt_ops ops = {.make = make};

int main(int argc, char **argv)
{
        static const char *const names[] = {"", "a wrong guard", "an action run twice",
                                            "an action that ignores its steering"};

        for (misbehave = WRONG_GUARD; misbehave <= IGNORE_STEERING; misbehave++) {
                unsigned f = mbt_run(&sample_mbt, &ops, NULL, &(struct mbt_options){.quiet = true}, NULL);

                printf("harness: handlers with %s fail %u case(s)\n", names[misbehave], f);
                if (f == 0) {
                        printf("0 passed, 1 failed\n");
                        return 1;
                }
        }
        misbehave = BEHAVE;
        return mbt_main(&sample_mbt, &ops, argc, argv);
}
