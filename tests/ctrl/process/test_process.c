/* SPDX-License-Identifier: MIT */
/* The process controller against its real generated tables and real handlers, on the sim
 * backend: a created and started VM, a connected guest, a guest container to run in.
 * Lifecycle, rejections while frozen or busy, save → import → patch → resume, foreign and
 * corrupt envelopes, exactly-once exits, teardown of an imported process. */
#include "fixture.h"

#include <sys/stat.h>

#include "ctrl/process/process.h"
#include "hcs/fault.h"
#include "save_process.pb-c.h"

static struct ctrl_fixture fx;
static char tmpdir[64];

/* Published events. */
static int n_published;
static char last_topic[64];
static char last_body[512];

static void on_publish(const char *topic, const char *body, void *ud)
{
        n_published++;
        ferry_strscpy(last_topic, topic, sizeof(last_topic));
        ferry_strscpy(last_body, body, sizeof(last_body));
}

#define CALL CTRL_CALL

struct exits {
        int calls;
        int code;
        uint64_t at;
};

static void on_exit_rec(struct process *p, int code, uint64_t at, void *ud)
{
        struct exits *e = ud;
        e->calls++;
        e->code = code;
        e->at = at;
}

static int setup(void **state)
{
        setup_loop(state);
        fixture_up(&fx, loop, backend, "pvm", 0, on_publish);
        n_published = 0;
        ferry_strscpy(tmpdir, "/tmp/ferry-proc-XXXXXX", sizeof(tmpdir));
        assert_non_null(mkdtemp(tmpdir));
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];
        ferry_bprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        assert_int_equal(system(cmd), 0);
        fixture_down(&fx);
        return teardown_loop(state);
}

static struct process *new_proc(const char *cid, const char *exec)
{
        struct process *p = NULL;
        assert_int_equal(process_new(&fx.env, cid, cid, exec, 0, &p), 0);
        return p;
}

/* A guest container "cid" that exists (and runs, for execs). */
static void guest_container(const char *cid, bool start)
{
        assert_int_equal(GSYNC(guest_create_container, fx.conn, cid), 0);
        if (start)
                assert_int_equal(GSYNC(guest_start_container, fx.conn, cid), 0);
}

static const struct process_create_opts no_io = {.bundle = "/run/b1"};

/* An init process of guest container cid, created and started: returns it, pid > 0. */
static struct process *running_init(const char *cid)
{
        guest_container(cid, false);
        struct process *p = new_proc(cid, "");
        assert_int_equal(CALL(process_create, p, &no_io), 0);
        assert_string_equal(process_state_name(p), "created");
        int pid = CALL(process_start, p);
        assert_true(pid > 0);
        assert_int_equal(process_pid(p), pid);
        assert_string_equal(process_state_name(p), "running");
        return p;
}

static void fifo(char *buf, size_t size, const char *name)
{
        ferry_bprintf(buf, size, "%s/%s", tmpdir, name);
        assert_int_equal(mkfifo(buf, 0600), 0);
}

static ctrl_envelope *save_ok(struct process *p)
{
        ctrl_envelope *e = NULL;
        assert_int_equal(process_save(p, &e), 0);
        assert_non_null(e);
        assert_string_equal(process_state_name(p), "source_migrating");
        return e;
}

/* ---- normal lifecycle ---- */

static void test_init_lifecycle_exit_reported_once(void **state)
{
        struct process *p = running_init("c1");
        struct exits hook = {0}, w = {0};
        process_set_exit_hook(p, on_exit_rec, &hook);
        assert_int_equal(process_wait(p, on_exit_rec, &w), 0);
        assert_int_equal(process_status(p), PROCESS_STATUS_RUNNING);
        assert_int_equal(process_exit_code(p), 255);

        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)process_pid(p), 7), 0);
        run_for_ms(20);
        assert_int_equal(hook.calls, 1);
        assert_int_equal(hook.code, 7);
        assert_int_equal(w.calls, 1);
        assert_int_equal(process_exit_code(p), 7);
        assert_true(process_exited_at_ns(p) > 0);
        assert_string_equal(process_state_name(p), "terminated");
        assert_int_equal(process_status(p), PROCESS_STATUS_STOPPED);
        /* the init's exit goes to its container (hook), not to containerd directly */
        assert_int_equal(n_published, 0);

        /* kill and delete of an exited process succeed and report nothing again */
        assert_int_equal(CALL(process_kill, p, SIGKILL), 0);
        assert_int_equal(CALL(process_delete, p), 0);
        run_for_ms(10);
        assert_int_equal(hook.calls, 1);
        assert_int_equal(w.calls, 1);
        /* a wait after the exit is answered at once, with the same exit */
        struct exits late = {0};
        assert_int_equal(process_wait(p, on_exit_rec, &late), 0);
        assert_int_equal(late.calls, 1);
        assert_int_equal(late.code, 7);
        process_free(p);
}

