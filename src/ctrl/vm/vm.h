/* SPDX-License-Identifier: MIT */
/* The VM controller: one utility VM (a host-compute system and its guest bridge) and the whole
 * host-compute live-migration sequence on both sides. The lifecycle is spec/vm.yaml; the
 * handlers in vm.c only do the work.
 *
 * Calling convention (src/ctrl/common/ctrl.h): every asynchronous call returns a negative errno
 * when the spec rejects it (state untouched; done is never called), or 0 and then done(result,
 * ud) runs exactly once on the loop thread. Rejections: -EBUSY (failed_precondition: wrong
 * state, e.g. a non-migration call while migrating), -ENOTCONN (unavailable: another call of
 * this VM is in flight; retry when it completes). save and import are synchronous: their return
 * value is the outcome and they take no done.
 *
 * A call in flight that is overtaken by terminate or by the VM's exit completes with
 * -ECANCELED; its late host-compute completion is ignored. A call made from inside one of the
 * VM's own transitions (e.g. from a notification callback) is refused with -ENOTCONN; done
 * callbacks always run outside them, so a caller may chain its next call from one.
 *
 * Source order:      initialize_source, save, start_source(fd), transfer,
 *                    finalize(stop) or finalize(resume) + resume.
 * Destination order: import, [remap_disk…], create_destination, patch,
 *                    start_destination(fd), transfer, finalize(resume), resume.
 *
 * Threading: one loop; every function is called on its thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"
#include "hcs/hcs.h"

struct vm;
struct guest_conn;
struct scsi_ctrl;

/* The save payload's schema version this build writes and the highest it reads. */
#define VM_SCHEMA_VERSION 1
/* The guest protocol the VM asks for when it connects or reconnects the bridge. */
#define VM_GUEST_PROTOCOL 4
/* Longest VM id: hcs's limit. */
#define VM_ID_MAX 63

/* A host-compute migration notification, forwarded as the hcs backend emitted it (n borrowed). */
typedef void (*vm_notify_fn)(struct vm *vm, const struct hcs_notification *n, void *userdata);

/* Makes a VM controller in not_created on loop over backend (both borrowed; they must outlive
 * it). name (borrowed, copied) names the instance in traces. Errors: -EINVAL, -ENOMEM. */
int vm_new(uv_loop_t *loop, struct hcs_backend *backend, const char *name, struct vm **ret);
/* Frees vm; accepts NULL and returns NULL. A system it still holds (an invalid VM, or any VM
 * its owner gives up on without terminate) is closed, which stops it, and the memory goes once
 * the host let go; nothing is called back any more. Returns vm itself, untouched, while one
 * of its calls (or a host call of someone else on its system) is in flight: retry once it
 * completed. */
struct vm *vm_free(struct vm *vm);

/* The current state's name (spec/vm.yaml) and whether it is a frozen (migrating) state. */
const char *vm_state_name(const struct vm *vm);
bool vm_is_migrating(const struct vm *vm);
/* The fsm instance, for traces and tests (borrowed). */
struct fsm *vm_fsm(struct vm *vm);

/* Processor runtime and memory counters of a running VM: hcsshim's VirtualMachineStatistics
 * (processor runtime in ns, working set, and the host's VirtualMachineMemory counters). */
struct vm_stats {
        uint64_t total_runtime_ns;
        uint64_t working_set_bytes; /* assigned pages x 4096 (a physically backed VM) */
        uint32_t virtual_node_count;
        int32_t available_memory; /* MB */
        int32_t available_memory_buffer;
        uint64_t reserved_memory;
        uint64_t assigned_memory; /* 4 KiB pages */
        bool slp_active;
        bool balancing_enabled;
        bool dm_operation_in_progress;
};

/* Borrowed handles; NULL while they do not exist. The system exists from create (or
 * create_destination) until terminate completes; the guest connection from start (or resume
 * on a destination). */
struct hcs_system *vm_system(struct vm *vm);
struct guest_conn *vm_guest(struct vm *vm);
/* Fills env (caller-owned) with the loop, system and guest for child controllers; publish is
 * left NULL for the caller to set. */
void vm_env(struct vm *vm, struct ctrl_env *env);
/* The retained compute document (borrowed JSON, NULL before create or import). */
struct json_object *vm_document(struct vm *vm);
/* The VM's SCSI controller (borrowed), built on first use from the compute document's SCSI
 * section (so a destination builds it from the imported document), or the one import brought.
 * Errors: -EINVAL no document yet (before create or import) or a malformed SCSI section,
 * -ENOMEM. */
int vm_scsi(struct vm *vm, struct scsi_ctrl **ret);
/* The compatibility blob kept by initialize_source (from the host's CompatibilityInfo property)
 * or import (borrowed); size 0 if none. */
const uint8_t *vm_compat_blob(const struct vm *vm, size_t *ret_size);
/* The guest counter floors import brought (0 when none), and whether resume raised them. */
void vm_imported_floors(const struct vm *vm, uint64_t *ret_next_request_id,
                        uint32_t *ret_next_port);

/* Subscribes fn (NULL unsubscribes) to the host-compute migration notifications of this VM's
 * current and future systems. Allowed in any state (it only records the callback). */
void vm_subscribe(struct vm *vm, vm_notify_fn fn, void *userdata);
/* Exit observer: fn is called once with the exit result (0 clean, or a negative errno) when the
 * VM's system stops on its own (not for terminate or finalize(stop)). */
void vm_on_exit(struct vm *vm, ctrl_done_fn fn, void *userdata);

/* --- cold lifecycle ------------------------------------------------------------------------ */

