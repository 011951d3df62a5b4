/* SPDX-License-Identifier: MIT */
/* The start of every test program here: argv[1] names the ferry-shim binary under test. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

static const char *shim_bin;

/* Takes the binary from argv and ignores SIGPIPE (a shim may close its end first); false, with
 * a usage line on stderr, when argv names none. */
static bool shim_args(int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: %s FERRY_SHIM\n", argv[0]);
                return false;
        }
        shim_bin = argv[1];
        signal(SIGPIPE, SIG_IGN);
        return true;
}