/* The init's signal goes to its container (SignalContainer), an exec's to its pid; a kill
 * that reaches a container whose init already exited in the guest (its exit not yet seen)
 * counts as delivered, and the exit is then reported once. */
static void test_init_signals_its_container(void **state)
{
        struct process *p = running_init("c9");
        struct exits w = {0};
        assert_int_equal(process_wait(p, on_exit_rec, &w), 0);
        uint64_t by_ctr = hcs_fault_calls("guest.signal_container");
        uint64_t by_pid = hcs_fault_calls("guest.signal_process");
        assert_int_equal(CALL(process_kill, p, SIGHUP), 0);
        assert_int_equal(hcs_fault_calls("guest.signal_container"), by_ctr + 1);
        assert_int_equal(hcs_fault_calls("guest.signal_process"), by_pid);
        assert_string_equal(process_state_name(p), "running"); /* SIGHUP is not fatal */

        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)process_pid(p), 5), 0);
        assert_string_equal(process_state_name(p), "running"); /* the exit is not seen yet */
        assert_int_equal(CALL(process_kill, p, SIGTERM), 0); /* the guest says: stopped */
        assert_int_equal(hcs_fault_calls("guest.signal_container"), by_ctr + 2);
        run_for_ms(20);
        assert_int_equal(w.calls, 1);
        assert_int_equal(w.code, 5);

        struct process *e = new_proc("c9x", "e1");
        guest_container("c9x", true);
        assert_int_equal(CALL(process_create, e, &no_io), 0);
        assert_true(CALL(process_start, e) > 0);
        by_pid = hcs_fault_calls("guest.signal_process");
        assert_int_equal(CALL(process_kill, e, SIGKILL), 0);
        assert_int_equal(hcs_fault_calls("guest.signal_process"), by_pid + 1);
        run_for_ms(20);
        assert_int_equal(process_exit_code(e), 128 + SIGKILL);
        process_free(e);
        process_free(p);
}

static void test_exec_publishes_its_exit_once(void **state)
{
        guest_container("c2", true);
        struct process *p = new_proc("c2", "e1");
        struct process_create_opts o = {.bundle = "/b", .spec_json = "{\"args\":[\"sh\"]}"};
        assert_int_equal(CALL(process_create, p, &o), 0);
        assert_true(CALL(process_start, p) > 0);
        /* a non-fatal signal is delivered and the process keeps running */
        assert_int_equal(CALL(process_kill, p, SIGUSR1), 0);
        assert_string_equal(process_state_name(p), "running");
        /* running: delete is refused, kill first */
        assert_int_equal(CALL(process_delete, p), -EBUSY);
        assert_int_equal(CALL(process_kill, p, SIGTERM), 0);
        run_for_ms(20);
        assert_string_equal(process_state_name(p), "terminated");
        assert_int_equal(process_exit_code(p), 128 + SIGTERM);
        assert_int_equal(n_published, 1);
        assert_string_equal(last_topic, "/tasks/exit");
        assert_non_null(strstr(last_body, "\"id\":\"e1\""));
        assert_non_null(strstr(last_body, "\"exit_status\":143"));
        /* a second kill of the ended process neither fails nor reports again */
        assert_int_equal(CALL(process_kill, p, 0), 0);
        run_for_ms(10);
        assert_int_equal(n_published, 1);
        process_free(p);
}

