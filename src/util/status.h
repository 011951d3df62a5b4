/* SPDX-License-Identifier: MIT */
/* The one table between ferry's internal errors (negative errno) and the error classes
 * that specs name and that cross the RPC boundary as google.rpc.Status codes. */
#pragma once

#include <errno.h>

/* Numbered as google.rpc.Code (the gRPC codes), so a code is its wire value. */
enum ferry_code {
        FERRY_CODE_OK = 0,
        FERRY_CODE_CANCELLED = 1,
        FERRY_CODE_UNKNOWN = 2,
        FERRY_CODE_INVALID_ARGUMENT = 3,
        FERRY_CODE_DEADLINE_EXCEEDED = 4,
        FERRY_CODE_NOT_FOUND = 5,
        FERRY_CODE_ALREADY_EXISTS = 6,
        FERRY_CODE_PERMISSION_DENIED = 7,
        FERRY_CODE_RESOURCE_EXHAUSTED = 8,
        FERRY_CODE_FAILED_PRECONDITION = 9,
        FERRY_CODE_ABORTED = 10,
        FERRY_CODE_OUT_OF_RANGE = 11,
        FERRY_CODE_UNIMPLEMENTED = 12,
        FERRY_CODE_INTERNAL = 13,
        FERRY_CODE_UNAVAILABLE = 14,
        FERRY_CODE_DATA_LOSS = 15,
        FERRY_CODE_UNAUTHENTICATED = 16,
        FERRY_CODE__COUNT
};

/* The canonical errno of each code. Generated tables (the spec compiler's rejections) name
 * these, so this header is the only place the pairing is written. */
#define FERRY_ERRNO_CANCELLED           ECANCELED
#define FERRY_ERRNO_UNKNOWN             EIO
#define FERRY_ERRNO_INVALID_ARGUMENT    EINVAL
#define FERRY_ERRNO_DEADLINE_EXCEEDED   ETIMEDOUT
#define FERRY_ERRNO_NOT_FOUND           ENOENT
#define FERRY_ERRNO_ALREADY_EXISTS      EEXIST
#define FERRY_ERRNO_PERMISSION_DENIED   EACCES
#define FERRY_ERRNO_RESOURCE_EXHAUSTED  ENOSPC
#define FERRY_ERRNO_FAILED_PRECONDITION EBUSY
#define FERRY_ERRNO_ABORTED             ESTALE
#define FERRY_ERRNO_OUT_OF_RANGE        ERANGE
#define FERRY_ERRNO_UNIMPLEMENTED       EOPNOTSUPP
#define FERRY_ERRNO_INTERNAL            ENOTRECOVERABLE
#define FERRY_ERRNO_UNAVAILABLE         ENOTCONN
#define FERRY_ERRNO_DATA_LOSS           EBADMSG
#define FERRY_ERRNO_UNAUTHENTICATED     EKEYREJECTED

/* The code an internal error maps to; err may be negative or positive errno; 0 is OK.
 * Errnos outside the table map to UNKNOWN. */
enum ferry_code ferry_errno_to_code(int err);

/* The canonical negative errno of a code (0 for OK); errno_to_code(code_to_errno(c)) == c. */
int ferry_code_to_errno(enum ferry_code code);

/* "FAILED_PRECONDITION", …; "UNKNOWN" for values out of range. */
const char *ferry_code_name(enum ferry_code code);

/* Parses a spec's error class ("failed_precondition"); returns the code or -EINVAL. */
int ferry_code_from_class(const char *name);
