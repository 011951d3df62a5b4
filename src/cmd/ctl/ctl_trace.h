/* SPDX-License-Identifier: MIT */
/* `ferryctl trace`: offline checks of recorded transition traces (src/fsm/trace.h) against the
 * tables of every controller spec compiled into ferryctl. */
#pragma once

#include <stddef.h>
#include <stdio.h>

#include "fsm/fsm.h"

/* Every controller machine, from the generated replay_tables.c. */
extern const struct fsm_machine *const ctl_replay_machines[];
extern const size_t ctl_replay_n_machines;

/* Replays one trace file (path borrowed, "-" = stdin) and prints its report to out. Returns 0
 * when it conforms, 1 when it diverges, 2 on an I/O error. */
int ctl_trace_replay_file(const char *path, FILE *out);

/* `trace replay FILE...` ('-' = stdin) and `trace machines`. Prints one report per file.
 * Returns the exit status: 0 every file conforms, 1 one diverges, 2 usage or I/O error. */
int ctl_trace_main(int argc, char **argv);
