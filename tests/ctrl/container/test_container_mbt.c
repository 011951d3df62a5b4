/* SPDX-License-Identifier: MIT */
/* The model-based cases generated from spec/container.yaml (docs/testing.md), run against the
 * REAL container handlers and the real process controller for its init, on the sim backend.
 *
 * Steering from outside, as for the process (tests/ctrl/process/test_process_mbt.c):
 *   - guards: arrange() builds the step's argument (kill all with an exec) or sets the field
 *     the guard reads (container.c is compiled in: has_guest, is_patched, the exec table);
 *   - actions: a failure step gets a real failure (a bad id, bad resources, an unknown exec,
 *     an invalid signal, no envelope) or, for a guest call, a refusal from a double; a step
 *     that the model takes synchronously gets the double's answer at once; a pending step
 *     goes to the real guest, whose answer arrives after the case (the runner does not turn
 *     the loop) into a detached operation. The guest calls of container.c are doubled by
 *     macros, those of the process library by the linker (--wrap);
 *   - completions: the runner dispatches them itself, so the real init would lag behind; for
 *     a completion step that is taken, arrange() gives the container a fresh init brought, by
 *     its public calls, to the state that completion means (created, running, patched, …). */
#include "fixture.h"

#include "ctrl/process/process.h"
#include "mbt.h"
#include "steer.h"
#include "save_container.pb-c.h"
#include "save_process.pb-c.h"

struct container;
struct cop;
static int dbl_create_container(struct guest_conn *c, const char *id, guest_done_fn done, void *ud);
static int dbl_delete_container(struct guest_conn *c, const char *id, guest_done_fn done, void *ud);
static int dbl_update(struct container *c, struct cop *o, const void *json);
#define guest_create_container dbl_create_container
#define guest_delete_container dbl_delete_container
#define CONTAINER_UPDATE_GUEST dbl_update
#include "container.c"
#undef guest_create_container
#undef guest_delete_container

#include "container_fsm.h"

extern const struct mbt_suite container_mbt;

int __real_guest_start_container(struct guest_conn *c, const char *id, guest_done_fn done,
                                 void *ud);
int __real_guest_io_relay(struct guest_conn *c, uint32_t pid, guest_done_fn done, void *ud);
int __real_guest_signal_process(struct guest_conn *c, uint32_t pid, int sig, guest_done_fn done,
                                void *ud);
int __wrap_guest_start_container(struct guest_conn *c, const char *id, guest_done_fn done,
                                 void *ud);
int __wrap_guest_io_relay(struct guest_conn *c, uint32_t pid, guest_done_fn done, void *ud);
int __wrap_guest_signal_process(struct guest_conn *c, uint32_t pid, int sig, guest_done_fn done,
                                void *ud);
int __real_guest_signal_container(struct guest_conn *c, const char *id, int sig, guest_done_fn done,
                                  void *ud);
int __wrap_guest_signal_container(struct guest_conn *c, const char *id, int sig, guest_done_fn done,
                                  void *ud);

static struct ctrl_fixture fx;
static ctrl_envelope *good_env;      /* a saved container with layers, a mount and its init */
static ctrl_envelope *good_proc_env; /* that init's own envelope */
static ctrl_envelope *saved;
static struct call arg;
static struct container_create_opts create_arg;
static struct container_patch_opts patch_arg;
static const char *paths[CONTAINER_LAYERS_MAX];
static unsigned exec_seq;
static int force_act; /* arrange's own calls: what every double answers (0: follow the step) */

/* ---- doubles ---- */

static int dbl_create_container(struct guest_conn *c, const char *id, guest_done_fn done, void *ud)
{
        static const char *const owners[] = {"begin_create", NULL};
        int r = steer_guest(owners, force_act, done, 0, ud);
        return r <= 0 ? r : guest_create_container(c, id, done, ud);
}

static int dbl_delete_container(struct guest_conn *c, const char *id, guest_done_fn done, void *ud)
{
        static const char *const owners[] = {"begin_release", NULL};
        int r = steer_guest(owners, force_act, done, 0, ud);
        return r <= 0 ? r : guest_delete_container(c, id, done, ud);
}

