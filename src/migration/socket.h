/* SPDX-License-Identifier: MIT */
/* Socket adoption for CreateDuplicateSocket: the Linux analogue of the reference's
 * WSADuplicateSocket hand-off (docs/migration.md, "Socket adoption").
 *
 * The orchestrator owns the connected transport and gives the shim its end in one of two ways:
 *   1. SCM_RIGHTS over the shim's handoff socket (a unix socket next to its ttrpc socket,
 *      mode 0600): it sends "FERRYFD1" + a 32-hex-digit token it chose, with the fd attached,
 *      waits for the one-byte ack, then calls CreateDuplicateSocket with protocol_info
 *      "ferry-socket-v1 token=<token>". A token is claimed once and expires after 60 s.
 *   2. pidfd_getfd: protocol_info "ferry-socket-v1 pid=<pid> fd=<fd>" names the fd in the
 *      orchestrator's process; the shim copies it (needs ptrace access to that process). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct mig_handoff;

#define MIG_TOKEN_LEN         32
#define MIG_PROTOCOL_INFO_MAX 96
#define MIG_HANDOFF_SLOTS     8
#define MIG_HANDOFF_TTL_US    (60ULL * 1000 * 1000)

struct mig_socket_ref {
        char token[MIG_TOKEN_LEN + 1]; /* "" for a pid/fd reference */
        int pid;
        int fd;
};

/* Parses protocol_info (borrowed, not NUL-terminated). ret may be NULL. -EINVAL when malformed. */
int mig_socket_parse(const void *info, size_t len, struct mig_socket_ref *ret);

/* Resolves protocol_info to an fd of this process (*ret_fd new, close-on-exec): claims the
 * token from h, or copies the fd with pidfd_getfd. Errors: -EINVAL malformed, -ENOENT unknown
 * or expired token (or h NULL), -ESRCH no such process, -EPERM/-EBADF from pidfd_getfd. */
int mig_socket_resolve(struct mig_handoff *h, const void *info, size_t len, int *ret_fd);

/* Checks fd is a connected stream socket. Errors: -ENOTSOCK not a socket, -EPROTOTYPE not a
 * stream, -EBUSY not connected (failed_precondition, as in the reference). */
int mig_socket_check(int fd);

/* Writes a fresh random token (MIG_TOKEN_LEN hex digits and a NUL) into out. */
int mig_token_new(char out[MIG_TOKEN_LEN + 1]);

/* The shim's side: listens on path (created mode 0600; the caller unlinks it). *ret is new. */
int mig_handoff_listen(uv_loop_t *loop, const char *path, struct mig_handoff **ret);
/* Takes the fd handed over with token (*ret_fd new). -ENOENT unknown or expired. */
int mig_handoff_claim(struct mig_handoff *h, const char *token, int *ret_fd);
/* Fds received and not claimed yet. */
unsigned mig_handoff_held(const struct mig_handoff *h);
/* Stops listening, closes unclaimed fds, frees h once the loop ran the close callbacks. NULL ok. */
void mig_handoff_close(struct mig_handoff *h);

/* The orchestrator's side (blocking, for ferryctl and tests): sends fd (borrowed) with token to
 * the handoff socket at path and waits up to timeout_ms for the ack. Errors: from
 * socket/connect/sendmsg, -ETIMEDOUT, -EPROTO refused by the shim. */
int mig_handoff_send(const char *path, int fd, const char *token, int timeout_ms);
