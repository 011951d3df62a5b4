/* SPDX-License-Identifier: MIT */
/*
 * The model-based cases generated from spec/vpci.yaml (docs/testing.md), run against the REAL
 * vPCI handlers (vpci.c is included) and the real generated tables, then against mutants of the
 * tables (one arm's target, error, kind, failure or in-flight state changed at a time): every
 * mutant must make some case fail.
 *
 * Steering, from outside the handlers (arrange): the last_reference guard reads the device's
 * reference count, which arrange sets; a failure step's action fails for real, with no VM
 * (host add and remove: -ENXIO) or no guest connection (guest add: -ENOTCONN) in the env; a
 * completion step carries the completion's error as complete() would.
 *
 * Doubles: the host modify and guest vpci_ready calls the actions make are checked (resource
 * path, request type, GUID) and held: the runner dispatches the completion itself, so a real
 * sim completion arriving after the case would only race it (the sim path is test_vpci.c's).
 * STAND-IN: the model also takes a pending action's synchronous success (begin_host_add,
 * begin_guest_add, begin_host_remove done at once), which the real handlers never return (the
 * HCS and guest calls always complete later, on the loop); for those steps only, the wrapper
 * does the arm's bookkeeping and returns 0 instead of calling the handler.
 *
 *   test_vpci_mbt [--trace FILE]
 */
#include "fixture.h"
#include "mbt.h"

static int dbl_hcs_modify(struct hcs_system *sys, const char *req, hcs_done_fn done, void *ud);
static int dbl_guest_vpci_ready(struct guest_conn *c, const char *id, guest_done_fn done, void *ud);
#define hcs_modify                       dbl_hcs_modify
#define guest_vpci_ready                 dbl_guest_vpci_ready
#define vpci_action_begin_host_add       real_begin_host_add
#define vpci_action_begin_guest_add      real_begin_guest_add
#define vpci_action_take_first_reference real_take_first_reference
#define vpci_action_add_reference        real_add_reference
#define vpci_action_drop_reference       real_drop_reference
#define vpci_action_reply_error          real_reply_error
#define vpci_action_untrack              real_untrack
#define vpci_action_begin_host_remove    real_begin_host_remove
#define vpci_guard_last_reference        real_last_reference
#include "vpci.c"
#undef hcs_modify
#undef guest_vpci_ready
#undef vpci_action_begin_host_add
#undef vpci_action_begin_guest_add
#undef vpci_action_take_first_reference
#undef vpci_action_add_reference
#undef vpci_action_drop_reference
#undef vpci_action_reply_error
#undef vpci_action_untrack
#undef vpci_action_begin_host_remove
#undef vpci_guard_last_reference

extern const struct mbt_suite vpci_mbt;

static struct ctrl_fixture fx;
static struct ctrl_env env; /* the controller's env: arrange takes the VM or guest away */
static struct vpci *ctl;
static uint32_t next_vf;
static unsigned replies;
static struct vpci_call call_arg;

/* The index of the spec's only guard in the tables. */
static unsigned last_reference_id(void)
{
        for (unsigned i = 0; i < vpci_machine.n_guards; i++)
                if (strcmp(vpci_machine.guard_names[i], "last_reference") == 0)
                        return i;
        return UINT16_MAX;
}

static bool step_action(const char *action, enum mbt_act act)
{
        const struct mbt_step *st = mbt_current_step();
        return st && st->action && st->act == act && strcmp(st->action, action) == 0;
}

/* The held host call: the request must name this device's entry, with the step's type. */
static int dbl_hcs_modify(struct hcs_system *sys, const char *req, hcs_done_fn done, void *ud)
{
        struct vpci_device *d = ud;
        const char *type =
            step_action("begin_host_add", MBT_ACT_PENDING) ? "\"Add\"" : "\"Remove\"";

        /* json-c escapes the path's slashes: look for its parts */
        if (!sys || !done || !strstr(req, "VirtualPci") || !strstr(req, d->guid) ||
            !strstr(req, type))
                return -EPROTO; /* the action fails: the case fails */
        return 0;
}

static int dbl_guest_vpci_ready(struct guest_conn *c, const char *id, guest_done_fn done, void *ud)
{
        struct vpci_device *d = ud;
        return c && done && strcmp(id, d->guid) == 0 ? 0 : -EPROTO;
}

/* The synchronous success of a pending action: the bookkeeping of the arm's `to`. */
static int sync_done(struct vpci_device *d, const char *action)
{
        mbt_note_action(action);
        if (strcmp(action, "begin_host_remove") == 0) {
                d->refcount = 0;
                d->v->devs[d->slot] = NULL;
        } else {
                d->refcount = 1;
        }
        ctrl_reply(&d->pending, 0);
        return 0;
}

