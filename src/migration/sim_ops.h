/* SPDX-License-Identifier: MIT */
/* A sandbox for the migration session made straight of one host-compute system (no pods):
 * the session's ops on src/hcs/hcs.h. It is what the session's tests and the demo use until
 * the shim's VM and pod controllers provide their own ops; the transfers it runs are real
 * (the sim backend copies the memory image over the adopted socket).
 *
 * Snapshot: the envelope "type.ferry.dev/ferry.sim_sandbox.save.v1.Payload" carrying the
 * compute document and the compatibility blob (proto/migration.proto SimSandboxSave); guest
 * state travels inside the VM image. */
#pragma once

#include <stdbool.h>

#include "hcs/hcs.h"
#include "migration/session.h"

struct mig_sim_sandbox;

extern const struct migration_sandbox_ops mig_sim_ops;

/* A sandbox on backend b (borrowed). Source: then mig_sim_sandbox_boot; destination: leave it
 * not created for ImportSandbox. *ret is new; free with mig_sim_sandbox_close. */
int mig_sim_sandbox_new(uv_loop_t *loop, struct hcs_backend *b, struct mig_sim_sandbox **ret);
/* Creates and starts VM id from doc_json (both borrowed); done on the loop. */
int mig_sim_sandbox_boot(struct mig_sim_sandbox *sb, const char *id, const char *doc_json,
                         mig_done_fn done, void *userdata);
/* Sends the system's migration notifications to s (borrowed; NULL stops). */
void mig_sim_sandbox_bind(struct mig_sim_sandbox *sb, struct mig_session *s);
/* The compute system, NULL before it exists. */
struct hcs_system *mig_sim_sandbox_system(struct mig_sim_sandbox *sb);
/* Test hooks: the next prepare_destination's patch step / the next resume step after the
 * host finalize fails with err (negative errno), once. */
void mig_sim_sandbox_fail_patch(struct mig_sim_sandbox *sb, int err);
void mig_sim_sandbox_fail_resume(struct mig_sim_sandbox *sb, int err);
/* Closes the system (if any) and frees sb once it is gone; done (may be NULL) then runs.
 * -EBUSY while an operation is in flight. */
int mig_sim_sandbox_close(struct mig_sim_sandbox *sb, mig_done_fn done, void *userdata);
