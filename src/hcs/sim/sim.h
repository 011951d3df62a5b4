/* SPDX-License-Identifier: MIT */
/* The sim backend's VM: a real memory image with dirty tracking, a workload thread, device
 * bookkeeping, the in-VM guest compute service, and the live-migration state. Internal to the
 * hcs library and the sim guest bridge. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hcs/backend.h"

#define SIM_PAGE_SIZE        4096u
#define SIM_SCSI_CONTROLLERS 4
#define SIM_SCSI_LUNS        64
#define SIM_MAX_SHARES       32
#define SIM_MAX_VPCI         16
#define SIM_MAX_NICS         16
#define SIM_NAME_MAX         64
#define SIM_PATH_MAX         256
#define SIM_COMPAT_MAX       256
#define SIM_SOCKET_BUFFER    (4 << 20) /* SO_SNDBUF/SO_RCVBUF asked for on the adopted socket */

#define SIM_GUEST_MAX_CONTAINERS 64
#define SIM_GUEST_MAX_PROCESSES  256
#define SIM_GUEST_MAX_MOUNTS     64
#define SIM_GUEST_MAX_NICS       16
#define SIM_GUEST_PROTOCOL_MAX   4

enum sim_state {
        SIM_NOT_CREATED = 0,
        SIM_CREATED,
        SIM_RUNNING,
        SIM_PAUSED,
        SIM_STOPPED,
};

enum sim_lm {
        SIM_LM_NONE = 0,
        SIM_LM_SRC_INITIALIZED,
        SIM_LM_SRC_STARTED,
        SIM_LM_DST_STARTED,
        SIM_LM_TRANSFERRING,
        SIM_LM_TRANSFERRED,
        SIM_LM_DST_FAILED,
};

struct sim_scsi_slot {
        bool used;
        bool read_only;
        char path[SIM_PATH_MAX];
        char type[32];
};

struct sim_named {
        bool used;
        bool read_only;
        char name[SIM_NAME_MAX];
        char path[SIM_PATH_MAX];
};

enum sim_container_state {
        SIM_CT_CREATED = 1,
        SIM_CT_RUNNING,
        SIM_CT_STOPPED,
};

struct sim_container {
        char id[SIM_NAME_MAX];
        enum sim_container_state state;
        uint32_t init_pid;
};

struct sim_process {
        uint32_t pid;
        char container[SIM_NAME_MAX];
        bool exited;
        int exit_code;
        uint32_t stdio_port[3];
};

enum sim_mount_kind {
        SIM_MOUNT_SCSI = 1,
        SIM_MOUNT_PLAN9,
};

struct sim_mount {
        enum sim_mount_kind kind;
        uint32_t controller, lun;
        char share[SIM_NAME_MAX];
        char guest_path[SIM_PATH_MAX];
};

struct sim_guest_nic {
        char ns[SIM_NAME_MAX];
        char id[SIM_NAME_MAX];
};

/* The guest compute service's state. It lives in the VM and migrates in the stream. */
struct sim_guest {
        uint32_t protocol_max;
        uint64_t next_request_id;
        uint32_t next_port;
        uint32_t next_pid;
        struct sim_container containers[SIM_GUEST_MAX_CONTAINERS];
        size_t n_containers;
        struct sim_process processes[SIM_GUEST_MAX_PROCESSES];
        size_t n_processes;
        struct sim_mount mounts[SIM_GUEST_MAX_MOUNTS];
        size_t n_mounts;
        char vpci_ready[SIM_MAX_VPCI][SIM_NAME_MAX];
        size_t n_vpci_ready;
        char netns[SIM_GUEST_MAX_NICS][SIM_NAME_MAX];
        size_t n_netns;
        struct sim_guest_nic nics[SIM_GUEST_MAX_NICS];
        size_t n_nics;
};

/* Called (from any thread, no lock held) for every process that exits. */
typedef void (*sim_exit_hook_fn)(uint32_t pid, int exit_code, void *userdata);

struct sim_vm {
        struct hcs_system *sys;
        char id[SIM_NAME_MAX];
        struct json_object *doc;

        pthread_mutex_t lock; /* everything below unless noted */
        pthread_cond_t cond;
        enum sim_state state;
        enum sim_lm lm;
        uint32_t processors;

