/* SPDX-License-Identifier: MIT */
/* The live-migration session of one shim: spec/migration.yaml's handlers.
 *
 * One session object per shim sequences at most one migration at a time, as source or
 * destination. It drives the sandbox (the VM and its pods) through an ops table the shim
 * provides (struct migration_sandbox_ops), so it does not depend on how the sandbox is built;
 * src/migration/sim_ops.h is one implementation straight on the host compute interface.
 *
 * Calling convention (src/ctrl/common/ctrl.h): a call returns a negative errno when the spec
 * rejects it (mig_session_error() then holds the spec's message with the state filled in) or a
 * synchronous action fails; calls that take a `done` return 0 when taken and call done(result,
 * userdata) exactly once on the loop thread. Everything runs on the loop thread.
 *
 * Errors returned by the calls (besides the sandbox's own): -EINVAL invalid_argument (session
 * id mismatch, bad input), -EBUSY failed_precondition (wrong state), -EEXIST already_exists (a
 * socket was already adopted), -ENOTCONN unavailable (a VM step is in flight; retry). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hcs/hcs.h"

struct mig_session;
struct mig_handoff;

#define MIG_SESSION_ID_MAX 128
#define MIG_SANDBOX_ID_MAX 64
/* The type URL of the snapshot PrepareAndExportSandbox returns and ImportSandbox takes. */
#define MIG_SNAPSHOT_TYPE_URL "type.ferry.dev/ferry.migration.save.v1.Payload"
/* The socket wait when TransferSandbox names no timeout (reference: 10 minutes). */
#define MIG_DEFAULT_SOCKET_TIMEOUT_US (600ULL * 1000 * 1000)

enum mig_origin {
        MIG_ORIGIN_NONE = 0,
        MIG_ORIGIN_SOURCE = 1,
        MIG_ORIGIN_DESTINATION = 2,
};

/* What the spec's guards need to know of the VM (reconciling finalize retries). */
enum mig_vm_state {
        MIG_VM_NOT_CREATED = 0, /* destination before import: nothing exists */
        MIG_VM_ACTIVE,          /* running, or somewhere in a migration */
        MIG_VM_FINALIZED,       /* host compute resume-finalized; VM/pod resume not done yet */
        MIG_VM_TERMINATED,      /* a stop finalize (or terminate) tore it down */
        MIG_VM_PAUSED,          /* frozen by a Task Pause (or pausing, resuming): nothing migrates */
};

enum mig_finalize_action {
        MIG_FINALIZE_UNSPECIFIED = 0,
        MIG_FINALIZE_STOP = 1,
        MIG_FINALIZE_RESUME = 2,
};

typedef void (*mig_done_fn)(int result, void *userdata);
/* prepare_destination's completion: vm_created tells a create failure (retriable) from a
 * failure after the VM exists (the patch: past the point of no return). */
typedef void (*mig_prepare_fn)(int result, bool vm_created, void *userdata);

/* One destination CreateTask routed to the patch path. Borrowed for the call. */
struct mig_patch {
        const char *source_container_id; /* the annotation's value */
        const char *container_id;        /* the new (destination) id */
        void *request;                   /* the shim's own request data, for the ops */
};

/*
 * The sandbox operations a session needs. sb is the ops' own object. Asynchronous ops return 0
 * and call done exactly once on the loop thread, or return a negative errno and never call it.
 * Strings and buffers are borrowed for the call unless said otherwise.
 */
