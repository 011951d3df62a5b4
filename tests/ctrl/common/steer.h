/* SPDX-License-Identifier: MIT */
/* Reading a generated model-based step (tests/fsm/mbt.h) in a test that runs a controller's real
 * handlers: which guard outcome the step wants, which action it runs or makes fail (for the
 * arrange hook), and what a guest double answers while it runs. Shared by the controllers'
 * *_mbt.c programs. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fsm/fsm.h"
#include "guest/guest.h"
#include "mbt.h"
#include "util/util.h"

/* Whether step st names guard (by its name in machine mc); its wanted value in *ret_value. */
static _unused_ bool step_wants(const struct fsm_machine *mc, const struct mbt_step *st,
                                const char *guard, bool *ret_value)
{
        for (unsigned i = 0; i < st->n_guards; i++)
                if (strcmp(mc->guard_names[st->guards[i].guard], guard) == 0) {
                        *ret_value = st->guards[i].value;
                        return true;
                }
        return false;
}

/* Whether step st runs action. */
static _unused_ bool step_acts(const struct mbt_step *st, const char *action)
{
        return st->action && strcmp(st->action, action) == 0;
}

/* Whether step st makes action fail. */
static _unused_ bool step_fails(const struct mbt_step *st, const char *action)
{
        return st->act == MBT_ACT_FAIL && step_acts(st, action);
}

/* What a guest double does with a call made while the running step's action is one of owners
 * (NULL-terminated), or with any call when force (an enum mbt_act; 0: follow the step) is set:
 * MBT_ACT_OK completes it now (done(0, value, ud)) and returns 0, MBT_ACT_FAIL refuses it with
 * -EIO; anything else returns 1, and the double passes the call on to the real guest. */
static _unused_ int steer_guest(const char *const *owners, int force, guest_done_fn done,
                                uint64_t value, void *ud)
{
        int act = force;
        const struct mbt_step *st = mbt_current_step();
        if (!act && st)
                for (; *owners; owners++)
                        if (step_acts(st, *owners))
                                act = st->act;
        if (act == MBT_ACT_FAIL)
                return -EIO;
        if (act != MBT_ACT_OK)
                return 1;
        done(0, value, ud);
        return 0;
}
