/* SPDX-License-Identifier: MIT */
/* The container controller against its real generated tables and real handlers (and the
 * real process controller for its init and execs) on the sim backend: lifecycle, release and
 * its retry, rejections while frozen, save → import → patch → resume, bad envelopes,
 * teardown of an imported container, exactly-once TaskExit. */
#include "fixture.h"

#include <sys/stat.h>
#include <unistd.h>

#include "ctrl/container/container.h"
#include "save_container.pb-c.h"

static struct ctrl_fixture fx;

/* Published events, by topic. */
static int n_create, n_start, n_exit;
static char last_exit[512], last_create[1024];

static void on_publish(const char *topic, const char *body, void *ud)
{
        if (strcmp(topic, "/tasks/exit") == 0) {
                n_exit++;
                ferry_strscpy(last_exit, body, sizeof(last_exit));
        } else if (strcmp(topic, "/tasks/create") == 0) {
                n_create++;
                ferry_strscpy(last_create, body, sizeof(last_create));
        } else if (strcmp(topic, "/tasks/start") == 0) {
                n_start++;
        }
}

/* The device hooks: a log of calls, and a reservation id that fails once. */
struct devlog {
        char calls[64][80];
        int n;
        char fail_id[32];
        int fail_error;
};
static struct devlog dev;

static void dev_log(const char *what, const char *id, const char *path)
{
        if (dev.n < 64)
                ferry_bprintf(dev.calls[dev.n++], sizeof(dev.calls[0]), "%s %s%s%s", what, id,
                              path ? " " : "", path ? path : "");
}

static int take_failure(const char *id)
{
        if (dev.fail_error && strcmp(id, dev.fail_id) == 0) {
                int r = dev.fail_error;
                dev.fail_error = 0;
                return r;
        }
        return 0;
}

static int dev_repoint(void *ud, const char *id, const char *path)
{
        int r = take_failure(id);
        dev_log(r ? "repoint-failed" : "repoint", id, path);
        return r;
}

static int dev_release(void *ud, const char *id)
{
        int r = take_failure(id);
        dev_log(r ? "release-failed" : "release", id, NULL);
        return r;
}

static const struct container_devices hooks = {.repoint = dev_repoint, .release = dev_release};

#define CALL CTRL_CALL

static int n_ended;
static void on_end(struct container *c, void *ud)
{
        n_ended++;
}

static int setup(void **state)
{
        setup_loop(state);
        fixture_up(&fx, loop, backend, "cvm", 0, on_publish);
        n_create = n_start = n_exit = n_ended = 0;
        memset(&dev, 0, sizeof(dev));
        return 0;
}

static int teardown(void **state)
{
        fixture_down(&fx);
        return teardown_loop(state);
}

static const struct container_disk ro_layers[] = {
    {"ro-a", "/run/layers/a", "/src/a.vhd"},
    {"ro-b", "/run/layers/b", "/src/b.vhd"},
};
static const struct container_disk scratch = {"scr", "/run/scratch/c", "/src/scratch.vhd"};
static const struct container_disk mounts[] = {{"mnt-1", "/data", "/src/data.vhd"}};

static struct container *new_container(void)
{
        struct container *c = NULL;
        assert_int_equal(container_new(&fx.env, &hooks, &c), 0);
        return c;
}

static void create_ok(struct container *c, const char *id)
{
        struct container_create_opts o = {
            .id = id,
            .bundle = "/run/bundles/x",
            .io_retry_timeout_us = 2000000,
            .rootfs_path = "/run/gcs/rootfs",
            .ro_layers = ro_layers,
            .n_ro_layers = 2,
            .scratch = &scratch,
            .mounts = mounts,
            .n_mounts = 1,
        };
        assert_int_equal(CALL(container_create, c, &o), 0);
        assert_string_equal(container_state_name(c), "created");
}

static struct container *running_container(const char *id)
{
        struct container *c = new_container();
        create_ok(c, id);
        int pid = CALL(container_start, c);
        assert_true(pid > 0);
        assert_int_equal(container_pid(c), pid);
        assert_string_equal(container_state_name(c), "running");
        return c;
}

