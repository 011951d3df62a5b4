/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "util/later.h"
#include "util/util.h"

struct seen {
        unsigned count; /* what ferry_later_done counts */
        int order[8];
        int n;
        unsigned count_at_done[8];
};

static struct seen seen;

static void on_done(int result, void *userdata)
{
        assert_ptr_equal(userdata, &seen);
        assert_true(seen.n < (int)ARRAY_SIZE(seen.order));
        seen.count_at_done[seen.n] = seen.count;
        seen.order[seen.n++] = result;
}

/* done comes on a later turn, never inside the call; the count covers exactly the
 * completions still on their way. */
static void test_done_next_turn(void **state)
{
        uv_loop_t loop;
        assert_int_equal(uv_loop_init(&loop), 0);
        seen = (struct seen){0};
        assert_int_equal(ferry_later_done(&loop, &seen.count, -EIO, on_done, &seen), 0);
        assert_int_equal(ferry_later_done(&loop, &seen.count, 7, on_done, &seen), 0);
        assert_int_equal(seen.n, 0);
        assert_int_equal(seen.count, 2);
        uv_run(&loop, UV_RUN_DEFAULT);
        /* both, once each (libuv runs close callbacks of one turn last-closed first, so the
         * order between them is not promised) */
        assert_int_equal(seen.n, 2);
        assert_true((seen.order[0] == -EIO && seen.order[1] == 7) ||
                    (seen.order[0] == 7 && seen.order[1] == -EIO));
        /* each is uncounted right before its done runs */
        assert_int_equal(seen.count_at_done[0], 1);
        assert_int_equal(seen.count_at_done[1], 0);
        assert_int_equal(seen.count, 0);
        /* every handle is closed: the loop closes */
        assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_done_without_count(void **state)
{
        uv_loop_t loop;
        assert_int_equal(uv_loop_init(&loop), 0);
        seen = (struct seen){0};
        assert_int_equal(ferry_later_done(&loop, NULL, 3, on_done, &seen), 0);
        assert_int_equal(seen.n, 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.order[0], 3);
        assert_int_equal(uv_loop_close(&loop), 0);
}

/* An owner that embeds the wait, restarts it from its own callback and frees itself at the
 * end: the helper must not touch it once fn has run. */
struct owner {
        int turns;
        int *ran;
        uv_loop_t *loop;
        struct ferry_later later;
};

static void owner_fire(struct ferry_later *l)
{
        struct owner *o = ferry_container_of(l, struct owner, later);
        (*o->ran)++;
        if (++o->turns < 3) {
                ferry_later_start(&o->later, o->loop, owner_fire);
                return;
        }
        free(o);
}

static void test_embedded(void **state)
{
        uv_loop_t loop;
        int ran = 0;
        assert_int_equal(uv_loop_init(&loop), 0);
        struct owner *o = calloc(1, sizeof(*o));
        assert_non_null(o);
        o->ran = &ran;
        o->loop = &loop;
        ferry_later_start(&o->later, &loop, owner_fire);
        assert_int_equal(ran, 0);
        /* one turn runs it once: the restarted wait belongs to a later turn */
        uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(ran, 1);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(ran, 3);
        assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_done_next_turn),
            cmocka_unit_test(test_done_without_count),
            cmocka_unit_test(test_embedded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