        /* Memory image. mem and dirty are shared with the workload and transfer without the
         * lock: pages are plain memory, dirty bits are atomic words. */
        uint8_t *mem;
        uint64_t mem_size;
        uint64_t npages;
        _Atomic uint64_t *dirty;
        uint64_t dirty_words;

        /* Workload. */
        pthread_t wl_thread;
        bool wl_started;
        atomic_bool wl_stop;
        atomic_bool wl_pause_req;
        bool wl_paused;   /* acknowledged, under lock */
        uint64_t wl_rate; /* pages dirtied per second */
        uint64_t wl_seed;
        _Atomic uint64_t wl_writes;

        /* Devices. */
        struct sim_scsi_slot scsi[SIM_SCSI_CONTROLLERS][SIM_SCSI_LUNS];
        bool scsi_present[SIM_SCSI_CONTROLLERS];
        struct sim_named shares[SIM_MAX_SHARES];
        struct sim_named vpci[SIM_MAX_VPCI];
        struct sim_named nics[SIM_MAX_NICS];

        struct sim_guest guest;
        /* Exit hook: guarded by hook_lock (not lock) so clearing it waits out a call in
         * progress; hook_lock is never taken with lock held. */
        pthread_mutex_t hook_lock;
        sim_exit_hook_fn exit_hook;
        void *exit_hook_userdata;

        /* Live migration. */
        bool incoming; /* document carried VirtualMachine.MigrationOptions */
        uint8_t expect_compat[SIM_COMPAT_MAX]; /* CompatibilityData from that document */
        size_t expect_compat_len;
        int fd;
        uint32_t session_id;
        uint32_t max_passes;
        uint64_t dirty_threshold;
        bool verify_checksum; /* MigrationInitializeOptions.ChecksumVerification, default on */
        atomic_bool cancel;
        uint64_t blackout_start_us;
        /* Statistics of the last transfer. */
        uint32_t last_passes;
        uint64_t last_bytes;
        uint64_t last_blackout_us;
        uint64_t last_checksum_us; /* final checksum over the page hashes, in the blackout */
        uint64_t last_hash_us;     /* hashing pages during the whole transfer */
};

/* The compatibility blob of vm (what a peer must match); writes at most SIM_COMPAT_MAX bytes. */
size_t sim_compat_blob(const struct sim_vm *vm, uint8_t *buf);

/* Workload control; called with vm->lock held. pause waits for the thread to acknowledge. */
void sim_workload_pause_locked(struct sim_vm *vm);
void sim_workload_resume_locked(struct sim_vm *vm);

/* Device layout as JSON (new reference) and its check against vm's own layout; lock held. */
struct json_object *sim_device_state_locked(const struct sim_vm *vm);
int sim_device_state_check_locked(const struct sim_vm *vm, struct json_object *state);

/* Guest state <-> JSON; lock held. from_json replaces the guest state or fails leaving it
 * untouched (-EBADMSG). */
struct json_object *sim_guest_to_json_locked(const struct sim_guest *g);
int sim_guest_from_json_locked(struct sim_guest *g, struct json_object *o);
void sim_guest_init(struct sim_guest *g);
/* Marks every running process exited with exit_code (VM stop); lock held; returns how many
 * exits to report through the hook afterwards, written into pids/codes (caller's arrays of
 * SIM_GUEST_MAX_PROCESSES). */
size_t sim_guest_kill_all_locked(struct sim_guest *g, int exit_code, uint32_t *pids, int *codes);
/* True if the guest has (controller, lun) mounted. */
bool sim_guest_scsi_in_use_locked(const struct sim_guest *g, uint32_t controller, uint32_t lun);

/* Reports exits through the hook; call without vm->lock held. */
void sim_report_exits(struct sim_vm *vm, const uint32_t *pids, const int *codes, size_t n);

/* The transfer, run on a worker thread with the lock NOT held. */
int sim_xfer_source(struct sim_vm *vm);
int sim_xfer_destination(struct sim_vm *vm);

/* Emit helpers. */
void sim_emit(struct sim_vm *vm, enum hcs_event ev, enum hcs_origin origin);
void sim_emit_failed(struct sim_vm *vm, enum hcs_origin origin, enum hcs_result result, int error,
                     const char *reason);
