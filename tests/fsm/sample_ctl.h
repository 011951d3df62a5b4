/* SPDX-License-Identifier: MIT */
/* Plain, settable handlers for the sample machine (tests/fsm/sample.yaml), shared by the
 * tests of the trace and coverage recorders: each guard and action reads its field. */
#pragma once

#include <stdbool.h>

#include "fsm/fsm.h"

struct sample {
        struct fsm fsm;
        bool urgent, budget;                /* the guards' answers */
        int begin_ret, spend_ret, halt_ret; /* 0, a negative errno or FSM_PENDING */
};

/* Zeroes s and binds its instance in the initial state; name is borrowed. */
void sample_ctl_init(struct sample *s, const char *name);
