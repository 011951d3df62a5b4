/* SPDX-License-Identifier: MIT */
/*
 * The model-based cases generated from spec/migration.yaml (docs/testing.md), run against the
 * real generated tables with steering handlers: every guard and action asks the runner what the
 * current step needs. Then the same cases against mutants of the tables: every mutant must make
 * some case fail. This proves every transition, rejection, ignore, failure and pending path of
 * the session table is what the spec says; the real handlers run end to end in
 * test_session.c, test_vm_ops.c and test_service.c.
 *
 *   test_migration_mbt [--trace FILE]
 */
#include <stdio.h>

#include "fsm/fsm.h"
#include "mbt.h"
#include "migration_fsm.h"

struct mig_session {
        struct fsm fsm;
};

bool migration_guard_session_mismatch(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("session_mismatch");
}

bool migration_guard_vm_not_created(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("vm_not_created");
}

bool migration_guard_patches_pending(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("patches_pending");
}

bool migration_guard_vm_terminated(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("vm_terminated");
}

bool migration_guard_vm_finalized(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("vm_finalized");
}

bool migration_guard_is_destination(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("is_destination");
}

bool migration_guard_hcs_nothing_to_cancel(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("hcs_nothing_to_cancel");
}

bool migration_guard_finalize_began_in_cancelled(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("finalize_began_in_cancelled");
}

bool migration_guard_finalize_began_in_failed(struct mig_session *ctx, void *arg)
{
        return mbt_guard_named("finalize_began_in_failed");
}

int migration_action_initialize_source(struct mig_session *ctx, void *arg)
{
        return mbt_action("initialize_source");
}

int migration_action_forget_session(struct mig_session *ctx, void *arg)
{
        return mbt_action("forget_session");
}

int migration_action_note_nothing_to_cancel(struct mig_session *ctx, void *arg)
{
        return mbt_action("note_nothing_to_cancel");
}

int migration_action_export_sandbox(struct mig_session *ctx, void *arg)
{
        return mbt_action("export_sandbox");
}

int migration_action_import_sandbox(struct mig_session *ctx, void *arg)
{
        return mbt_action("import_sandbox");
}

int migration_action_patch_container(struct mig_session *ctx, void *arg)
{
        return mbt_action("patch_container");
}

int migration_action_prepare_destination_vm(struct mig_session *ctx, void *arg)
{
        return mbt_action("prepare_destination_vm");
}

int migration_action_adopt_socket(struct mig_session *ctx, void *arg)
{
        return mbt_action("adopt_socket");
}

int migration_action_adopt_socket_and_start_transfer(struct mig_session *ctx, void *arg)
{
        return mbt_action("adopt_socket_and_start_transfer");
}

int migration_action_wait_for_socket(struct mig_session *ctx, void *arg)
{
        return mbt_action("wait_for_socket");
}

int migration_action_start_transfer(struct mig_session *ctx, void *arg)
{
        return mbt_action("start_transfer");
}

int migration_action_report_failure(struct mig_session *ctx, void *arg)
{
        return mbt_action("report_failure");
}

int migration_action_cancel_migration(struct mig_session *ctx, void *arg)
{
        return mbt_action("cancel_migration");
}

int migration_action_finalize_and_resume(struct mig_session *ctx, void *arg)
{
        return mbt_action("finalize_and_resume");
}

int migration_action_resume_sandbox(struct mig_session *ctx, void *arg)
{
        return mbt_action("resume_sandbox");
}

int migration_action_finalize_and_stop(struct mig_session *ctx, void *arg)
{
        return mbt_action("finalize_and_stop");
}

int migration_action_terminate_vm(struct mig_session *ctx, void *arg)
{
        return mbt_action("terminate_vm");
}

int migration_action_report_vm_gone(struct mig_session *ctx, void *arg)
{
        return mbt_action("report_vm_gone");
}

int migration_action_release_session(struct mig_session *ctx, void *arg)
{
        return mbt_action("release_session");
}

int migration_action_subscribe(struct mig_session *ctx, void *arg)
{
        return mbt_action("subscribe");
}

extern const struct mbt_suite migration_mbt;

static struct mig_session instance;

static int make(void *userdata, struct fsm **ret_fsm)
{
        fsm_init(&instance.fsm, &migration_machine, &instance, "migration:mbt");
        *ret_fsm = &instance.fsm;
        return 0;
}

static const struct mbt_ops ops = {.make = make};

int main(int argc, char **argv)
{
        return mbt_main(&migration_mbt, &ops, argc, argv);
}
