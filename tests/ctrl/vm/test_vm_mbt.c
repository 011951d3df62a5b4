/* SPDX-License-Identifier: MIT */
/*
 * The model-based cases generated from spec/vm.yaml (docs/testing.md), run against the real
 * generated tables with steering handlers: every guard and action asks the runner what the
 * current step needs. Then the same cases against mutants of the tables: every mutant must make
 * some case fail. This proves every transition, rejection, ignore, failure and pending path of
 * the VM table is what the spec says; the real handlers run on the sim backend in
 * test_vm.c.
 *
 *   test_vm_mbt [--trace FILE]
 */
#include <stdio.h>

#include "fsm/fsm.h"
#include "mbt.h"
#include "vm_fsm.h"

struct vm {
        struct fsm fsm;
};

bool vm_guard_is_migratable(struct vm *ctx, void *arg)
{
        return mbt_guard_named("is_migratable");
}

bool vm_guard_finalize_began_in_source_initialized(struct vm *ctx, void *arg)
{
        return mbt_guard_named("finalize_began_in_source_initialized");
}

bool vm_guard_finalize_began_in_source_started(struct vm *ctx, void *arg)
{
        return mbt_guard_named("finalize_began_in_source_started");
}

bool vm_guard_finalize_began_in_destination_created(struct vm *ctx, void *arg)
{
        return mbt_guard_named("finalize_began_in_destination_created");
}

bool vm_guard_finalize_began_in_destination_patched(struct vm *ctx, void *arg)
{
        return mbt_guard_named("finalize_began_in_destination_patched");
}

bool vm_guard_finalize_began_in_destination_started(struct vm *ctx, void *arg)
{
        return mbt_guard_named("finalize_began_in_destination_started");
}

int vm_action_create_system(struct vm *ctx, void *arg)
{
        return mbt_action("create_system");
}

int vm_action_start_system(struct vm *ctx, void *arg)
{
        return mbt_action("start_system");
}

int vm_action_apply_update(struct vm *ctx, void *arg)
{
        return mbt_action("apply_update");
}

int vm_action_run_query(struct vm *ctx, void *arg)
{
        return mbt_action("run_query");
}

int vm_action_query_stats(struct vm *ctx, void *arg)
{
        return mbt_action("query_stats");
}

int vm_action_pause_system(struct vm *ctx, void *arg)
{
        return mbt_action("pause_system");
}

int vm_action_resume_paused_system(struct vm *ctx, void *arg)
{
        return mbt_action("resume_paused_system");
}

int vm_action_open_notification_stream(struct vm *ctx, void *arg)
{
        return mbt_action("open_notification_stream");
}

int vm_action_initialize_migration(struct vm *ctx, void *arg)
{
        return mbt_action("initialize_migration");
}

int vm_action_save_state(struct vm *ctx, void *arg)
{
        return mbt_action("save_state");
}

int vm_action_start_source_migration(struct vm *ctx, void *arg)
{
        return mbt_action("start_source_migration");
}

int vm_action_clear_guest_migrating(struct vm *ctx, void *arg)
{
        return mbt_action("clear_guest_migrating");
}

int vm_action_transfer_source(struct vm *ctx, void *arg)
{
        return mbt_action("transfer_source");
}

int vm_action_transfer_destination(struct vm *ctx, void *arg)
{
        return mbt_action("transfer_destination");
}

int vm_action_import_state(struct vm *ctx, void *arg)
{
        return mbt_action("import_state");
}

int vm_action_create_destination_system(struct vm *ctx, void *arg)
{
        return mbt_action("create_destination_system");
}

int vm_action_grant_disk_access(struct vm *ctx, void *arg)
{
        return mbt_action("grant_disk_access");
}

int vm_action_start_destination_system(struct vm *ctx, void *arg)
{
        return mbt_action("start_destination_system");
}

int vm_action_finalize_migration_resume(struct vm *ctx, void *arg)
{
        return mbt_action("finalize_migration_resume");
}

int vm_action_finalize_migration_stop(struct vm *ctx, void *arg)
{
        return mbt_action("finalize_migration_stop");
}

int vm_action_resume_after_migration(struct vm *ctx, void *arg)
{
        return mbt_action("resume_after_migration");
}

int vm_action_cancel_migration(struct vm *ctx, void *arg)
{
        return mbt_action("cancel_migration");
}

int vm_action_discard_import(struct vm *ctx, void *arg)
{
        return mbt_action("discard_import");
}

int vm_action_close_unstarted_system(struct vm *ctx, void *arg)
{
        return mbt_action("close_unstarted_system");
}

int vm_action_terminate_system(struct vm *ctx, void *arg)
{
        return mbt_action("terminate_system");
}

int vm_action_note_exit(struct vm *ctx, void *arg)
{
        return mbt_action("note_exit");
}

int vm_action_note_exit_while_stopping(struct vm *ctx, void *arg)
{
        return mbt_action("note_exit_while_stopping");
}

int vm_action_close_exited_system(struct vm *ctx, void *arg)
{
        return mbt_action("close_exited_system");
}

extern const struct mbt_suite vm_mbt;

static struct vm instance;

static int make(void *userdata, struct fsm **ret_fsm)
{
        fsm_init(&instance.fsm, &vm_machine, &instance, "vm:mbt");
        *ret_fsm = &instance.fsm;
        return 0;
}

static const struct mbt_ops ops = {.make = make};

int main(int argc, char **argv)
{
        return mbt_main(&vm_mbt, &ops, argc, argv);
}
