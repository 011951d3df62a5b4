/* SPDX-License-Identifier: MIT */
/* The shim's one sandbox (one utility VM on the chosen hcs backend, with its guest
 * connection) and the Sandbox ttrpc service (containerd.runtime.sandbox.v1.Sandbox) that
 * drives it. Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/container/container.h"
#include "migration/session.h"

struct hcs_backend;
struct pod;
struct ttrpc_server;
struct vm;
struct shim_events;
struct sandbox;

struct sandbox_options {
        unsigned memory_mb;        /* VM memory; 0 = 256 */
        unsigned processors;       /* 0 = 2 */
        uint64_t dirty_pages_rate; /* sim workload, pages/s; 0 = idle */
};

/* Completion of a sandbox call: result 0 or a negative errno. */
typedef void (*sandbox_done_fn)(int result, void *userdata);
/* The VM stopped: exit_status 0 for a clean stop, else 255; exited_at_ns wall clock. */
typedef void (*sandbox_exit_fn)(uint32_t exit_status, uint64_t exited_at_ns, void *userdata);

/* A new, empty sandbox on loop using backend b (borrowed, must outlive it). events (borrowed,
 * may be NULL) becomes the controllers' publisher. opts may be NULL. Returns 0 or -ENOMEM. */
int sandbox_new(uv_loop_t *loop, struct hcs_backend *b, struct shim_events *events,
                const struct sandbox_options *opts, struct sandbox **ret);

/* Closes the VM (stopping it if it runs) and frees sb once the backend has let go of it;
 * done (may be NULL) runs on the loop then. Accepts NULL (done runs at once). */
void sandbox_close(struct sandbox *sb, sandbox_done_fn done, void *userdata);

/* Creates the VM for sandbox id (borrowed, checked by ttrpc_valid_id) with bundle (may be
 * NULL, else an absolute path). Errors at once: -EINVAL/-ENAMETOOLONG bad id or path, -EEXIST
 * a sandbox exists, -ENOMEM; later through done: the backend's errors. */
int sandbox_create(struct sandbox *sb, const char *id, const char *bundle, sandbox_done_fn done,
                   void *userdata);
/* Boots the created VM and connects its guest. Errors at once: -ENOENT no sandbox, -EBUSY not
 * in created, -EAGAIN another call in flight. */
int sandbox_start(struct sandbox *sb, sandbox_done_fn done, void *userdata);
/* Stops the VM; 0 at once (done still called) when it is already stopped.
 * Errors at once: -ENOENT no sandbox, -EAGAIN another call in flight. */
int sandbox_stop(struct sandbox *sb, sandbox_done_fn done, void *userdata);
/* fn runs once when the VM has stopped (at once if it has). Returns 0, -ENOENT, -ENOMEM. */
int sandbox_wait(struct sandbox *sb, sandbox_exit_fn fn, void *userdata);
/* Removes a waiter added by sandbox_wait (fn and userdata as given) that has not fired yet.
 * Returns 0 or -ENOENT. */
int sandbox_unwait(struct sandbox *sb, sandbox_exit_fn fn, void *userdata);
/* Adds a permanent exit watcher (the task service's). Returns 0 or -ENOMEM. */
int sandbox_on_exit(struct sandbox *sb, sandbox_exit_fn fn, void *userdata);

/* Creates and boots the VM in one call when none exists (the first task of a shim started
 * without the Sandbox API, as `ctr run` does); done(0) at once when it already runs. */
int sandbox_ensure_running(struct sandbox *sb, const char *id, const char *bundle,
                           sandbox_done_fn done, void *userdata);

/* The message of the last -EINVAL from sandbox_create / sandbox_ensure_running / sandbox_attach
 * (it names the offending field, e.g. "linux.namespaces[0].path: ..."); "" when none. */
const char *sandbox_error(const struct sandbox *sb);

/* The sandbox's one pod (src/ctrl/pod/pod.h): created with the VM (pod id = sandbox id; its
 * network namespace comes from the sandbox bundle's config.json, see docs/shim.md "Devices"),
 * imported with it on a destination; its containers are the Task service's tasks.
 * Borrowed; valid until sandbox_close. */
struct pod *sandbox_pod(struct sandbox *sb);
/* true once the VM has stopped (WaitSandbox answered); *ret_exited_at_ns (may be NULL) then
 * gets the wall-clock time. */
