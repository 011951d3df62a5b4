/* SPDX-License-Identifier: MIT */
/* The process controller: one process inside a Linux container, the init (exec id "") or an
 * exec. Its lifecycle is spec/process.yaml (diagram and matrix in generated/process.*); this
 * header is the public face the container controller and the shim's Task service call.
 *
 * Calling convention (src/ctrl/common/ctrl.h): a call that takes a done callback returns a
 * negative errno when the spec rejects it in the current state (the state is unchanged and
 * done is never called) and 0 when taken; done(result, userdata) is then called exactly once
 * on the loop thread, possibly before the call returns. Calls without a done callback are
 * synchronous and return 0 or a negative errno. Rejection classes (util/status.h):
 *   -EBUSY   failed_precondition: not allowed in this state, e.g. every mutating call while the
 *            process is migrating (source_migrating, destination_migrating, and their
 *            in-flight states);
 *   -ESTALE  aborted: another operation is in flight; retry when it completes;
 *   -EINVAL  invalid_argument: bad arguments or a foreign / corrupt / future envelope.
 * A call made from inside one of the same process's callbacks while its transition runs is
 * refused with -ESTALE (retry from the loop).
 *
 * Guest calls go through env->guest (borrowed at every call, so the owner may swap the
 * connection, e.g. after a migration, without telling the process).
 *
 * Threading: loop thread only. Ownership: strings passed in are copied unless said otherwise. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"

struct process;

/* The longest id (container or exec id) and path this controller accepts. */
#define PROCESS_ID_MAX   128
#define PROCESS_PATH_MAX 1024

/* Envelope controller name and the newest payload schema this build reads and writes. */
#define PROCESS_SAVE_NAME      "process"
#define PROCESS_SCHEMA_VERSION 1u

/* Exit code of a migrating process torn down with no guest behind it (SIGKILL). */
#define PROCESS_EXIT_TORN_DOWN 137

/* containerd's view of a process (task status). */
enum process_status {
        PROCESS_STATUS_UNKNOWN = 0, /* not created, or migrating */
        PROCESS_STATUS_CREATED,
        PROCESS_STATUS_RUNNING,
        PROCESS_STATUS_STOPPED,
};

/* Upstream IO: containerd's stdio endpoints (FIFO paths). NULL or "" = none. A terminal has
 * no separate stderr (create and patch refuse one with -EBUSY, the reference's class). */
struct process_io {
        const char *stdin_path;
        const char *stdout_path;
        const char *stderr_path;
        bool terminal;
};

struct process_create_opts {
        const char *bundle; /* host bundle directory; may be NULL */
        struct process_io io;
        const char *spec_json; /* execs: the OCI process spec (JSON); NULL for the init */
};

/* Destination patch: everything host-local. Guest-side ids (pid, relay ports) never change. */
struct process_patch_opts {
        const char *container_id; /* the destination's containerd container id; required */
        const char *bundle;       /* the destination bundle; may be NULL */
        struct process_io io;     /* the destination's stdio endpoints */
};

/* An exit: the code and when it was recorded (ferry_wall_ns(), read once at the exit, so every
 * report of it carries the same time). */
typedef void (*process_exit_fn)(struct process *p, int exit_code, uint64_t exited_at_ns,
                                void *userdata);

/* A new process in not_created. env is borrowed and must outlive the process. container_id is
 * the containerd-facing id (patch may change it), guest_container_id the guest's (never
 * changes); exec_id "" is the init. io_retry_timeout_us bounds opening the upstream FIFOs
 * (0 = one attempt). Returns 0, -EINVAL (bad or over-long id), -ENOMEM. */
int process_new(const struct ctrl_env *env, const char *container_id,
                const char *guest_container_id, const char *exec_id, uint64_t io_retry_timeout_us,
                struct process **ret);

/* Frees p and everything it holds (IO closed, guest waits detached; pending callbacks are never
 * called). Accepts NULL; returns NULL. Not from inside one of p's callbacks. */
struct process *process_free(struct process *p);

/* The owner's exit hook, called once when the exit watch sees the guest process exit (not for
 * the synthetic ends: kill or delete before start, failed start, teardown, which the caller
 * causes and sees through done or process_wait). For the init it is the container, which
 * publishes TaskExit; an exec without a hook publishes "/tasks/exit" itself through env.
 * fn may be NULL. */
void process_set_exit_hook(struct process *p, process_exit_fn fn, void *userdata);

