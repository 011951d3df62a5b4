/* SPDX-License-Identifier: MIT */
/* The SCSI controller of a utility VM (spec/scsi.yaml): slot allocation (controller × LUN), one
 * ref-counted disk per host path (spec/scsi_disk.yaml) and one ref-counted guest mount per
 * partition of a disk (spec/scsi_mount.yaml), addressed by reservation ids that callers
 * (containers) hold.
 *
 * Calling convention: src/ctrl/common/ctrl.h. Calls marked "synchronous" finish before they
 * return (0 or a negative errno) and take no done callback. Asynchronous calls return 0 when
 * taken and then call done(result, userdata) exactly once on the loop thread, or a negative errno
 * when rejected (nothing changed, done never called).
 *
 * Error classes (util/status.h): -EBUSY failed_precondition (wrong state, frozen by a migration,
 * a partition reserved with a different config), -ESTALE aborted (an operation on that disk or
 * mount is in flight: retry when it completes), -ENOSPC resource_exhausted (no free slot),
 * -ENOENT not_found (unknown reservation), -EINVAL invalid_argument, -ENOMEM; asynchronous
 * failures pass the host's or guest's errno to done.
 *
 * Migration: scsi_save freezes every disk and mount (mutating calls then fail with -EBUSY)
 * until scsi_resume (rollback) or scsi_teardown (the VM is gone). On the destination
 * scsi_import builds a frozen controller, scsi_patch repoints host paths (slots stay),
 * scsi_attachments describes the slots for the destination VM's compute document, and
 * scsi_resume binds the live VM and guest.
 *
 * Threading: the loop thread only, like every controller. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"

/* The reference's well-known layout: up to 4 controllers of 64 LUNs each. */
#define SCSI_CONTROLLERS_MAX 4
#define SCSI_LUNS            64
/* A reservation id: a GUID "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" plus NUL. */
#define SCSI_ID_LEN 37
/* Longest host path, mount option list and option accepted (peer-controlled on import). */
#define SCSI_PATH_MAX    1024
#define SCSI_OPTIONS_MAX 16
#define SCSI_OPTION_MAX  128
/* Partitions per disk that may be reserved at once. */
#define SCSI_PARTITIONS_MAX 16

struct scsi_ctrl;

/* A disk's host side: what hcs_modify adds at its slot. Strings borrowed by every call. */
struct scsi_disk_config {
        const char *host_path; /* required, absolute */
        const char *type;      /* "VirtualDisk" (NULL), "PassThru", "ExtensibleVirtualDisk" */
        const char *evd_type;  /* ExtensibleVirtualDisk only; NULL otherwise */
        bool read_only;
};

/* A partition's guest side. Two reservations share a mount only with equal configs (options
 * compare case- and order-insensitively). Strings borrowed by every call. */
struct scsi_mount_config {
        uint64_t partition;
        bool read_only;
        bool encrypted;
        bool ensure_filesystem;
        bool block_dev;
        const char *filesystem; /* may be NULL */
        const char *const *options;
        size_t n_options; /* <= SCSI_OPTIONS_MAX */
};

/* Builds a controller from the VM's compute document doc (borrowed; json-c): one controller per
 * key of VirtualMachine.Devices.Scsi ("0".."3"), and each attachment found there becomes an
 * attached, pinned disk at its slot (the rootfs: the host attaches it when it creates the VM;
 * reservations may share it by host path, and it stays on the bus after they end). env is
 * borrowed and must outlive the controller; env->sys and env->guest are read at each call, so
 * they may be set later. Errors: -EINVAL malformed SCSI section, -ENOMEM. */
int scsi_ctrl_new(const struct ctrl_env *env, struct json_object *doc, struct scsi_ctrl **ret);

/* Frees the controller and every disk and mount without host or guest calls (the VM is gone
 * or the objects were frozen and torn down). Refuses (-EBUSY, nothing freed) while an operation
 * is in flight. Accepts NULL. */
int scsi_ctrl_free(struct scsi_ctrl *c);

/* Synchronous. Reserves partition mount->partition of the disk at disk->host_path: the disk is
 * found by host path (its config must be equal) or put in the lowest free slot; the partition's
 * mount gains one reference (or is created). Writes the new reservation id to ret_id.
 * Errors: -EINVAL bad config, -EBUSY frozen or torn down / different config / the disk left
 * the VM, -ESTALE operation in flight, -ENOSPC no free slot or partition entry, -ENOMEM.
 * On error nothing is recorded. */
int scsi_reserve(struct scsi_ctrl *c, const struct scsi_disk_config *disk,
                 const struct scsi_mount_config *mount, char ret_id[SCSI_ID_LEN]);

/* Attaches the reservation's disk to the VM (hcs_modify Add at
 * VirtualMachine/Devices/Scsi/<c>/Attachments/<lun>, once per disk) then mounts its partition in
 * the guest (guest_scsi_mount, once per partition). Idempotent. Errors at once: -ENOENT unknown
 * id, -EBUSY frozen, torn down or not attachable (an earlier attach failed), -ESTALE in flight,
 * -ENOTCONN no VM or guest in env. Errors to done: the host's or guest's. After a failure the
 * reservation is kept: release it with scsi_unmap (a failed guest mount releases without a
 * guest call). */
