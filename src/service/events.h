/* SPDX-License-Identifier: MIT */
/* The shim's event publisher: task events (TaskCreate, TaskStart, TaskExit, TaskDelete and
 * whatever the controllers publish) go to an append-only log file, one JSON object per line,
 * and to every in-process subscriber, in publication order. Loop thread only. */
#pragma once

#include <stdint.h>

struct shim_events;

/* A subscriber: seq counts from 1 per publisher; topic ("/tasks/exit") and json (the event
 * body, a JSON object) are borrowed for the call. */
typedef void (*shim_event_fn)(uint64_t seq, const char *topic, const char *json, void *userdata);

/* Creates a publisher. log_path (borrowed, may be NULL for no log) is opened for appending,
 * created 0600, close-on-exec. Returns 0, -ENOMEM or the negative errno of open. *ret is new;
 * free with shim_events_free(). */
int shim_events_new(const char *log_path, struct shim_events **ret);

/* Closes the log and drops the subscribers. Accepts NULL; returns NULL. */
struct shim_events *shim_events_free(struct shim_events *ev);

/* Publishes one event; a ctrl_publish_fn, so controllers can be handed it through ctrl_env:
 * userdata is the struct shim_events. topic and json are borrowed. A failed log write is
 * counted (shim_events_log_errors), never fatal. */
void shim_events_publish(const char *topic, const char *json, void *userdata);

/* Adds a subscriber (fn and userdata borrowed until unsubscribed). Returns a positive id,
 * -ENOSPC (SHIM_EVENTS_MAX_SUBSCRIBERS reached) or -EINVAL. */
#define SHIM_EVENTS_MAX_SUBSCRIBERS 32
int shim_events_subscribe(struct shim_events *ev, shim_event_fn fn, void *userdata);

/* Removes subscriber id (safe from inside its own callback). Returns 0 or -ENOENT. */
int shim_events_unsubscribe(struct shim_events *ev, int id);

/* Events published so far, and log writes that failed. */
uint64_t shim_events_count(const struct shim_events *ev);
uint64_t shim_events_log_errors(const struct shim_events *ev);

/* Task events in containerd's topics and field names (api/events/task.proto, JSON names as
 * protojson writes them). exited_at_ns is wall-clock nanoseconds since the epoch. Strings are
 * borrowed and JSON-escaped here. Each returns 0 or -ENOMEM. */
int shim_events_task_create(struct shim_events *ev, const char *container_id, const char *bundle,
                            uint32_t pid);
int shim_events_task_start(struct shim_events *ev, const char *container_id, uint32_t pid);
int shim_events_task_exit(struct shim_events *ev, const char *container_id, const char *exec_id,
                          uint32_t pid, uint32_t exit_status, uint64_t exited_at_ns);
int shim_events_task_delete(struct shim_events *ev, const char *container_id, const char *exec_id,
                            uint32_t pid, uint32_t exit_status, uint64_t exited_at_ns);

