/* SPDX-License-Identifier: MIT */
/* Small helpers the services share at the wire edge: timestamps and checks of untrusted
 * names (rpc/ident.h) with the message a client sees. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rpc/ident.h"
#include "task.pb-c.h"

/* Fills ts from wall-clock nanoseconds since the epoch. */
static inline void wire_timestamp(Containerd__Task__V2__Timestamp *ts, uint64_t ns)
{
        Containerd__Task__V2__Timestamp init = CONTAINERD__TASK__V2__TIMESTAMP__INIT;
        *ts = init;
        ts->seconds = (int64_t)(ns / 1000000000ull);
        ts->nanos = (int32_t)(ns % 1000000000ull);
}

/* A name over its length limit is a bad argument to the client (containerd answers
 * INVALID_ARGUMENT too); -ENAMETOOLONG is not in the status table. */
static inline int wire_invalid(int r)
{
        return r == -ENAMETOOLONG ? -EINVAL : r;
}

/* 0 when s is a valid id, else -EINVAL (s may be NULL: invalid). */
static inline int wire_check_id(const char *s)
{
        return s ? wire_invalid(ttrpc_valid_id(s, strlen(s))) : -EINVAL;
}

/* 0 when s is empty (not given) or a valid absolute path, else -EINVAL. */
static inline int wire_check_opt_path(const char *s)
{
        return !s || !*s ? 0 : wire_invalid(ttrpc_valid_path(s, strlen(s)));
}
