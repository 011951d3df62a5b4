/* SPDX-License-Identifier: MIT */
/*
 * The model-based cases generated from spec/scsi.yaml, spec/scsi_disk.yaml and
 * spec/scsi_mount.yaml (docs/testing.md), run against the real generated tables with steering
 * handlers: every guard and action asks the runner what the current step needs. Then the same
 * cases against mutants of the tables (one arm's target, error, kind, failure or in-flight state
 * changed at a time): every mutant must make some case fail. The real handlers are exercised on
 * the sim backend by test_scsi.c; this program proves the tables are what the specs say.
 *
 *   test_scsi_mbt {scsi|scsi_disk|scsi_mount} [--trace FILE]
 */
#include <stdio.h>
#include <string.h>

#include "fsm/fsm.h"
#include "mbt.h"
#include "scsi_disk_fsm.h"
#include "scsi_fsm.h"
#include "scsi_mount_fsm.h"

struct scsi_ctrl {
        struct fsm fsm;
};

struct scsi_disk {
        struct fsm fsm;
};

struct scsi_mount {
        struct fsm fsm;
};

int scsi_action_reserve(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("reserve");
}

int scsi_action_map(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("map");
}

int scsi_action_unmap(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("unmap");
}

int scsi_action_save_all(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("save_all");
}

int scsi_action_save_again(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("save_again");
}

int scsi_action_import_all(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("import_all");
}

int scsi_action_patch_disk(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("patch_disk");
}

int scsi_action_unfreeze(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("unfreeze");
}

int scsi_action_bind(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("bind");
}

int scsi_action_drop(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("drop");
}

int scsi_action_release(struct scsi_ctrl *ctx, void *arg)
{
        return mbt_action("release");
}

bool scsi_disk_guard_has_mounts(struct scsi_disk *ctx, void *arg)
{
        return mbt_guard_named("has_mounts");
}

bool scsi_disk_guard_was_attached(struct scsi_disk *ctx, void *arg)
{
        return mbt_guard_named("was_attached");
}

bool scsi_disk_guard_pinned(struct scsi_disk *ctx, void *arg)
{
        return mbt_guard_named("pinned");
}

int scsi_disk_action_reserve_partition(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("reserve_partition");
}

int scsi_disk_action_begin_attach(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("begin_attach");
}

int scsi_disk_action_adopt(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("adopt");
}

int scsi_disk_action_mark_attached(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("mark_attached");
}

int scsi_disk_action_mark_removed(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("mark_removed");
}

int scsi_disk_action_reply_error(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("reply_error");
}

int scsi_disk_action_fail_attach(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("fail_attach");
}

int scsi_disk_action_mount_partition(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("mount_partition");
}

int scsi_disk_action_unmount_partition(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("unmount_partition");
}

int scsi_disk_action_drop_mount(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("drop_mount");
}

int scsi_disk_action_begin_remove(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("begin_remove");
}

int scsi_disk_action_free_slot(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("free_slot");
}

int scsi_disk_action_save_reserved(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("save_reserved");
}

int scsi_disk_action_save_attached(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("save_attached");
}

int scsi_disk_action_save_again(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("save_again");
}

int scsi_disk_action_import_disk(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("import_disk");
}

int scsi_disk_action_update_host_path(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("update_host_path");
}

int scsi_disk_action_unfreeze(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("unfreeze");
}

int scsi_disk_action_bind(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("bind");
}

int scsi_disk_action_drop(struct scsi_disk *ctx, void *arg)
{
        return mbt_action("drop");
}

bool scsi_mount_guard_configs_equal(struct scsi_mount *ctx, void *arg)
{
        return mbt_guard_named("configs_equal");
}

bool scsi_mount_guard_last_reference(struct scsi_mount *ctx, void *arg)
{
        return mbt_guard_named("last_reference");
}

bool scsi_mount_guard_was_mounted(struct scsi_mount *ctx, void *arg)
{
        return mbt_guard_named("was_mounted");
}

int scsi_mount_action_add_reference(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("add_reference");
}

int scsi_mount_action_drop_reference(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("drop_reference");
}

int scsi_mount_action_release(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("release");
}

int scsi_mount_action_begin_mount(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("begin_mount");
}

int scsi_mount_action_reply_path(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("reply_path");
}

int scsi_mount_action_fail_mount(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("fail_mount");
}

int scsi_mount_action_begin_unmount(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("begin_unmount");
}

int scsi_mount_action_reply_error(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("reply_error");
}

int scsi_mount_action_save_reserved(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("save_reserved");
}

int scsi_mount_action_save_mounted(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("save_mounted");
}

int scsi_mount_action_save_again(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("save_again");
}

int scsi_mount_action_import_mount(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("import_mount");
}

int scsi_mount_action_lift_freeze(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("lift_freeze");
}

int scsi_mount_action_drop(struct scsi_mount *ctx, void *arg)
{
        return mbt_action("drop");
}

extern const struct mbt_suite scsi_mbt, scsi_disk_mbt, scsi_mount_mbt;

static union {
        struct scsi_ctrl ctrl;
        struct scsi_disk disk;
        struct scsi_mount mount;
} instance;

static const struct mbt_suite *suite;

static int make(void *userdata, struct fsm **ret_fsm)
{
        fsm_init(&instance.ctrl.fsm, suite->machine, &instance, "scsi:mbt");
        *ret_fsm = &instance.ctrl.fsm;
        return 0;
}

static const struct mbt_ops ops = {.make = make};

int main(int argc, char **argv)
{
        static const struct {
                const char *name;
                const struct mbt_suite *suite;
        } suites[] = {
            {"scsi", &scsi_mbt}, {"scsi_disk", &scsi_disk_mbt}, {"scsi_mount", &scsi_mount_mbt}};

        for (size_t i = 0; argc > 1 && i < sizeof(suites) / sizeof(suites[0]); i++)
                if (strcmp(argv[1], suites[i].name) == 0)
                        suite = suites[i].suite;
        if (!suite) {
                fprintf(stderr, "usage: %s {scsi|scsi_disk|scsi_mount} [--trace FILE]\n", argv[0]);
                return 2;
        }
        argv[1] = argv[0];
        return mbt_main(suite, &ops, argc - 1, argv + 1);
}
