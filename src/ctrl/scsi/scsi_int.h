/* SPDX-License-Identifier: MIT */
/* Private to src/ctrl/scsi: the data behind the SCSI controller and its two machines
 * (spec/scsi_disk.yaml, spec/scsi_mount.yaml). The controller owns disks by slot; a disk owns its
 * mounts inline (one entry per reserved partition), so a mount's memory outlives the dispatch
 * that ends it (its disk forgets it on the queued mount_released). */
#pragma once

#include "scsi.h"

#include "fsm/fsm.h"
#include "save_scsi.pb-c.h"
#include "scsi_disk_fsm.h"
#include "scsi_fsm.h"
#include "scsi_mount_fsm.h"

#define SCSI_SLOTS          (SCSI_CONTROLLERS_MAX * SCSI_LUNS)
#define SCSI_GUEST_PATH_MAX 64
#define SCSI_SCHEMA_VERSION 1

/* One public map/unmap in progress: a short list of steps, each a dispatch; a step whose
 * machine goes pending continues from the completion callback. */
struct scsi_op;
typedef int (*scsi_step_fn)(struct scsi_op *op);

struct scsi_op {
        struct scsi_ctrl *ctrl;
        char id[SCSI_ID_LEN];
        const scsi_step_fn *steps; /* NULL-terminated */
        unsigned next;
        uint64_t partition; /* of the reservation, for the disk's forwarding actions */
        bool pending;       /* the step just run left a machine in flight */
        int result;         /* what the completion handed over */
        ctrl_done_fn done;
        void *userdata;
};

struct scsi_mount {
        struct fsm fsm;
        struct scsi_disk *disk; /* owner */
        bool used;
        uint64_t partition;
        bool read_only;
        bool encrypted;
        bool ensure_filesystem;
        bool block_dev;
        char *filesystem;
        char **options;
        size_t n_options;
        uint32_t refs;
        bool was_mounted; /* set by save/import: what resume restores */
        char guest_path[SCSI_GUEST_PATH_MAX];
        struct scsi_op *op; /* the call waiting for the guest */
        char name[64];
};

struct scsi_disk {
        struct fsm fsm;
        struct scsi_ctrl *ctrl;
        uint32_t controller;
        uint32_t lun;
        char *host_path;
        char *type;
        char *evd_type;
        bool read_only;
        bool on_bus;       /* attached to the VM: listed in the destination's document */
        bool pinned;       /* attached by the compute document: never detached by an unmap */
        bool was_attached; /* set by save/import: what resume restores */
        bool froze_now;    /* the last save froze it (a re-save did not) */
        struct scsi_mount mounts[SCSI_PARTITIONS_MAX];
        unsigned n_mounts;  /* entries in use: the guard has_mounts */
        unsigned n_res;     /* reservations naming this disk: it is freed at 0 once detached */
        struct scsi_op *op; /* the call waiting for the host */
        char name[32];
};

struct scsi_res {
        char id[SCSI_ID_LEN];
        uint32_t slot;
        uint64_t partition;
        bool released; /* the mount reference is gone; a retried unmap only detaches */
};

struct scsi_ctrl {
        struct fsm fsm; /* spec/scsi.yaml */
        const struct ctrl_env *env;
        uint8_t present; /* bit c: controller c exists in the VM's document */
        struct scsi_disk *slots[SCSI_SLOTS];
        struct scsi_res *res;
        size_t n_res;
        size_t cap_res;
        unsigned in_flight; /* map/unmap calls not yet finished */
};

/* The arguments of the controller machine's call events. */
struct scsi_reserve_arg {
        const struct scsi_disk_config *disk;
        const struct scsi_mount_config *mount;
        char *ret_id;
};

struct scsi_call_arg {
        const char *id;
        const scsi_step_fn *steps;
        struct scsi_op *op; /* made by the action; its steps run once the dispatch returned */
};

struct scsi_patch_arg {
        const char *id;
        const char *host_path;
};

/* What save hands the disk and mount machines: where the new envelope goes. */
struct scsi_save_arg {
        ctrl_envelope *env;
};

/* scsi_disk.c */
struct scsi_disk *scsi_disk_new(struct scsi_ctrl *c, uint32_t slot);
void scsi_disk_free(struct scsi_disk *d);
int scsi_disk_set_config(struct scsi_disk *d, const struct scsi_disk_config *cfg);
bool scsi_disk_config_equal(const struct scsi_disk *d, const struct scsi_disk_config *cfg);
struct scsi_mount *scsi_disk_find_mount(struct scsi_disk *d, uint64_t partition);
static inline uint32_t scsi_disk_slot(const struct scsi_disk *d)
{
        return d->controller * SCSI_LUNS + d->lun;
}

/* scsi_mount.c */
int scsi_mount_init(struct scsi_mount *m, struct scsi_disk *d, uint64_t partition);
int scsi_mount_set_config(struct scsi_mount *m, const struct scsi_mount_config *cfg);
void scsi_mount_clear(struct scsi_mount *m);

/* scsi.c */
void scsi_op_resume(struct scsi_op *op);
bool scsi_path_ok(const char *path);
int scsi_new_id(char ret[SCSI_ID_LEN]);
bool scsi_id_ok(const char *id);
struct scsi_ctrl *scsi_ctrl_alloc(const struct ctrl_env *env);
struct scsi_disk *scsi_ctrl_disk_by_path(const struct scsi_ctrl *c, const char *path);
struct scsi_res *scsi_ctrl_res_find(const struct scsi_ctrl *c, const char *id);
int scsi_ctrl_res_add(struct scsi_ctrl *c, const char *id, uint32_t slot, uint64_t partition);
