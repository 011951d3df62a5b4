/* SPDX-License-Identifier: MIT */
/* The Linux container controller: one container in the utility VM, its init process (exec id
 * "") and its execs (one process controller each, src/ctrl/process/process.h), and the
 * reservation ids it holds in the device controllers. Its lifecycle is spec/container.yaml
 * (generated/container.*).
 *
 * Calling convention (src/ctrl/common/ctrl.h): calls with a done callback return a negative
 * errno when the spec rejects them (state unchanged, done never called) or 0 when taken, and
 * then call done(result, userdata) exactly once on the loop thread. Calls without done are
 * synchronous. Rejection classes (util/status.h):
 *   -EBUSY   failed_precondition: wrong state, including every mutating call while the
 *            container is migrating, and save / patch of a container with execs;
 *   -ESTALE  aborted: an operation is in flight; retry when it completes;
 *   -EINVAL  invalid_argument: bad arguments, foreign / corrupt / future envelopes;
 *   -ENOENT  not_found: an unknown exec id; -EEXIST already_exists: a duplicate exec id.
 * done may run nested inside a transition of the container or of its init (the init answers
 * the container from inside its own completion); a call back into the same container or its
 * processes from inside such a done is refused with -ESTALE: defer it to the loop.
 *
 * Devices. Reserving and mapping layer disks, scratch and extra SCSI mounts is the SCSI
 * controller's business: the caller (the pod) reserves them and passes their reservation ids
 * and paths here; the container records them, saves them, repoints them on patch and releases
 * them on delete through the optional container_devices hooks. Without hooks the container
 * only carries the strings.
 *
 * Events (through env->publish, JSON bodies): "/tasks/create" and "/tasks/start" after a
 * destination resume, "/tasks/exit" when the init exits or a migrating container is torn
 * down (exit 137).
 *
 * Threading: loop thread only. Strings passed in are copied. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"
#include "ctrl/process/process.h"

struct container;

#define CONTAINER_SAVE_NAME      "container"
#define CONTAINER_SCHEMA_VERSION 1u
/* Bounds on what a payload may carry (a peer controls it). */
#define CONTAINER_LAYERS_MAX 128
#define CONTAINER_MOUNTS_MAX 64
#define CONTAINER_EXECS_MAX  1024

/* A disk the container holds a reservation on: a read-only layer, the scratch, or an extra
 * SCSI mount. reservation_id is the SCSI controller's key; guest_path never changes;
 * host_path is what patch repoints. */
struct container_disk {
        const char *reservation_id;
        const char *guest_path;
        const char *host_path;
};

/* Hooks into the device controllers; every member may be NULL. */
struct container_devices {
        /* Repoints reservation_id to host_path (destination patch). Synchronous; 0 or -errno. */
        int (*repoint)(void *userdata, const char *reservation_id, const char *host_path);
        /* Releases reservation_id (delete); -ENOENT counts as released. Synchronous. */
        int (*release)(void *userdata, const char *reservation_id);
        void *userdata;
};

struct container_create_opts {
        const char *id; /* containerd-facing id, also the guest container id */
        const char *bundle;
        struct process_io io; /* the init's stdio */
        uint64_t io_retry_timeout_us;
        const char *rootfs_path;                /* guest path of the combined rootfs; may be NULL */
        const struct container_disk *ro_layers; /* stack order */
        size_t n_ro_layers;
        const struct container_disk *scratch; /* may be NULL */
        const struct container_disk *mounts;  /* extra SCSI mounts */
        size_t n_mounts;
};

/* Destination patch: the containerd id, bundle and IO of the destination host, and the
 * destination host paths of the saved disks (same counts and order as saved, -EINVAL
 * otherwise; n = 0 with a NULL array leaves that class untouched only when none was saved). */
struct container_patch_opts {
        const char *id;
        const char *bundle;
        struct process_io io;
        const char *const *ro_layer_paths;
        size_t n_ro_layer_paths;
        const char *scratch_path; /* required when a scratch was saved */
        const char *const *mount_paths;
        size_t n_mount_paths;
};

/* Called once when the container ends (the init exited, was torn down, or the container was
 * deleted): Wait returns. */
typedef void (*container_end_fn)(struct container *c, void *userdata);

/* A new container in not_created. env (borrowed, must outlive it) supplies the loop, the guest
 * and the publisher; devices (may be NULL) is copied. Returns 0, -ENOMEM. */