static ctrl_envelope *save_ok(struct container *c)
{
        ctrl_envelope *e = NULL;
        assert_int_equal(container_save(c, &e), 0);
        assert_string_equal(container_state_name(c), "source_migrating");
        assert_true(process_is_frozen(container_process(c, "")));
        return e;
}

/* ---- lifecycle ---- */

static void test_lifecycle(void **state)
{
        struct container *c = running_container("ctr1");
        assert_int_equal(container_wait(c, on_end, NULL), 0);
        assert_int_equal(container_inspect(c), 0);

        /* an exec: registered, created and started through its own controller */
        assert_int_equal(container_exec(c, "e1"), 0);
        assert_int_equal(container_exec(c, "e1"), -EEXIST);
        assert_int_equal(container_exec(c, ""), -EINVAL);
        struct process *e1 = container_process(c, "e1");
        assert_non_null(e1);
        struct process_create_opts po = {.spec_json = "{}"};
        assert_int_equal(CALL(process_create, e1, &po), 0);
        assert_true(CALL(process_start, e1) > 0);
        assert_int_equal(CALL(container_kill, c, "nope", SIGTERM, false), -ENOENT);
        assert_int_equal(CALL(container_kill, c, "e1", SIGTERM, true), -EBUSY);
        assert_int_equal(CALL(container_kill, c, "e1", SIGTERM, false), 0);
        run_for_ms(10);
        assert_string_equal(process_state_name(e1), "terminated");
        assert_int_equal(n_exit, 1); /* the exec's own TaskExit */
        assert_int_equal(CALL(container_delete_exec, c, "e1"), 0);
        assert_int_equal(container_exec_count(c), 0);
        assert_int_equal(CALL(container_delete_exec, c, "e1"), -ENOENT);

        /* update */
        assert_int_equal(CALL(container_update, c, "{\"linux\":{\"memory\":{}}}"), 0);
        assert_int_equal(CALL(container_update, c, "[1]"), -EINVAL);
        assert_int_equal(CALL(container_update, c, "{\"windows\":{}}"), -EINVAL);
        assert_string_equal(container_state_name(c), "running");

        /* running: delete refused */
        assert_int_equal(CALL(container_delete, c), -EBUSY);

        /* the init exits: TaskExit once, Wait returns once */
        int64_t pid = container_pid(c);
        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)pid, 5), 0);
        run_for_ms(20);
        assert_string_equal(container_state_name(c), "stopped");
        assert_int_equal(n_exit, 2);
        assert_non_null(strstr(last_exit, "\"container_id\":\"ctr1\""));
        assert_non_null(strstr(last_exit, "\"exit_status\":5"));
        assert_int_equal(n_ended, 1);
        assert_int_equal(container_inspect(c), -EBUSY);
        /* kill of an ended container is a no-op that reports nothing */
        assert_int_equal(CALL(container_kill, c, "", SIGKILL, false), 0);

        /* delete releases in order: scratch, read-only layers, extra mounts */
        assert_int_equal(CALL(container_delete, c), 0);
        assert_string_equal(container_state_name(c), "deleted");
        assert_int_equal(dev.n, 4);
        assert_string_equal(dev.calls[0], "release scr");
        assert_string_equal(dev.calls[1], "release ro-a");
        assert_string_equal(dev.calls[2], "release ro-b");
        assert_string_equal(dev.calls[3], "release mnt-1");
        run_for_ms(10);
        assert_int_equal(n_exit, 2);
        assert_int_equal(n_ended, 1);
        container_free(c);
}

static void test_start_failure_replies_pid_minus_one(void **state)
{
        struct container *c = new_container();
        create_ok(c, "ctr2");
        assert_int_equal(hcs_fault_arm("guest.start_container",
                                       &(struct hcs_fault_spec){.nth = 1, .error = -EIO}),
                         0);
        assert_int_equal(CALL(container_start, c), -EIO);
        assert_string_equal(container_state_name(c), "invalid");
        assert_int_equal(container_pid(c), -1);
        /* resources stay until delete, which releases them */
        assert_int_equal(CALL(container_delete, c), 0);
        assert_string_equal(container_state_name(c), "deleted");
        assert_int_equal(dev.n, 4);
        container_free(c);
}

