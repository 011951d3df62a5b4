/* SPDX-License-Identifier: MIT */
/* The guest compute interface: the guest compute service behind the bridge (containers,
 * processes, mounts, devices and networking inside the VM).
 *
 * Threading: like hcs, every object belongs to one libuv loop and every function is called on
 * its thread. Calls return 0 when queued (or a negative errno when refused at once: -EINVAL bad
 * arguments, -ENOMEM) and complete by calling their callback on the loop thread, exactly once,
 * never before the call returns. Every call first checks its fault point ("guest.<call>").
 *
 * Errors passed to callbacks: -ENOTCONN the guest is not reachable (VM not running, in a
 * migration blackout, or the connection is closed), -EEXIST, -ENOENT, -EBUSY (wrong state or in
 * use), -ENOSPC (table full), -ERANGE, -EALREADY (process already exited), plus injected faults.
 *
 * Only the sim backend's guest exists today; its state lives inside the sim VM and migrates in
 * the memory transfer, so a connection to the destination VM sees the same containers,
 * processes, exit codes and counters. */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "hcs/hcs.h"

#define GUEST_PROTOCOL_MIN 1

struct guest_conn;

/* Completion: value is call-specific (documented per call), 0 otherwise. */
typedef void (*guest_done_fn)(int result, uint64_t value, void *userdata);
/* Exit of process pid with exit_code (a signal death is 128+signal); result < 0 means the
 * wait ended without an exit (connection closed: -ECANCELED). */
typedef void (*guest_exit_fn)(int result, uint32_t pid, int exit_code, void *userdata);

/* Connects to the guest of sys (borrowed; must outlive the connection) and negotiates the
 * protocol: value = min(max_protocol, the guest's maximum); -EPROTO if below
 * GUEST_PROTOCOL_MIN. The handle is stored in *ret at once and is usable after done(0).
 * Refused at once: -EOPNOTSUPP backend without a guest, -EEXIST the VM already has a
 * connection. */
int guest_connect(uv_loop_t *loop, struct hcs_system *sys, uint32_t max_protocol,
                  guest_done_fn done, void *userdata, struct guest_conn **ret);
/* Rebinds conn to sys (e.g. the destination VM after a migration) and renegotiates; waits in
 * flight on the old VM end with -ECANCELED. value = the negotiated version. */
int guest_reconnect(struct guest_conn *conn, struct hcs_system *sys, uint32_t max_protocol,
                    guest_done_fn done, void *userdata);
/* Closes conn: pending waits end with -ECANCELED, pending completions are still delivered,
 * memory is released once the loop closes the handle. Accepts NULL. */
void guest_close(struct guest_conn *conn);
/* The negotiated protocol version (0 before the connection completes). */
uint32_t guest_protocol(const struct guest_conn *conn);

/* Bridge counters, which live in the guest: raise their floors (values below the current
 * ones are ignored) so ids reissued after a migration never collide. */
int guest_raise_floors(struct guest_conn *conn, uint64_t next_request_id, uint32_t next_port,
                       guest_done_fn done, void *userdata);
/* Reads the counters (synchronously; they are plain values). */
int guest_counters(struct guest_conn *conn, uint64_t *ret_next_request_id, uint32_t *ret_next_port);

/* Containers. id borrowed. start: value = pid of the container's init process. signal: SIGKILL,
 * SIGTERM and SIGINT end the init process (128+sig) and the container; others are delivered. */
int guest_create_container(struct guest_conn *conn, const char *id, guest_done_fn done,
                           void *userdata);
int guest_start_container(struct guest_conn *conn, const char *id, guest_done_fn done,
                          void *userdata);
int guest_signal_container(struct guest_conn *conn, const char *id, int sig, guest_done_fn done,
                           void *userdata);
int guest_delete_container(struct guest_conn *conn, const char *id, guest_done_fn done,
                           void *userdata);

/* Processes. start: value = pid. */
int guest_start_process(struct guest_conn *conn, const char *container, guest_done_fn done,
                        void *userdata);
int guest_signal_process(struct guest_conn *conn, uint32_t pid, int sig, guest_done_fn done,
                         void *userdata);
/* Completes when pid exits (at once if it has): each wait is completed exactly once. */
int guest_wait_process(struct guest_conn *conn, uint32_t pid, guest_exit_fn done, void *userdata);
/* Allocates the stdio relay ports of pid: value = stdin port; stdout and stderr follow it. */
int guest_io_relay(struct guest_conn *conn, uint32_t pid, guest_done_fn done, void *userdata);

/* Storage: SCSI (controller, lun must be attached on the host) and Plan9 (share must exist on
 * the host). Paths are absolute guest paths. */
int guest_scsi_mount(struct guest_conn *conn, uint32_t controller, uint32_t lun,
                     const char *guest_path, guest_done_fn done, void *userdata);
int guest_scsi_unmount(struct guest_conn *conn, const char *guest_path, guest_done_fn done,
                       void *userdata);
int guest_plan9_mount(struct guest_conn *conn, const char *share, const char *guest_path,
                      guest_done_fn done, void *userdata);
int guest_plan9_unmount(struct guest_conn *conn, const char *guest_path, guest_done_fn done,
                        void *userdata);

/* Devices and networking. */
int guest_vpci_ready(struct guest_conn *conn, const char *device_id, guest_done_fn done,
                     void *userdata);
int guest_netns_add(struct guest_conn *conn, const char *ns, guest_done_fn done, void *userdata);
int guest_nic_add(struct guest_conn *conn, const char *ns, const char *nic_id, guest_done_fn done,
                  void *userdata);
int guest_nic_remove(struct guest_conn *conn, const char *ns, const char *nic_id,
                     guest_done_fn done, void *userdata);

/* Sim only, for tests: makes process pid exit with code (0..255) now. Returns 0, -ENOENT,
 * -EALREADY, -ENOTCONN. */
int guest_sim_exit_process(struct guest_conn *conn, uint32_t pid, int code);
