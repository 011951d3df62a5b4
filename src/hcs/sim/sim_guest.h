/* SPDX-License-Identifier: MIT */
/* The guest compute service running inside a sim VM, as the guest bridge (src/guest) reaches it.
 * Every function takes the VM lock; all are safe from any thread. They return 0 or a negative
 * errno: -ENOTCONN the VM is not running (or is mid-migration blackout), -EEXIST, -ENOENT,
 * -EBUSY (in use / wrong state), -ENOSPC (table full), -EINVAL (bad name). */
#pragma once

#include "hcs/sim/sim.h"

/* Sets the hook told about every process exit of this VM (NULL to clear). */
void sim_guest_set_exit_hook(struct sim_vm *vm, sim_exit_hook_fn fn, void *userdata);

int sim_guest_hello(struct sim_vm *vm, uint32_t *ret_protocol_max);
int sim_guest_raise_floors(struct sim_vm *vm, uint64_t request_id, uint32_t port);
int sim_guest_next_request_id(struct sim_vm *vm, uint64_t *ret);
int sim_guest_alloc_port(struct sim_vm *vm, uint32_t *ret);
int sim_guest_counters(struct sim_vm *vm, uint64_t *ret_request_id, uint32_t *ret_port);

int sim_guest_create_container(struct sim_vm *vm, const char *id);
/* Starts the container and its init process, whose pid is returned. */
int sim_guest_start_container(struct sim_vm *vm, const char *id, uint32_t *ret_init_pid);
/* Delivers sig to every live process of the container: SIGKILL/SIGTERM/SIGINT end them with
 * 128+sig and stop the container; other signals are accepted and ignored. */
int sim_guest_signal_container(struct sim_vm *vm, const char *id, int sig);
/* -EBUSY while the container is running. */
int sim_guest_delete_container(struct sim_vm *vm, const char *id);
int sim_guest_start_process(struct sim_vm *vm, const char *container, uint32_t *ret_pid);
int sim_guest_signal_process(struct sim_vm *vm, uint32_t pid, int sig);
/* Test hook: process pid exits with code. -EALREADY if it already exited. */
int sim_guest_exit_process(struct sim_vm *vm, uint32_t pid, int code);
/* ret_exited/ret_code describe pid. */
int sim_guest_process_status(struct sim_vm *vm, uint32_t pid, bool *ret_exited, int *ret_code);
/* Allocates three stdio relay ports for pid. */
int sim_guest_io_relay(struct sim_vm *vm, uint32_t pid, uint32_t ret_ports[3]);

/* SCSI: the (controller, lun) must be attached on the host side. */
int sim_guest_scsi_mount(struct sim_vm *vm, uint32_t controller, uint32_t lun,
                         const char *guest_path);
int sim_guest_scsi_unmount(struct sim_vm *vm, const char *guest_path);
/* Plan9: the share must exist on the host side. */
int sim_guest_plan9_mount(struct sim_vm *vm, const char *share, const char *guest_path);
int sim_guest_plan9_unmount(struct sim_vm *vm, const char *guest_path);
/* VPCI: the device must be assigned on the host side. */
int sim_guest_vpci_ready(struct sim_vm *vm, const char *device_id);
int sim_guest_netns_add(struct sim_vm *vm, const char *ns);
/* NIC: the adapter must exist on the host side and ns in the guest. */
int sim_guest_nic_add(struct sim_vm *vm, const char *ns, const char *nic_id);
int sim_guest_nic_remove(struct sim_vm *vm, const char *ns, const char *nic_id);

/* Counts for tests and properties. */
size_t sim_guest_container_count(struct sim_vm *vm);
