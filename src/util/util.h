/* SPDX-License-Identifier: MIT */
/* Small helpers every ferry module may use: cleanup attributes, hand-off macros,
 * bounded string copies and the monotonic clock. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))
#define _must_check_   __attribute__((warn_unused_result))

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

#define _cleanup_free_  _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Hand ownership out of a _cleanup_ variable: returns the value and clears the variable. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _p = (p);                                                            \
                (p) = NULL;                                                                        \
                _p;                                                                                \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _fd = (fd);                                                                    \
                (fd) = -1;                                                                         \
                _fd;                                                                               \
        })

/* Copies at most size-1 bytes of src into dst and always terminates it.
 * Returns the length copied, or -E2BIG when src did not fit (dst then holds a truncated copy). */
ssize_t ferry_strscpy(char *dst, const char *src, size_t size);

/* Formats into dst like snprintf but reports truncation: returns the length written or -E2BIG. */
ssize_t ferry_bprintf(char *dst, size_t size, const char *fmt, ...) _printf_(3, 4);

/* Microseconds from CLOCK_MONOTONIC. */
uint64_t ferry_now_us(void);

/* Nanoseconds from CLOCK_MONOTONIC, for benchmarks. */
uint64_t ferry_now_ns(void);

/* Nanoseconds since the epoch from CLOCK_REALTIME: for times that cross to containerd (a
 * process's exit), read once when the thing happens. */
uint64_t ferry_wall_ns(void);
