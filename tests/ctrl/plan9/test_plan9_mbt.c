/* SPDX-License-Identifier: MIT */
/*
 * The model-based cases generated from spec/plan9_share.yaml and spec/plan9_mount.yaml
 * (docs/testing.md), run against the REAL Plan9 handlers (plan9.c is included) and the real
 * generated tables, then against mutants of the tables (one arm's target, error, kind, failure
 * or in-flight state changed at a time): every mutant must make some case fail.
 *
 * Instances: a share is built as reserve would (a name, a host path) and starts in reserved; a
 * mount case also gets such a share, with the mount as its mount machine (release tells it).
 * Steering, from outside the handlers (arrange), per step:
 *   - has_mount: the share gets a fresh mount machine, or loses it; last_reference sets the
 *     mount's reference count; configs_equal sets the call's read-only flag;
 *   - a share's forwarded call fails for real in its mount machine: reserve with a different
 *     read-only flag (failed_precondition), mount with no mount machine (-EBUSY), unmount while
 *     the mount is in flight (aborted); it succeeds with no mount (unmount), a fresh one
 *     (reserve: one more reference) or a reserved one (mount: the guest mount goes in flight);
 *   - a host or guest action fails for real with no VM (-ENXIO) or no guest (-ENOTCONN);
 *   - a completion carries the completion's error as the controller's callbacks would.
 * Doubles: the host modify and guest Plan9 calls are checked and held: the runner dispatches
 * the completion itself (the sim path is test_plan9.c's).
 * STAND-IN: the model also takes a pending action's synchronous success (begin_add,
 * begin_remove, begin_mount, begin_unmount done at once), which the real handlers never return
 * (the HCS and guest calls always complete later, on the loop); for those steps only, the
 * wrapper does the arm's bookkeeping and returns 0 instead of calling the handler.
 *
 *   test_plan9_mbt {plan9_share|plan9_mount} [--trace FILE]
 */
#include "fixture.h"
#include "mbt.h"

static int dbl_hcs_modify(struct hcs_system *sys, const char *req, hcs_done_fn done, void *ud);
static int dbl_guest_plan9_mount(struct guest_conn *c, const char *share, const char *path,
                                 guest_done_fn done, void *ud);
static int dbl_guest_plan9_unmount(struct guest_conn *c, const char *path, guest_done_fn done,
                                   void *ud);
#define hcs_modify                        dbl_hcs_modify
#define guest_plan9_mount                 dbl_guest_plan9_mount
#define guest_plan9_unmount               dbl_guest_plan9_unmount
#define plan9_share_guard_has_mount       real_share_has_mount
#define plan9_share_action_reserve_mount  real_share_reserve_mount
#define plan9_share_action_begin_add      real_share_begin_add
#define plan9_share_action_reply_ok       real_share_reply_ok
#define plan9_share_action_reply_error    real_share_reply_error
#define plan9_share_action_mount_in_guest real_share_mount_in_guest
#define plan9_share_action_unmount_share  real_share_unmount_share
#define plan9_share_action_drop_mount     real_share_drop_mount
#define plan9_share_action_begin_remove   real_share_begin_remove
#define plan9_share_action_forget         real_share_forget
#define plan9_mount_guard_configs_equal   real_mount_configs_equal
#define plan9_mount_guard_last_reference  real_mount_last_reference
#define plan9_mount_action_add_reference  real_mount_add_reference
#define plan9_mount_action_drop_reference real_mount_drop_reference
#define plan9_mount_action_release        real_mount_release
#define plan9_mount_action_begin_mount    real_mount_begin_mount
#define plan9_mount_action_reply_path     real_mount_reply_path
#define plan9_mount_action_fail_mount     real_mount_fail_mount
#define plan9_mount_action_begin_unmount  real_mount_begin_unmount
#define plan9_mount_action_reply_error    real_mount_reply_error
#include "plan9.c"
#undef hcs_modify
#undef guest_plan9_mount
#undef guest_plan9_unmount
#undef plan9_share_guard_has_mount
#undef plan9_share_action_reserve_mount
#undef plan9_share_action_begin_add
#undef plan9_share_action_reply_ok
#undef plan9_share_action_reply_error
#undef plan9_share_action_mount_in_guest
#undef plan9_share_action_unmount_share
#undef plan9_share_action_drop_mount
#undef plan9_share_action_begin_remove
#undef plan9_share_action_forget
#undef plan9_mount_guard_configs_equal
#undef plan9_mount_guard_last_reference
#undef plan9_mount_action_add_reference
#undef plan9_mount_action_drop_reference
#undef plan9_mount_action_release
#undef plan9_mount_action_begin_mount
#undef plan9_mount_action_reply_path
#undef plan9_mount_action_fail_mount
#undef plan9_mount_action_begin_unmount
#undef plan9_mount_action_reply_error