#define PENDING_ACTION(name)                                                                       \
        int vpci_action_##name(struct vpci_device *d, void *arg);                                  \
        int vpci_action_##name(struct vpci_device *d, void *arg)                                   \
        {                                                                                          \
                if (step_action(#name, MBT_ACT_OK))                                                \
                        return sync_done(d, #name);                                                \
                mbt_note_action(#name);                                                            \
                return real_##name(d, arg);                                                        \
        }

#define ACTION(name)                                                                               \
        int vpci_action_##name(struct vpci_device *d, void *arg);                                  \
        int vpci_action_##name(struct vpci_device *d, void *arg)                                   \
        {                                                                                          \
                mbt_note_action(#name);                                                            \
                return real_##name(d, arg);                                                        \
        }

PENDING_ACTION(begin_host_add)
PENDING_ACTION(begin_guest_add)
PENDING_ACTION(begin_host_remove)
ACTION(take_first_reference)
ACTION(add_reference)
ACTION(drop_reference)
ACTION(reply_error)
ACTION(untrack)

bool vpci_guard_last_reference(struct vpci_device *d, void *arg);
bool vpci_guard_last_reference(struct vpci_device *d, void *arg)
{
        bool v = real_last_reference(d, arg);
        mbt_note_guard(last_reference_id(), v);
        return v;
}

static void on_reply(int r, void *ud)
{
        replies++;
}

static bool wants_guard(const struct mbt_step *st, unsigned guard, bool *ret_value)
{
        for (unsigned i = 0; i < st->n_guards; i++)
                if (st->guards[i].guard == guard) {
                        *ret_value = st->guards[i].value;
                        return true;
                }
        return false;
}

static int arrange(void *userdata, struct fsm *m, const struct mbt_step *st)
{
        struct vpci_device *d = m->ctx;
        bool v;

        env = fx.env;
        if (step_action("begin_host_add", MBT_ACT_FAIL) ||
            step_action("begin_host_remove", MBT_ACT_FAIL))
                env.sys = NULL;
        if (step_action("begin_guest_add", MBT_ACT_FAIL))
                env.guest = NULL;
        if (wants_guard(st, last_reference_id(), &v))
                d->refcount = v ? 1 : 2;
        d->op_err = st->event == VPCI_E_HOST_ADD_FAILED || st->event == VPCI_E_GUEST_ADD_FAILED ||
                            st->event == VPCI_E_HOST_REMOVE_FAILED
                        ? -EIO
                        : 0;
        call_arg = (struct vpci_call){.done = on_reply};
        return 0;
}

static void *event_arg(void *userdata, const struct mbt_step *st)
{
        bool is_call = st->event == VPCI_E_RESERVE || st->event == VPCI_E_ADD ||
                       st->event == VPCI_E_REMOVE || st->event == VPCI_E_SAVE;
        return is_call ? &call_arg : NULL;
}

/* A fresh device through the real reserve call. */
static int make(void *userdata, struct fsm **ret_fsm)
{
        char guid[VPCI_GUID_LEN];
        int r = vpci_reserve(ctl, "PCI\\VEN_1234&DEV_MBT", next_vf++, guid);
        if (r < 0)
                return r;
        *ret_fsm = &find_guid(ctl, guid)->fsm;
        return 0;
}

/* The device may be in flight (its completion held) or untracked by the case: free it here. */
static void destroy(void *userdata, struct fsm *m)
{
        struct vpci_device *d = m->ctx;
        if (ctl->devs[d->slot] == d)
                ctl->devs[d->slot] = NULL;
        free(d);
}

static const struct mbt_ops ops = {
    .make = make, .destroy = destroy, .arrange = arrange, .event_arg = event_arg};

int main(int argc, char **argv)
{
        setup_loop(NULL);
        fixture_up(&fx, loop, backend, "mbtvm", 0, NULL);
        env = fx.env;
        assert_int_equal(vpci_new(&env, &ctl), 0);

        int status = mbt_main(&vpci_mbt, &ops, argc, argv);

        /* the real actions did reply to the waiting callers */
        if (status == 0 && replies == 0) {
                fprintf(stderr, "no call was ever answered\n");
                status = 1;
        }
        assert_int_equal(vpci_device_count(ctl), 0);
        vpci_free(ctl);
        fixture_down(&fx);
        teardown_loop(NULL);
        return status;
}
