/* SPDX-License-Identifier: MIT */
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

ssize_t ferry_strscpy(char *dst, const char *src, size_t size)
{
        size_t n;

        if (size == 0)
                return -E2BIG;
        n = strnlen(src, size);
        if (n == size) {
                memcpy(dst, src, size - 1);
                dst[size - 1] = '\0';
                return -E2BIG;
        }
        memcpy(dst, src, n + 1);
        return (ssize_t)n;
}

ssize_t ferry_bprintf(char *dst, size_t size, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(dst, size, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t)n >= size)
                return -E2BIG;
        return n;
}

uint64_t ferry_now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ferry_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ferry_wall_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