static void test_kill_and_delete_before_start(void **state)
{
        struct process *p = new_proc("c3", "");
        struct exits w = {0};
        assert_int_equal(process_wait(p, on_exit_rec, &w), 0);
        assert_int_equal(CALL(process_kill, p, 0), 0); /* not created: abort with exit 1 */
        assert_string_equal(process_state_name(p), "terminated");
        assert_int_equal(w.calls, 1);
        assert_int_equal(w.code, 1);
        process_free(p);

        p = new_proc("c3", "");
        assert_int_equal(CALL(process_create, p, &no_io), 0);
        assert_int_equal(CALL(process_delete, p), 0); /* created: abort with exit 0 */
        assert_string_equal(process_state_name(p), "terminated");
        assert_int_equal(process_exit_code(p), 0);
        /* start after the end is refused */
        assert_int_equal(CALL(process_start, p), -EBUSY);
        process_free(p);
}

static void test_create_with_fifos_and_close_io(void **state)
{
        char in[96], out[96], err[96];
        fifo(in, sizeof(in), "in");
        fifo(out, sizeof(out), "out");
        fifo(err, sizeof(err), "err");
        struct process *p = new_proc("c4", "");
        struct process_create_opts bad = {.io = {in, out, err, true}};
        /* a terminal has no stderr: refused, nothing opened */
        assert_int_equal(CALL(process_create, p, &bad), -EBUSY);
        assert_string_equal(process_state_name(p), "not_created");
        struct process_io io;
        assert_false(process_io(p, &io));

        struct process_create_opts o = {.bundle = "/b4", .io = {in, out, err, false}};
        assert_int_equal(CALL(process_create, p, &o), 0);
        assert_true(process_io(p, &io));
        assert_string_equal(io.stdout_path, out);
        assert_string_equal(process_bundle(p), "/b4");
        assert_int_equal(CALL(process_close_io, p), 0);
        assert_int_equal(CALL(process_close_io, p), 0); /* idempotent */
        /* create twice is refused */
        assert_int_equal(CALL(process_create, p, &o), -EBUSY);
        process_free(p);

        /* an endpoint that never appears fails the create, which stays not_created */
        p = new_proc("c4", "x");
        char missing[96];
        ferry_bprintf(missing, sizeof(missing), "%s/none", tmpdir);
        struct process_create_opts m = {.io = {.stdout_path = missing}};
        assert_int_equal(CALL(process_create, p, &m), -ENOENT);
        assert_string_equal(process_state_name(p), "not_created");
        process_free(p);
}

static void test_start_failure_replies_pid_minus_one(void **state)
{
        guest_container("c5", false);
        struct process *p = new_proc("c5", "");
        assert_int_equal(CALL(process_create, p, &no_io), 0);
        struct exits w = {0};
        assert_int_equal(process_wait(p, on_exit_rec, &w), 0);
        assert_int_equal(hcs_fault_arm("guest.start_container",
                                       &(struct hcs_fault_spec){.nth = 1, .error = -EIO}),
                         0);
        assert_int_equal(CALL(process_start, p), -EIO);
        assert_int_equal(process_pid(p), -1);
        assert_int_equal(process_exit_code(p), 1);
        assert_string_equal(process_state_name(p), "terminated");
        assert_int_equal(w.calls, 1);
        process_free(p);

        /* an exec whose container does not run: the guest refuses, same outcome */
        p = new_proc("c5", "e");
        assert_int_equal(CALL(process_create, p, &no_io), 0);
        assert_int_equal(CALL(process_start, p), -EBUSY);
        assert_int_equal(process_pid(p), -1);
        process_free(p);
}

static void test_resize(void **state)
{
        char in[96], out[96];
        fifo(in, sizeof(in), "tin");
        fifo(out, sizeof(out), "tout");
        guest_container("c6", true);
        struct process *p = new_proc("c6", "tty");
        struct process_create_opts o = {.io = {in, out, NULL, true}};
        assert_int_equal(CALL(process_create, p, &o), 0);
        assert_int_equal(CALL(process_resize, p, 80, 25), -EBUSY); /* not running */
        assert_true(CALL(process_start, p) > 0);
        assert_int_equal(CALL(process_resize, p, 120, 40), 0);
        assert_string_equal(process_state_name(p), "running");
        assert_int_equal(CALL(process_resize, p, 0, 40), -EINVAL);
        assert_string_equal(process_state_name(p), "running");
        process_free(p);

        struct process *q = new_proc("c6", "plain");
        assert_int_equal(CALL(process_create, q, &no_io), 0);
        assert_true(CALL(process_start, q) > 0);
        assert_int_equal(CALL(process_resize, q, 80, 25), -EBUSY); /* no terminal */
        process_free(q);
}

