/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/ctl/ctl_trace.h"
#include "fsm/trace.h"

int ctl_trace_replay_file(const char *path, FILE *out)
{
        bool is_stdin = strcmp(path, "-") == 0;
        FILE *f = is_stdin ? stdin : fopen(path, "re");
        struct fsm_replay_report rep;
        int r;

        if (!f) {
                fprintf(stderr, "ferryctl: trace replay: %s: %s\n", path, strerror(errno));
                return 2;
        }
        r = fsm_replay(f, ctl_replay_machines, ctl_replay_n_machines, &rep);
        if (!is_stdin)
                fclose(f);
        if (r < 0 && r != -EBADMSG) {
                fprintf(stderr, "ferryctl: trace replay: %s: %s\n", path, strerror(-r));
                return 2;
        }
        (void)fsm_replay_print(&rep, path, out);
        return r == -EBADMSG ? 1 : 0;
}

static void list_machines(void)
{
        for (size_t i = 0; i < ctl_replay_n_machines; i++)
                printf("%s\n", ctl_replay_machines[i]->name);
}

int ctl_trace_main(int argc, char **argv)
{
        int status = 0;

        if (argc >= 1 && strcmp(argv[0], "machines") == 0) {
                list_machines();
                return 0;
        }
        if (argc < 2 || strcmp(argv[0], "replay") != 0) {
                fprintf(stderr, "usage: ferryctl trace replay FILE...   ('-' reads stdin)\n"
                                "       ferryctl trace machines\n");
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                int s = ctl_trace_replay_file(argv[i], stdout);

                if (s > status)
                        status = s;
        }
        return status;
}
