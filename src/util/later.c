/* SPDX-License-Identifier: MIT */
#include "util/later.h"

#include <errno.h>
#include <stdlib.h>

static void later_closed(uv_handle_t *h)
{
        struct ferry_later *l = ferry_container_of(h, struct ferry_later, timer);
        /* last touch of l: fn may free or restart it */
        l->fn(l);
}

static void later_fire(uv_timer_t *t)
{
        uv_close((uv_handle_t *)t, later_closed);
}

void ferry_later_start(struct ferry_later *l, uv_loop_t *loop, ferry_later_fn fn)
{
        l->fn = fn;
        uv_timer_init(loop, &l->timer);
        uv_timer_start(&l->timer, later_fire, 0, 0);
}

/* The allocating form: a struct ferry_later that carries the completion. */
struct later_done {
        struct ferry_later later;
        unsigned *count;
        int result;
        ferry_done_fn done;
        void *userdata;
};

static void later_done_fire(struct ferry_later *l)
{
        struct later_done *d = ferry_container_of(l, struct later_done, later);
        ferry_done_fn done = d->done;
        void *ud = d->userdata;
        int result = d->result;
        if (d->count)
                (*d->count)--;
        free(d);
        done(result, ud);
}

int ferry_later_done(uv_loop_t *loop, unsigned *count, int result, ferry_done_fn done,
                     void *userdata)
{
        struct later_done *d = malloc(sizeof(*d));
        if (!d)
                return -ENOMEM;
        *d = (struct later_done){
            .count = count, .result = result, .done = done, .userdata = userdata};
        ferry_later_start(&d->later, loop, later_done_fire);
        if (count)
                (*count)++;
        return 0;
}
