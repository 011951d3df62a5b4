/* SPDX-License-Identifier: MIT */
/* The step bookkeeping the sandbox ops tables (sim_ops.c, vm_ops.c) share: each asynchronous
 * step carries the caller's completion and is counted in the sandbox's steps in flight (the
 * sandbox is not freed under it); a transfer is tracked until it ends, and a finalize asked
 * while a cancelled transfer unwinds is held until then. */
#pragma once

#include <stdbool.h>

#include "migration/session.h"
#include "util/later.h"

/* Runs a finalize now: the ops' own finalize, without the wait for the transfer. */
typedef int (*mig_finalize_fn)(void *sb, bool resume, bool skip_host, mig_done_fn done,
                               void *userdata);

/* A finalize that waits for a cancelled transfer to unwind. */
struct mig_finalize_wait {
        bool set, resume, skip_host;
        mig_done_fn done;
        void *userdata;
};

/* Embedded in the sandbox; set up with mig_steps_init. */
struct mig_steps {
        uv_loop_t *loop;
        void *sb;                 /* the sandbox that embeds this */
        mig_finalize_fn finalize; /* the ops' finalize, for a held one */
        unsigned inflight;        /* steps whose done has not run yet */
        bool xfer_inflight;       /* a transfer, perhaps cancelled, has not ended */
        struct mig_finalize_wait wait;
};

/* One asynchronous step. */
struct mig_step {
        struct mig_steps *owner;
        void *sb;         /* owner->sb */
        mig_done_fn done; /* the caller's completion; prepared for prepare_destination */
        mig_prepare_fn prepared;
        void *userdata;
        bool resume; /* finalize: resume the VM (else stop it) */
        int result;  /* a failure kept while the step unwinds */
        struct ferry_later turn;
};

/* s serves sandbox sb (borrowed) on loop; finalize is the ops' finalize without the wait. */
void mig_steps_init(struct mig_steps *s, uv_loop_t *loop, void *sb, mig_finalize_fn finalize);

/* A step that ends with done(result, userdata), counted in s->inflight. NULL when out of
 * memory (nothing counted). */
struct mig_step *mig_step_new(struct mig_steps *s, mig_done_fn done, void *userdata);
/* The same for prepare_destination, ending with prepared(result, created, userdata). */
struct mig_step *mig_step_new_prepare(struct mig_steps *s, mig_prepare_fn prepared, void *userdata);
/* Uncounts and frees st without calling anyone: its call was refused. */
void mig_step_drop(struct mig_step *st);
/* Uncounts and frees st, then calls done(result). */
void mig_step_end(struct mig_step *st, int result);
/* Uncounts and frees st, then calls prepared(result, created). */
void mig_step_end_prepare(struct mig_step *st, int result, bool created);
/* A mig_done_fn that ends the step given as userdata: for calls with nothing to add. */
void mig_step_cb(int result, void *userdata);

/* Calls done(result, userdata) on the next loop turn, counted in s->inflight till then.
 * 0 or -ENOMEM (done is then never called). */
int mig_steps_defer(struct mig_steps *s, int result, mig_done_fn done, void *userdata);

/* The step of a transfer over fd. NULL when out of memory: fd is then closed. */
struct mig_step *mig_transfer_step(struct mig_steps *s, int fd, mig_done_fn done, void *userdata);
/* r is what the call that starts the transfer of st returned: below 0 st is dropped, else the
 * transfer is in flight until mig_transfer_ended (st is not touched: it may have ended).
 * Returns r. */
int mig_transfer_begun(struct mig_steps *s, struct mig_step *st, int r);
/* A mig_done_fn for the transfer's step (userdata): the transfer ended with result; its done
 * runs, then a finalize held meanwhile. */
void mig_transfer_ended(int result, void *userdata);

/* The ops' finalize: held while a (cancelled) transfer unwinds (-EBUSY when one is held
 * already), else s->finalize now. A held finalize that is refused when it runs is answered
 * with the error. */
int mig_steps_finalize(struct mig_steps *s, bool resume, bool skip_host, mig_done_fn done,
                       void *userdata);
