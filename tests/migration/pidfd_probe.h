/* SPDX-License-Identifier: MIT */
/* Whether this process can copy a descriptor out of another with pidfd_getfd (Linux 5.6+).
 * Valgrind does not know the call (ENOSYS): under memcheck the socket tests take the handoff
 * path instead, and check that the pidfd path refuses cleanly. */
#pragma once

#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline bool pidfd_getfd_works(void)
{
        int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        if (pidfd < 0)
                return false;
        int fd = (int)syscall(SYS_pidfd_getfd, pidfd, 0, 0);
        close(pidfd);
        if (fd < 0)
                return false;
        close(fd);
        return true;
}