extern const struct mbt_suite plan9_share_mbt, plan9_mount_mbt;

static struct ctrl_fixture fx;
static struct ctrl_env env; /* the controller's env: arrange takes the VM or guest away */
static struct plan9 *ctl;
static const struct mbt_suite *suite;
static struct p9_call call_arg;
static struct plan9_share *cur_share; /* the running case's share */
static unsigned held;                 /* host and guest calls taken and held */

static bool step_action(const char *action, enum mbt_act act)
{
        const struct mbt_step *st = mbt_current_step();
        return st && st->action && st->act == act && strcmp(st->action, action) == 0;
}

static bool step_runs(const char *action)
{
        const struct mbt_step *st = mbt_current_step();
        return st && st->action && strcmp(st->action, action) == 0;
}

/* ---- doubles ----------------------------------------------------------------------------- */

static int dbl_hcs_modify(struct hcs_system *sys, const char *req, hcs_done_fn done, void *ud)
{
        struct plan9_share *s = ud;
        const char *type = step_runs("begin_add") ? "\"Add\"" : "\"Remove\"";
        if (!sys || !done || !strstr(req, "Plan9") || !strstr(req, s->name) || !strstr(req, type))
                return -EPROTO; /* the action fails: the case fails */
        held++;
        return 0;
}

static int dbl_guest_plan9_mount(struct guest_conn *c, const char *share, const char *path,
                                 guest_done_fn done, void *ud)
{
        struct plan9_mount *m = ud;
        if (!c || !done || strcmp(share, m->share->name) != 0 || strcmp(path, m->guest_path) != 0)
                return -EPROTO;
        held++;
        return 0;
}

static int dbl_guest_plan9_unmount(struct guest_conn *c, const char *path, guest_done_fn done,
                                   void *ud)
{
        struct plan9_mount *m = ud;
        if (!c || !done || strcmp(path, m->guest_path) != 0)
                return -EPROTO;
        held++;
        return 0;
}

/* ---- noting wrappers --------------------------------------------------------------------- */

static unsigned guard_id(const struct fsm_machine *mc, const char *name)
{
        for (unsigned i = 0; i < mc->n_guards; i++)
                if (strcmp(mc->guard_names[i], name) == 0)
                        return i;
        return UINT16_MAX;
}

/* Whether a handler of machine mc is the running case's: a share's forwarded call runs its
 * mount's handlers too, which the runner must not count as the step's. */
static bool mine(const struct fsm_machine *mc)
{
        return mc == suite->machine;
}

