/* SPDX-License-Identifier: MIT */
/* The Task service (containerd.task.v2.Task): the containers of the shim's sandbox's pod
 * (src/ctrl/pod/pod.h) and their init processes, driven through the container and process
 * controllers, on the loop thread. Ids and paths are checked by rpc/ident.h grammars
 * before anything reaches the guest; errors cross the wire through util/status.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mig_session;
struct sandbox;
struct shim_events;
struct ttrpc_call;
struct ttrpc_server;
struct task_service;

/* Creates the service over sb and events (borrowed, must outlive it). shutdown(userdata) is
 * called when a Shutdown call finds no task left (or now=true). Returns 0 or -ENOMEM. */
int task_service_new(struct sandbox *sb, struct shim_events *events, void (*shutdown)(void *),
                     void *shutdown_userdata, struct task_service **ret);

/* Registers containerd.task.v2.Task on srv. Returns as ttrpc_server_register(). */
int task_service_register(struct ttrpc_server *srv, struct task_service *ts);

/* Frees the service (after the sandbox closed: the pod and its containers are gone): parked
 * Wait calls and calls never answered end with CANCELLED. Accepts NULL; returns NULL. */
struct task_service *task_service_free(struct task_service *ts);

/* Tasks known: the pod's containers (created or imported, not deleted). */
size_t task_service_count(const struct task_service *ts);

/* -- migration -- */

/* Gates the Task calls on session s (borrowed; NULL = no Migration service): while it is not
 * idle, State, Kill and Delete are FAILED_PRECONDITION (migration_service.md §B.7), and a
 * Create whose bundle's config.json carries io.microsoft.migration.source-container-id is
 * routed to the session's patch path (§B.8: the sandbox's ops patch the pod's imported
 * container, src/service/sandbox.h). */
void task_service_set_migration(struct task_service *ts, struct mig_session *s);

/* The sandbox and the session (NULL: none) the service drives; borrowed. */
struct sandbox *task_service_sandbox(const struct task_service *ts);
struct mig_session *task_service_migration(const struct task_service *ts);

/* -- the calls on the whole VM: Pause, Resume, Stats (src/service/task_vm.h) -- */

struct ProtobufCMessage;
void task_vm_pause(struct ttrpc_call *call, const struct ProtobufCMessage *msg, void *userdata);
void task_vm_resume(struct ttrpc_call *call, const struct ProtobufCMessage *msg, void *userdata);
void task_vm_stats(struct ttrpc_call *call, const struct ProtobufCMessage *msg, void *userdata);
/* A running process's containerd status (Status enum value) seen through the VM: PAUSING or
 * PAUSED while the VM pauses or is paused; any other status is returned unchanged. */
int task_vm_status(const struct task_service *ts, int status);