static int dbl_update(struct container *c, struct cop *o, const void *json)
{
        static const char *const owners[] = {"begin_update", NULL};
        int r = steer_guest(owners, force_act, cop_cb, 0, o);
        return r <= 0 ? r : update_guest_sim(c, o, json);
}

int __wrap_guest_start_container(struct guest_conn *c, const char *id, guest_done_fn done, void *ud)
{
        static const char *const owners[] = {"begin_start", NULL};
        int r = steer_guest(owners, force_act, done, 4242, ud);
        return r <= 0 ? r : __real_guest_start_container(c, id, done, ud);
}

int __wrap_guest_io_relay(struct guest_conn *c, uint32_t pid, guest_done_fn done, void *ud)
{
        static const char *const owners[] = {"begin_source_resume", "begin_destination_resume",
                                             NULL};
        int r = steer_guest(owners, force_act, done, 5000, ud);
        return r <= 0 ? r : __real_guest_io_relay(c, pid, done, ud);
}

int __wrap_guest_signal_process(struct guest_conn *c, uint32_t pid, int sig, guest_done_fn done,
                                void *ud)
{
        static const char *const owners[] = {"kill_processes", NULL};
        int r = steer_guest(owners, force_act, done, 0, ud);
        return r <= 0 ? r : __real_guest_signal_process(c, pid, sig, done, ud);
}

int __wrap_guest_signal_container(struct guest_conn *c, const char *id, int sig, guest_done_fn done,
                                  void *ud)
{
        static const char *const owners[] = {"kill_processes", NULL};
        int r = steer_guest(owners, force_act, done, 0, ud);
        return r <= 0 ? r : __real_guest_signal_container(c, id, sig, done, ud);
}

/* ---- a fresh init in a given state ---- */

enum init_kind {
        INIT_KEEP,
        INIT_CREATED,
        INIT_RUNNING,
        INIT_START_FAILED,
        INIT_SOURCE_MIGRATING,
        INIT_DESTINATION,
        INIT_PATCHED,
        INIT_ENDED,
};

static void replace_init(struct container *c, enum init_kind kind)
{
        struct process *p = NULL;
        static const struct process_create_opts none = {.bundle = "/b"};
        static const struct process_patch_opts patch = {.container_id = "dst", .bundle = "/d"};
        if (kind == INIT_KEEP)
                return;
        assert_int_equal(process_new(c->env, c->id[0] ? c->id : "mbt", "mbt", "", 0, &p), 0);
        force_act = MBT_ACT_OK;
        if (kind == INIT_DESTINATION || kind == INIT_PATCHED) {
                assert_int_equal(process_import(p, good_proc_env), 0);
                if (kind == INIT_PATCHED)
                        assert_int_equal(process_patch(p, &patch, NULL, NULL), 0);
        } else if (kind == INIT_ENDED) {
                assert_int_equal(process_kill(p, 0, NULL, NULL), 0);
        } else {
                assert_int_equal(process_create(p, &none, NULL, NULL), 0);
                if (kind == INIT_START_FAILED)
                        force_act = MBT_ACT_FAIL;
                if (kind != INIT_CREATED)
                        process_start(p, NULL, NULL);
                if (kind == INIT_SOURCE_MIGRATING) {
                        ctrl_envelope *e = NULL;
                        assert_int_equal(process_save(p, &e), 0);
                        ctrl_envelope_free(e);
                }
        }
        force_act = 0;
        process_set_exit_hook(p, on_init_exit, c);
        process_free(c->init);
        c->init = p;
}

