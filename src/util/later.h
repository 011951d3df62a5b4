/* SPDX-License-Identifier: MIT */
/* "On the next loop turn": a call that already knows its answer delivers it from a later
 * turn of the loop, so it never calls its caller back before it has returned (and a callback
 * that runs inside another module's transition can go on once that transition is over).
 *
 * Two forms: struct ferry_later, embedded in an object that outlives the wait (no allocation,
 * cannot fail), and ferry_later_done, which allocates the wait for a plain done(result, ud). */
#pragma once

#include <stddef.h>
#include <uv.h>

/* The object that embeds member, from a pointer to that member. */
#define ferry_container_of(ptr, type, member)                                                      \
        ({                                                                                         \
                char *_m = (char *)(ptr);                                                          \
                (type *)(_m - offsetof(type, member));                                             \
        })

struct ferry_later;
typedef void (*ferry_later_fn)(struct ferry_later *l);

/* Owned by the object that embeds it; the fields are private. */
struct ferry_later {
        uv_timer_t timer;
        ferry_later_fn fn;
};

/* Calls fn(l) on loop's next turn, once l's timer handle is closed: fn may free the object
 * that embeds l, or start l again. l (borrowed) must stay alive and not be started again
 * until fn runs. */
void ferry_later_start(struct ferry_later *l, uv_loop_t *loop, ferry_later_fn fn);

typedef void (*ferry_done_fn)(int result, void *userdata);

/* Calls done(result, userdata) on loop's next turn. When count is not NULL, *count (borrowed;
 * must outlive the wait) is incremented now and decremented right before done runs, so its
 * owner can tell that a completion is still on its way. Returns 0, or -ENOMEM: done is then
 * never called and *count is untouched. */
int ferry_later_done(uv_loop_t *loop, unsigned *count, int result, ferry_done_fn done,
                     void *userdata);
