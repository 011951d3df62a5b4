/* SPDX-License-Identifier: MIT */
#include "migration/ops_step.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "migration/defer.h"

void mig_steps_init(struct mig_steps *s, uv_loop_t *loop, void *sb, mig_finalize_fn finalize)
{
        *s = (struct mig_steps){.loop = loop, .sb = sb, .finalize = finalize};
}

struct mig_step *mig_step_new(struct mig_steps *s, mig_done_fn done, void *userdata)
{
        struct mig_step *st = calloc(1, sizeof(*st));
        if (!st)
                return NULL;
        st->owner = s;
        st->sb = s->sb;
        st->done = done;
        st->userdata = userdata;
        s->inflight++;
        return st;
}

struct mig_step *mig_step_new_prepare(struct mig_steps *s, mig_prepare_fn prepared, void *userdata)
{
        struct mig_step *st = mig_step_new(s, NULL, userdata);
        if (st)
                st->prepared = prepared;
        return st;
}

void mig_step_drop(struct mig_step *st)
{
        st->owner->inflight--;
        free(st);
}

void mig_step_end(struct mig_step *st, int result)
{
        mig_done_fn done = st->done;
        void *ud = st->userdata;
        mig_step_drop(st);
        done(result, ud);
}

void mig_step_end_prepare(struct mig_step *st, int result, bool created)
{
        mig_prepare_fn prepared = st->prepared;
        void *ud = st->userdata;
        mig_step_drop(st);
        prepared(result, created, ud);
}

void mig_step_cb(int result, void *userdata)
{
        mig_step_end(userdata, result);
}

int mig_steps_defer(struct mig_steps *s, int result, mig_done_fn done, void *userdata)
{
        return mig_defer(s->loop, &s->inflight, result, done, userdata);
}

struct mig_step *mig_transfer_step(struct mig_steps *s, int fd, mig_done_fn done, void *userdata)
{
        struct mig_step *st = mig_step_new(s, done, userdata);
        if (!st)
                close(fd);
        return st;
}

int mig_transfer_begun(struct mig_steps *s, struct mig_step *st, int r)
{
        if (r < 0)
                mig_step_drop(st);
        else
                s->xfer_inflight = true;
        return r;
}

void mig_transfer_ended(int result, void *userdata)
{
        struct mig_step *st = userdata;
        struct mig_steps *s = st->owner;
        s->xfer_inflight = false;
        mig_step_end(st, result);
        if (!s->wait.set)
                return;
        struct mig_finalize_wait held = s->wait;
        s->wait = (struct mig_finalize_wait){0};
        int r = s->finalize(s->sb, held.resume, held.skip_host, held.done, held.userdata);
        if (r < 0)
                held.done(r, held.userdata);
}

int mig_steps_finalize(struct mig_steps *s, bool resume, bool skip_host, mig_done_fn done,
                       void *userdata)
{
        if (!s->xfer_inflight)
                return s->finalize(s->sb, resume, skip_host, done, userdata);
        if (s->wait.set)
                return -EBUSY;
        s->wait = (struct mig_finalize_wait){.set = true,
                                             .resume = resume,
                                             .skip_host = skip_host,
                                             .done = done,
                                             .userdata = userdata};
        return 0;
}
