/* SPDX-License-Identifier: MIT */
/* `ferryctl migrate` and `ferryctl watch`: the orchestration of a live migration between a
 * source and a destination shim over the Migration service (proto/migration.proto), in the
 * reference's documented order, with rollback (the source resumed) when a step fails. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_relay.h"
#include "util/status.h"

#define CTL_MAX_CONTAINERS 16

/* One container to carry over: its id on the source and the id it gets on the destination. */
struct ctl_container_map {
        const char *source_id;      /* borrowed */
        const char *destination_id; /* borrowed; NULL = source_id */
};

/* A point of the orchestration (--stop-after, --hold-after). Each names what has been done
 * when the orchestration stops there; the comment says the states the sessions are then in. */
enum ctl_stop {
        CTL_STOP_NONE = 0,
        CTL_STOP_EXPORT,               /* source_exported; destination idle */
        CTL_STOP_IMPORT,               /* destination_imported, nothing patched */
        CTL_STOP_PATCH,                /* destination_imported, every container patched */
        CTL_STOP_PREPARE,              /* destination_prepared */
        CTL_STOP_TRANSFER_REQUESTED,   /* TransferSandbox on both before any socket: both
                                        * socket_waiting */
        CTL_STOP_SOCKET_SOURCE,        /* only the source has its socket: socket_ready */
        CTL_STOP_SOCKET,               /* both socket_ready */
        CTL_STOP_TRANSFER_DESTINATION, /* only the destination transfers: transferring,
                                        * waiting for the source's first record */
        CTL_STOP_TRANSFER_SOURCE,      /* only the source transfers: transferring, waiting
                                        * for the destination's handshake */
        CTL_STOP_TRANSFER_COMPLETED,   /* both transfer_completed, before any finalize */
        CTL_STOP__COUNT
};

/* Sides, as bits of ctl_migrate_opts.cancel_sides. */
enum {
        CTL_SIDE_SOURCE = 1u << 0,
        CTL_SIDE_DESTINATION = 1u << 1,
};

/* The name of a stop point ("export", "transfer-completed", ...), or NULL. */
const char *ctl_stop_name(enum ctl_stop st);

/* Parses a stop point's name. Returns the point or -EINVAL. */
int ctl_stop_parse(const char *name);

enum ctl_transport {
        CTL_TRANSPORT_TCP = 0, /* a loopback TCP connection (MEMORY_TRANSPORT_TCP) */
        CTL_TRANSPORT_UNIX,    /* a unix socketpair */
};

struct ctl_migrate_opts {
        const char *source;      /* source shim's ttrpc socket (borrowed) */
        const char *destination; /* destination shim's ttrpc socket (borrowed) */
        const char *session_id;  /* NULL: ferry-<pid>-<time> */
        const char *sandbox_id;  /* the destination's sandbox id; NULL: the source's */
        const char *bundle_dir;  /* where the destination bundles are written; NULL: tmp */
        struct ctl_container_map containers[CTL_MAX_CONTAINERS];
        size_t n_containers;
        enum ctl_transport transport;
        uint32_t timeout_s; /* the transfer's limit; 0 = 120 */
        /* Cancel both sides: < 0 never, 0 as soon as both transfers started, N at pass N */
        int64_t cancel_after_pass;
        /* called on the loop with pass 0 once both transfers started, then each time the
         * source reports a new pre-copy pass (tests use it to kill a shim mid-transfer); may
         * be NULL */
        void (*on_pass)(uint32_t pass, void *userdata);
        void *userdata;
        /* > 0: ferryctl relays the transport itself and drops it after this many bytes
         * (ctl_relay.h), on drop_side; the source must be resumed */
        uint64_t drop_after_bytes;
        enum ctl_drop_side drop_side;
        uint64_t t0_us; /* progress lines count from here; 0 = now */
        /* Stop there, send Cancel to cancel_sides (CTL_SIDE_*; 0 = none, the rollback still
         * cancels both), then roll back like after a failure: the source must keep its pod */
        enum ctl_stop stop_after;
        unsigned cancel_sides;
        /* bit (1 << CTL_STOP_x): pause at that point of the normal path (export, import,
         * patch, prepare, socket, transfer-completed) until a line arrives on stdin, with a
         * {"held": ...} line on stdout; the loop keeps running meanwhile */
        unsigned hold_mask;
        bool json;      /* JSON lines instead of text */
        bool quiet;     /* only the summary */
};

/* What happened, for the summary and the demo's checks. Times in microseconds. */
struct ctl_migrate_result {
        bool succeeded;              /* finalized: destination resumed, source stopped */
        bool cancelled;              /* cancelled as asked (cancel_after_pass), source resumed */
        bool resumed_on_destination; /* the destination's FinalizeSandbox(RESUME) succeeded:
                                      * the pod runs there, whatever failed after */
        bool rolled_back;            /* the source was resumed after a failure or cancel */
        uint32_t passes;             /* pre-copy passes the source reported */
        uint64_t bytes;              /* bytes the source reported sent */
        /* BLACKOUT_EXITED: the source's (paused until the final pass was sent) and the
         * destination's (until it resumed, so its finalize included) */
        uint64_t blackout_ms;
        uint64_t blackout_dst_ms;
        /* as ferryctl saw it: the source's BLACKOUT_STARTED received to the destination's
         * FinalizeSandbox(RESUME) answered; an upper bound of the time the pod ran nowhere */
        uint64_t blackout_observed_us;
        uint64_t dropped;       /* notifications the shims dropped for ferryctl */
        uint64_t total_us;      /* first call to last answer */
        uint64_t transfer_us;   /* TransferSandbox to PHASE_DONE on both sides */
        uint64_t step_us[10];   /* per step, indexed as ctl_step_name() */
        bool transport_dropped; /* drop_after_bytes was reached and the relay cut the socket */
        uint64_t relay_bytes;   /* bytes the relay forwarded (drop_after_bytes > 0) */
        char session_id[80];
        char failure[512]; /* the first failure, "" when none */
        /* stop_after: what each side said, [0] source, [1] destination */
        struct ctl_cancel_report {
                bool sent;
                char state[48];       /* the session's state right before Cancel (shim's word) */
                enum ferry_code code; /* Cancel's answer */
                char message[200];
        } cancel[2];
        char state_after[2][48]; /* each session's state after the rollback */
        enum ctl_stop stopped_after; /* CTL_STOP_NONE: ran to the end */
};

/* The name of step i of ctl_migrate_result.step_us, or NULL past the last. */
const char *ctl_step_name(size_t i);

/* Runs the whole migration. Prints progress to stdout (opts->json: one JSON object per line)
 * and errors to stderr. Returns 0 when it succeeded (or was cancelled as asked and the source
 * resumed), else a negative errno; *res is always filled. */
int ctl_migrate(const struct ctl_migrate_opts *opts, struct ctl_migrate_result *res);

/* Prints the summary of res (text or JSON). */
void ctl_migrate_print_summary(const struct ctl_migrate_result *res, bool json);

/* `ferryctl migrate ...` and `ferryctl watch ...`: parse argv (after the command word) and run.
 * Return the exit status. */
int ctl_migrate_main(int argc, char **argv);
int ctl_watch_main(const char *address, int argc, char **argv);

/* `ferryctl migration METHOD --session ID ...`: one raw Migration call to the shim at address;
 * a failure prints its status code's name. Returns the exit status. */
int ctl_migration_main(const char *address, int argc, char **argv);