int container_new(const struct ctrl_env *env, const struct container_devices *devices,
                  struct container **ret);
/* Frees c, its processes and its saved strings. Accepts NULL; returns NULL. */
struct container *container_free(struct container *c);

/* not_created → created: records the disks, creates the guest container and the init (opens
 * its IO). done(0) or the error (the container is then invalid; delete releases what it
 * holds). -EINVAL bad options. */
int container_create(struct container *c, const struct container_create_opts *opts,
                     ctrl_done_fn done, void *userdata);
/* created → running: starts the guest container and its init. done(init pid) or
 * done(-errno) (the container is then invalid and container_pid() is -1). */
int container_start(struct container *c, ctrl_done_fn done, void *userdata);
/* Applies Linux resource limits (JSON object with a "linux" or cgroup resource member;
 * -EINVAL otherwise) to a running container. */
int container_update(struct container *c, const char *resources_json, ctrl_done_fn done,
                     void *userdata);
/* Registers a new exec process (then drive it through container_process()). Synchronous;
 * -EEXIST for a duplicate id, -EINVAL for a bad one. */
int container_exec(struct container *c, const char *exec_id);
/* Signals exec_id ("" = the init) with sig (0 = terminate). exec "" or all signal every exec
 * first. done(0) once the target's signal completes. -EBUSY for all with an exec id. */
int container_kill(struct container *c, const char *exec_id, int sig, bool all, ctrl_done_fn done,
                   void *userdata);
/* Deletes an exec and drops it (-ENOENT unknown; the process's own class when it refuses). */
int container_delete_exec(struct container *c, const char *exec_id, ctrl_done_fn done,
                          void *userdata);
/* Deletes the init: releases every resource in reverse order and ends the container
 * (deleted). -EBUSY while the init runs. A failed release can be retried. */
int container_delete(struct container *c, ctrl_done_fn done, void *userdata);
/* Gate for Pids and Stats: 0 only while running (or updating). */
int container_inspect(struct container *c);
/* Calls fn once the container ends (at once if it has). -ENOMEM. */
int container_wait(struct container *c, container_end_fn fn, void *userdata);

/* Source: serializes the container and its init (as a nested envelope) into *ret and freezes
 * both; -EBUSY when the container has execs or is not running. A failed save freezes
 * nothing. */
int container_save(struct container *c, ctrl_envelope **ret);
/* Destination: rehydrates a new container (not_created) from env; the init imports too, or
 * nothing changes. Checks as process_import, then bounds and the init's envelope. */
int container_import(struct container *c, const ctrl_envelope *env);
/* Destination: repoints disks through the hooks, patches the init's IO and bundle, adopts the
 * destination id last. */
int container_patch(struct container *c, const struct container_patch_opts *opts, ctrl_done_fn done,
                    void *userdata);
/* Source (source_migrating): rollback. Destination (patched): binds the guest container and
 * the init through env->guest and publishes TaskCreate and TaskStart. running: no-op. */
int container_resume(struct container *c, ctrl_done_fn done, void *userdata);
/* A migrating container with no guest behind it: the init is torn down (exit 137), TaskExit
 * published, the container stopped (delete then ends it without touching a guest).
 * Synchronous; ended containers: no-op. */
int container_teardown(struct container *c);

/* Queries (never fail). */
const char *container_id(const struct container *c);       /* containerd-facing */
const char *container_guest_id(const struct container *c); /* never changes */
const char *container_state_name(const struct container *c);
bool container_is_frozen(const struct container *c);
bool container_is_ended(const struct container *c); /* Wait has returned (container_wait) */
/* The init, an exec, or NULL (borrowed; valid until deleted or the container is freed). */
struct process *container_process(const struct container *c, const char *exec_id);
size_t container_exec_count(const struct container *c);
int64_t container_pid(const struct container *c); /* the init's pid */

enum container_disk_kind { CONTAINER_DISK_LAYER, CONTAINER_DISK_SCRATCH, CONTAINER_DISK_MOUNT };
/* The i-th disk the container holds, in patch order (read-only layers in stack order, the
 * scratch, the extra SCSI mounts); its strings are borrowed until the container changes.
 * false past the end (or once delete released them). */
bool container_disk_at(const struct container *c, size_t i, enum container_disk_kind *ret_kind,
                       struct container_disk *ret);