static void test_create_failure_is_invalid_then_deletable(void **state)
{
        struct container *c = new_container();
        assert_int_equal(hcs_fault_arm("guest.create_container",
                                       &(struct hcs_fault_spec){.nth = 1, .error = -ENOSPC}),
                         0);
        struct container_create_opts o = {.id = "ctr3", .scratch = &scratch};
        assert_int_equal(CALL(container_create, c, &o), -ENOSPC);
        assert_string_equal(container_state_name(c), "invalid");
        assert_true(container_is_ended(c));
        assert_int_equal(CALL(container_delete, c), 0);
        assert_string_equal(container_state_name(c), "deleted");
        assert_int_equal(dev.n, 1);
        assert_string_equal(dev.calls[0], "release scr");
        container_free(c);

        /* bad options: nothing recorded, still not_created */
        c = new_container();
        struct container_create_opts bad = {.id = "a/b"};
        assert_int_equal(CALL(container_create, c, &bad), -EINVAL);
        assert_string_equal(container_state_name(c), "not_created");
        container_free(c);
}

static void test_release_retry_skips_released(void **state)
{
        struct container *c = new_container();
        create_ok(c, "ctr4");
        ferry_strscpy(dev.fail_id, "ro-b", sizeof(dev.fail_id));
        dev.fail_error = -EIO;
        assert_int_equal(CALL(container_delete, c), -EIO);
        assert_string_equal(container_state_name(c), "stopped");
        assert_int_equal(CALL(container_delete, c), 0);
        assert_string_equal(container_state_name(c), "deleted");
        /* every reservation released exactly once: the retry resumed at the failed one */
        const char *want[] = {"release scr", "release ro-a", "release-failed ro-b", "release ro-b",
                              "release mnt-1"};
        assert_int_equal(dev.n, 5);
        for (int i = 0; i < 5; i++)
                assert_string_equal(dev.calls[i], want[i]);
        container_free(c);
}

static void test_in_flight_calls_are_aborted(void **state)
{
        struct container *c = new_container();
        struct container_create_opts o = {.id = "ctr5"};
        struct result x = {0};
        assert_int_equal(container_create(c, &o, on_done, &x), 0);
        assert_string_equal(container_state_name(c), "creating");
        assert_int_equal(CALL(container_start, c), -ESTALE);
        assert_int_equal(CALL(container_delete, c), -ESTALE);
        assert_string_equal(container_state_name(c), "creating");
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        container_free(c);
}

/* ---- migration ---- */

static void assert_frozen_rejects(struct container *c, const char *st)
{
        struct container_create_opts o = {.id = "zz"};
        assert_int_equal(CALL(container_create, c, &o), -EBUSY);
        assert_int_equal(CALL(container_start, c), -EBUSY);
        assert_int_equal(CALL(container_update, c, "{\"linux\":{}}"), -EBUSY);
        assert_int_equal(container_exec(c, "x"), -EBUSY);
        assert_int_equal(CALL(container_kill, c, "", SIGKILL, false), -EBUSY);
        assert_int_equal(CALL(container_kill, c, "", 0, true), -EBUSY);
        assert_int_equal(CALL(container_delete_exec, c, "x"), -EBUSY);
        assert_int_equal(CALL(container_delete, c), -EBUSY);
        assert_int_equal(container_inspect(c), -EBUSY);
        assert_string_equal(container_state_name(c), st);
        assert_true(container_is_frozen(c));
        assert_int_equal(container_exec_count(c), 0);
        assert_true(process_is_frozen(container_process(c, "")));
        assert_int_equal(n_exit, 0);
}

