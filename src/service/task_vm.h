/* SPDX-License-Identifier: MIT */
/* The Task service calls that act on the whole utility VM rather than on one container:
 * Pause, Resume and Stats (containerd.task.v2.Task), through the VM controller
 * (src/ctrl/vm/vm.h). They are the handlers of task.c's method table (declared in task.h);
 * userdata is the struct task_service.
 *
 *   Pause/Resume: the sandbox task (task id = sandbox id) freezes or thaws the VM, every
 *     container with it; any other task answers UNIMPLEMENTED (the guest cannot freeze one
 *     container). FAILED_PRECONDITION while a migration session is not idle, and when the VM
 *     refuses (not running, migrating). Pausing a paused VM or resuming a running one succeeds.
 *   Stats: the sandbox task answers containerd.runhcs.stats.v1.Statistics (proto/stats.proto)
 *     with the VM's processor and memory statistics; FAILED_PRECONDITION unless the VM runs
 *     (migration_service.md §B.7, ensureVMRunning); other tasks answer UNIMPLEMENTED (no
 *     per-container metrics in the guest interface yet). */
#pragma once

/* task_vm_pause, task_vm_resume, task_vm_stats: declared in service/task.h for the table. */
#include "service/task.h"

/* The Any type URL of the Stats payload. */
#define TASK_VM_STATS_TYPE_URL "containerd.runhcs.stats.v1.Statistics"
