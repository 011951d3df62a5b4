/* SPDX-License-Identifier: MIT */
#include "util/status.h"

#include <errno.h>
#include <strings.h>

#include "util/util.h"

/* canonical errno of each code: the first row naming a code wins in code_to_errno */
static const struct {
        int err;
        enum ferry_code code;
} errno_table[] = {
        {FERRY_ERRNO_CANCELLED, FERRY_CODE_CANCELLED},
        {FERRY_ERRNO_UNKNOWN, FERRY_CODE_UNKNOWN},
        {FERRY_ERRNO_INVALID_ARGUMENT, FERRY_CODE_INVALID_ARGUMENT},
        {FERRY_ERRNO_DEADLINE_EXCEEDED, FERRY_CODE_DEADLINE_EXCEEDED},
        {FERRY_ERRNO_NOT_FOUND, FERRY_CODE_NOT_FOUND},
        {FERRY_ERRNO_ALREADY_EXISTS, FERRY_CODE_ALREADY_EXISTS},
        {FERRY_ERRNO_PERMISSION_DENIED, FERRY_CODE_PERMISSION_DENIED},
        {FERRY_ERRNO_RESOURCE_EXHAUSTED, FERRY_CODE_RESOURCE_EXHAUSTED},
        {FERRY_ERRNO_FAILED_PRECONDITION, FERRY_CODE_FAILED_PRECONDITION},
        {FERRY_ERRNO_ABORTED, FERRY_CODE_ABORTED},
        {FERRY_ERRNO_OUT_OF_RANGE, FERRY_CODE_OUT_OF_RANGE},
        {FERRY_ERRNO_UNIMPLEMENTED, FERRY_CODE_UNIMPLEMENTED},
        {FERRY_ERRNO_INTERNAL, FERRY_CODE_INTERNAL},
        {FERRY_ERRNO_UNAVAILABLE, FERRY_CODE_UNAVAILABLE},
        {FERRY_ERRNO_DATA_LOSS, FERRY_CODE_DATA_LOSS},
        {FERRY_ERRNO_UNAUTHENTICATED, FERRY_CODE_UNAUTHENTICATED},
        /* further errnos that map onto a code */
        {ESRCH, FERRY_CODE_NOT_FOUND},
        {EPERM, FERRY_CODE_PERMISSION_DENIED},
        {ENOMEM, FERRY_CODE_RESOURCE_EXHAUSTED},
        {ENOBUFS, FERRY_CODE_RESOURCE_EXHAUSTED},
        {EMSGSIZE, FERRY_CODE_RESOURCE_EXHAUSTED},
        {E2BIG, FERRY_CODE_RESOURCE_EXHAUSTED},
        {EMFILE, FERRY_CODE_RESOURCE_EXHAUSTED},
        {ENFILE, FERRY_CODE_RESOURCE_EXHAUSTED},
        {EDQUOT, FERRY_CODE_RESOURCE_EXHAUSTED},
        {ENOSYS, FERRY_CODE_UNIMPLEMENTED},
        {ECONNREFUSED, FERRY_CODE_UNAVAILABLE},
        {ECONNRESET, FERRY_CODE_UNAVAILABLE},
        {ECONNABORTED, FERRY_CODE_UNAVAILABLE},
        {EPIPE, FERRY_CODE_UNAVAILABLE},
        {ESHUTDOWN, FERRY_CODE_UNAVAILABLE},
        {EHOSTUNREACH, FERRY_CODE_UNAVAILABLE},
        {ENETUNREACH, FERRY_CODE_UNAVAILABLE},
        {EAGAIN, FERRY_CODE_UNAVAILABLE},
};

static const char *const code_names[FERRY_CODE__COUNT] = {
        [FERRY_CODE_OK] = "OK",
        [FERRY_CODE_CANCELLED] = "CANCELLED",
        [FERRY_CODE_UNKNOWN] = "UNKNOWN",
        [FERRY_CODE_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
        [FERRY_CODE_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
        [FERRY_CODE_NOT_FOUND] = "NOT_FOUND",
        [FERRY_CODE_ALREADY_EXISTS] = "ALREADY_EXISTS",
        [FERRY_CODE_PERMISSION_DENIED] = "PERMISSION_DENIED",
        [FERRY_CODE_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
        [FERRY_CODE_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
        [FERRY_CODE_ABORTED] = "ABORTED",
        [FERRY_CODE_OUT_OF_RANGE] = "OUT_OF_RANGE",
        [FERRY_CODE_UNIMPLEMENTED] = "UNIMPLEMENTED",
        [FERRY_CODE_INTERNAL] = "INTERNAL",
        [FERRY_CODE_UNAVAILABLE] = "UNAVAILABLE",
        [FERRY_CODE_DATA_LOSS] = "DATA_LOSS",
        [FERRY_CODE_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

enum ferry_code ferry_errno_to_code(int err)
{
        if (err < 0)
                err = -err;
        if (err == 0)
                return FERRY_CODE_OK;
        for (size_t i = 0; i < ARRAY_SIZE(errno_table); i++)
                if (errno_table[i].err == err)
                        return errno_table[i].code;
        return FERRY_CODE_UNKNOWN;
}

int ferry_code_to_errno(enum ferry_code code)
{
        if (code == FERRY_CODE_OK)
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(errno_table); i++)
                if (errno_table[i].code == code)
                        return -errno_table[i].err;
        return -EIO;
}

const char *ferry_code_name(enum ferry_code code)
{
        if ((unsigned)code >= FERRY_CODE__COUNT)
                return "UNKNOWN";
        return code_names[code];
}

int ferry_code_from_class(const char *name)
{
        for (int c = 0; c < FERRY_CODE__COUNT; c++)
                if (strcasecmp(code_names[c], name) == 0)
                        return c;
        return -EINVAL;
}
