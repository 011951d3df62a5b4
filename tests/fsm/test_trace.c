/* SPDX-License-Identifier: MIT */
/* Trace record and replay (src/fsm/trace.h) on the sample machine's real tables: a recorded
 * run replays clean, and each kind of doctored record is reported at its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <unistd.h>

#include "fsm/trace.h"
#include "sample_ctl.h"
#include "sample_fsm.h"
#include "util/status.h"
#include "util/util.h"

static const struct fsm_machine *const machines[] = {&sample_machine};

#define MAX_LINES 32
static char lines[MAX_LINES][FSM_TRACE_LINE_MAX];
static unsigned n_lines;

/* Records a run that visits every kind of result, on two instances, into lines[]. */
static void record_run(void)
{
        struct sample a, b;
        char *buf = NULL, *p, *nl;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        fsm_set_trace(fsm_trace_hook, f);
        sample_ctl_init(&a, "job a"); /* a space: percent-encoded */
        sample_ctl_init(&b, "b");
        a.begin_ret = -EIO;
        fsm_dispatch(&a.fsm, SAMPLE_E_START, NULL, NULL); /* 1: failed -> failed */
        fsm_dispatch(&b.fsm, SAMPLE_E_START, NULL, NULL); /* 2: ok -> running */
        fsm_dispatch(&a.fsm, SAMPLE_E_RESET, NULL, NULL); /* 3: ok -> idle */
        fsm_dispatch(&b.fsm, SAMPLE_E_TICK, NULL, NULL);  /* 4: rejected (else) */
        b.halt_ret = FSM_PENDING;
        fsm_dispatch(&b.fsm, SAMPLE_E_STOP, NULL, NULL);    /* 5: pending -> stopping */
        fsm_dispatch(&a.fsm, SAMPLE_E_STOPPED, NULL, NULL); /* 6: ignored */
        fsm_dispatch(&b.fsm, SAMPLE_E_STOPPED, NULL, NULL); /* 7: ok -> idle */
        fsm_dispatch(&a.fsm, SAMPLE_E_PAUSE, NULL, NULL);   /* 8: rejected (default) */
        fsm_set_trace(NULL, NULL);
        assert_int_equal(fclose(f), 0);
        n_lines = 0;
        for (p = buf; (nl = strchr(p, '\n')) != NULL && n_lines < MAX_LINES; p = nl + 1) {
                assert_true(ferry_bprintf(lines[n_lines++], FSM_TRACE_LINE_MAX, "%.*s\n",
                                          (int)(nl - p + 0), p) >= 0);
        }
        free(buf);
        assert_int_equal(n_lines, 8);
}

/* Replays lines[] with line `k` (0-based) replaced by `repl` (NULL: unchanged). */
static int replay_with(int k, const char *repl, struct fsm_replay_report *rep)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len), *in;
        int r;

        assert_non_null(out);
        fputs("# a comment, then an empty line\n\n", out);
        for (unsigned i = 0; i < n_lines; i++)
                fputs((int)i == k && repl ? repl : lines[i], out);
        fclose(out);
        in = fmemopen(buf, len, "r");
        assert_non_null(in);
        r = fsm_replay(in, machines, ARRAY_SIZE(machines), rep);
        fclose(in);
        free(buf);
        return r;
}

/* Line i of lines[] with field `field` (0-based) replaced. */
static const char *with_field(unsigned i, unsigned field, const char *value)
{
        static char out[FSM_TRACE_LINE_MAX];
        char copy[FSM_TRACE_LINE_MAX], *save = NULL, *tok;
        size_t n = 0;
        unsigned k = 0;

        ferry_strscpy(copy, lines[i], sizeof(copy));
        copy[strcspn(copy, "\n")] = '\0';
        out[0] = '\0';
        for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save), k++) {
                ssize_t w = ferry_bprintf(out + n, sizeof(out) - n, "%s%s", k ? " " : "",
                                          k == field ? value : tok);

                assert_true(w >= 0);
                n += (size_t)w;
        }
        assert_true(ferry_bprintf(out + n, sizeof(out) - n, "\n") >= 0);
        return out;
}

static void test_format(void **state)
{
        struct sample s;
        char want[256];

        record_run();
        ferry_bprintf(want, sizeof(want), "fsm1 sample %s job%%20a idle start failed failed -5 ",
                      sample_machine.spec_hash);
        assert_memory_equal(lines[0], want, strlen(want));
        assert_non_null(strstr(lines[3], " b running tick running rejected -28 "));
        assert_non_null(strstr(lines[4], " b running stop stopping pending 0 "));
        assert_non_null(strstr(lines[5], " job%20a idle stopped idle ignored 0 "));

        char small[16];
        struct fsm_trace rec = {.machine = &sample_machine, .instance = &s.fsm};
        sample_ctl_init(&s, "x");
        assert_int_equal(fsm_trace_format(&rec, small, sizeof(small)), -E2BIG);
}

static void test_clean_replay(void **state)
{
        struct fsm_replay_report rep;

        record_run();
        assert_int_equal(replay_with(-1, NULL, &rep), 0);
        assert_int_equal(rep.line, 0);
        assert_int_equal(rep.records, 8);
        assert_int_equal(rep.lines, 10);
}

/* comment + empty line come first: record i is on line i + 3 */
#define LINE(i) ((i) + 3)

static void test_wrong_to(void **state)
{
        struct fsm_replay_report rep;

        record_run();
        assert_int_equal(replay_with(1, with_field(1, 6, "paused"), &rep), -EBADMSG);
        assert_int_equal(rep.line, LINE(1));
        assert_non_null(strstr(rep.what, "idle x start recorded as ok -> paused"));
        assert_non_null(strstr(rep.what, "ok -> running, failed -> failed"));
}

