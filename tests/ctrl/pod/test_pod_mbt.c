/* SPDX-License-Identifier: MIT */
/*
 * The model-based cases generated from spec/pod.yaml (docs/testing.md), run against the real
 * generated tables with steering handlers: every guard and action asks the runner what the
 * current step needs. Then the same cases against mutants of the tables: every mutant must make
 * some case fail. This proves every transition, rejection, ignore, failure and pending path of
 * the pod table is what the spec says; the real handlers run on the sim backend in
 * test_pod.c.
 *
 *   test_pod_mbt [--trace FILE]
 */
#include <stdio.h>

#include "fsm/fsm.h"
#include "mbt.h"
#include "pod_fsm.h"

struct pod {
        struct fsm fsm;
};

bool pod_guard_container_known(struct pod *ctx, void *arg)
{
        return mbt_guard_named("container_known");
}

bool pod_guard_is_sandbox_container(struct pod *ctx, void *arg)
{
        return mbt_guard_named("is_sandbox_container");
}

bool pod_guard_containers_unpatched(struct pod *ctx, void *arg)
{
        return mbt_guard_named("containers_unpatched");
}

bool pod_guard_vm_running(struct pod *ctx, void *arg)
{
        return mbt_guard_named("vm_running");
}

int pod_action_attach_network(struct pod *ctx, void *arg)
{
        return mbt_action("attach_network");
}

int pod_action_import_state(struct pod *ctx, void *arg)
{
        return mbt_action("import_state");
}

int pod_action_add_container(struct pod *ctx, void *arg)
{
        return mbt_action("add_container");
}

int pod_action_remove_container(struct pod *ctx, void *arg)
{
        return mbt_action("remove_container");
}

int pod_action_setup_network(struct pod *ctx, void *arg)
{
        return mbt_action("setup_network");
}

int pod_action_teardown_network(struct pod *ctx, void *arg)
{
        return mbt_action("teardown_network");
}

int pod_action_save_pod(struct pod *ctx, void *arg)
{
        return mbt_action("save_pod");
}

int pod_action_patch_sandbox_container(struct pod *ctx, void *arg)
{
        return mbt_action("patch_sandbox_container");
}

int pod_action_patch_workload_container(struct pod *ctx, void *arg)
{
        return mbt_action("patch_workload_container");
}

int pod_action_resume_source(struct pod *ctx, void *arg)
{
        return mbt_action("resume_source");
}

int pod_action_resume_destination(struct pod *ctx, void *arg)
{
        return mbt_action("resume_destination");
}

int pod_action_teardown_active(struct pod *ctx, void *arg)
{
        return mbt_action("teardown_active");
}

int pod_action_answer(struct pod *ctx, void *arg)
{
        return mbt_action("answer");
}

int pod_action_discard_frozen(struct pod *ctx, void *arg)
{
        return mbt_action("discard_frozen");
}

extern const struct mbt_suite pod_mbt;

static struct pod instance;

static int make(void *userdata, struct fsm **ret_fsm)
{
        fsm_init(&instance.fsm, &pod_machine, &instance, "pod:mbt");
        *ret_fsm = &instance.fsm;
        return 0;
}

static const struct mbt_ops ops = {.make = make};

int main(int argc, char **argv)
{
        return mbt_main(&pod_mbt, &ops, argc, argv);
}
