/* SPDX-License-Identifier: MIT */
#include "migration/defer.h"

#include <errno.h>
#include <stdlib.h>

struct deferred {
        uv_timer_t timer;
        unsigned *pending;
        int result;
        mig_done_fn done;
        void *userdata;
};

static void deferred_closed(uv_handle_t *h)
{
        struct deferred *d = h->data;
        mig_done_fn done = d->done;
        void *ud = d->userdata;
        int result = d->result;
        (*d->pending)--;
        free(d);
        done(result, ud);
}

static void deferred_fire(uv_timer_t *t)
{
        uv_close((uv_handle_t *)t, deferred_closed);
}

int mig_defer(uv_loop_t *loop, unsigned *pending, int result, mig_done_fn done, void *userdata)
{
        struct deferred *d = malloc(sizeof(*d));
        if (!d)
                return -ENOMEM;
        *d = (struct deferred){.pending = pending, .result = result, .done = done,
                               .userdata = userdata};
        uv_timer_init(loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, deferred_fire, 0, 0);
        (*pending)++;
        return 0;
}