/* Creates the system id (borrowed) from doc_json (borrowed, retained as the compute document).
 * The document of a migratable VM (its kernel command line has the reconnecting log
 * forwarder, VM_LM_LOG_FORWARDER) loses its Plan9 shares: they cannot follow the VM to
 * another host. -EINVAL for a document without VirtualMachine. */
int vm_create(struct vm *vm, const char *id, const char *doc_json, ctrl_done_fn done, void *ud);
/* Boots a created VM and connects the guest bridge. Any failure makes the VM invalid. */
int vm_start(struct vm *vm, ctrl_done_fn done, void *ud);
/* Tears the VM down from any state (already stopped counts as success); idempotent. */
int vm_terminate(struct vm *vm, ctrl_done_fn done, void *ud);
/* Queries the host's Statistics and Memory properties of a running VM into *ret (caller-owned,
 * must stay valid until done; written only on success). No state change. Rejected
 * (failed_precondition, -EBUSY) in every state but running; done gets -EPROTO for a host
 * answer without the counters. */
int vm_stats(struct vm *vm, struct vm_stats *ret, ctrl_done_fn done, void *ud);
/* Freezes the whole VM (running → paused; idempotent when paused). A host failure leaves it
 * running. While paused, every migration call is refused (-EBUSY). Thaw with vm_resume. */
int vm_pause(struct vm *vm, ctrl_done_fn done, void *ud);
/* Completes when the VM's system stops: done(0) at once when there is none (not_created,
 * imported, terminated). Not a lifecycle call: allowed in every state. -ENOMEM. */
int vm_wait(struct vm *vm, ctrl_done_fn done, void *ud);
/* Opens the notification stream (spec call open_notifications): records fn like vm_subscribe
 * but only where a system exists. */
int vm_open_notifications(struct vm *vm, vm_notify_fn fn, void *userdata);

/* The kernel command-line marker of a VM built for live migration (reconnecting log
 * forwarder), looked up in VirtualMachine.Chipset.LinuxKernelDirect.KernelCmdLine. */
#define VM_LM_LOG_FORWARDER "/bin/vsockexec -r -e 109"

/* --- source -------------------------------------------------------------------------------- */

/* Running → source_migration_initialized; then queries the host's CompatibilityInfo property
 * and keeps the blob. A failed query or an empty blob does not fail initialize (the host is
 * initialized by then): save fails with it instead (-EPROTO empty or malformed, or the query's
 * errno). opts_json (borrowed,
 * may be NULL) is a MigrationInitializeOptions document. -EBUSY if the VM was not built for
 * live migration. */
int vm_initialize_source(struct vm *vm, const char *opts_json, ctrl_done_fn done, void *ud);
/* Builds the VM envelope (*ret, free with ctrl_envelope_free): final compute document,
 * compatibility blob, guest port and bridge request-id counters. Repeatable; no state change.
 * Errors: the spec's rejection, the compatibility query's error (above), -ENOTCONN no guest,
 * -ENOMEM. */
int vm_save(struct vm *vm, ctrl_envelope **ret);
/* Adopts fd (taken in every case: closed when rejected or failed) as the migration socket of
 * session_id and starts the source side. */
int vm_start_source(struct vm *vm, int fd, uint32_t session_id, ctrl_done_fn done, void *ud);

/* --- destination --------------------------------------------------------------------------- */

/* Rehydrates env (borrowed) into destination_migration_imported. Atomic: on any error nothing
 * is kept. Errors: -EINVAL (envelope checks, bad document), -EBADMSG, -ENOMEM. */
int vm_import(struct vm *vm, const ctrl_envelope *env);
/* Repoints every SCSI attachment of the retained document whose host path is old_path
 * (borrowed) to new_path (borrowed, absolute): data only, for a destination whose imported
 * payload carried no SCSI controller (one that did is patched with scsi_patch instead), used
 * between import and create_destination. -ENOENT no document or no such attachment, -EINVAL
 * bad path. */
int vm_remap_disk(struct vm *vm, const char *old_path, const char *new_path);
/* Creates the destination system id (borrowed) from a copy of the retained document with
 * VirtualMachine.MigrationOptions = migration_options_json (borrowed, may be NULL for
 * {"Origin":"Destination"}) and the compatibility blob stamped in. The retained document stays
 * pristine, so a failed create can be retried. */
int vm_create_destination(struct vm *vm, const char *id, const char *migration_options_json,
                          ctrl_done_fn done, void *ud);
/* Grants the new VM access to the host paths of its VirtualDisk and PassThru attachments
 * (idempotent); a relative or over-long path fails with -EINVAL. */
int vm_patch(struct vm *vm, ctrl_done_fn done, void *ud);
/* Starts the destination against fd (taken in every case) for session_id. */
int vm_start_destination(struct vm *vm, int fd, uint32_t session_id, ctrl_done_fn done, void *ud);

/* --- both sides ---------------------------------------------------------------------------- */

/* Runs the memory transfer to its end (source or destination, per state). */
int vm_transfer(struct vm *vm, ctrl_done_fn done, void *ud);
/* Finalizes: resume = this side's VM runs (then call vm_resume), stop = it is discarded (the
 * VM ends terminated once its system stopped). */
int vm_finalize(struct vm *vm, bool resume, ctrl_done_fn done, void *ud);
/* Aborts the host-compute migration; no state change. A transfer in flight then fails on its
 * own. done gets the host's answer (-EALREADY: nothing to abort). */
int vm_cancel(struct vm *vm, ctrl_done_fn done, void *ud);
/* After finalize(resume): reuse the live bridge (source) or reconnect it to this system
 * (destination, renegotiating the protocol), then raise the guest counter floors carried by
 * import — before any child controller registers ids. From paused: thaws the VM (a host failure
 * leaves it paused). Idempotent when running. */
int vm_resume(struct vm *vm, ctrl_done_fn done, void *ud);
