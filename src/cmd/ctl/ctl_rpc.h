/* SPDX-License-Identifier: MIT */
/* ferryctl's blocking view of the ttrpc client: one libuv loop per command, calls that run the
 * loop until their answer arrives, so server streams opened earlier keep being served while a
 * command waits. Everything runs on the calling thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "rpc/ttrpc.h"
#include "util/util.h"

/* A call's failure, kept for the message the command prints. */
struct ctl_error {
        enum ferry_code code;
        char message[512];
};

/* A connection to one shim. */
struct ctl_conn {
        uv_loop_t *loop; /* borrowed */
        struct ttrpc_client *client;
        const char *address; /* borrowed, for messages */
        int64_t timeout_ns;  /* per unary call; 0 = none */
        bool lost;           /* the connection is gone: every later call fails */
};

/* Connects to the shim at address (borrowed; must outlive conn). Retries for up to wait_ms while
 * the socket does not exist or refuses (a shim that is still starting). Returns 0 or the
 * connect error; err says why. */
int ctl_connect(uv_loop_t *loop, const char *address, uint32_t wait_ms, struct ctl_conn *conn,
                struct ctl_error *err);

/* Closes the client and lets the loop free it. Accepts a conn that never connected. */
void ctl_disconnect(struct ctl_conn *conn);

/* Calls service/method with req (borrowed) and runs the loop until the answer. On OK stores the
 * decoded reply in *ret_resp (new; free with protobuf_c_message_free_unpacked) and returns 0.
 * Otherwise returns the code's negative errno (ferry_code_to_errno) and fills err with the
 * code and the server's message. A SIGINT/SIGTERM (ctl_proc_install_signals()) that arrives
 * while it waits fails the call with -EINTR; once interrupted, a call waits at most a couple
 * of seconds (-ETIMEDOUT). When no answer came in that time the connection is dropped
 * (conn->lost), since the shim does not answer. */
int ctl_call(struct ctl_conn *conn, const char *service, const char *method,
             const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
             ProtobufCMessage **ret_resp, struct ctl_error *err);

/* A server stream in progress: on_msg gets each message (owned by the callback). */
struct ctl_stream {
        bool done;
        enum ferry_code code;
        char message[256];
        void (*on_msg)(ProtobufCMessage *msg, void *userdata);
        void *userdata;
};

/* Opens a server stream; its messages are delivered whenever the loop runs (inside ctl_call()
 * and ctl_run_until()). st must stay valid until st->done. Returns 0 or a negative errno. */
int ctl_stream_open(struct ctl_conn *conn, const char *service, const char *method,
                    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                    struct ctl_stream *st, struct ctl_error *err);

/* Runs loop until done(userdata) is true or timeout_ms passes (0 = no limit).
 * Returns 0 when done, -ETIMEDOUT, -EINTR when SIGINT or SIGTERM arrived meanwhile (the
 * handler of ctl_proc_install_signals() wakes the loop), or -EIO when the loop ran out of
 * work first. */
int ctl_run_until(uv_loop_t *loop, bool (*done)(void *userdata), void *userdata,
                  uint64_t timeout_ms);

/* Prints "ferryctl: what: CODE: message" to stderr. */
void ctl_error_print(const struct ctl_error *err, const char *what);

/* Fills err from a local negative errno. */
void ctl_error_set(struct ctl_error *err, int r, const char *fmt, ...) _printf_(3, 4);
