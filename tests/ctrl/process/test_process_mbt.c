/* SPDX-License-Identifier: MIT */
/* The model-based cases generated from spec/process.yaml (docs/testing.md), run against the
 * REAL process handlers on the sim backend. The handlers are steered from outside: arrange()
 * builds each step's argument so the guards come out as the step needs (a terminal with a
 * stderr, a patch without a container id), sets the two guards that read the process's own
 * IO, and makes a failure step's action fail for real: an over-long path, an invalid signal,
 * no guest connection, no envelope. The guest calls the actions start stay in flight while a
 * case runs (the runner does not turn the loop) and complete into detached operations after
 * the case frees its process.
 *
 * The handlers are compiled into this program (process.c is included) so arrange can set the
 * IO flags the guards read, and with the guest calls its actions make routed through doubles:
 * the model also takes a pending action's synchronous outcome (its `to` or `on_error` without
 * the in-flight state), which the sim guest never gives (it completes after the call returns),
 * so for the step's own action the double completes at once (MBT_ACT_OK) or refuses
 * (MBT_ACT_FAIL), and otherwise passes the call to the real guest. Opening the upstream IO
 * has a real synchronous path: no endpoints, nothing to open. */
#include "fixture.h"
#include "mbt.h"
#include "steer.h"

static int dbl_start_container(struct guest_conn *c, const char *id, guest_done_fn done, void *ud);
static int dbl_start_process(struct guest_conn *c, const char *id, guest_done_fn done, void *ud);
static int dbl_signal_process(struct guest_conn *c, uint32_t pid, int sig, guest_done_fn done,
                              void *ud);
static int dbl_signal_container(struct guest_conn *c, const char *id, int sig, guest_done_fn done,
                                void *ud);
static int dbl_io_relay(struct guest_conn *c, uint32_t pid, guest_done_fn done, void *ud);
#define guest_start_container  dbl_start_container
#define guest_start_process    dbl_start_process
#define guest_signal_process   dbl_signal_process
#define guest_signal_container dbl_signal_container
#define guest_io_relay         dbl_io_relay
#include "process.c"
#undef guest_start_container
#undef guest_start_process
#undef guest_signal_process
#undef guest_signal_container
#undef guest_io_relay

/* What the double does for a call made by action `owner` (or `other`, may be NULL): complete
 * now, refuse, or pass through (1): steer_guest. */
static int steer(const char *owner, const char *other, guest_done_fn done, uint64_t value, void *ud)
{
        const char *const owners[] = {owner, other, NULL};
        return steer_guest(owners, 0, done, value, ud);
}

static int dbl_start_container(struct guest_conn *c, const char *id, guest_done_fn done, void *ud)
{
        int r = steer("start_process", NULL, done, 4242, ud);
        return r <= 0 ? r : guest_start_container(c, id, done, ud);
}

static int dbl_start_process(struct guest_conn *c, const char *id, guest_done_fn done, void *ud)
{
        int r = steer("start_process", NULL, done, 4242, ud);
        return r <= 0 ? r : guest_start_process(c, id, done, ud);
}

static int dbl_signal_process(struct guest_conn *c, uint32_t pid, int sig, guest_done_fn done,
                              void *ud)
{
        int r = steer("signal", "resize_console", done, 0, ud);
        return r <= 0 ? r : guest_signal_process(c, pid, sig, done, ud);
}

static int dbl_signal_container(struct guest_conn *c, const char *id, int sig, guest_done_fn done,
                                void *ud)
{
        int r = steer("signal", "resize_console", done, 0, ud);
        return r <= 0 ? r : guest_signal_container(c, id, sig, done, ud);
}

static int dbl_io_relay(struct guest_conn *c, uint32_t pid, guest_done_fn done, void *ud)
{
        int r = steer("reopen_source", "reopen_destination", done, 5000, ud);
        return r <= 0 ? r : guest_io_relay(c, pid, done, ud);
}
#include "process_fsm.h"
#include "save_process.pb-c.h"

extern const struct mbt_suite process_mbt;

static struct ctrl_fixture fx;
static ctrl_envelope *good_env;