static void test_frozen_rejections(void **state)
{
        struct container *c = running_container("ctr6");
        ctrl_envelope *e = save_ok(c);
        assert_frozen_rejects(c, "source_migrating");
        /* re-save is retry-safe */
        ctrl_envelope *e2 = NULL;
        assert_int_equal(container_save(c, &e2), 0);
        ctrl_envelope_free(e2);
        struct container *d = new_container();
        assert_int_equal(container_import(d, e), 0);
        assert_frozen_rejects(d, "destination_migrating");
        assert_int_equal(container_save(d, &e2), -EBUSY);
        ctrl_envelope_free(e);
        container_free(d);
        container_free(c);
}

static void test_save_refuses_execs_and_freezes_nothing(void **state)
{
        struct container *c = running_container("ctr7");
        assert_int_equal(container_exec(c, "e"), 0);
        ctrl_envelope *e = NULL;
        assert_int_equal(container_save(c, &e), -EBUSY);
        assert_null(e);
        assert_string_equal(container_state_name(c), "running");
        assert_false(process_is_frozen(container_process(c, "")));
        container_free(c);
}

static void test_round_trip(void **state)
{
        struct container *src = running_container("ctr8");
        int64_t pid = container_pid(src);
        ctrl_envelope *e = save_ok(src);

        ctrl_envelope *back = fixture_through_bytes(e);

        struct container *d = new_container();
        assert_int_equal(container_import(d, back), 0);
        assert_string_equal(container_state_name(d), "destination_migrating");
        assert_string_equal(container_id(d), "ctr8");
        assert_string_equal(container_guest_id(d), "ctr8");
        struct process *init = container_process(d, "");
        assert_non_null(init);
        assert_string_equal(process_state_name(init), "destination_migrating");
        assert_int_equal(process_pid(init), pid);
        assert_int_equal(process_exit_code(init), 255);

        assert_int_equal(CALL(container_resume, d), -EBUSY); /* patch first */
        const char *ro_paths[] = {"/dst/a.vhd", "/dst/b.vhd"};
        const char *mnt_paths[] = {"/dst/data.vhd"};
        struct container_patch_opts po = {
            .id = "ctr8-dst",
            .bundle = "/dst/bundle",
            .ro_layer_paths = ro_paths,
            .n_ro_layer_paths = 1, /* count mismatch */
            .scratch_path = "/dst/scratch.vhd",
            .mount_paths = mnt_paths,
            .n_mount_paths = 1,
        };
        assert_int_equal(CALL(container_patch, d, &po), -EINVAL);
        assert_int_equal(dev.n, 0);
        assert_string_equal(container_id(d), "ctr8");

        /* a repoint failure points the earlier ones back and changes no id */
        po.n_ro_layer_paths = 2;
        ferry_strscpy(dev.fail_id, "scr", sizeof(dev.fail_id));
        dev.fail_error = -EIO;
        assert_int_equal(CALL(container_patch, d, &po), -EIO);
        assert_string_equal(container_id(d), "ctr8");
        assert_int_equal(dev.n, 5);
        assert_string_equal(dev.calls[3], "repoint ro-a /src/a.vhd");
        assert_string_equal(dev.calls[4], "repoint ro-b /src/b.vhd");
        dev.n = 0;

        /* patch_repoints_extra_scsi_mounts (§12.16); the init's IO opens on the thread pool */
        char fifo[64];
        ferry_strscpy(fifo, "/tmp/ferry-ctr-XXXXXX", sizeof(fifo));
        assert_non_null(mkdtemp(fifo));
        size_t dl = strlen(fifo);
        ferry_strscpy(fifo + dl, "/out", sizeof(fifo) - dl);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        po.io.stdout_path = fifo;
        struct result px = {0};
        assert_int_equal(container_patch(d, &po, on_done, &px), 0);
        assert_string_equal(container_state_name(d), "patching");
        assert_int_equal(CALL(container_resume, d), -ESTALE); /* in flight */
        run_until(&px.done, 5000);
        assert_int_equal(px.r, 0);
        unlink(fifo);
        fifo[dl] = '\0';
        rmdir(fifo);
        const char *want[] = {"repoint ro-a /dst/a.vhd", "repoint ro-b /dst/b.vhd",
                              "repoint scr /dst/scratch.vhd", "repoint mnt-1 /dst/data.vhd"};
        assert_int_equal(dev.n, 4);
        for (int i = 0; i < 4; i++)
                assert_string_equal(dev.calls[i], want[i]);
        assert_string_equal(container_state_name(d), "destination_migrating");
        assert_string_equal(container_id(d), "ctr8-dst");
        assert_string_equal(container_guest_id(d), "ctr8"); /* guest ids never change */
        assert_string_equal(process_container_id(init), "ctr8-dst");
        assert_string_equal(process_bundle(init), "/dst/bundle");

        /* the source died with its VM; here it is torn down */
        assert_int_equal(container_teardown(src), 0);
        assert_int_equal(n_exit, 1);
        n_exit = 0;

        assert_int_equal(CALL(container_resume, d), 0);
        assert_string_equal(container_state_name(d), "running");
        assert_int_equal(n_create, 1);
        assert_int_equal(n_start, 1);
        assert_non_null(strstr(last_create, "\"container_id\":\"ctr8-dst\""));
        assert_non_null(strstr(last_create, "\"bundle\":\"/dst/bundle\""));
        assert_non_null(strstr(last_create, "/out\""));
        char pidtxt[32];
        ferry_bprintf(pidtxt, sizeof(pidtxt), "\"pid\":%lld", (long long)pid);
        assert_non_null(strstr(last_create, pidtxt));
        assert_int_equal(CALL(container_resume, d), 0); /* idempotent */
        assert_int_equal(n_create, 1);
        assert_int_equal(container_inspect(d), 0);

        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)pid, 0), 0);
        run_for_ms(20);
        assert_string_equal(container_state_name(d), "stopped");
        assert_int_equal(n_exit, 1);
        assert_non_null(strstr(last_exit, "\"container_id\":\"ctr8-dst\""));
        ctrl_envelope_free(e);
        ctrl_envelope_free(back);
        container_free(src);
        container_free(d);
}