#define GUARD(mach, ctx, name, real)                                                               \
        bool mach##_guard_##name(struct ctx *x, void *arg);                                        \
        bool mach##_guard_##name(struct ctx *x, void *arg)                                         \
        {                                                                                          \
                bool v = real(x, arg);                                                             \
                if (mine(&mach##_machine))                                                         \
                        mbt_note_guard(guard_id(&mach##_machine, #name), v);                       \
                return v;                                                                          \
        }

#define ACTION(mach, ctx, name, real)                                                              \
        int mach##_action_##name(struct ctx *x, void *arg);                                        \
        int mach##_action_##name(struct ctx *x, void *arg)                                         \
        {                                                                                          \
                if (mine(&mach##_machine))                                                         \
                        mbt_note_action(#name);                                                    \
                return real(x, arg);                                                               \
        }

/* A pending action steered to succeed at once: the bookkeeping of its arm's `to`. */
#define PENDING_ACTION(mach, ctx, name, real, sync)                                                \
        int mach##_action_##name(struct ctx *x, void *arg);                                        \
        int mach##_action_##name(struct ctx *x, void *arg)                                         \
        {                                                                                          \
                if (!mine(&mach##_machine))                                                        \
                        return real(x, arg);                                                       \
                mbt_note_action(#name);                                                            \
                if (!step_action(#name, MBT_ACT_OK))                                               \
                        return real(x, arg);                                                       \
                sync;                                                                              \
                return 0;                                                                          \
        }

GUARD(plan9_share, plan9_share, has_mount, real_share_has_mount)
ACTION(plan9_share, plan9_share, reserve_mount, real_share_reserve_mount)
PENDING_ACTION(plan9_share, plan9_share, begin_add, real_share_begin_add, (void)0)
ACTION(plan9_share, plan9_share, reply_ok, real_share_reply_ok)
ACTION(plan9_share, plan9_share, reply_error, real_share_reply_error)
ACTION(plan9_share, plan9_share, mount_in_guest, real_share_mount_in_guest)
ACTION(plan9_share, plan9_share, unmount_share, real_share_unmount_share)
ACTION(plan9_share, plan9_share, drop_mount, real_share_drop_mount)
PENDING_ACTION(plan9_share, plan9_share, begin_remove, real_share_begin_remove, (void)0)
ACTION(plan9_share, plan9_share, forget, real_share_forget)
GUARD(plan9_mount, plan9_mount, configs_equal, real_mount_configs_equal)
GUARD(plan9_mount, plan9_mount, last_reference, real_mount_last_reference)
ACTION(plan9_mount, plan9_mount, add_reference, real_mount_add_reference)
ACTION(plan9_mount, plan9_mount, drop_reference, real_mount_drop_reference)
ACTION(plan9_mount, plan9_mount, release, real_mount_release)
PENDING_ACTION(plan9_mount, plan9_mount, begin_mount, real_mount_begin_mount, (void)0)
ACTION(plan9_mount, plan9_mount, reply_path, real_mount_reply_path)
ACTION(plan9_mount, plan9_mount, fail_mount, real_mount_fail_mount)
/* done at once, the unmount ends the mount as release would: the share hears of it */
PENDING_ACTION(plan9_mount, plan9_mount, begin_unmount, real_mount_begin_unmount,
               real_mount_release(x, NULL))
ACTION(plan9_mount, plan9_mount, reply_error, real_mount_reply_error)

/* ---- steering ---------------------------------------------------------------------------- */

static bool wants_guard(const struct mbt_step *st, const char *name, bool *ret_value)
{
        for (unsigned i = 0; i < st->n_guards; i++)
                if (st->guards[i].guard == guard_id(suite->machine, name)) {
                        *ret_value = st->guards[i].value;
                        return true;
                }
        return false;
}

/* A fresh mount machine of s in reserved, one reference, read-write. */
static struct plan9_mount *mbt_new_mount(struct plan9_share *s)
{
        struct plan9_mount *m = calloc(1, sizeof(*m));
        assert_non_null(m);
        m->share = s;
        m->refcount = 1;
        ferry_bprintf(m->guest_path, sizeof(m->guest_path), GUEST_ROOT "%s", s->name);
        fsm_init(&m->fsm, &plan9_mount_machine, m, m->guest_path);
        return m;
}

/* Frees what the controller's reap would: the ended mount, and (with drop) the live one. */
static void drop_mounts(struct plan9_share *s, bool drop_live)
{
        free(s->dead_mount);
        s->dead_mount = NULL;
        if (drop_live) {
                free(s->mount);
                s->mount = NULL;
        }
}

static void set_mount(struct plan9_share *s, bool present)
{
        if (present && !s->mount)
                s->mount = mbt_new_mount(s);
        if (!present)
                drop_mounts(s, true);
}

static void arrange_share(struct plan9_share *s, const struct mbt_step *st)
{
        bool v;

        drop_mounts(s, false);
        if (wants_guard(st, "has_mount", &v))
                set_mount(s, v);
        if (step_runs("reserve_mount")) {
                set_mount(s, st->act == MBT_ACT_FAIL);
                call_arg.read_only = st->act == MBT_ACT_FAIL; /* the mount is read-write */
        }
        if (step_runs("mount_in_guest"))
                set_mount(s, st->act != MBT_ACT_FAIL); /* fresh: reserved, its mount goes out */
        if (step_runs("unmount_share")) {
                set_mount(s, false);
                if (st->act == MBT_ACT_FAIL) { /* a mount in flight refuses unmount */
                        struct p9_call c = {0};
                        set_mount(s, true);
                        assert_int_equal(
                            plan9_mount_dispatch(&s->mount->fsm, PLAN9_MOUNT_E_MOUNT, &c),
                            FSM_PENDING);
                }
        }
        s->op_err =
            st->event == PLAN9_SHARE_E_ADD_FAILED || st->event == PLAN9_SHARE_E_REMOVE_FAILED ? -EIO
                                                                                              : 0;
}

static void arrange_mount(struct plan9_mount *m, const struct mbt_step *st)
{
        bool v;

        if (wants_guard(st, "configs_equal", &v))
                call_arg.read_only = v ? m->read_only : !m->read_only;
        if (wants_guard(st, "last_reference", &v))
                m->refcount = v ? 1 : 2;
        m->op_err =
            st->event == PLAN9_MOUNT_E_MOUNT_FAILED || st->event == PLAN9_MOUNT_E_UNMOUNT_FAILED
                ? -EIO
                : 0;
}

static int arrange(void *userdata, struct fsm *m, const struct mbt_step *st)
{
        call_arg = (struct p9_call){0};
        env = fx.env;
        if (st->act == MBT_ACT_FAIL && (step_runs("begin_add") || step_runs("begin_remove")))
                env.sys = NULL;
        if (st->act == MBT_ACT_FAIL && (step_runs("begin_mount") || step_runs("begin_unmount")))
                env.guest = NULL;
        if (suite == &plan9_share_mbt)
                arrange_share(m->ctx, st);
        else
                arrange_mount(m->ctx, st);
        return 0;
}

static void *event_arg(void *userdata, const struct mbt_step *st)
{
        const struct fsm_machine *mc = suite->machine;
        const char *ev = mc->event_names[st->event];
        /* mount_released carries the ended mount; completions carry nothing */
        if (strcmp(ev, "mount_released") == 0)
                return cur_share->mount;
        if (strstr(ev, "_done") || strstr(ev, "_failed"))
                return NULL;
        return &call_arg;
}

/* ---- instances --------------------------------------------------------------------------- */

static struct plan9_share *mbt_new_share(void)
{
        static unsigned n;
        struct plan9_share *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        s->p = ctl;
        ferry_bprintf(s->name, sizeof(s->name), "mbt%u", n++);
        ferry_strscpy(s->host_path, "/srv/mbt", sizeof(s->host_path));
        fsm_init(&s->fsm, &plan9_share_machine, s, s->name);
        return s;
}

static int make(void *userdata, struct fsm **ret_fsm)
{
        cur_share = mbt_new_share();
        if (suite == &plan9_share_mbt) {
                *ret_fsm = &cur_share->fsm;
                return 0;
        }
        cur_share->mount = mbt_new_mount(cur_share);
        *ret_fsm = &cur_share->mount->fsm;
        return 0;
}

/* Machines may be in flight (their completions held) or ended: free them here. */
static void destroy(void *userdata, struct fsm *m)
{
        if (suite == &plan9_mount_mbt) { /* the share may hold it as its ended mount */
                cur_share->mount = cur_share->dead_mount = NULL;
                free(m->ctx);
        }
        drop_mounts(cur_share, true);
        free(cur_share);
        cur_share = NULL;
}

static const struct mbt_ops ops = {
    .make = make, .destroy = destroy, .arrange = arrange, .event_arg = event_arg};

int main(int argc, char **argv)
{
        if (argc > 1 && strcmp(argv[1], "plan9_share") == 0)
                suite = &plan9_share_mbt;
        else if (argc > 1 && strcmp(argv[1], "plan9_mount") == 0)
                suite = &plan9_mount_mbt;
        if (!suite) {
                fprintf(stderr, "usage: %s {plan9_share|plan9_mount} [--trace FILE]\n", argv[0]);
                return 2;
        }
        argv[1] = argv[0];

        setup_loop(NULL);
        fixture_up(&fx, loop, backend, "mbtvm", 0, NULL);
        env = fx.env;
        assert_int_equal(plan9_new(&env, false, &ctl), 0);

        int status = mbt_main(suite, &ops, argc - 1, argv + 1);
        if (status == 0 && held == 0) {
                fprintf(stderr, "no host or guest call was ever made\n");
                status = 1;
        }

        plan9_free(ctl);
        fixture_down(&fx);
        teardown_loop(NULL);
        return status;
}