int scsi_map(struct scsi_ctrl *c, const char *id, ctrl_done_fn done, void *userdata);

/* Releases a reservation: drops its mount reference (the last one unmounts in the guest), then
 * detaches the disk from the VM once no partition is reserved (hcs_modify Remove; a disk never
 * attached just frees its slot), then forgets the id. A failure keeps the reservation so the
 * call can be retried (a retry after a failed removal only removes). Errors at once: -ENOENT
 * unknown id, -EBUSY frozen, -ESTALE in flight, -ENOTCONN no VM or guest in env. After
 * scsi_teardown every unmap succeeds without host or guest calls. */
int scsi_unmap(struct scsi_ctrl *c, const char *id, ctrl_done_fn done, void *userdata);

/* The guest path of a reservation's partition ("/run/mounts/scsi/<c>_<lun>_<partition>"),
 * where scsi_map mounts it; NULL for an unknown or released id. Borrowed. */
const char *scsi_guest_path(const struct scsi_ctrl *c, const char *id);

/* The slot of a reservation's disk. Returns 0 or -ENOENT. */
int scsi_slot(const struct scsi_ctrl *c, const char *id, uint32_t *ret_controller,
              uint32_t *ret_lun);

/* Source, synchronous: serializes the controller (disks nest their mounts) into a new envelope
 * (*ret, free with ctrl_envelope_free) and freezes every disk and mount. Safe to repeat while
 * frozen (the same bytes again). Errors: -EBUSY a disk or mount cannot be saved (off the bus
 * after a failed attach, failed mount), or the controller is imported and not resumed, or torn
 * down — then nothing is frozen; -ESTALE operation in flight; -ENOMEM. */
int scsi_save(struct scsi_ctrl *c, ctrl_envelope **ret);

/* Destination, synchronous: builds a frozen controller (*ret) from envelope e (borrowed).
 * Checks (ctrl_envelope_unpack order for the controller, then each nested disk and mount
 * envelope, then the payload): -EINVAL no envelope / wrong type URL / unsupported schema
 * version (envelope or payload) / a slot out of range, on an absent controller or taken twice /
 * a duplicate host path, partition or id / a malformed id / a reservation naming no disk or
 * partition / reference counts that disagree with the reservations, -EBADMSG undecodable
 * bytes, -ENOMEM. All or nothing: *ret is written only on success. env as in scsi_ctrl_new. */
int scsi_import(const struct ctrl_env *env, const ctrl_envelope *e, struct scsi_ctrl **ret);

/* Destination, synchronous: repoints the host path of the reservation's disk (layer or scratch
 * VHD on this host); the slot stays. The same path again is a no-op. Errors: -ENOENT unknown
 * id, -EINVAL bad path, -EEXIST another disk has that path, -EBUSY not imported (or already
 * resumed). */
int scsi_patch(struct scsi_ctrl *c, const char *id, const char *host_path);

/* The SCSI section of a compute document for the controller's disks on the bus (a disk only
 * reserved is left out, so the destination's layout is the source's):
 * {"0": {"Attachments": {"<lun>": {"Path", "Type", "ReadOnly"}}}, …}, every controller present.
 * *ret is new (json_object_put). Errors: -ENOMEM. */
int scsi_attachments(const struct scsi_ctrl *c, struct json_object **ret);

/* Synchronous: lifts the freeze. Source rollback: every disk and mount returns to the state it
 * was saved in. Destination: binds env's live VM and guest (both must be set, else -EINVAL and
 * still frozen) and every disk and mount returns to its saved state. Nothing frozen: 0 (so a
 * source cancelled before save resumes cleanly). Torn down: -EBUSY. */
int scsi_resume(struct scsi_ctrl *c);

/* Synchronous: drops every frozen disk and mount without host or guest calls (the source VM
 * stopped after a migration, or an imported controller is abandoned); their reservations stay
 * and release without calls; reserve and map are refused from now on. A live controller is
 * left alone (0). Idempotent. */
int scsi_teardown(struct scsi_ctrl *c);

/* Introspection for tests and ferryctl. */
size_t scsi_disk_count(const struct scsi_ctrl *c);
unsigned scsi_controller_count(const struct scsi_ctrl *c);
/* State names of the reservation's disk and mount machines (NULL when unknown). */
const char *scsi_disk_state(const struct scsi_ctrl *c, const char *id);
const char *scsi_mount_state(const struct scsi_ctrl *c, const char *id);
/* Reference count of the reservation's mount (0 when unknown). */
uint32_t scsi_mount_refs(const struct scsi_ctrl *c, const char *id);
/* Host path of the reservation's disk (NULL when unknown). Borrowed. */
const char *scsi_host_path(const struct scsi_ctrl *c, const char *id);