/* §12.16: the extra SCSI mounts are repointed too, not only the layer disks. */
static void test_patch_repoints_extra_scsi_mounts(void **state)
{
        struct container *src = running_container("ctr12");
        ctrl_envelope *e = save_ok(src);
        struct container *d = new_container();
        assert_int_equal(container_import(d, e), 0);
        const char *ro_paths[] = {"/d/a", "/d/b"};
        const char *mnt_paths[] = {"/d/data"};
        struct container_patch_opts po = {.id = "ctr12b",
                                          .ro_layer_paths = ro_paths,
                                          .n_ro_layer_paths = 2,
                                          .scratch_path = "/d/s",
                                          .mount_paths = mnt_paths,
                                          .n_mount_paths = 1};
        /* a missing mount path is a count mismatch */
        po.n_mount_paths = 0;
        assert_int_equal(CALL(container_patch, d, &po), -EINVAL);
        assert_int_equal(dev.n, 0);
        po.n_mount_paths = 1;
        assert_int_equal(CALL(container_patch, d, &po), 0);
        assert_int_equal(dev.n, 4);
        assert_string_equal(dev.calls[3], "repoint mnt-1 /d/data");
        assert_int_equal(container_teardown(src), 0);
        ctrl_envelope_free(e);
        container_free(d);
        container_free(src);
}