/* A call while an operation is in flight is refused with aborted, nothing changes. */
static void test_in_flight_calls_are_aborted(void **state)
{
        char out[96];
        fifo(out, sizeof(out), "out7");
        struct process_create_opts o = {.io = {.stdout_path = out}};
        guest_container("c7", false);
        struct process *p = new_proc("c7", "");
        struct result x = {0};
        assert_int_equal(process_create(p, &o, on_done, &x), 0);
        assert_string_equal(process_state_name(p), "creating");
        assert_int_equal(CALL(process_start, p), -ESTALE);
        assert_int_equal(CALL(process_kill, p, 0), -ESTALE);
        assert_string_equal(process_state_name(p), "creating");
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        assert_string_equal(process_state_name(p), "created");
        process_free(p);
}

/* ---- migration ---- */

static void assert_frozen_rejects(struct process *p, const char *st)
{
        struct exits w = {0};
        assert_int_equal(process_wait(p, on_exit_rec, &w), 0);
        assert_int_equal(CALL(process_create, p, &no_io), -EBUSY);
        assert_int_equal(CALL(process_start, p), -EBUSY);
        assert_int_equal(CALL(process_kill, p, SIGKILL), -EBUSY);
        assert_int_equal(CALL(process_kill, p, 0), -EBUSY);
        assert_int_equal(CALL(process_delete, p), -EBUSY);
        assert_int_equal(CALL(process_resize, p, 80, 25), -EBUSY);
        assert_string_equal(process_state_name(p), st);
        assert_true(process_is_frozen(p));
        assert_int_equal(process_status(p), PROCESS_STATUS_UNKNOWN);
        run_for_ms(5);
        assert_int_equal(w.calls, 0);
}

static void test_frozen_rejections(void **state)
{
        struct process *p = running_init("c8");
        int64_t pid = process_pid(p);
        ctrl_envelope *e = save_ok(p);
        assert_frozen_rejects(p, "source_migrating");
        assert_int_equal(process_pid(p), pid);
        /* import is only for a new process; patch only on the destination */
        assert_int_equal(process_import(p, e), -EBUSY);
        struct process_patch_opts po = {.container_id = "x"};
        assert_int_equal(CALL(process_patch, p, &po), -EBUSY);
        /* save again re-serializes (retry-safe) */
        ctrl_envelope *e2 = NULL;
        assert_int_equal(process_save(p, &e2), 0);
        assert_int_equal(e2->value.len, e->value.len);
        assert_memory_equal(e2->value.data, e->value.data, e->value.len);

        struct process *d = new_proc("c8", "");
        assert_int_equal(process_import(d, e), 0);
        assert_frozen_rejects(d, "destination_migrating");
        assert_int_equal(process_save(d, &e2), 0 - EBUSY);
        ctrl_envelope_free(e);
        ctrl_envelope_free(e2);
        process_free(d);
        process_free(p);
}

/* §12.20: an imported process starts with exit code 255, as a new one does. */
static void test_import_sets_exit_code_255(void **state)
{
        struct process *src = running_init("c17");
        ctrl_envelope *e = save_ok(src);
        struct process *d = new_proc("c17", "");
        assert_int_equal(process_exit_code(d), 255);
        assert_int_equal(process_import(d, e), 0);
        assert_int_equal(process_exit_code(d), 255);
        assert_int_equal(process_exited_at_ns(d), 0);
        ctrl_envelope_free(e);
        process_free(d);
        process_free(src);
}

