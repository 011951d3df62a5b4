/* SPDX-License-Identifier: MIT */
/* A completion delivered on the next loop turn, so an ops call that already knows its answer
 * never calls its caller back before it returns. */
#pragma once

#include <uv.h>

#include "migration/session.h"

/* Calls done(result, userdata) on loop's next turn. *pending counts it until then (a sandbox
 * is not freed while steps are pending). Returns 0 or -ENOMEM (done is then never called). */
int mig_defer(uv_loop_t *loop, unsigned *pending, int result, mig_done_fn done, void *userdata);
