/* SPDX-License-Identifier: MIT */
/* ferryctl: the operator's tool (docs/operator-guide.md).
 *
 *   ferryctl [--address SOCK] [--timeout S] COMMAND ...
 *     sandbox create|start|stop|status      the shim's sandbox (one VM)
 *     task create|start|state|kill|delete|wait
 *     status [SOCK]                          the sandbox's state
 *     migrate --source SOCK --destination SOCK ...
 *     watch --session ID                     a session's notifications
 *     migration METHOD --session ID ...      one raw Migration call (tests, debugging)
 *     trace replay FILE... | trace machines  offline check of a recorded trace
 *     demo                                   the README's live-migration demo
 *
 * Exit status: 0 success, 1 failure, 2 usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/ctl/ctl_demo.h"
#include "cmd/ctl/ctl_migrate.h"
#include "cmd/ctl/ctl_task.h"
#include "cmd/ctl/ctl_trace.h"
#include "util/util.h"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: ferryctl [--address SOCK] COMMAND ...\n"
                "  sandbox create ID [--bundle DIR] | sandbox start|stop|status [ID]\n"
                "  task create ID [--bundle DIR] | task start|state|delete|wait ID\n"
                "  task kill ID [--signal N]\n"
                "  task pause|resume|stats ID   (the sandbox task: the whole VM)\n"
                "  status [SOCK]\n"
                "  migrate --source SOCK --destination SOCK [--container SRC[=DST]]... [options]\n"
                "  migrate ... [--stop-after STEP [--cancel-side SIDE]] [--hold-after STEP]...\n"
                "  watch --session ID [--json]\n"
                "  migration prepare-export|import|prepare|transfer|finalize|socket|cancel|\n"
                "            cleanup [--session ID] ...   one raw Migration call; a refusal\n"
                "            prints its code (see `ferryctl migration --help`)\n"
                "  trace replay FILE... | trace machines\n"
                "  demo [options]          the live-migration demo (see `ferryctl demo --help`)\n"
                "See docs/operator-guide.md.\n");
}

int main(int argc, char **argv)
{
        const char *address = getenv("FERRY_ADDRESS");
        const char *cmd;
        int i = 1;

        /* global options come before the command word; the rest belongs to the command */
        for (; i < argc && argv[i][0] == '-'; i++) {
                if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
                        address = argv[++i];
                } else if (strncmp(argv[i], "--address=", 10) == 0) {
                        address = argv[i] + 10;
                } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        usage(stdout);
                        return 0;
                } else {
                        usage(stderr);
                        return 2;
                }
        }
        if (i >= argc) {
                usage(stderr);
                return 2;
        }
        cmd = argv[i++];
        argc -= i;
        argv += i;
        if (strcmp(cmd, "sandbox") == 0)
                return ctl_sandbox_main(address, argc, argv);
        if (strcmp(cmd, "task") == 0)
                return ctl_task_main(address, argc, argv);
        if (strcmp(cmd, "status") == 0)
                return ctl_status_main(address, argc, argv);
        if (strcmp(cmd, "trace") == 0)
                return ctl_trace_main(argc, argv);
        /* getopt_long wants argv[0] to be a program name: hand it the command word */
        if (strcmp(cmd, "migrate") == 0)
                return ctl_migrate_main(argc + 1, argv - 1);
        if (strcmp(cmd, "migration") == 0)
                return ctl_migration_main(address, argc + 1, argv - 1);
        if (strcmp(cmd, "watch") == 0)
                return ctl_watch_main(address, argc + 1, argv - 1);
        if (strcmp(cmd, "demo") == 0)
                return ctl_demo_main(argc + 1, argv - 1);
        fprintf(stderr, "ferryctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
