/* SPDX-License-Identifier: MIT */
/* The shim object: one libuv loop, one sandbox (one VM on the chosen hcs backend), the ttrpc
 * server with the Task and Sandbox services (and Migration when built in), the event
 * publisher, and an orderly shutdown. ferry-shim's main and the service tests build on it. */
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "service/forward.h"
#include "service/sandbox.h"

struct shim;
struct shim_events;
struct ttrpc_server;

struct shim_options {
        const char *backend;      /* hcs backend name; NULL = "sim" */
        const char *backend_opts; /* backend options JSON; NULL = "{}" */
        const char *event_log;    /* events appended here, one JSON per line; NULL = none */
        const char *trace_path;   /* FSM transition trace (src/fsm/trace.h); NULL = none */
        bool handle_signals;      /* SIGTERM/SIGINT start the shutdown */
        struct sandbox_options sandbox;
        /* events forwarded to containerd (service/forward.h); .address NULL = not forwarded.
         * The shutdown flushes them for .grace_ms once the sandbox has closed. */
        struct shim_forward_options forward;
        /* called on the loop once the shutdown has finished (every handle of the shim is
         * closed, so uv_run returns when nothing else is on the loop); may be NULL */
        void (*on_exit)(void *userdata);
        void *on_exit_userdata;
};

/* Creates the shim on loop (borrowed; must outlive it): opens the backend, the event log and
 * the trace file, makes the sandbox and registers the services. opts is borrowed. Returns 0,
 * -ENOENT unknown backend, -EINVAL bad backend options, -ENOMEM, or the negative errno of
 * opening a file. *ret is new: end with shim_shutdown(), run the loop, then shim_free(). */
int shim_new(uv_loop_t *loop, const struct shim_options *opts, struct shim **ret);

/* Serves ttrpc on a new unix socket at path (mode 0600). Returns as ttrpc_server_listen(). */
int shim_listen(struct shim *s, const char *path);

/* Serves ttrpc on fd, a bound listening unix socket (taken). */
int shim_listen_fd(struct shim *s, int fd);

/* Opens the CreateDuplicateSocket hand-off socket "<address>.handoff" (mode 0600; a stale one
 * is replaced) and gives it to the migration session; the shutdown closes and unlinks it.
 * address is the ttrpc socket's path (borrowed). Returns 0, -EALREADY, or as
 * mig_handoff_listen() (-ENAMETOOLONG when the path does not fit a unix address). */
int shim_listen_handoff(struct shim *s, const char *address);

/* Starts the orderly shutdown: replies already queued get a moment to leave, then the server
 * closes, the VM stops and the backend is released; on_exit runs at the end. Idempotent. */
void shim_shutdown(struct shim *s);

/* True once the shutdown has finished. */
bool shim_finished(const struct shim *s);

/* Frees what is left after the loop has run the shutdown to its end. Accepts NULL. */
void shim_free(struct shim *s);

struct ttrpc_server *shim_server(struct shim *s);
struct sandbox *shim_sandbox(struct shim *s);
struct shim_events *shim_get_events(struct shim *s);

/* The event forwarder's figures (the final ones once the shutdown closed it); false when the
 * shim forwards no events. */
bool shim_get_forward_stats(const struct shim *s, struct shim_forward_stats *ret);