struct migration_sandbox_ops {
        enum mig_vm_state (*vm_state)(void *sb);
        /* Source: host-compute initialize with opts_json (a MigrationInitializeOptions
         * document with Origin "Source"). Failure leaves everything as it was. */
        int (*initialize)(void *sb, const char *opts_json, mig_done_fn done, void *userdata);
        /* Source: VM save and every pod's save (freezing them) into the sandbox's snapshot
         * bytes (*ret new, free()). All or nothing. */
        int (*export_state)(void *sb, uint8_t **ret, size_t *ret_len);
        /* Destination: rehydrate the snapshot as sandbox_id. All or nothing. */
        int (*import_state)(void *sb, const char *sandbox_id, const uint8_t *buf, size_t len);
        /* Destination: how many imported containers still wait for their patch; their ids go
         * to buf as "id1, id2" (truncated to size). NULL: none ever do. */
        int (*pending_patches)(void *sb, char *buf, size_t size);
        /* Destination: patch one container. NULL: -EOPNOTSUPP. */
        int (*patch_container)(void *sb, const struct mig_patch *patch);
        /* Destination: create the VM with opts_json as its MigrationOptions, then grant it
         * its disks (patch). */
        int (*prepare_destination)(void *sb, const char *opts_json, mig_prepare_fn done,
                                   void *userdata);
        /* Both: start (source start, or destination start with migration options) on fd (taken
         * in every case) for session_num, then run the memory transfer to its end. */
        int (*transfer)(void *sb, enum mig_origin origin, int fd, uint32_t session_num,
                        mig_done_fn done, void *userdata);
        /* Both: host finalize (skipped when skip_host: a previous resume finalize reached the
         * host), then resume the VM and pods (resume) or stop and tear them down (!resume). */
        int (*finalize)(void *sb, enum mig_origin origin, bool resume, bool skip_host,
                        mig_done_fn done, void *userdata);
        /* Stop after an earlier resume finalize: terminate the VM, tear down the pods. */
        int (*terminate)(void *sb, mig_done_fn done, void *userdata);
        /* Abort in host compute; done gets -EALREADY when nothing is left to abort. */
        int (*cancel)(void *sb, enum mig_origin origin, mig_done_fn done, void *userdata);
        /* The session was released (cleanup). May be NULL. */
        void (*cleanup)(void *sb);
};

/* A notification as subscribers see it (proto NotificationsResponse). Times are wall-clock
 * microseconds since the epoch (converted at the edge from the monotonic clock). */
struct mig_notification {
        uint32_t message_id;
        enum mig_origin origin;
        int phase; /* proto Phase */
        int state; /* proto PhaseState */
        bool has_blackout;
        uint64_t blackout_ms;
        uint64_t blackout_stop_unix_us;
        uint64_t start_unix_us;
        uint64_t update_unix_us;
        uint64_t bytes;
        uint32_t pass;
        uint64_t dirty_pages;
        char reason[128];
};

/* A subscriber: on_note gets each notification (borrowed) and returns 0, or a negative errno
 * when it could not take it (counted as a drop, never blocks the session); on_end runs once
 * when the session is released (the stream ends) or the subscriber is detached. */
struct mig_subscriber_ops {
        int (*on_note)(const struct mig_notification *n, uint64_t dropped, void *userdata);
        void (*on_end)(void *userdata);
};
struct mig_subscriber;

/* Creates a session on loop driving sb through ops (both borrowed, must outlive it). */
int mig_session_new(uv_loop_t *loop, const struct migration_sandbox_ops *ops, void *sb,
                    struct mig_session **ret);
/* Frees s; accepts NULL. Ends subscribers first (their on_end runs: free the session before
 * closing the ttrpc server that carries their streams). Only when nothing is in flight
 * (-EBUSY; s is then untouched). */
int mig_session_free(struct mig_session *s);

/* Lets CreateDuplicateSocket claim fds by token from h (borrowed; NULL: tokens refused). */
void mig_session_set_handoff(struct mig_session *s, struct mig_handoff *h);

unsigned mig_session_state(const struct mig_session *s);
const char *mig_session_state_name(const struct mig_session *s);
/* The active session id ("" when idle), its origin and the destination's sandbox id. */
const char *mig_session_id(const struct mig_session *s);
enum mig_origin mig_session_origin(const struct mig_session *s);
const char *mig_session_sandbox_id(const struct mig_session *s);
/* The text of the last error a call returned (never NULL). */
const char *mig_session_error(const struct mig_session *s);
/* The session generation: bumped by every cleanup; completions of older ones are dropped. */
uint64_t mig_session_generation(const struct mig_session *s);

