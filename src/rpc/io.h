/* SPDX-License-Identifier: MIT */
/* Internal: one ttrpc connection on the libuv loop (a pipe, a deadline timer, a protocol
 * session), shared by the server's connections and the client. */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "rpc/session.h"

#define TTRPC_IO_READ_BUF (64u << 10)

struct ttrpc_io;

/* The owner's reactions. on_fatal: the connection must end (err: -ECONNRESET on EOF, a read
 * or write error, a session error or -ETIMEDOUT for a stalled peer); the io has stopped
 * reading and the owner should call ttrpc_io_close(). on_closed: both handles are closed; the
 * owner may free the io's container. */
struct ttrpc_io_ops {
        void (*on_fatal)(struct ttrpc_io *io, int err);
        void (*on_closed)(struct ttrpc_io *io);
};

struct ttrpc_io {
        uv_pipe_t pipe;
        uv_timer_t timer;
        struct ttrpc_session *sess;
        const struct ttrpc_io_ops *ops;
        int writing; /* a uv_write is in flight */
        int closing; /* ttrpc_io_close() called */
        int failed;  /* on_fatal reported */
        int open_handles;
        uint8_t *rbuf;
};

/* Initialises io on loop around fd (taken, even on error) and starts reading. io->sess must be
 * set by the caller before. Returns 0 or a negative errno. On error the handles that were
 * opened are being closed and on_closed will follow. */
int ttrpc_io_start(struct ttrpc_io *io, uv_loop_t *loop, int fd, const struct ttrpc_io_ops *ops);

/* Writes whatever the session queued and re-arms the deadline timer. Errors are reported
 * through on_fatal. */
void ttrpc_io_kick(struct ttrpc_io *io);

/* Closes both handles; on_closed follows on the loop. Idempotent. */
void ttrpc_io_close(struct ttrpc_io *io);