static void test_save_import_patch_resume_round_trip(void **state)
{
        struct process *src = running_init("c9");
        int64_t pid = process_pid(src);
        uint32_t ports[3];
        uint64_t wait_id = 0;
        ctrl_envelope *e = save_ok(src);
        process_relay_ports(src, ports, &wait_id);
        assert_true(ports[0] > 0); /* kept on the controller for the rollback */

        /* through bytes, as across hosts */
        ctrl_envelope *back = fixture_through_bytes(e);
        ProtobufCMessage *m = NULL;
        assert_int_equal(ctrl_envelope_unpack(back, "process", 1,
                                              &ferry__process__save__v1__payload__descriptor, &m,
                                              NULL, NULL),
                         0);
        Ferry__Process__Save__V1__Payload *pl = (Ferry__Process__Save__V1__Payload *)m;
        assert_int_equal(pl->schema_version, 1);
        assert_int_equal(pl->pid, pid);
        assert_string_equal(pl->bundle, "/run/b1");
        assert_int_equal(pl->stdin_port, ports[0]);
        assert_int_equal(pl->oci_process_spec_json.len, 0); /* init: no spec */
        protobuf_c_message_free_unpacked(m, NULL);

        struct process *dst = new_proc("c9", "");
        assert_int_equal(process_import(dst, back), 0);
        assert_string_equal(process_state_name(dst), "destination_migrating");
        assert_int_equal(process_pid(dst), pid);
        /* import_sets_exit_code_255 (§12.20) */
        assert_int_equal(process_exit_code(dst), 255);
        uint32_t dports[3];
        process_relay_ports(dst, dports, NULL);
        assert_memory_equal(dports, ports, sizeof(ports));
        /* close_io on an unpatched import is a no-op */
        assert_int_equal(CALL(process_close_io, dst), 0);

        /* resume needs a patch first */
        assert_int_equal(CALL(process_resume, dst), -EBUSY);
        /* patch checks its arguments */
        struct process_patch_opts bad = {.container_id = ""};
        assert_int_equal(CALL(process_patch, dst, &bad), -EINVAL);
        assert_int_equal(CALL(process_patch, dst, NULL), -EINVAL);
        assert_string_equal(process_container_id(dst), "c9");

        char out[96];
        fifo(out, sizeof(out), "dout");
        struct process_patch_opts po = {
            .container_id = "c9-dst", .bundle = "/dst/b", .io = {.stdout_path = out}};
        assert_int_equal(CALL(process_patch, dst, &po), 0);
        assert_string_equal(process_state_name(dst), "destination_migrating");
        assert_string_equal(process_container_id(dst), "c9-dst");
        assert_string_equal(process_bundle(dst), "/dst/b");
        struct process_io io;
        assert_true(process_io(dst, &io));
        assert_string_equal(io.stdout_path, out);

        /* the source is gone with its VM in a real migration; here it is torn down */
        assert_int_equal(process_teardown(src), 0);
        assert_int_equal(process_exit_code(src), 137);

        struct exits hook = {0};
        process_set_exit_hook(dst, on_exit_rec, &hook);
        assert_int_equal(CALL(process_resume, dst), 0);
        assert_string_equal(process_state_name(dst), "running");
        assert_int_equal(process_status(dst), PROCESS_STATUS_RUNNING);
        process_relay_ports(dst, dports, NULL);
        assert_int_equal(dports[0], 0); /* single-use ports zeroed */
        /* resume again is a no-op */
        assert_int_equal(CALL(process_resume, dst), 0);
        /* guest-side id unchanged; the live process is the same */
        assert_int_equal(process_pid(dst), pid);
        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)pid, 3), 0);
        run_for_ms(20);
        assert_int_equal(hook.calls, 1);
        assert_int_equal(hook.code, 3);
        assert_string_equal(process_state_name(dst), "terminated");
        ctrl_envelope_free(e);
        ctrl_envelope_free(back);
        process_free(src);
        process_free(dst);
}