static void test_rejecting_cell_recorded_as_transition(void **state)
{
        struct fsm_replay_report rep;

        record_run();
        /* line 8: pause in idle is rejected by the default; recorded as a transition */
        char l[FSM_TRACE_LINE_MAX];
        ferry_strscpy(l, with_field(7, 6, "paused"), sizeof(l));
        ferry_strscpy(lines[7], l, sizeof(lines[7]));
        ferry_strscpy(l, with_field(7, 7, "ok"), sizeof(l));
        ferry_strscpy(lines[7], l, sizeof(lines[7]));
        assert_int_equal(replay_with(7, with_field(7, 8, "0"), &rep), -EBADMSG);
        assert_int_equal(rep.line, LINE(7));
        assert_non_null(strstr(rep.what, "rejected -16"));
}

static void test_wrong_errno_and_guarded_reject(void **state)
{
        struct fsm_replay_report rep;

        record_run();
        assert_int_equal(replay_with(3, with_field(3, 8, "-16"), &rep), -EBADMSG);
        assert_int_equal(rep.line, LINE(3));
        assert_non_null(strstr(rep.what, "[is_urgent]"));
        assert_non_null(strstr(rep.what, "[has_budget]"));
        assert_non_null(strstr(rep.what, "rejected -28"));
}

static void test_broken_chain(void **state)
{
        struct fsm_replay_report rep;

        record_run();
        /* instance b's third record claims to start in idle; its previous left it in stopping */
        assert_int_equal(replay_with(6, with_field(6, 4, "idle"), &rep), -EBADMSG);
        assert_int_equal(rep.line, LINE(6));
        assert_non_null(strstr(rep.what, "previous record left it in stopping"));
}

static void test_foreign_hash_and_unknown_names(void **state)
{
        struct fsm_replay_report rep;

        record_run();
        assert_int_equal(replay_with(2, with_field(2, 2, "00000000deadbeef"), &rep), -EBADMSG);
        assert_int_equal(rep.line, LINE(2));
        assert_non_null(strstr(rep.what, "recorded with spec hash 00000000deadbeef"));
        assert_int_equal(replay_with(0, with_field(0, 1, "vm"), &rep), -EBADMSG);
        assert_int_equal(rep.line, LINE(0));
        assert_string_equal(rep.what, "unknown machine 'vm'");
        assert_int_equal(replay_with(4, with_field(4, 5, "explode"), &rep), -EBADMSG);
        assert_string_equal(rep.what, "sample: unknown event 'explode'");
        assert_int_equal(replay_with(4, with_field(4, 7, "maybe"), &rep), -EBADMSG);
        assert_string_equal(rep.what, "sample: unknown result 'maybe'");
}

static void test_malformed_and_time(void **state)
{
        struct fsm_replay_report rep;

        record_run();
        assert_int_equal(replay_with(5, "fsm1 sample too few\n", &rep), -EBADMSG);
        assert_int_equal(rep.line, LINE(5));
        assert_non_null(strstr(rep.what, "malformed record"));
        assert_int_equal(replay_with(5, with_field(5, 8, "12x"), &rep), -EBADMSG);
        assert_string_equal(rep.what, "malformed errno '12x'");
        assert_int_equal(replay_with(5, with_field(5, 9, "0"), &rep), -EBADMSG);
        assert_int_equal(rep.line, LINE(5));
        assert_non_null(strstr(rep.what, "time goes backwards"));
}

static void test_write_fd(void **state)
{
        struct sample s;
        struct fsm_trace rec = {.machine = &sample_machine,
                                .instance = &s.fsm,
                                .from = SAMPLE_S_IDLE,
                                .event = SAMPLE_E_START,
                                .to = SAMPLE_S_RUNNING,
                                .time_us = 42};
        char got[FSM_TRACE_LINE_MAX] = "", want[FSM_TRACE_LINE_MAX];
        int p[2];
        ssize_t n;

        sample_ctl_init(&s, "fd");
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(fsm_trace_write_fd(p[1], &rec), 0);
        n = read(p[0], got, sizeof(got) - 1);
        assert_true(n > 0);
        assert_true(fsm_trace_format(&rec, want, sizeof(want)) == n);
        assert_memory_equal(got, want, (size_t)n);
        assert_non_null(strstr(got, " fd idle start running ok 0 42\n"));
        close(p[0]);
        close(p[1]);
        assert_int_equal(fsm_trace_write_fd(-1, &rec), -EBADF);
}

static void test_print(void **state)
{
        struct fsm_replay_report rep = {.records = 3};
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_int_equal(fsm_replay_print(&rep, "t.trace", f), 0);
        rep.line = 7;
        ferry_strscpy(rep.what, "oops", sizeof(rep.what));
        assert_int_equal(fsm_replay_print(&rep, "t.trace", f), 0);
        fclose(f);
        assert_string_equal(buf, "t.trace: 3 records conform to the tables\nt.trace:7: oops\n");
        free(buf);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_format),
            cmocka_unit_test(test_clean_replay),
            cmocka_unit_test(test_wrong_to),
            cmocka_unit_test(test_rejecting_cell_recorded_as_transition),
            cmocka_unit_test(test_wrong_errno_and_guarded_reject),
            cmocka_unit_test(test_broken_chain),
            cmocka_unit_test(test_foreign_hash_and_unknown_names),
            cmocka_unit_test(test_malformed_and_time),
            cmocka_unit_test(test_write_fd),
            cmocka_unit_test(test_print),
        };
        return cmocka_run_group_tests_name("fsm-trace", tests, NULL, NULL);
}