/* Source, step 1 (PrepareSource): opts_json may be NULL. -EINVAL for an empty id. */
int mig_session_prepare_source(struct mig_session *s, const char *session_id, const char *opts_json,
                               mig_done_fn done, void *userdata);
/* Source, step 2 (ExportState): *ret (new, free()) gets the snapshot's value bytes; its type
 * URL is MIG_SNAPSHOT_TYPE_URL. */
int mig_session_export(struct mig_session *s, const char *session_id, uint8_t **ret,
                       size_t *ret_len);
/* Destination, step 1 (ImportState): checks the ids and the type URL (-EINVAL) first. */
int mig_session_import(struct mig_session *s, const char *session_id, const char *sandbox_id,
                       const char *type_url, const uint8_t *buf, size_t len);
/* Destination: CreateTask with the source-container annotation (no session id). */
int mig_session_patch_container(struct mig_session *s, const struct mig_patch *patch);
/* Destination, step 2 (PrepareDestination). -EBUSY names the pending patches in the error. */
int mig_session_prepare_destination(struct mig_session *s, const char *session_id,
                                    const char *opts_json, mig_done_fn done, void *userdata);
/* CreateDuplicateSocket: protocol_info per docs/migration.md (token or pid/fd); -EINVAL when
 * malformed. Resolving or checking the socket fails the session (point of no return). */
int mig_session_register_socket(struct mig_session *s, const char *session_id,
                                const void *protocol_info, size_t len);
/* As above with an fd in hand (taken in every case). */
int mig_session_adopt_fd(struct mig_session *s, const char *session_id, int fd);
/* TransferSandbox: starts the background transfer (or the socket wait) and returns at once;
 * timeout_us 0 = the default. */
int mig_session_transfer(struct mig_session *s, const char *session_id, uint64_t timeout_us);
/* FinalizeSandbox. MIG_FINALIZE_UNSPECIFIED and unknown actions: -EINVAL before anything. */
int mig_session_finalize(struct mig_session *s, const char *session_id, int action,
                         mig_done_fn done, void *userdata);
/* Cancel. done may get an error while the session still became cancelled (the host had
 * nothing left to abort), as in the reference. */
int mig_session_cancel(struct mig_session *s, const char *session_id, mig_done_fn done,
                       void *userdata);
/* Cleanup: back to idle; closes the socket and ends every subscriber. */
int mig_session_cleanup(struct mig_session *s, const char *session_id);
/* Notifications: attaches a subscriber (replaying the latest notification at once). *ret is
 * valid until its on_end ran. */
int mig_session_subscribe(struct mig_session *s, const char *session_id,
                          const struct mig_subscriber_ops *ops, void *userdata,
                          struct mig_subscriber **ret);
/* Detaches a subscriber; its on_end is not called (the caller is ending it). */
void mig_subscriber_detach(struct mig_subscriber *sub);
/* Notifications dropped for slow subscribers during this session, and subscribers attached. */
uint64_t mig_session_dropped(const struct mig_session *s);
unsigned mig_session_subscribers(const struct mig_session *s);

/* The task service's gate (reference ensureMigrationIdle): 0 when no session is active, else
 * -EBUSY (failed_precondition) with "migration session is in progress (state: X)" in msg
 * (may be NULL). Task State/Delete/Kill call it and change nothing when it refuses. */
int mig_session_ensure_idle(const struct mig_session *s, char *msg, size_t size);

/* The sandbox's host-compute notifications, for the ops implementation to feed in. */
void mig_session_host_event(struct mig_session *s, const struct hcs_notification *n);

/* The host-compute session number both sides derive from the session id (reference:
 * SHA-256 of the id, GUIDs lower-cased first, first 4 bytes big-endian). */
uint32_t mig_session_number(const char *session_id);