static void test_exec_round_trip_keeps_spec(void **state)
{
        guest_container("c10", true);
        struct process *p = new_proc("c10", "ex");
        struct process_create_opts o = {.spec_json = "{\"args\":[\"top\"]}"};
        assert_int_equal(CALL(process_create, p, &o), 0);
        assert_true(CALL(process_start, p) > 0);
        ctrl_envelope *e = save_ok(p);
        struct process *d = new_proc("c10", "ex");
        assert_int_equal(process_import(d, e), 0);
        /* an envelope saved under another exec id is refused */
        struct process *other = new_proc("c10", "other");
        assert_int_equal(process_import(other, e), -EINVAL);
        assert_string_equal(process_state_name(other), "not_created");
        ProtobufCMessage *m = NULL;
        assert_int_equal(ctrl_envelope_unpack(e, "process", 1,
                                              &ferry__process__save__v1__payload__descriptor, &m,
                                              NULL, NULL),
                         0);
        Ferry__Process__Save__V1__Payload *pl = (Ferry__Process__Save__V1__Payload *)m;
        assert_int_equal(pl->oci_process_spec_json.len, strlen(o.spec_json));
        assert_string_equal(pl->exec_id, "ex");
        protobuf_c_message_free_unpacked(m, NULL);
        ctrl_envelope_free(e);
        process_free(other);
        process_free(d);
        process_free(p);
}

static void test_source_rollback_keeps_single_reporter(void **state)
{
        struct process *p = running_init("c11");
        struct exits hook = {0};
        process_set_exit_hook(p, on_exit_rec, &hook);
        ctrl_envelope *e = save_ok(p);
        assert_int_equal(CALL(process_resume, p), 0);
        assert_string_equal(process_state_name(p), "running");
        uint32_t ports[3];
        process_relay_ports(p, ports, NULL);
        assert_int_equal(ports[0], 0);
        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)process_pid(p), 9), 0);
        run_for_ms(20);
        assert_int_equal(hook.calls, 1);
        assert_int_equal(hook.code, 9);
        ctrl_envelope_free(e);
        process_free(p);
}

/* The rollback after the bridge moved (its wait cancelled) arms a new watch: still once. */
static void test_rollback_after_reconnect_reports_once(void **state)
{
        struct process *p = running_init("c12");
        struct exits hook = {0};
        process_set_exit_hook(p, on_exit_rec, &hook);
        ctrl_envelope *e = save_ok(p);
        assert_int_equal(GSYNC(guest_reconnect, fx.conn, fx.vm, 4), 0);
        run_for_ms(5);
        assert_int_equal(hook.calls, 0);
        assert_string_equal(process_state_name(p), "source_migrating");
        assert_int_equal(CALL(process_resume, p), 0);
        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)process_pid(p), 4), 0);
        run_for_ms(20);
        assert_int_equal(hook.calls, 1);
        assert_int_equal(hook.code, 4);
        ctrl_envelope_free(e);
        process_free(p);
}

/* A process that exits while migrating (no bridge on the destination yet) is reported once
 * right after the destination's resume. */
static void test_exit_during_blackout_reported_after_resume(void **state)
{
        struct process *src = running_init("c13");
        ctrl_envelope *e = save_ok(src);
        int64_t pid = process_pid(src);
        struct process *dst = new_proc("c13", "");
        assert_int_equal(process_import(dst, e), 0);
        struct process_patch_opts po = {.container_id = "c13b"};
        assert_int_equal(CALL(process_patch, dst, &po), 0);
        /* the source's watch sees it too; it is the source's own, frozen record */
        process_free(src);
        assert_int_equal(guest_sim_exit_process(fx.conn, (uint32_t)pid, 21), 0);
        struct exits hook = {0};
        process_set_exit_hook(dst, on_exit_rec, &hook);
        assert_int_equal(CALL(process_resume, dst), 0);
        run_for_ms(20);
        assert_int_equal(hook.calls, 1);
        assert_int_equal(hook.code, 21);
        assert_string_equal(process_state_name(dst), "terminated");
        ctrl_envelope_free(e);
        process_free(dst);
}

