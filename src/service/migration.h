/* SPDX-License-Identifier: MIT */
/* The Migration ttrpc service (proto/migration.proto): "/Migration/<Method>", each RPC a thin
 * binding of the session controller (src/migration/session.h). Errors cross the wire through
 * util/status.h with the session's message. */
#pragma once

#include "migration/session.h"
#include "rpc/ttrpc.h"

/* Serves the Migration service on srv for session s (borrowed; must outlive srv). Returns 0
 * or the error of ttrpc_server_register. */
int mig_service_register(struct ttrpc_server *srv, struct mig_session *s);

/* Timestamp helper shared with the events service: wall-clock µs as seconds and nanos. */
void mig_service_timestamp(uint64_t unix_us, int64_t *ret_seconds, int32_t *ret_nanos);