static struct process_create_opts create_arg;
static struct process_patch_opts patch_arg;
static struct call arg;
static char long_path[PROCESS_PATH_MAX + 8];
static ctrl_envelope *saved; /* save steps write here */

static int arrange(void *userdata, struct fsm *m, const struct mbt_step *st)
{
        struct process *p = m->ctx;
        bool v = false;

        ctrl_envelope_free(saved); /* a case may save twice */
        saved = NULL;
        memset(&arg, 0, sizeof(arg));
        create_arg = (struct process_create_opts){.bundle = "/b"};
        patch_arg = (struct process_patch_opts){.container_id = "dst", .bundle = "/d"};
        arg.create = &create_arg;
        arg.sig = SIGTERM;
        arg.width = 80;
        arg.height = 25;
        arg.env = good_env;
        arg.ret_env = &saved;

        if (st->event == PROCESS_E_PATCH) {
                arg.create = NULL;
                arg.patch = &patch_arg;
        }
        if (step_wants(&process_machine, st, "terminal_with_stderr", &v) && v) {
                create_arg.io = (struct process_io){.stderr_path = "/e", .terminal = true};
                patch_arg.io = create_arg.io;
        }
        if (step_wants(&process_machine, st, "patch_args_invalid", &v) && v)
                patch_arg.container_id = "";
        if (step_wants(&process_machine, st, "is_tty", &v))
                p->io.terminal = v;
        if (step_wants(&process_machine, st, "has_upstream_io", &v))
                p->io.open = v;

        /* Completions carry a result, a pid, an exit code. */
        if (st->event == PROCESS_E_IO_OPEN_FAILED || st->event == PROCESS_E_START_FAILED ||
            st->event == PROCESS_E_CALL_FAILED || st->event == PROCESS_E_RESUME_FAILED)
                arg.result = -EIO;
        if (st->event == PROCESS_E_STARTED)
                arg.value = 4242;
        if (st->event == PROCESS_E_EXITED)
                arg.value = 3;

        /* Real failures. */
        if (step_fails(st, "open_io"))
                create_arg.bundle = long_path;
        if (step_fails(st, "open_destination_io"))
                patch_arg.container_id = "not/an/id";
        if (step_fails(st, "save_payload"))
                arg.ret_env = NULL;
        if (step_fails(st, "import_payload"))
                arg.env = NULL;
        /* A pending open: an endpoint for the thread pool (which completes after the case). */
        if (st->act == MBT_ACT_PENDING &&
            (step_acts(st, "open_io") || step_acts(st, "open_destination_io")))
                create_arg.io.stdout_path = patch_arg.io.stdout_path = "/dev/null";
        return 0;
}

static void *event_arg(void *userdata, const struct mbt_step *st)
{
        return &arg;
}

static int make(void *userdata, struct fsm **ret_fsm)
{
        struct process *p = NULL;
        int r = process_new(&fx.env, "mbt", "mbt", "", 0, &p);
        if (r == 0)
                *ret_fsm = &p->fsm;
        return r;
}

static void destroy(void *userdata, struct fsm *m)
{
        process_free(m->ctx);
        ctrl_envelope_free(saved);
        saved = NULL;
        /* let detached guest and thread-pool completions free themselves */
        uv_run(loop, UV_RUN_NOWAIT);
}

static const struct mbt_ops ops = {
    .make = make, .destroy = destroy, .arrange = arrange, .event_arg = event_arg};

int main(int argc, char **argv)
{
        setup_loop(NULL);
        fixture_up(&fx, loop, backend, "mbtvm", 0, NULL);
        memset(long_path, 'x', sizeof(long_path) - 1);

        Ferry__Process__Save__V1__Payload m = FERRY__PROCESS__SAVE__V1__PAYLOAD__INIT;
        m.schema_version = 1;
        m.exec_id = "";
        m.pid = 4242;
        m.bundle = "/src";
        assert_int_equal(ctrl_envelope_pack("process", 1, &m.base, &good_env), 0);

        int status = mbt_main(&process_mbt, &ops, argc, argv);

        ctrl_envelope_free(good_env);
        fixture_down(&fx);
        teardown_loop(NULL);
        return status;
}