static void test_bad_envelopes_change_nothing(void **state)
{
        struct process *src = running_init("c14");
        ctrl_envelope *good = save_ok(src);
        struct process *d = new_proc("c14", "");

        assert_int_equal(process_import(d, NULL), -EINVAL);
        assert_string_equal(process_state_name(d), "not_created");

        /* foreign: another controller's type URL */
        ctrl_envelope foreign = *good;
        foreign.type_url = "type.ferry.dev/ferry.container.save.v1.Payload";
        assert_int_equal(process_import(d, &foreign), -EINVAL);

        /* corrupt bytes */
        uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
        ctrl_envelope corrupt = *good;
        corrupt.value.data = junk;
        corrupt.value.len = sizeof(junk);
        assert_int_equal(process_import(d, &corrupt), -EBADMSG);

        /* a future schema version */
        ctrl_envelope future = *good;
        future.schema_version = 2;
        assert_int_equal(process_import(d, &future), -EINVAL);

        /* a payload whose pid is nonsense */
        Ferry__Process__Save__V1__Payload m = FERRY__PROCESS__SAVE__V1__PAYLOAD__INIT;
        m.schema_version = 1;
        m.exec_id = "";
        m.pid = -5;
        ctrl_envelope *badpid = NULL;
        assert_int_equal(ctrl_envelope_pack("process", 1, &m.base, &badpid), 0);
        assert_int_equal(process_import(d, badpid), -EINVAL);
        ctrl_envelope_free(badpid);

        assert_string_equal(process_state_name(d), "not_created");
        assert_int_equal(process_pid(d), 0);
        assert_int_equal(process_exit_code(d), 255);
        assert_string_equal(process_bundle(d), "");
        /* and the good one still imports afterwards */
        assert_int_equal(process_import(d, good), 0);
        assert_string_equal(process_bundle(d), "/run/b1");
        ctrl_envelope_free(good);
        process_free(d);
        process_free(src);
}

static void test_teardown_of_imported_never_resumed(void **state)
{
        struct process *src = running_init("c15");
        ctrl_envelope *e = save_ok(src);
        struct process *d = new_proc("c15", "");
        assert_int_equal(process_import(d, e), 0);
        struct exits w = {0};
        assert_int_equal(process_wait(d, on_exit_rec, &w), 0);
        assert_int_equal(process_teardown(d), 0);
        assert_int_equal(w.calls, 1);
        assert_int_equal(w.code, 137);
        assert_string_equal(process_state_name(d), "terminated");
        assert_int_equal(process_status(d), PROCESS_STATUS_STOPPED);
        /* kill and delete now succeed, so containerd's Delete can proceed */
        assert_int_equal(CALL(process_kill, d, 0), 0);
        assert_int_equal(CALL(process_delete, d), 0);
        assert_int_equal(process_teardown(d), 0);
        assert_int_equal(w.calls, 1);
        /* teardown is only for migrating processes */
        struct process *q = new_proc("c15", "q");
        assert_int_equal(process_teardown(q), -EBUSY);
        process_free(q);
        ctrl_envelope_free(e);
        process_free(d);
        process_free(src);
}

/* Freed with a guest call in flight: the late completion finds nothing and frees itself. */
static void test_free_with_operation_in_flight(void **state)
{
        guest_container("c16", false);
        struct process *p = new_proc("c16", "");
        assert_int_equal(CALL(process_create, p, &no_io), 0);
        struct result x = {0};
        assert_int_equal(process_start(p, on_done, &x), 0);
        assert_string_equal(process_state_name(p), "starting");
        process_free(p);
        run_for_ms(20);
        assert_false(x.done); /* pending callbacks are never called after free */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            CTRL_TEST(test_init_lifecycle_exit_reported_once),
            CTRL_TEST(test_init_signals_its_container),
            CTRL_TEST(test_exec_publishes_its_exit_once),
            CTRL_TEST(test_kill_and_delete_before_start),
            CTRL_TEST(test_create_with_fifos_and_close_io),
            CTRL_TEST(test_start_failure_replies_pid_minus_one),
            CTRL_TEST(test_resize),
            CTRL_TEST(test_in_flight_calls_are_aborted),
            CTRL_TEST(test_frozen_rejections),
            CTRL_TEST(test_import_sets_exit_code_255),
            CTRL_TEST(test_save_import_patch_resume_round_trip),
            CTRL_TEST(test_exec_round_trip_keeps_spec),
            CTRL_TEST(test_source_rollback_keeps_single_reporter),
            CTRL_TEST(test_rollback_after_reconnect_reports_once),
            CTRL_TEST(test_exit_during_blackout_reported_after_resume),
            CTRL_TEST(test_bad_envelopes_change_nothing),
            CTRL_TEST(test_teardown_of_imported_never_resumed),
            CTRL_TEST(test_free_with_operation_in_flight),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
