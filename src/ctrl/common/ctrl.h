/* SPDX-License-Identifier: MIT */
/* What every controller shares: the environment it acts in and the calling convention.
 *
 * Calling convention. A controller's public call (process_start, vm_save, …) dispatches the
 * spec's call event and returns:
 *   - a negative errno when the spec rejects the call in the current state (the errno is the
 *     spec's error class through util/status.h) or an action fails synchronously; the state is
 *     then what the spec says (unchanged for a rejection) and done is never called;
 *   - 0 when the call was taken; done(result, userdata) is then called exactly once, on the
 *     loop thread: at once (before the call returns) for a synchronous transition, or when the
 *     completion event of a pending action arrives.
 * Lifecycle logic lives in spec/<name>.yaml only: handlers do the work, never test the state.
 *
 * Threading: one libuv loop per shim; every controller call and every callback runs on it. */
#pragma once

#include <stdint.h>

#include <uv.h>

#include "fsm/fsm.h"

struct hcs_system;
struct guest_conn;

typedef void (*ctrl_done_fn)(int result, void *userdata);

/* An event for containerd (TaskCreate, TaskExit, …): topic "/tasks/exit" and a JSON body. */
typedef void (*ctrl_publish_fn)(const char *topic, const char *json_body, void *userdata);

/* The host-side context controllers act in; owned by the shim (or a test), borrowed by them. */
struct ctrl_env {
        uv_loop_t *loop;
        struct hcs_system *sys;   /* the pod's VM; NULL before it exists */
        struct guest_conn *guest; /* the guest bridge; NULL until connected */
        ctrl_publish_fn publish;  /* may be NULL */
        void *publish_userdata;
};

/* A call waiting for its outcome; controllers keep one per in-flight call. */
struct ctrl_pending {
        ctrl_done_fn done;
        void *userdata;
};

/* Replies to the waiting caller (if any) and clears p, so a reply happens at most once. */
static inline void ctrl_reply(struct ctrl_pending *p, int result)
{
        ctrl_done_fn done = p->done;
        void *ud = p->userdata;
        p->done = 0;
        p->userdata = 0;
        if (done)
                done(result, ud);
}

/* Takes a call's (done, userdata) into slot for its completion to answer (ctrl_reply), and
 * clears them in the call's arguments; an action returns this (FSM_PENDING). */
static inline int ctrl_pend(struct ctrl_pending *slot, ctrl_done_fn *done, void **userdata)
{
        *slot = (struct ctrl_pending){.done = *done, .userdata = *userdata};
        *done = 0;
        return FSM_PENDING;
}

/* How a public call ends once its event was dispatched with result r: pending (an action
 * took done: the completion answers), rejected or failed at once (r, done never called), or
 * done now (done(0), unless no one waits). */
static inline int ctrl_call_end(int r, ctrl_done_fn done, void *userdata)
{
        if (r == FSM_PENDING)
                return 0;
        if (r < 0)
                return r;
        if (done)
                done(0, userdata);
        return 0;
}

/* A public call made with the thread's rejection record cleared, so that a caller answering a
 * client can word a refusal as the spec does: fsm_rejection(r) after the call returned r. */
#define CTRL_ASK(call) (fsm_rejection_forget(), (call))

/* Publishes an event through env, if a publisher is set. */
static inline void ctrl_publish(const struct ctrl_env *env, const char *topic, const char *json)
{
        if (env && env->publish)
                env->publish(topic, json, env->publish_userdata);
}
