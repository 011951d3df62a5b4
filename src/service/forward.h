/* SPDX-License-Identifier: MIT */
/* Forwards the shim's events to containerd, as a containerd shim v2 does: each event the
 * publisher (service/events.h) sees is converted from its JSON body to containerd's message
 * (containerd.events.TaskCreate, ...), wrapped in an Envelope (publication time, namespace,
 * topic, Any) and sent with containerd.services.events.ttrpc.v1.Events/Forward over one ttrpc
 * connection to containerd's TTRPC_ADDRESS, carrying the namespace in the ttrpc metadata key
 * "containerd-namespace-ttrpc".
 *
 * Events leave in publication order, one Forward in flight at a time, from a bounded queue.
 * containerd not there (or gone): the queue holds, the connection is retried with backoff and
 * the queue is sent in order once it is back. An error answer is retried after a growing delay
 * up to max_retries times, then the event is given up (rejected) so later events still go.
 * Everything runs on the loop thread and never blocks it (the connect is non-blocking).
 * docs/shim.md "Events" has the topic table. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct shim_events;
struct shim_forward;

/* The Forward method, and the metadata key that carries the namespace (containerd's
 * namespaces.TTRPCHeader, which its ttrpc services read). */
#define SHIM_FORWARD_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define SHIM_FORWARD_METHOD  "Forward"
#define SHIM_FORWARD_NS_KEY  "containerd-namespace-ttrpc"

struct shim_forward_options {
        const char *address;       /* containerd's ttrpc socket path, "unix://" optional */
        const char *ns;            /* containerd namespace; NULL or "" = "default" */
        uint32_t max_queue;        /* events held, the one in flight included; 0 = 2048 */
        uint32_t max_retries;      /* error answers retried per event; 0 = 5 */
        uint32_t retry_ms;         /* first retry delay, doubling (cap 5 s); 0 = 250 */
        uint32_t reconnect_ms;     /* first reconnect delay, doubling; 0 = 50 */
        uint32_t reconnect_max_ms; /* reconnect delay cap; 0 = 2000 */
        uint32_t timeout_ms;       /* per Forward call; 0 = 5000 */
        uint32_t grace_ms;         /* close: time left to flush the queue; 0 = 1000 */
};

struct shim_forward_stats {
        uint64_t forwarded;        /* answered OK by containerd */
        uint64_t queued;           /* held now, the one in flight included */
        uint64_t dropped;          /* not queued: the queue was full */
        uint64_t rejected;         /* given up: max_retries error answers, or unsendable */
        uint64_t abandoned;        /* still queued when the close's grace ran out */
        uint64_t bad;              /* body not valid for its topic (skipped) */
        uint64_t skipped;          /* topic without a containerd message */
        uint64_t retries;          /* error answers that were retried */
        uint64_t connects;         /* connections made */
        uint64_t connect_failures; /* connection attempts that failed */
        bool connected;
};

/* Creates a forwarder on loop (borrowed; must outlive it) subscribed to ev (borrowed until
 * shim_forward_close() starts). opts and its strings are borrowed for the call. The connection
 * is made when the first event is queued. Returns 0, -EINVAL (no address, bad namespace),
 * -ENAMETOOLONG (address longer than a unix socket path), -ENOSPC (ev has no free subscriber
 * slot), -ENOMEM. *ret is new; end it with shim_forward_close(). */
int shim_forward_new(uv_loop_t *loop, struct shim_events *ev,
                     const struct shim_forward_options *opts, struct shim_forward **ret);

typedef void (*shim_forward_closed_fn)(const struct shim_forward_stats *final, void *userdata);

/* Stops taking events at once, lets the queue flush for up to grace_ms, then gives up what is
 * left (abandoned), closes the connection and every handle, calls done (may be NULL) with the
 * final figures (borrowed for the call) on the loop, never from inside this call, and frees
 * f. Accepts NULL (then done is not called). */
void shim_forward_close(struct shim_forward *f, shim_forward_closed_fn done, void *userdata);

/* The figures so far. */
void shim_forward_get_stats(const struct shim_forward *f, struct shim_forward_stats *ret);

/* The conversion alone (no I/O): topic and JSON body (borrowed) to containerd's message,
 * packed. A timestamp is an RFC 3339 string ("exited_at", the Task service's bodies) or wall
 * nanoseconds ("exited_at_ns", the controllers'). On 0: *ret_type_url is static
 * ("containerd.events.TaskExit"), *ret_buf new (free()), *ret_len its length. Returns -ENOENT
 * (topic without a containerd message), -EINVAL (body not a JSON object, container_id missing,
 * a field of the wrong type or range, an unreadable timestamp), -ENOMEM. */
int shim_forward_encode(const char *topic, const char *json, const char **ret_type_url,
                        uint8_t **ret_buf, size_t *ret_len);
