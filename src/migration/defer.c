/* SPDX-License-Identifier: MIT */
#include "migration/defer.h"

#include "util/later.h"

int mig_defer(uv_loop_t *loop, unsigned *pending, int result, mig_done_fn done, void *userdata)
{
        return ferry_later_done(loop, pending, result, done, userdata);
}