static void test_bad_envelopes_change_nothing(void **state)
{
        struct container *src = running_container("ctr9");
        ctrl_envelope *good = save_ok(src);
        struct container *d = new_container();

        assert_int_equal(container_import(d, NULL), -EINVAL);
        ctrl_envelope foreign = *good;
        foreign.type_url = "type.ferry.dev/ferry.process.save.v1.Payload";
        assert_int_equal(container_import(d, &foreign), -EINVAL);
        uint8_t junk[] = {0x0a, 0xff, 0xff};
        ctrl_envelope corrupt = *good;
        corrupt.value.data = junk;
        corrupt.value.len = sizeof(junk);
        assert_int_equal(container_import(d, &corrupt), -EBADMSG);
        ctrl_envelope future = *good;
        future.schema_version = 9;
        assert_int_equal(container_import(d, &future), -EINVAL);

        /* a well-formed container whose nested init envelope is corrupt */
        Ferry__Save__V1__Envelope child = FERRY__SAVE__V1__ENVELOPE__INIT;
        child.type_url = "type.ferry.dev/ferry.process.save.v1.Payload";
        child.schema_version = 1;
        child.value.data = junk;
        child.value.len = sizeof(junk);
        Ferry__Container__Save__V1__ProcessEntry entry =
            FERRY__CONTAINER__SAVE__V1__PROCESS_ENTRY__INIT;
        entry.exec_id = "";
        entry.envelope = &child;
        Ferry__Container__Save__V1__ProcessEntry *entries[] = {&entry, &entry};
        Ferry__Container__Save__V1__Payload m = FERRY__CONTAINER__SAVE__V1__PAYLOAD__INIT;
        m.schema_version = 1;
        m.container_id = "ctr9";
        m.gcs_container_id = "ctr9";
        m.processes = entries;
        m.n_processes = 1;
        ctrl_envelope *bad = NULL;
        assert_int_equal(ctrl_envelope_pack("container", 1, &m.base, &bad), 0);
        assert_int_equal(container_import(d, bad), -EBADMSG);
        ctrl_envelope_free(bad);
        /* two processes (an exec) cannot migrate */
        m.n_processes = 2;
        assert_int_equal(ctrl_envelope_pack("container", 1, &m.base, &bad), 0);
        assert_int_equal(container_import(d, bad), -EINVAL);
        ctrl_envelope_free(bad);

        assert_string_equal(container_state_name(d), "not_created");
        assert_null(container_process(d, ""));
        assert_string_equal(container_id(d), "");
        assert_int_equal(container_import(d, good), 0);
        assert_non_null(container_process(d, ""));
        ctrl_envelope_free(good);
        container_free(d);
        container_free(src);
}

static void test_teardown_of_imported_never_resumed(void **state)
{
        struct container *src = running_container("ctr10");
        ctrl_envelope *e = save_ok(src);
        struct container *d = new_container();
        assert_int_equal(container_import(d, e), 0);
        assert_int_equal(container_wait(d, on_end, NULL), 0);
        assert_int_equal(container_teardown(d), 0);
        assert_string_equal(container_state_name(d), "stopped");
        assert_int_equal(n_exit, 1);
        assert_non_null(strstr(last_exit, "\"exit_status\":137"));
        assert_int_equal(n_ended, 1);
        assert_int_equal(process_exit_code(container_process(d, "")), 137);
        assert_int_equal(container_teardown(d), 0); /* again: no-op */
        assert_int_equal(CALL(container_kill, d, "", SIGKILL, false), 0);
        /* delete ends it without touching the absent guest or the devices */
        uint64_t guest_deletes = hcs_fault_calls("guest.delete_container");
        assert_int_equal(CALL(container_delete, d), 0);
        assert_string_equal(container_state_name(d), "deleted");
        assert_int_equal(hcs_fault_calls("guest.delete_container"), guest_deletes);
        assert_int_equal(dev.n, 0);
        assert_int_equal(n_exit, 1);

        /* the frozen source, torn down because its VM is gone, is deleted without a guest call */
        assert_int_equal(container_teardown(src), 0);
        assert_string_equal(container_state_name(src), "stopped");
        guest_deletes = hcs_fault_calls("guest.delete_container");
        assert_int_equal(CALL(container_delete, src), 0);
        assert_string_equal(container_state_name(src), "deleted");
        assert_int_equal(hcs_fault_calls("guest.delete_container"), guest_deletes);
        ctrl_envelope_free(e);
        container_free(d);
        container_free(src);
}

