/* SPDX-License-Identifier: MIT */
/* The Plan9 controller: reference-counted 9P file shares of host directories into the utility
 * VM. One spec/plan9_share.yaml machine per host path (hcs_modify on
 * VirtualMachine/Devices/Plan9/Shares/<name>, names "0", "1", … from a counter) with at most one
 * spec/plan9_mount.yaml machine (the guest mount at /run/mounts/plan9/<name>) whose reference
 * count is the number of reservations of the share.
 *
 * Calling convention: ctrl/common/ctrl.h. Rejections: -EBUSY (failed_precondition), -ESTALE
 * (aborted: an operation on the share is in flight), -ENOENT (unknown reservation),
 * -EPERM (a writable share while policy forbids them).
 *
 * Migration (controllers.md §8.7, commit b0aa4f8a7): Plan9 state is not migratable and a
 * live-migratable VM's compute document has no Plan9 device. save succeeds only when no share
 * exists and then carries an empty payload; import accepts only such an envelope; nothing
 * host-local survives, so patch has nothing to repoint. No frozen state: shares are reserved by
 * container create only, which the pod refuses while it migrates. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"

struct plan9;
struct fsm;

/* A reservation id (a GUID in text form) with its NUL. */
#define PLAN9_ID_LEN 37
/* Longest host path, with its NUL. */
#define PLAN9_PATH_MAX 256
/* Most shares and reservations tracked at once, and allowed names per share. */
#define PLAN9_MAX_SHARES       64
#define PLAN9_MAX_RESERVATIONS 256
#define PLAN9_MAX_ALLOWED      16
/* The Plan9 port of every share and guest mount. */
#define PLAN9_PORT 564

/* What to share. A file is shared through its directory with access restricted to its name
 * (restrict + allowed_names). Equal configs (allowed names compared case- and order-insensitively)
 * share one share. */
struct plan9_share_config {
        const char *host_path; /* absolute */
        bool read_only;
        bool restrict_access;
        const char *const *allowed_names;
        size_t n_allowed;
};

/* A new, empty controller acting in env (borrowed; sys and guest are read when calls run);
 * no_writable_shares refuses writable shares. Returns 0, -EINVAL (NULL env), -ENOMEM. */
int plan9_new(const struct ctrl_env *env, bool no_writable_shares, struct plan9 **ret);
/* Frees p and forgets its shares (nothing is removed from the VM); accepts NULL; returns NULL.
 * No operation may be in flight (asserted). */
struct plan9 *plan9_free(struct plan9 *p);

/* Reserves cfg (borrowed) with a guest mount of read-only flag mount_read_only: the existing
 * share of the host path (equal config required) or a new one (reserved, next name); its mount
 * gains one reference. ret_id receives the new reservation id. Synchronous; nothing is recorded
 * on error. Errors: -EINVAL bad config, -EPERM writable share forbidden, -EBUSY different config
 * or read-only flag, or the share is not usable, -ESTALE in flight, -ENOSPC tables full. */
int plan9_add(struct plan9 *p, const struct plan9_share_config *cfg, bool mount_read_only,
              char ret_id[PLAN9_ID_LEN]);

/* Maps reservation id into the guest: adds its share to the VM (once per share), then mounts it
 * in the guest (once per share). done(0) when mounted (plan9_guest_path names it); done(<0):
 * host add failed (share invalid: unmount drains it) or guest mount failed (mount invalid).
 * Errors at once: -ENOENT unknown id, -EBUSY not usable, -ESTALE in flight. */
int plan9_mount(struct plan9 *p, const char *id, ctrl_done_fn done, void *userdata);

/* Releases reservation id (the reference's UnmapFromGuest): drops its mount reference (the last
 * one unmounts in the guest), removes the share from the VM once no mount is left, and forgets
 * the reservation. done(<0) keeps the reservation so unmount can be retried (a retry after a
 * host removal failure does not unmount again). Errors at once: -ENOENT, -ESTALE. */
int plan9_unmount(struct plan9 *p, const char *id, ctrl_done_fn done, void *userdata);

/* Save: an envelope with an empty payload when no share exists; -EBUSY (failed_precondition)
 * when one does (in flight included); nothing changes. -ENOMEM. */
int plan9_save(struct plan9 *p, ctrl_envelope **ret);
/* Import into an empty controller: the envelope checks in order (-EINVAL, -EBADMSG), then
 * -EBUSY when p has shares. Nothing is committed on error. */
int plan9_import(struct plan9 *p, const ctrl_envelope *env_in);
/* Patch: nothing host-local survives a save: -ENOENT for any path, -EINVAL for NULL/empty. */
int plan9_patch(struct plan9 *p, const char *from_host_path, const char *to_host_path);
/* Resume: binds the env's live VM and guest; -EBUSY when shares exist (not a migrated one). */
int plan9_resume(struct plan9 *p);

/* Inspection: counts; the guest path, share name, state names and mount reference count of a
 * reservation (NULL / 0 when unknown or when the share has no mount). */
size_t plan9_share_count(const struct plan9 *p);
size_t plan9_reservation_count(const struct plan9 *p);
const char *plan9_guest_path(const struct plan9 *p, const char *id);
const char *plan9_share_name(const struct plan9 *p, const char *id);
const char *plan9_share_state(const struct plan9 *p, const char *id);
const char *plan9_mount_state(const struct plan9 *p, const char *id);
uint32_t plan9_mount_refcount(const struct plan9 *p, const char *id);
