/* SPDX-License-Identifier: MIT */
/* The host compute interface: compute systems (VMs) described by a JSON document, their
 * lifecycle, device changes, and the live-migration calls with their notification stream.
 *
 * Threading: every object here belongs to one libuv loop and every function must be called on
 * that loop's thread. Each call that does backend work returns at once (0, or a negative errno
 * when the call could not be queued) and later completes by invoking its callback on the loop
 * thread, exactly once. The work itself runs on the loop's thread pool; a transfer holds one pool
 * thread for its duration. Notifications are delivered on the loop thread in emission order. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <json-c/json.h>

struct hcs_backend;
struct hcs_system;

enum hcs_event {
        HCS_EVENT_SETUP_DONE = 1,
        HCS_EVENT_TRANSFER_IN_PROGRESS,
        HCS_EVENT_BLACKOUT_STARTED,
        HCS_EVENT_BLACKOUT_EXITED,
        HCS_EVENT_MIGRATION_DONE,
        HCS_EVENT_RECOVERY_DONE,
        HCS_EVENT_MIGRATION_FAILED,
};

enum hcs_origin {
        HCS_ORIGIN_NONE = 0,
        HCS_ORIGIN_SOURCE,
        HCS_ORIGIN_DESTINATION,
};

enum hcs_result {
        HCS_RESULT_SUCCESS = 0,
        HCS_RESULT_CANCELLED,
        HCS_RESULT_SOURCE_FAILED,
        HCS_RESULT_DESTINATION_FAILED,
        HCS_RESULT_RECOVERY_FAILED,
};

/* A migration notification, a small value copied to the callback. */
struct hcs_notification {
        enum hcs_event event;
        enum hcs_origin origin; /* the side that emitted it */
        enum hcs_result result; /* MIGRATION_FAILED/DONE/RECOVERY_DONE */
        uint64_t bytes;         /* TRANSFER_IN_PROGRESS: bytes sent/received so far */
        uint32_t pass;          /* TRANSFER_IN_PROGRESS: pass number, from 1 */
        uint64_t dirty_pages;   /* TRANSFER_IN_PROGRESS: pages left dirty after the pass */
        uint64_t blackout_us;   /* BLACKOUT_EXITED: duration of the blackout */
        int error;              /* MIGRATION_FAILED: negative errno */
        char reason[128];       /* MIGRATION_FAILED: short text, never NULL */
};

/* Completion of a call: result is 0 or a negative errno. */
typedef void (*hcs_done_fn)(int result, void *userdata);
/* Completion with a JSON document; doc is borrowed and valid only during the callback. */
typedef void (*hcs_json_fn)(int result, struct json_object *doc, void *userdata);
/* Completion with a byte blob; blob is borrowed and valid only during the callback. */
typedef void (*hcs_blob_fn)(int result, const void *blob, size_t size, void *userdata);
/* A notification; n is borrowed. */
typedef void (*hcs_notify_fn)(struct hcs_system *sys, const struct hcs_notification *n,
                              void *userdata);

/* Opens backend name ("sim") on loop with options opts_json (borrowed, may be NULL; "sim"
 * accepts {}), storing a new backend in *ret. Errors: -ENOENT unknown backend, -EINVAL bad
 * options, -ENOMEM. */
int hcs_backend_open(uv_loop_t *loop, const char *name, const char *opts_json,
                     struct hcs_backend **ret);
/* Frees a backend; accepts NULL; returns NULL, or b itself (not freed) while systems remain. */
struct hcs_backend *hcs_backend_free(struct hcs_backend *b);
const char *hcs_backend_name(const struct hcs_backend *b);

/* Makes a handle for compute system id (borrowed, 1..63 chars of [A-Za-z0-9._-]) described by
 * doc_json (borrowed, parsed and retained). Nothing is created on the host until hcs_create.
 * notify (may be NULL) receives the system's migration notifications from now on, so early
 * events are not missed. Errors: -EINVAL bad id or document, -ENOMEM. */
int hcs_system_new(struct hcs_backend *b, const char *id, const char *doc_json,
                   hcs_notify_fn notify, void *notify_userdata, struct hcs_system **ret);
/* Releases the handle, stopping the VM if it still runs (on a pool thread), delivering the
 * notifications already emitted, then freeing it; done (may be NULL) is called on the loop once
 * it is gone. Refused at once: -EBUSY with calls in flight, -EALREADY already closing. */
int hcs_system_close(struct hcs_system *sys, hcs_done_fn done, void *userdata);
const char *hcs_system_id(const struct hcs_system *sys);
/* The name of the backend the system belongs to ("sim"). */
const char *hcs_system_backend(const struct hcs_system *sys);
/* Backend-private state of the system, for the guest bridge of the same backend. */
void *hcs_system_backend_vm(struct hcs_system *sys);
/* Number of notifications dropped because the queue was full (capacity 256). */
uint64_t hcs_system_dropped_notifications(const struct hcs_system *sys);