bool sandbox_exited(const struct sandbox *sb, uint64_t *ret_exited_at_ns);
/* The session that receives the VM's migration notifications (borrowed; NULL stops). */
void sandbox_set_migration(struct sandbox *sb, struct mig_session *s);

/* -- a container's devices (docs/shim.md "Devices") -- */

/* One CreateTask rootfs mount (containerd.types.Mount); borrowed. */
struct sandbox_mount {
        const char *type, *source;
        char *const *options;
        size_t n_options;
};

/* What a container's create gets once its devices are in the guest; valid during the
 * callback only. */
struct sandbox_disks {
        const char *rootfs_path; /* NULL without layers or a bind rootfs */
        const struct container_disk *ro_layers;
        size_t n_ro_layers;
        const struct container_disk *scratch; /* NULL: none */
};
typedef void (*sandbox_attach_fn)(int result, const struct sandbox_disks *disks, void *userdata);

/* Derives and attaches the devices of container id (borrowed): the rootfs (one "lcow-layer"
 * mount: its parentLayerPaths' layer.vhd as read-only SCSI layers, its source's sandbox.vhdx as
 * the scratch), the bind mounts of <bundle>/config.json (Plan9 shares) and its windows.devices
 * (vPCI). Everything is checked first: -EINVAL with sandbox_error() naming the field, and
 * nothing changed. Then each device is reserved and mapped in turn; done(0, disks) once all
 * are in the guest, or done(<0, NULL) after what was mapped was released again. Errors at
 * once: -EINVAL, -EEXIST id has devices already, -ENOTCONN the VM is not running, -ENOMEM. */
int sandbox_attach(struct sandbox *sb, const char *id, const char *bundle,
                   const struct sandbox_mount *rootfs, size_t n_rootfs, sandbox_attach_fn done,
                   void *userdata);
/* Releases every device container id still holds (last first): SCSI layers, Plan9 shares,
 * vPCI devices. done(0) (on a later loop turn) when nothing is left; done(<0) keeps what
 * failed, so a retry resumes there. Errors at once: -ESTALE a release of id is in flight,
 * -ENOMEM. */
int sandbox_detach(struct sandbox *sb, const char *id, sandbox_done_fn done, void *userdata);
/* Tracks the SCSI reservations container c (borrowed) holds under its id, adding those no
 * attachment knows of (a migrated container's: the source attached them), so that
 * sandbox_detach releases them. Call it before container_delete, whose release hook only
 * hands the reservations over. Idempotent. -ENOMEM. */
int sandbox_adopt(struct sandbox *sb, const struct container *c);
/* Shares, devices and SCSI reservations tracked for container id (tests, ferryctl). */
size_t sandbox_device_count(const struct sandbox *sb, const char *id);

/* The session's sandbox operations over this sandbox (void *sb = struct sandbox *): the VM
 * controller's save/import/transfer/finalize sequence and the pod's save/import/patch/resume/
 * teardown around it. The snapshot is SandboxSave in proto/sandbox.proto (envelope
 * "type.ferry.dev/ferry.migration.save.v1.Payload", schema 3): the VM's envelope and a list
 * of pod envelopes (one today). Import refuses container ids shared across pods and is all
 * or nothing. */
extern const struct migration_sandbox_ops sandbox_mig_ops;

/* The VM controller (borrowed). */
struct vm *sandbox_vm(struct sandbox *sb);

/* "notready" (no VM), "creating", "created", "starting", "ready" (running), "stopping",
 * "stopped", "migrating" (any of the VM's migration states). */
const char *sandbox_state_name(const struct sandbox *sb);
bool sandbox_running(const struct sandbox *sb);
/* The sandbox id, or "" before create. */
const char *sandbox_id(const struct sandbox *sb);
/* The guest connection while running, else NULL. */
struct guest_conn *sandbox_guest(const struct sandbox *sb);
/* The controllers' environment (loop, system, guest, publisher); borrowed. */
struct ctrl_env *sandbox_env(struct sandbox *sb);
uint64_t sandbox_created_at_ns(const struct sandbox *sb);

/* Registers the Sandbox service on srv, driving sb. shutdown(userdata) is called by
 * ShutdownSandbox once the VM is stopped, to end the shim. All borrowed; they must outlive srv.
 * Returns as ttrpc_server_register(). */
int sandbox_service_register(struct ttrpc_server *srv, struct sandbox *sb, void (*shutdown)(void *),
                             void *shutdown_userdata);