/* What a taken completion means for the init. */
static enum init_kind init_for(const struct mbt_step *st)
{
        switch (st->event) {
        case CONTAINER_E_CREATE_DONE:
                return INIT_CREATED;
        case CONTAINER_E_START_DONE:
                return INIT_RUNNING;
        case CONTAINER_E_START_FAILED:
                return INIT_START_FAILED;
        case CONTAINER_E_PATCH_DONE:
                return INIT_PATCHED;
        case CONTAINER_E_PATCH_FAILED:
                return INIT_DESTINATION;
        case CONTAINER_E_INIT_EXITED:
                return INIT_ENDED;
        case CONTAINER_E_RESUME_DONE:
                return st->from == CONTAINER_S_STOPPED ? INIT_ENDED : INIT_RUNNING;
        case CONTAINER_E_RESUME_FAILED:
                if (st->from == CONTAINER_S_STOPPED)
                        return INIT_ENDED;
                return st->from == CONTAINER_S_SOURCE_RESUMING ? INIT_SOURCE_MIGRATING
                                                               : INIT_PATCHED;
        default:
                return INIT_KEEP;
        }
}

/* ---- steering ---- */

static void drop_execs(struct container *c)
{
        for (size_t i = 0; i < c->n_execs; i++) {
                process_free(c->execs[i].p);
                free(c->execs[i].id);
        }
        c->n_execs = 0;
}

/* Adds a created exec named id directly to the table (created, so delete can end it). */
static void add_created_exec(struct container *c, const char *id)
{
        static const struct process_create_opts none = {0};
        struct call a = {.exec_id = id};
        assert_int_equal(container_action_add_exec(c, &a), 0);
        assert_int_equal(process_create(c->execs[c->n_execs - 1].p, &none, NULL, NULL), 0);
}

static void patch_paths(struct container *c)
{
        for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
                paths[i] = "/dst/disk.vhd";
        patch_arg = (struct container_patch_opts){
            .id = "mbt-dst",
            .bundle = "/dst",
            .ro_layer_paths = paths,
            .n_ro_layer_paths = c->n_ro,
            .scratch_path = c->scratch ? "/dst/scratch.vhd" : NULL,
            .mount_paths = paths,
            .n_mount_paths = c->n_mounts,
        };
}

static int arrange(void *userdata, struct fsm *m, const struct mbt_step *st)
{
        struct container *c = m->ctx;
        bool v = false;
        static char exec_id[32];

        ctrl_envelope_free(saved);
        saved = NULL;
        memset(&arg, 0, sizeof(arg));
        create_arg = (struct container_create_opts){.id = "mbt", .bundle = "/b"};
        patch_paths(c);
        arg.create = &create_arg;
        arg.patch = &patch_arg;
        arg.exec_id = "";
        arg.sig = SIGTERM;
        arg.resources = "{\"linux\":{}}";
        arg.env = good_env;
        arg.ret_env = &saved;

        if (step_wants(&container_machine, st, "kill_all_with_exec", &v) && v) {
                arg.all = true;
                arg.exec_id = "e";
        }
        if (step_wants(&container_machine, st, "has_guest", &v))
                c->guest_bound = v;
        if (step_wants(&container_machine, st, "is_patched", &v)) {
                struct process_io io;
                c->patched = v;
                /* a patched container has a patched init (it has IO) */
                if (v && c->init && !process_io(c->init, &io))
                        replace_init(c, INIT_PATCHED);
        }
        if (step_wants(&container_machine, st, "only_init_process", &v)) {
                drop_execs(c);
                if (!v)
                        add_created_exec(c, "x");
        }
        if (step_acts(st, "add_exec")) {
                ferry_bprintf(exec_id, sizeof(exec_id), "e%u", ++exec_seq);
                arg.exec_id = exec_id;
        }
        if (step_acts(st, "remove_exec") && st->act == MBT_ACT_OK) {
                add_created_exec(c, "r");
                arg.exec_id = "r";
        }
        if (st->event == CONTAINER_E_DELETE_EXEC && !step_acts(st, "remove_exec"))
                arg.exec_id = "none";

        /* Completions: their result, and an init that has done what they report. */
        const char *name = container_machine.event_names[st->event];
        size_t n = strlen(name);
        if (n > 7 && strcmp(name + n - 7, "_failed") == 0)
                arg.result = -EIO;
        if (st->event == CONTAINER_E_START_DONE)
                arg.value = 4242;
        if (st->result == FSM_RESULT_OK)
                replace_init(c, init_for(st));

        /* Real failures (the guest calls' refusals come from the doubles). */
        if (step_fails(st, "begin_create"))
                create_arg.id = "a/b";
        if (step_fails(st, "begin_update"))
                arg.resources = "[]";
        if (step_fails(st, "add_exec"))
                arg.exec_id = "";
        if (step_fails(st, "kill_processes"))
                arg.sig = 99;
        if (step_fails(st, "remove_exec"))
                arg.exec_id = "none";
        if (step_fails(st, "save_payload"))
                arg.ret_env = NULL;
        if (step_fails(st, "import_payload"))
                arg.env = NULL;
        if (step_fails(st, "begin_patch"))
                patch_arg.id = "a/b";
        /* A pending patch: the init opens an endpoint on the thread pool. */
        if (st->act == MBT_ACT_PENDING && step_acts(st, "begin_patch"))
                patch_arg.io.stdout_path = "/dev/null";
        return 0;
}

