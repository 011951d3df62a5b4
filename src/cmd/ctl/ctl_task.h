/* SPDX-License-Identifier: MIT */
/* `ferryctl sandbox ...`, `ferryctl task ...` and `ferryctl status`: one call each on the
 * Sandbox (containerd.runtime.sandbox.v1) and Task (containerd.task.v2) services. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cmd/ctl/ctl_rpc.h"

/* Run a command word and its arguments (argv[0] is the subcommand) against address.
 * Return the exit status: 0 ok, 1 the call failed, 2 usage. */
int ctl_sandbox_main(const char *address, int argc, char **argv);
int ctl_task_main(const char *address, int argc, char **argv);
int ctl_status_main(const char *address, int argc, char **argv);

/* Task status as containerd names it: "created", "running", "stopped", ... */
const char *ctl_task_status_name(int status);

/* Helpers the demo shares. Each returns 0 or a negative errno with err filled. */
int ctl_sandbox_create(struct ctl_conn *c, const char *id, const char *bundle,
                       struct ctl_error *err);
int ctl_sandbox_start(struct ctl_conn *c, const char *id, uint32_t *ret_pid, struct ctl_error *err);
/* *ret_state is "ready", "stopped", ... (ret_state: 32 bytes). */
int ctl_sandbox_state(struct ctl_conn *c, const char *id, char *ret_state, struct ctl_error *err);
int ctl_task_create(struct ctl_conn *c, const char *id, const char *bundle, uint32_t *ret_pid,
                    struct ctl_error *err);
int ctl_task_start(struct ctl_conn *c, const char *id, uint32_t *ret_pid, struct ctl_error *err);
int ctl_task_kill(struct ctl_conn *c, const char *id, uint32_t sig, struct ctl_error *err);
/* Waits for the task's exit; *ret_status is its exit status. */
int ctl_task_wait(struct ctl_conn *c, const char *id, uint32_t *ret_status, struct ctl_error *err);
/* Create with a rootfs: one lcow-layer mount whose source (the scratch's directory) is
 * layer_source and whose parentLayerPaths are parent_layers (a JSON list of directories);
 * layer_source NULL: no rootfs (as ctl_task_create). */
int ctl_task_create_rootfs(struct ctl_conn *c, const char *id, const char *bundle,
                           const char *layer_source, const char *parent_layers, uint32_t *ret_pid,
                           struct ctl_error *err);
/* Exec exec_id in task id with process args (NULL-terminated, at least one). */
int ctl_task_exec(struct ctl_conn *c, const char *id, const char *exec_id, const char *const *args,
                  struct ctl_error *err);
/* The calls on one process of a task: exec_id NULL or "" is the init. */
int ctl_proc_start(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t *ret_pid,
                   struct ctl_error *err);
int ctl_proc_kill(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t sig,
                  struct ctl_error *err);
int ctl_proc_wait(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t *ret_status,
                  struct ctl_error *err);
/* *ret_status (may be NULL): the exit status Delete reports. */
int ctl_proc_delete(struct ctl_conn *c, const char *id, const char *exec_id, uint32_t *ret_status,
                    struct ctl_error *err);
int ctl_sandbox_stop(struct ctl_conn *c, const char *id, struct ctl_error *err);
/* *ret_status: the Status enum value (2 = RUNNING); ret_pid may be NULL. */
int ctl_task_state(struct ctl_conn *c, const char *id, int *ret_status, uint32_t *ret_pid,
                   struct ctl_error *err);
