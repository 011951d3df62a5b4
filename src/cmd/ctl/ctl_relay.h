/* SPDX-License-Identifier: MIT */
/* A transport relay that drops the connection after N bytes, for the fault sweep: ferryctl puts
 * itself between the source's and the destination's migration sockets, forwards both ways and,
 * once N bytes have crossed it (both directions counted), resets one side's connection or both
 * (closed with a zero linger: an RST on TCP).
 * A side that is not shut down is held open and silent until the relay is freed, as a peer lost
 * in a network partition would be: only the orchestrator's Cancel ends its wait. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum ctl_drop_side {
        CTL_DROP_BOTH = 0,    /* both sockets shut down: each shim sees the connection end */
        CTL_DROP_SOURCE,      /* the source's socket only; the destination hears nothing */
        CTL_DROP_DESTINATION, /* the destination's socket only; the source's writes stall */
};

struct ctl_relay;

/* Starts relaying between src_fd and dst_fd (both taken, closed on failure too). drop_after
 * must be > 0. Returns 0 or a negative errno. */
int ctl_relay_start(int src_fd, int dst_fd, uint64_t drop_after, enum ctl_drop_side side,
                    struct ctl_relay **ret);

/* Bytes forwarded so far and whether the drop happened (safe from any thread). */
uint64_t ctl_relay_bytes(struct ctl_relay *r);
bool ctl_relay_dropped(struct ctl_relay *r);

/* Stops the relay thread, closes both sockets and frees r (NULL is a no-op). */
void ctl_relay_free(struct ctl_relay *r);

/* Parses "N[:source|:destination|:both]"; N > 0 bytes (suffix k or m: KiB, MiB). */
int ctl_relay_parse(const char *arg, uint64_t *ret_bytes, enum ctl_drop_side *ret_side);

/* "both", "source" or "destination". */
const char *ctl_drop_side_name(enum ctl_drop_side side);