/* not_created → created: opens the upstream IO on the thread pool (an endpoint that does not
 * exist yet is retried for the IO retry timeout), or at once when no endpoint is given.
 * done(0) or the open error (-ENOENT, …). -EBUSY terminal with stderr or wrong state, -EINVAL
 * an over-long path. */
int process_create(struct process *p, const struct process_create_opts *opts, ctrl_done_fn done,
                   void *userdata);

/* created → running: starts the process in the guest (the init: the guest container's start;
 * an exec: CreateProcess in the container) and arms its exit watch. done(pid > 0) or
 * done(-errno), in which case the process is terminated with exit code 1 and its pid is -1. */
int process_start(struct process *p, ctrl_done_fn done, void *userdata);

/* Signals the process (sig 0 = terminate: SIGKILL). Running: done(0) once the guest delivered
 * it (an already exited process counts as delivered), -ENOENT when undelivered. Not started
 * (not_created, created): ends it with exit code 1 at once. Terminated: no-op, done(0). */
int process_kill(struct process *p, int sig, ctrl_done_fn done, void *userdata);

/* created: ends it with exit code 0; terminated: no-op; running: -EBUSY (kill first). */
int process_delete(struct process *p, ctrl_done_fn done, void *userdata);

/* Resizes the console of a running terminal process (-EBUSY without a terminal). */
int process_resize(struct process *p, uint32_t width, uint32_t height, ctrl_done_fn done,
                   void *userdata);

/* Closes stdin of the upstream IO (idempotent; a no-op where there is none). */
int process_close_io(struct process *p, ctrl_done_fn done, void *userdata);

/* Calls fn once the exit is recorded by any path (at once if it already is). Several waiters may be
 * registered; each is called exactly once, or never if p is freed first. -ENOMEM. */
int process_wait(struct process *p, process_exit_fn fn, void *userdata);

/* Source: serializes p into a new envelope (*ret, ctrl_envelope_free) and freezes it in
 * source_migrating; again in source_migrating re-serializes. -EBUSY in other states, -ENOMEM. */
int process_save(struct process *p, ctrl_envelope **ret);

/* Destination: rehydrates a process made by process_new (not_created) from env into
 * destination_migrating. env is borrowed. Checks in order: envelope present, type URL,
 * decode, schema version (-EINVAL, -EBADMSG for bytes that do not decode), then the payload's
 * own fields; nothing changes unless all pass. The exit code starts at 255. */
int process_import(struct process *p, const ctrl_envelope *env);

/* Destination: opens IO on the destination endpoints (as create does) and adopts container id
 * and bundle (-EINVAL without a valid container id). On an IO failure the earlier state stays
 * intact and the patch can be retried. */
int process_patch(struct process *p, const struct process_patch_opts *opts, ctrl_done_fn done,
                  void *userdata);

/* source_migrating: rollback, reopens the IO relay; the watch armed at start stays the only
 * exit reporter. destination_migrating (patched): binds the live guest process through
 * env->guest and arms the exit watch (an exit during the blackout is reported, once).
 * running: no-op. */
int process_resume(struct process *p, ctrl_done_fn done, void *userdata);

/* A migrating process whose guest will never come back (the VM is gone): terminated with exit
 * code 137, so Delete can proceed. Synchronous. terminated: no-op; other states -EBUSY. */
int process_teardown(struct process *p);

/* Queries (never fail). */
enum process_status process_status(const struct process *p);
const char *process_state_name(const struct process *p);
bool process_is_frozen(const struct process *p);
int64_t process_pid(const struct process *p);   /* guest pid; 0 before start, -1 failed start */
int process_exit_code(const struct process *p); /* 255 until an exit is recorded */
uint64_t
process_exited_at_ns(const struct process *p); /* ferry_wall_ns() at the exit; 0 = not yet */
const char *process_exec_id(const struct process *p);
const char *process_container_id(const struct process *p);
const char *process_bundle(const struct process *p); /* "" when none */
/* The upstream IO as last created or patched (paths "" when none); false before any. */
bool process_io(const struct process *p, struct process_io *ret);
/* The guest relay ports kept by the last save (0 = none) and the outstanding wait id. */
void process_relay_ports(const struct process *p, uint32_t ret_ports[3], uint64_t *ret_wait_id);

/* Status names as containerd spells them ("UNKNOWN", "CREATED", "RUNNING", "STOPPED"). */
const char *process_status_name(enum process_status s);
