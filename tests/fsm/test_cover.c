/* SPDX-License-Identifier: MIT */
/* The spec-coverage recorder (src/fsm/cover.h) on the sample machine's real tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fsm/cover.h"
#include "sample_ctl.h"
#include "sample_fsm.h"
#include "util/status.h"
#include "util/util.h"

static unsigned cell(unsigned s, unsigned e)
{
        return (s << sample_machine.ev_shift) + e;
}

static void test_counts_results_and_guard_outcomes(void **state)
{
        struct fsm_cover *c = NULL;
        struct sample s;
        unsigned urgent = cell(SAMPLE_S_RUNNING, SAMPLE_E_TICK);
        unsigned budget = sample_machine.arms[urgent].next;
        unsigned els = sample_machine.arms[budget].next;

        assert_int_equal(fsm_cover_new(&c), 0);
        fsm_set_trace(fsm_cover_hook, c);
        sample_ctl_init(&s, "job");
        s.begin_ret = -EIO;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL), -EIO); /* failed */
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_RESET, NULL, NULL), 0);
        s.begin_ret = 0;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL), 0);
        s.urgent = true;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, NULL), 0); /* urgent */
        s.urgent = false;
        s.budget = true;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, NULL), 0); /* budget */
        s.budget = false;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_TICK, NULL, NULL),
                         -FERRY_ERRNO_RESOURCE_EXHAUSTED);
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOPPED, NULL, NULL), 0); /* ignored */
        s.halt_ret = FSM_PENDING;
        assert_int_equal(fsm_dispatch(&s.fsm, SAMPLE_E_STOP, NULL, NULL), FSM_PENDING);
        fsm_set_trace(NULL, NULL);

        unsigned start = cell(SAMPLE_S_IDLE, SAMPLE_E_START);
        assert_int_equal(fsm_cover_count(c, &sample_machine, start, FSM_RESULT_FAILED), 1);
        assert_int_equal(fsm_cover_count(c, &sample_machine, start, FSM_RESULT_OK), 1);
        assert_int_equal(fsm_cover_count(c, &sample_machine, urgent, FSM_RESULT_OK), 1);
        assert_int_equal(fsm_cover_count(c, &sample_machine, budget, FSM_RESULT_OK), 1);
        assert_int_equal(fsm_cover_count(c, &sample_machine, els, FSM_RESULT_REJECTED), 1);
        assert_int_equal(fsm_cover_count(c, &sample_machine,
                                         cell(SAMPLE_S_RUNNING, SAMPLE_E_STOPPED),
                                         FSM_RESULT_IGNORED),
                         1);
        assert_int_equal(fsm_cover_count(c, &sample_machine, cell(SAMPLE_S_RUNNING, SAMPLE_E_STOP),
                                         FSM_RESULT_PENDING),
                         1);
        /* is_urgent: true once, false twice; has_budget: true once, false once */
        assert_int_equal(fsm_cover_guard(c, &sample_machine, urgent, true), 1);
        assert_int_equal(fsm_cover_guard(c, &sample_machine, urgent, false), 2);
        assert_int_equal(fsm_cover_guard(c, &sample_machine, budget, true), 1);
        assert_int_equal(fsm_cover_guard(c, &sample_machine, budget, false), 1);
        assert_int_equal(fsm_cover_guard(c, &sample_machine, els, true), 0); /* else: no guard */
        /* nothing else was counted */
        assert_int_equal(fsm_cover_count(c, &sample_machine, cell(SAMPLE_S_PAUSED, SAMPLE_E_TICK),
                                         FSM_RESULT_REJECTED),
                         0);
        c = fsm_cover_free(c);
        assert_null(c);
        assert_null(fsm_cover_free(NULL));
}

static void test_dump_format(void **state)
{
        struct fsm_cover *c = NULL;
        struct sample s;
        char *buf = NULL, want[256];
        size_t len = 0;
        FILE *f;

        assert_int_equal(fsm_cover_new(&c), 0);
        fsm_set_trace(fsm_cover_hook, c);
        sample_ctl_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL);
        fsm_dispatch(&s.fsm, SAMPLE_E_START, NULL, NULL); /* rejected in running by default */
        fsm_set_trace(NULL, NULL);
        f = open_memstream(&buf, &len);
        assert_non_null(f);
        assert_int_equal(fsm_cover_dump(c, f), 0);
        fclose(f);
        ferry_bprintf(
            want, sizeof(want),
            "ferry-fsm-cover 1\nmachine sample %s %u\narm %u 1 0 0 0 0 0 0\narm %u 0 0 0 0 1 0 0\n",
            sample_machine.spec_hash, sample_machine.n_arms, cell(SAMPLE_S_IDLE, SAMPLE_E_START),
            cell(SAMPLE_S_RUNNING, SAMPLE_E_START));
        assert_string_equal(buf, want);
        free(buf);
        fsm_cover_free(c);
}

static void test_bad_record_is_refused(void **state)
{
        struct fsm_cover *c = NULL;
        struct fsm_trace rec = {.machine = &sample_machine, .arm = sample_machine.n_arms};

        assert_int_equal(fsm_cover_new(&c), 0);
        assert_int_equal(fsm_cover_record(c, &rec), -EINVAL);
        assert_int_equal(fsm_cover_count(c, &sample_machine, 0, FSM_RESULT_OK), 0);
        fsm_cover_free(c);
}

static void test_env_dump_dir(void **state)
{
        char dir[] = "/tmp/fsm-cover-test-XXXXXX", path[512];
        struct fsm_cover *c = NULL;
        struct sample s;
        FILE *f;
        char line[128];

        assert_non_null(mkdtemp(dir));
        assert_int_equal(fsm_cover_new(&c), 0);
        fsm_set_trace(fsm_cover_hook, c);
        sample_ctl_init(&s, "job");
        fsm_dispatch(&s.fsm, SAMPLE_E_FINISH, NULL, NULL);
        fsm_set_trace(NULL, NULL);
        assert_int_equal(fsm_cover_dump_dir(c, dir), 0);
        assert_int_equal(fsm_cover_dump_dir(c, dir), 0); /* a second file, not an overwrite */
        ferry_bprintf(path, sizeof(path), "%s/fsm-cover-%ld-1.txt", dir, (long)getpid());
        f = fopen(path, "r");
        assert_non_null(f);
        assert_non_null(fgets(line, sizeof(line), f));
        assert_string_equal(line, "ferry-fsm-cover 1\n");
        fclose(f);
        unlink(path);
        ferry_bprintf(path, sizeof(path), "%s/fsm-cover-%ld-0.txt", dir, (long)getpid());
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
        assert_int_equal(fsm_cover_dump_dir(c, "/nonexistent/dir"), -ENOENT);
        fsm_cover_free(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_counts_results_and_guard_outcomes),
            cmocka_unit_test(test_dump_format),
            cmocka_unit_test(test_bad_record_is_refused),
            cmocka_unit_test(test_env_dump_dir),
        };
        return cmocka_run_group_tests_name("fsm-cover", tests, NULL, NULL);
}
