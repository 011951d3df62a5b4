/* SPDX-License-Identifier: MIT */
/* The generated model-based cases of tests/fsm/bench.yaml (bench_mbt.c) with steering
 * handlers; see test_sample_mbt.c. */
#include "bench_fsm.h"
#include "fsm/fsm.h"
#include "mbt.h"

struct bench {
        struct fsm fsm;
};

bool bench_guard_coin_valid(struct bench *b, void *arg)
{
        return mbt_guard_named("coin_valid");
}

int bench_action_accept(struct bench *b, void *arg)
{
        return mbt_action("accept");
}

int bench_action_refund(struct bench *b, void *arg)
{
        return mbt_action("refund");
}

int bench_action_pass(struct bench *b, void *arg)
{
        return mbt_action("pass");
}

int bench_action_alarm(struct bench *b, void *arg)
{
        return mbt_action("alarm");
}

int bench_action_repair(struct bench *b, void *arg)
{
        return mbt_action("repair");
}

extern const struct mbt_suite bench_mbt;

static struct bench instance;

static int make(void *userdata, struct fsm **ret_fsm)
{
        fsm_init(&instance.fsm, &bench_machine, &instance, "bench:mbt");
        *ret_fsm = &instance.fsm;
        return 0;
}

static const struct mbt_ops ops = {.make = make};

int main(int argc, char **argv)
{
        return mbt_main(&bench_mbt, &ops, argc, argv);
}
