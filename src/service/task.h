/* SPDX-License-Identifier: MIT */
/* The Task service (containerd.task.v2.Task): the containers of the shim's sandbox and their
 * init processes, on the loop thread. Ids and paths are checked by rpc/ident.h grammars
 * before anything reaches the guest; errors cross the wire through util/status.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox.pb-c.h"

struct mig_session;
struct sandbox;
struct shim_events;
struct ttrpc_server;
struct task_service;

/* Creates the service over sb and events (borrowed, must outlive it). shutdown(userdata) is
 * called when a Shutdown call finds no task left (or now=true). Returns 0 or -ENOMEM. */
int task_service_new(struct sandbox *sb, struct shim_events *events, void (*shutdown)(void *),
                     void *shutdown_userdata, struct task_service **ret);

/* Registers containerd.task.v2.Task on srv. Returns as ttrpc_server_register(). */
int task_service_register(struct ttrpc_server *srv, struct task_service *ts);

/* Frees the service: parked Wait calls end with CANCELLED, tasks are forgotten (the VM's
 * teardown removes them from the guest). Accepts NULL; returns NULL. */
struct task_service *task_service_free(struct task_service *ts);

/* Tasks known (created and not deleted). */
size_t task_service_count(const struct task_service *ts);

/* -- migration (src/service/sandbox.c's migration ops call these) -- */

/* Gates the Task calls on session s (borrowed; NULL = no Migration service): while it is not
 * idle, State, Kill and Delete are FAILED_PRECONDITION (migration_service.md §B.7), and a
 * Create whose bundle's config.json carries io.microsoft.migration.source-container-id is
 * routed to the session's patch path (§B.8). */
void task_service_set_migration(struct task_service *ts, struct mig_session *s);

/* Source: writes every task's host-side view into msg->tasks (strings borrowed from the
 * tasks; free the arrays with task_service_save_free). Returns 0 or -ENOMEM. */
int task_service_save(struct task_service *ts, Containerd__Runtime__Sandbox__V1__SandboxSave *msg);
void task_service_save_free(Containerd__Runtime__Sandbox__V1__SandboxSave *msg);

/* Destination: adds msg's tasks, each waiting for its patch (a Create naming it as the
 * source container). All or nothing: -EEXIST a task is already known, -EINVAL a bad id,
 * -ENOMEM. */
int task_service_import(struct task_service *ts,
                        const Containerd__Runtime__Sandbox__V1__SandboxSave *msg);

/* Destination: imported tasks not patched yet; their ids go to buf as "a, b" (truncated). */
int task_service_unpatched(const struct task_service *ts, char *buf, size_t size);

/* Destination: the imported task source_id takes new_id and bundle (borrowed). Returns 0,
 * -ENOENT (no such imported task), -EEXIST (new_id names another task), -EALREADY (patched),
 * -EINVAL, -ENOMEM. *ret_pid gets its pid. */
int task_service_patch(struct task_service *ts, const char *source_id, const char *new_id,
                       const char *bundle, uint32_t *ret_pid);

/* The VM runs again after a migration: every running task's exit watch is armed on the
 * current guest; on the destination each task's TaskCreate and TaskStart are published so it
 * looks locally running. */
void task_service_resumed(struct task_service *ts, bool destination);

/* The VM is gone for good on this side (the source after a completed migration, or a
 * destination torn down): every task not stopped yet stops with exit_status, TaskExit is
 * published, and Delete can proceed. Imported tasks that were never patched are dropped. */
void task_service_teardown(struct task_service *ts, uint32_t exit_status);