static void *event_arg(void *userdata, const struct mbt_step *st)
{
        return &arg;
}

static int make(void *userdata, struct fsm **ret_fsm)
{
        struct container *c = NULL;
        int r = container_new(&fx.env, NULL, &c);
        if (r == 0)
                *ret_fsm = &c->fsm;
        return r;
}

static void destroy(void *userdata, struct fsm *m)
{
        container_free(m->ctx);
        ctrl_envelope_free(saved);
        saved = NULL;
        uv_run(loop, UV_RUN_NOWAIT);
}

static const struct mbt_ops ops = {
    .make = make, .destroy = destroy, .arrange = arrange, .event_arg = event_arg};

static void make_envelopes(void)
{
        Ferry__Process__Save__V1__Payload pm = FERRY__PROCESS__SAVE__V1__PAYLOAD__INIT;
        pm.schema_version = 1;
        pm.exec_id = "";
        pm.pid = 4242;
        pm.bundle = "/src";
        assert_int_equal(ctrl_envelope_pack("process", 1, &pm.base, &good_proc_env), 0);

        layer_msg ro = FERRY__CONTAINER__SAVE__V1__LAYER_RESERVATION__INIT;
        layer_msg scr = FERRY__CONTAINER__SAVE__V1__LAYER_RESERVATION__INIT;
        layer_msg mnt = FERRY__CONTAINER__SAVE__V1__LAYER_RESERVATION__INIT;
        ro.reservation_id = "ro";
        scr.reservation_id = "scr";
        mnt.reservation_id = "mnt";
        layer_msg *ro_list[] = {&ro}, *mnt_list[] = {&mnt};
        char *mnt_ids[] = {"mnt"};
        Ferry__Container__Save__V1__Layers layers = FERRY__CONTAINER__SAVE__V1__LAYERS__INIT;
        layers.ro_layers = ro_list;
        layers.n_ro_layers = 1;
        layers.scratch = &scr;
        Ferry__Container__Save__V1__ProcessEntry entry =
            FERRY__CONTAINER__SAVE__V1__PROCESS_ENTRY__INIT;
        entry.exec_id = "";
        entry.envelope = good_proc_env;
        Ferry__Container__Save__V1__ProcessEntry *entries[] = {&entry};
        payload_msg cm = FERRY__CONTAINER__SAVE__V1__PAYLOAD__INIT;
        cm.schema_version = 1;
        cm.container_id = "mbt";
        cm.gcs_container_id = "mbt";
        cm.layers = &layers;
        cm.scsi_mounts = mnt_list;
        cm.n_scsi_mounts = 1;
        cm.scsi_reservation_ids = mnt_ids;
        cm.n_scsi_reservation_ids = 1;
        cm.processes = entries;
        cm.n_processes = 1;
        assert_int_equal(ctrl_envelope_pack("container", 1, &cm.base, &good_env), 0);
}

int main(int argc, char **argv)
{
        setup_loop(NULL);
        fixture_up(&fx, loop, backend, "mbtvm", 0, NULL);
        make_envelopes();

        int status = mbt_main(&container_mbt, &ops, argc, argv);

        ctrl_envelope_free(good_env);
        ctrl_envelope_free(good_proc_env);
        fixture_down(&fx);
        teardown_loop(NULL);
        return status;
}
