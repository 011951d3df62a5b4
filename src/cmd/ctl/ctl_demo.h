/* SPDX-License-Identifier: MIT */
/* `ferryctl demo`: the README's main job. Starts a source and a destination ferry-shim on the
 * sim backend in a scratch directory, creates a pod on the source (a sandbox VM and two
 * containers under a busy workload), migrates it live to the destination, checks that the
 * containers run on the destination and the source is stopped, replays both shims' FSM traces
 * against the specs, and prints a summary. Everything it started is stopped and the scratch
 * directory removed on every path. */
#pragma once

/* argv: the arguments after "demo". Returns the exit status: 0 the checks passed, 1 a check
 * failed or something is missing, 2 usage. */
int ctl_demo_main(int argc, char **argv);
