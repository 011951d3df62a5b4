/* SPDX-License-Identifier: MIT */
/* Child processes and scratch directories for `ferryctl demo` and the end-to-end tests: every
 * shim started here is killed and reaped, and the scratch directory removed, on every path —
 * normal exit, failure, SIGINT/SIGTERM (the handler stops the children, which makes pending
 * calls fail at once so the normal cleanup runs) and ferryctl's own death (PR_SET_PDEATHSIG). */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Set once SIGINT or SIGTERM arrived (after ctl_proc_install_signals()). */
extern volatile sig_atomic_t ctl_interrupted;
/* How many SIGINT/SIGTERM arrived, so a wait can tell one that came while it waited. */
extern volatile sig_atomic_t ctl_signals;

/* The read end of a non-blocking pipe the handler writes one byte to at each signal, so a loop
 * blocked in epoll wakes up (libuv retries an interrupted poll); -1 before
 * ctl_proc_install_signals(). Drained by whoever waits on it. */
int ctl_proc_wake_fd(void);

/* Installs the SIGINT/SIGTERM handler that records the signal and sends SIGTERM to every
 * running child started with ctl_spawn(). */
void ctl_proc_install_signals(void);

/* Starts argv[0] (a path; argv borrowed, NULL-terminated) with stdin from /dev/null and
 * stdout/stderr appended to log_path (NULL: inherited). The child dies with ferryctl.
 * Returns 0 and *ret_pid, or a negative errno (fork, or the exec failure reported back). */
int ctl_spawn(char *const argv[], const char *log_path, pid_t *ret_pid);

/* Runs argv (argv[0] a path) to its end with stdout and stderr captured into buf (size bytes,
 * always terminated; longer output is cut). Returns the wait status or a negative errno. */
int ctl_capture(char *const argv[], char *buf, size_t size);

/* True while pid (a child) has not exited; reaps it when it has and stores its wait status
 * in *ret_status (may be NULL). */
bool ctl_child_alive(pid_t pid, int *ret_status);

/* Sends SIGTERM, waits up to grace_ms, then SIGKILL, and reaps. Returns the wait status, or a
 * negative errno when pid is not a child. */
int ctl_stop_child(pid_t pid, uint32_t grace_ms);

/* Makes a new private directory under $TMPDIR (or /tmp) named prefix-XXXXXX. ret_path must
 * hold PATH_MAX bytes. Returns 0 or a negative errno. */
int ctl_mkdtemp(const char *prefix, char *ret_path);

/* Removes path and everything under it (no symlink is followed). Returns 0 or a negative
 * errno of the first failure. */
int ctl_rm_rf(const char *path);

/* Path of a sibling program of ferryctl: <dir of /proc/self/exe>/rel. ret_path: PATH_MAX.
 * Returns 0, -ENOENT when it is not executable, or a negative errno. */
int ctl_sibling_path(const char *rel, char *ret_path);
