/* SPDX-License-Identifier: MIT */
/* The session's sandbox ops on the VM controller (src/ctrl/vm/vm.h) for a sandbox that is one
 * VM with no pods: the snapshot is the VM's own envelope ("type.ferry.dev/ferry.vm.save.v1.
 * Payload": compute document, compatibility blob, guest counter floors). The shim's ops add the
 * pods on top of the same VM calls. */
#pragma once

#include "ctrl/vm/vm.h"
#include "migration/session.h"

struct mig_vm_sandbox;

extern const struct migration_sandbox_ops mig_vm_ops;

/* Wraps vm (borrowed; must outlive the sandbox) on loop. *ret is new. */
int mig_vm_sandbox_new(uv_loop_t *loop, struct vm *vm, struct mig_vm_sandbox **ret);
/* Sends the VM's migration notifications to s (NULL stops). */
void mig_vm_sandbox_bind(struct mig_vm_sandbox *sb, struct mig_session *s);
/* Frees sb; NULL ok. -EBUSY while a call is in flight (sb untouched). */
int mig_vm_sandbox_free(struct mig_vm_sandbox *sb);