static void test_source_rollback(void **state)
{
        struct container *c = running_container("ctr11");
        ctrl_envelope *e = save_ok(c);
        assert_int_equal(CALL(container_resume, c), 0);
        assert_string_equal(container_state_name(c), "running");
        assert_false(process_is_frozen(container_process(c, "")));
        assert_int_equal(n_create, 0); /* a rollback republishes nothing */
        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)container_pid(c), 2), 0);
        run_for_ms(20);
        assert_int_equal(n_exit, 1);
        assert_string_equal(container_state_name(c), "stopped");
        ctrl_envelope_free(e);
        container_free(c);
}

/* Every guest fault point the container and its init reach, failing once at each call in
 * turn through a whole lifecycle: every call either succeeds or fails with a clear errno, the
 * container always ends deletable, and its end is told at most once. */
static void run_lifecycle_under_fault(const char *point, uint32_t nth)
{
        struct container *c = new_container();
        int ends = n_ended;
        assert_int_equal(container_wait(c, on_end, NULL), 0);
        hcs_fault_reset();
        assert_int_equal(hcs_fault_arm(point, &(struct hcs_fault_spec){.nth = nth, .error = -EIO}),
                         0);
        struct container_create_opts o = {.id = "sweep", .scratch = &scratch};
        int r = CALL(container_create, c, &o);
        if (r == 0)
                r = CALL(container_start, c);
        if (r > 0) {
                ctrl_envelope *e = NULL;
                if (container_save(c, &e) == 0) {
                        r = CALL(container_resume, c);
                        assert_true(r == 0 || r == -EIO);
                        if (r < 0) /* still frozen: the VM is gone, tear it down */
                                assert_int_equal(container_teardown(c), 0);
                }
                ctrl_envelope_free(e);
                r = CALL(container_kill, c, "", SIGKILL, false);
                assert_true(r == 0 || r == -EIO || r == -EBUSY);
                run_for_ms(5);
        } else {
                assert_true(r == -EIO || r == -EBUSY || r == -ENOENT);
        }
        if (guest_sim_exit_process(fx.conn, (uint32_t)(container_pid(c) > 0 ? container_pid(c) : 0),
                                   0) == 0)
                run_for_ms(5);
        r = CALL(container_delete, c);
        if (r < 0) /* a release failure is retried */
                r = CALL(container_delete, c);
        assert_int_equal(r, 0);
        assert_string_equal(container_state_name(c), "deleted");
        assert_true(n_ended - ends <= 1);
        /* the point was reached as often as armed, so its failure really happened */
        assert_true(hcs_fault_calls(point) >= nth);
        hcs_fault_disarm(point);
        container_free(c);
        /* the guest container is gone either way: the next round can reuse the id */
        struct result x = {0};
        assert_int_equal(guest_delete_container(fx.conn, "sweep", fixture_guest_done, &x), 0);
        run_until(&x.done, 5000);
}

static void test_fault_sweep(void **state)
{
        /* each point with the number of calls a lifecycle makes to it */
        static const struct {
                const char *point;
                uint32_t calls;
        } points[] = {
            {"guest.create_container", 1}, {"guest.start_container", 1},
            {"guest.wait_process", 1},     {"guest.io_relay", 2},
            {"guest.signal_container", 1}, {"guest.delete_container", 1},
        };
        for (size_t i = 0; i < ARRAY_SIZE(points); i++)
                for (uint32_t nth = 1; nth <= points[i].calls; nth++)
                        run_lifecycle_under_fault(points[i].point, nth);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            CTRL_TEST(test_lifecycle),
            CTRL_TEST(test_start_failure_replies_pid_minus_one),
            CTRL_TEST(test_create_failure_is_invalid_then_deletable),
            CTRL_TEST(test_release_retry_skips_released),
            CTRL_TEST(test_in_flight_calls_are_aborted),
            CTRL_TEST(test_frozen_rejections),
            CTRL_TEST(test_save_refuses_execs_and_freezes_nothing),
            CTRL_TEST(test_round_trip),
            CTRL_TEST(test_bad_envelopes_change_nothing),
            CTRL_TEST(test_teardown_of_imported_never_resumed),
            CTRL_TEST(test_source_rollback),
            CTRL_TEST(test_patch_repoints_extra_scsi_mounts),
            CTRL_TEST(test_fault_sweep),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
