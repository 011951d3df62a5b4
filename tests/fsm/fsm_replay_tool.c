/* SPDX-License-Identifier: MIT */
/*
 * Replays recorded transition traces (src/fsm/trace.h) against the sample and bench tables
 * and reports the first divergence. `ferryctl trace replay FILE` calls the same fsm_replay()
 * with the controllers' machines.
 *
 *   fsm_replay_tool FILE...     ('-' reads stdin)
 *
 * Exit status: 0 every file conforms, 1 a file diverges, 2 usage or I/O error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench_fsm.h"
#include "fsm/trace.h"
#include "sample_fsm.h"
#include "util/util.h"

/* The tables name their handlers, so linking them needs definitions; replay never calls a
 * guard or an action, it only reads the tables. */
struct sample;
struct bench;
#define NEVER_GUARD(name, ctx)                                                                     \
        bool name(ctx *c, void *arg)                                                               \
        {                                                                                          \
                return false;                                                                      \
        }
#define NEVER_ACTION(name, ctx)                                                                    \
        int name(ctx *c, void *arg)                                                                \
        {                                                                                          \
                return -ENOTSUP;                                                                   \
        }
NEVER_GUARD(sample_guard_is_urgent, struct sample)
NEVER_GUARD(sample_guard_has_budget, struct sample)
NEVER_ACTION(sample_action_begin, struct sample)
NEVER_ACTION(sample_action_work, struct sample)
NEVER_ACTION(sample_action_spend, struct sample)
NEVER_ACTION(sample_action_halt, struct sample)
NEVER_ACTION(sample_action_note_stopped, struct sample)
NEVER_ACTION(sample_action_cleanup, struct sample)
NEVER_GUARD(bench_guard_coin_valid, struct bench)
NEVER_ACTION(bench_action_accept, struct bench)
NEVER_ACTION(bench_action_refund, struct bench)
NEVER_ACTION(bench_action_pass, struct bench)
NEVER_ACTION(bench_action_alarm, struct bench)
NEVER_ACTION(bench_action_repair, struct bench)

static const struct fsm_machine *const machines[] = {&sample_machine, &bench_machine};

int main(int argc, char **argv)
{
        int status = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s FILE...   ('-' reads stdin)\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                bool is_stdin = strcmp(argv[i], "-") == 0;
                FILE *f = is_stdin ? stdin : fopen(argv[i], "re");
                struct fsm_replay_report rep;
                int r;

                if (!f) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        status = 2;
                        continue;
                }
                r = fsm_replay(f, machines, ARRAY_SIZE(machines), &rep);
                if (!is_stdin)
                        fclose(f);
                if (r == -EBADMSG) {
                        (void)fsm_replay_print(&rep, argv[i], stdout);
                        if (status == 0)
                                status = 1;
                } else if (r < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(-r));
                        status = 2;
                } else {
                        (void)fsm_replay_print(&rep, argv[i], stdout);
                }
        }
        return status;
}
