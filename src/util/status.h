/* SPDX-License-Identifier: MIT */
/* The one table between ferry's internal errors (negative errno) and the error classes
 * that specs name and that cross the RPC boundary as google.rpc.Status codes. */
#pragma once

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

/* The code an internal error maps to; err may be negative or positive errno; 0 is OK.
 * Errnos outside the table map to UNKNOWN. */
enum ferry_code ferry_errno_to_code(int err);

/* The canonical negative errno of a code (0 for OK); errno_to_code(code_to_errno(c)) == c. */
int ferry_code_to_errno(enum ferry_code code);

/* "FAILED_PRECONDITION", …; "UNKNOWN" for values out of range. */
const char *ferry_code_name(enum ferry_code code);

/* Parses a spec's error class ("failed_precondition"); returns the code or -EINVAL. */
int ferry_code_from_class(const char *name);
