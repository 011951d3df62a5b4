/* SPDX-License-Identifier: MIT */
/*
 * Coverage on the specs: a trace-hook recorder that counts, per machine, how often each arm
 * decided and with which result (so transitions, failure paths, pending paths, rejections and
 * ignores), and each guard outcome. Guard outcomes follow from the deciding arm: every guarded
 * arm before it in its cell's chain returned false, its own guard (if any) true.
 *
 * With FERRY_FSM_COVERAGE=<dir> set, fsm_cover_from_env() makes a process-wide recorder
 * that writes <dir>/fsm-cover-<pid>-<n>.txt at exit; `fsmc.py coverage --counts <dir>` merges
 * every file there, so a whole test suite accumulates.
 *
 * Count file format (text, one record a line):
 *   ferry-fsm-cover 1
 *   machine <name> <spec_hash> <n_arms>
 *   arm <index> <ok> <pending> <failed> <ignored> <rejected> <guard_true> <guard_false>
 * `arm` lines follow their machine and are written only for arms with a nonzero count.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "fsm/fsm.h"

struct fsm_cover;

/* A new, empty recorder. Returns 0 or -ENOMEM. The caller owns *ret_cover. */
int fsm_cover_new(struct fsm_cover **ret_cover);

/* Frees a recorder; accepts NULL; returns NULL. Uninstall its hook first. */
struct fsm_cover *fsm_cover_free(struct fsm_cover *cover);

/* Counts one dispatch. Returns 0, -ENOMEM (the record is dropped and counted as such), or
 * -EINVAL for a record whose arm is out of range. */
int fsm_cover_record(struct fsm_cover *cover, const struct fsm_trace *rec);

/* An fsm_trace_fn: userdata is the struct fsm_cover * (borrowed). */
void fsm_cover_hook(const struct fsm_trace *rec, void *userdata);

/* How often arm `arm` of `machine` decided with `result`, and its guard outcomes. 0 for a
 * machine never seen. For tests and reports. */
uint64_t fsm_cover_count(const struct fsm_cover *cover, const struct fsm_machine *machine,
                         unsigned arm, enum fsm_result result);
uint64_t fsm_cover_guard(const struct fsm_cover *cover, const struct fsm_machine *machine,
                         unsigned arm, bool outcome);

/* Writes the counts in the format above. Returns 0 or -EIO. */
int fsm_cover_dump(const struct fsm_cover *cover, FILE *f);

/* Writes the counts to a new file <dir>/fsm-cover-<pid>-<n>.txt. Returns 0 or a negative
 * errno from creating or writing it. */
int fsm_cover_dump_dir(const struct fsm_cover *cover, const char *dir);

/*
 * When FERRY_FSM_COVERAGE is set (and not empty): the process-wide recorder, made on the first
 * call (with the directory created and an atexit dump into it registered). Returns it
 * (borrowed; it lives until exit), or NULL when the variable is unset or the recorder cannot
 * be made. fsm_init installs it (with fsm_cover_env_hook) on every thread that has no trace
 * hook of its own, so a whole test suite, shims included, counts; a test with its own hook
 * forwards records with fsm_cover_record(c, rec).
 */
struct fsm_cover *fsm_cover_from_env(void);

/* The hook for the process-wide recorder: fsm_cover_record under the recorder's lock. */
void fsm_cover_env_hook(const struct fsm_trace *rec, void *userdata);
