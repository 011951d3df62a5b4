/* SPDX-License-Identifier: MIT */
/* The vPCI controller: PCI devices and SR-IOV virtual functions (instance id, VF index) assigned
 * to the utility VM, each under its own VMBus GUID (hcs_modify on
 * VirtualMachine/Devices/VirtualPci/<guid>, then guest_vpci_ready), reference counted by the
 * containers using them. One spec/vpci.yaml machine per tracked device; the controller keeps
 * device -> GUID so a second reserve of the same device returns the same GUID, and forgets both
 * when the device's machine ends (a later reserve gets a fresh GUID).
 *
 * Calling convention: ctrl/common/ctrl.h. Rejections: -EBUSY (failed_precondition), -ESTALE
 * (aborted: an operation on the device is in flight), -ENOENT (unknown GUID).
 *
 * Migration (controllers.md §9.5): vPCI state is not migratable. save succeeds only when no
 * device is tracked and then carries an empty payload (so the VM's save nests one envelope per
 * controller and the destination checks it); import accepts only such an envelope; nothing
 * host-local survives, so patch has nothing to repoint. There is no frozen state: devices are
 * reserved by container create only, which the pod refuses while it migrates. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"

struct vpci;
struct fsm;

/* A GUID in text form ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx") with its NUL. */
#define VPCI_GUID_LEN 37
/* Longest device instance id, with its NUL. */
#define VPCI_INSTANCE_MAX 200
/* Most devices tracked at once. */
#define VPCI_MAX_DEVICES 64

/* A new, empty controller acting in env (borrowed; sys and guest are read when calls run).
 * Returns 0, -EINVAL (NULL env), -ENOMEM. */
int vpci_new(const struct ctrl_env *env, struct vpci **ret);
/* Frees v and forgets its devices (nothing is removed from the VM); accepts NULL; returns NULL.
 * No operation may be in flight (asserted). */
struct vpci *vpci_free(struct vpci *v);

/* Reserves device (instance_id, vf_index): a new GUID in reserved, or the existing GUID of a
 * device already tracked (no reference taken). ret_guid receives it. Synchronous.
 * Errors: -EINVAL bad instance id, -ENOSPC too many devices, -ESTALE in flight, -EBUSY the
 * device's machine refuses, -ENOMEM. */
int vpci_reserve(struct vpci *v, const char *instance_id, uint32_t vf_index,
                 char ret_guid[VPCI_GUID_LEN]);

/* Assigns the device (first reference: host add with NUMA affinity propagated, then the guest
 * waits until the device is ready) or takes one more reference (no call). done(0) once ready;
 * done(<0): host add failed (removed) or guest failed (assigned_invalid: remove it).
 * Errors at once: -ENOENT unknown GUID, -EBUSY not usable, -ESTALE in flight. */
int vpci_assign(struct vpci *v, const char *guid, ctrl_done_fn done, void *userdata);

/* Drops one reference; the last one removes the device from the VM and untracks it; a device
 * never assigned (reserved, removed) is untracked without a call. done(<0): host removal failed
 * (assigned_invalid, remove retries). Errors at once: -ENOENT unknown GUID, -ESTALE in flight. */
int vpci_remove(struct vpci *v, const char *guid, ctrl_done_fn done, void *userdata);

/* Save: an envelope with an empty payload (*ret, free with ctrl_envelope_free) when nothing is
 * tracked; -EBUSY (failed_precondition) when a device is tracked in any state (in flight
 * included); nothing changes either way. -ENOMEM. */
int vpci_save(struct vpci *v, ctrl_envelope **ret);
/* Import into an empty controller: the envelope checks in order (-EINVAL no envelope, foreign
 * type URL or unsupported version; -EBADMSG undecodable), then -EBUSY when v tracks devices.
 * Nothing is committed on error. */
int vpci_import(struct vpci *v, const ctrl_envelope *env_in);
/* Patch: a saved vPCI controller is empty, so there is no host-local path to repoint: -ENOENT
 * for any instance id (a caller bug to ask), -EINVAL for NULL/empty ones. */
int vpci_patch(struct vpci *v, const char *from_instance_id, const char *to_instance_id);
/* Resume: binds the live VM and guest of the env (nothing to rebuild: the controller is empty
 * after import). Returns 0, or -EBUSY when devices are tracked (not a migrated controller). */
int vpci_resume(struct vpci *v);

/* Inspection: tracked devices, and a device's state name, reference count and machine;
 * NULL / 0 for an unknown GUID. */
size_t vpci_device_count(const struct vpci *v);
const char *vpci_state_name(const struct vpci *v, const char *guid);
uint32_t vpci_refcount(const struct vpci *v, const char *guid);
const struct fsm *vpci_device_fsm(const struct vpci *v, const char *guid);