/* Lifecycle. Errors passed to done (besides injected faults):
 * create: -EEXIST already created, -EINVAL bad document, -ENOMEM image allocation.
 * start: -EBUSY not in Created (or created for an incoming migration).
 * pause/resume: -EBUSY not Running / not Paused, or while migrating.
 * terminate: -EALREADY already stopped (callers may treat it as success), -EBUSY never created;
 *            a transfer in flight is cancelled first. */
int hcs_create(struct hcs_system *sys, hcs_done_fn done, void *userdata);
int hcs_start(struct hcs_system *sys, hcs_done_fn done, void *userdata);
int hcs_pause(struct hcs_system *sys, hcs_done_fn done, void *userdata);
int hcs_resume(struct hcs_system *sys, hcs_done_fn done, void *userdata);
int hcs_terminate(struct hcs_system *sys, hcs_done_fn done, void *userdata);

/* Applies a modify request (borrowed JSON):
 *   {"ResourcePath": "VirtualMachine/Devices/Scsi/<c>/Attachments/<lun>" |
 *                    "VirtualMachine/Devices/Plan9/Shares/<name>" |
 *                    "VirtualMachine/Devices/VirtualPci/<id>" |
 *                    "VirtualMachine/Devices/NetworkAdapters/<id>",
 *    "RequestType": "Add" | "Remove", "Settings": {...}}
 * Errors: -EINVAL malformed, -EEXIST slot/name/id taken, -ENOENT nothing there, -EBUSY the
 * device is in use by the guest or the system is not Running/Paused or is migrating, -ERANGE
 * controller or LUN out of range. */
int hcs_modify(struct hcs_system *sys, const char *request_json, hcs_done_fn done, void *userdata);
/* Reports the system's properties (state, memory, processors, devices, statistics, and
 * "CompatibilityInfo":{"Data":base64} while Running or migrating on the source). */
int hcs_properties(struct hcs_system *sys, hcs_json_fn done, void *userdata);
/* The schema 2.5 "Queries" form: query_json (borrowed) is {"Queries":{"<Name>":null,…}} and
 * done receives {"PropertyResponses":{"<Name>":{…},…}} with one entry per name the system can
 * answer now. Names: "Statistics" (processor runtime, workload counters), "Memory" (the
 * VirtualMachineMemory counters) and "CompatibilityInfo" ({"Data":base64}; only while Running
 * or migrating on the source, absent otherwise). Errors: -EINVAL malformed query or unknown
 * name. Shares the fault point hcs.properties. */
int hcs_properties_query(struct hcs_system *sys, const char *query_json, hcs_json_fn done,
                         void *userdata);
/* Completes when the system stops (at once if it already has): 0 for a clean stop, or the
 * negative errno that stopped it. Any number of waiters. */
int hcs_wait(struct hcs_system *sys, hcs_done_fn done, void *userdata);

/* Live migration (source): Running → initialized. opts_json (borrowed, may be NULL) is a
 * MigrationInitializeOptions document; the sim reads
 * MemoryTransferThrottleParams.MaximumNumberOfBrownoutTransferPasses and the extension
 * "Sim":{"DirtyPageThreshold":N}. done receives the compatibility blob.
 * Errors: -EBUSY not Running or already migrating, -EINVAL bad options. */
int hcs_lm_initialize(struct hcs_system *sys, const char *opts_json, hcs_blob_fn done,
                      void *userdata);
/* Source: initialized → started, adopting fd (taken in every case: closed on failure) as the
 * migration socket for session_id. Errors: -EBUSY wrong state, -ENOTSOCK/-EINVAL bad fd. */
int hcs_lm_start_source(struct hcs_system *sys, int fd, uint32_t session_id, hcs_done_fn done,
                        void *userdata);
/* Destination: a created system whose document had VirtualMachine.MigrationOptions starts
 * waiting for the incoming stream on fd (taken) for session_id. Errors as start_source. */
int hcs_lm_start_destination(struct hcs_system *sys, int fd, uint32_t session_id, hcs_done_fn done,
                             void *userdata);
/* Both sides: runs the memory transfer to its end. Source: pre-copy passes, blackout, checksum,
 * ack; destination: receive and verify. On any failure or cancel the source's workload runs
 * again before done is called. Errors: -ECANCELED cancelled here, -EPIPE/-ECONNRESET peer went
 * away, -EBADMSG checksum or stream corrupt, -EPROTO protocol violation, -EINVAL handshake or
 * compatibility mismatch, -EBUSY wrong state. */
int hcs_lm_transfer(struct hcs_system *sys, hcs_done_fn done, void *userdata);
/* Both sides, after start: resume (source: roll back and keep running; destination: run) or stop
 * (source: the VM stops; destination: tear down). Errors: -EBUSY wrong state or transfer in
 * flight. */
int hcs_lm_finalize(struct hcs_system *sys, bool resume, hcs_done_fn done, void *userdata);
/* Either side, at any time: aborts the migration; a running transfer fails with -ECANCELED and
 * the source keeps running. Errors: -EALREADY nothing to abort (completed or never started). */
int hcs_lm_cancel(struct hcs_system *sys, hcs_done_fn done, void *userdata);

const char *hcs_event_name(enum hcs_event e);
const char *hcs_result_name(enum hcs_result r);
