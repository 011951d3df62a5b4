/* SPDX-License-Identifier: MIT */
/*
 * Transition traces: record every dispatch as a text line, and replay a recorded file
 * offline against the generated tables to find where a run left what the spec allows.
 *
 * A line (fields separated by one space; names are snake_case, the instance name is
 * percent-encoded outside printable ASCII and for ' ' and '%'):
 *   fsm1 <machine> <spec_hash> <instance> <from> <event> <to> <result> <errno> <time_us>
 * e.g. `fsm1 sample 3f0c…e1 job-7 running tick paused failed -5 123456789`. `result` is
 * fsm_result_name(); `errno` is 0 or the negative errno fsm_dispatch returned; lines that
 * start with '#' and empty lines are comments.
 */
#pragma once

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "fsm/fsm.h"

#define FSM_TRACE_LINE_MAX 1024

/* Formats one record as a line with its '\n'. Returns the length, or -E2BIG when it does not
 * fit in size (buf then holds a truncated line). */
ssize_t fsm_trace_format(const struct fsm_trace *rec, char *buf, size_t size);

/* Writes one record's line to f (borrowed). Returns 0, -E2BIG or -EIO. */
int fsm_trace_write(FILE *f, const struct fsm_trace *rec);

/* Writes one record's line to fd (borrowed) with write(2), retrying short writes and EINTR.
 * Returns 0, -E2BIG, or the negative errno of write. */
int fsm_trace_write_fd(int fd, const struct fsm_trace *rec);

/* An fsm_trace_fn that writes each record to userdata, a FILE * (borrowed); write errors
 * show in ferror(f). */
void fsm_trace_hook(const struct fsm_trace *rec, void *userdata);

/* The result of a replay. */
struct fsm_replay_report {
        unsigned lines;   /* lines read, comments included */
        unsigned records; /* records checked */
        unsigned line;    /* the first divergence's line (1-based), 0 when none */
        char what[768];   /* what diverged and what the tables allow there */
};

/*
 * Replays a trace read from `in` (borrowed) against the tables of `machines` (an array of n
 * borrowed pointers, looked up by name). For each record it checks: the machine is known and
 * its spec hash is the tables' hash; the names are states and events of it; the recorded
 * decision is one the cell's arms can make (a rejecting arm: rejected, state kept, its errno;
 * ignoring: ignored; transition: ok → to, failed → on_error with a negative errno, pending →
 * the action's in-flight state); the instance's `from` equals its previous `to`; time does
 * not go backwards. Stops at the first divergence.
 *
 * Returns 0 when the trace conforms; -EBADMSG when it diverges or a line is malformed
 * (ret_report->line and ->what say where and why); -ENOMEM; -EIO on a read error.
 * ret_report is always filled.
 */
int fsm_replay(FILE *in, const struct fsm_machine *const *machines, size_t n,
               struct fsm_replay_report *ret_report);

/* Writes a report as one or two lines to out: "replay: N records conform" or
 * "<name>:<line>: <what>". Returns 0 or -EIO. */
int fsm_replay_print(const struct fsm_replay_report *report, const char *name, FILE *out);
