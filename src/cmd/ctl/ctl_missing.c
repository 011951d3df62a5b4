/* SPDX-License-Identifier: MIT */
/* Built instead of the RPC commands while proto/{migration,task,sandbox}.proto are missing:
 * every RPC command says so and fails. */
#include <stdio.h>

#include "cmd/ctl/ctl_demo.h"
#include "cmd/ctl/ctl_migrate.h"
#include "cmd/ctl/ctl_task.h"

static int missing(const char *what)
{
        fprintf(stderr,
                "ferryctl: %s: MISSING: this ferryctl was built without "
                "proto/migration.proto, proto/task.proto and proto/sandbox.proto\n",
                what);
        return 1;
}

int ctl_sandbox_main(const char *address, int argc, char **argv)
{
        return missing("sandbox");
}

int ctl_task_main(const char *address, int argc, char **argv)
{
        return missing("task");
}

int ctl_status_main(const char *address, int argc, char **argv)
{
        return missing("status");
}

int ctl_migrate_main(int argc, char **argv)
{
        return missing("migrate");
}

int ctl_watch_main(const char *address, int argc, char **argv)
{
        return missing("watch");
}

int ctl_migration_main(const char *address, int argc, char **argv)
{
        return missing("migration");
}

int ctl_demo_main(int argc, char **argv)
{
        return missing("demo");
}
