/* SPDX-License-Identifier: MIT */
/* Strict grammars (ident.rl, ragel) for the untrusted names that reach services: container and
 * sandbox ids, absolute host paths, and ttrpc "/Service/Method" names. Each check takes a
 * borrowed byte string and its length (no terminator needed; an embedded NUL is rejected). */
#pragma once

#include <stddef.h>

#define TTRPC_ID_MAX     76u   /* containerd's identifier limit */
#define TTRPC_PATH_MAX   4095u /* bytes, without the terminator */
#define TTRPC_METHOD_MAX 512u

/* An id in containerd's identifier form: alphanumeric runs joined by single '.', '_' or '-',
 * starting and ending alphanumeric, 1..76 bytes. Returns 0, -EINVAL or -ENAMETOOLONG. */
int ttrpc_valid_id(const char *s, size_t len);

/* An absolute path: starts with '/', no ".." component, no NUL, at most TTRPC_PATH_MAX bytes.
 * Returns 0, -EINVAL or -ENAMETOOLONG. */
int ttrpc_valid_path(const char *s, size_t len);

/* A full method name "/pkg.Service/Method": dotted identifiers ([A-Za-z_][A-Za-z0-9_]*) for the
 * service, one identifier for the method, at most TTRPC_METHOD_MAX bytes.
 * Returns 0, -EINVAL or -ENAMETOOLONG. */
int ttrpc_valid_method(const char *s, size_t len);
