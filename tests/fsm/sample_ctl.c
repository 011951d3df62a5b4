/* SPDX-License-Identifier: MIT */
#include "sample_ctl.h"

#include <string.h>

#include "sample_fsm.h"

bool sample_guard_is_urgent(struct sample *s, void *arg)
{
        return s->urgent;
}

bool sample_guard_has_budget(struct sample *s, void *arg)
{
        return s->budget;
}

int sample_action_begin(struct sample *s, void *arg)
{
        return s->begin_ret;
}

int sample_action_work(struct sample *s, void *arg)
{
        return 0;
}

int sample_action_spend(struct sample *s, void *arg)
{
        return s->spend_ret;
}

int sample_action_halt(struct sample *s, void *arg)
{
        return s->halt_ret;
}

int sample_action_note_stopped(struct sample *s, void *arg)
{
        return 0;
}

int sample_action_cleanup(struct sample *s, void *arg)
{
        return 0;
}

void sample_ctl_init(struct sample *s, const char *name)
{
        memset(s, 0, sizeof(*s));
        fsm_init(&s->fsm, &sample_machine, s, name);
}
