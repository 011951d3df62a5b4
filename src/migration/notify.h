/* SPDX-License-Identifier: MIT */
/* Host-compute migration notifications as the Migration API reports them (reference
 * parse.go: ToOrigin, ToPhase, ToPhaseState, ToNotification). */
#pragma once

#include "hcs/hcs.h"
#include "migration/session.h"

/* proto Phase and PhaseState values. */
enum {
        MIG_PHASE_UNSPECIFIED = 0,
        MIG_PHASE_SETUP_DONE = 1,
        MIG_PHASE_TRANSFER_IN_PROGRESS = 2,
        MIG_PHASE_BLACKOUT_STARTED = 3,
        MIG_PHASE_OFFLINE_DONE = 4,
        MIG_PHASE_BLACKOUT_EXITED = 5,
        MIG_PHASE_DONE = 6,
        MIG_PHASE_RECOVERY_DONE = 7,
        MIG_PHASE_FAILED = 8,
};

enum {
        MIG_PHASE_STATE_UNSPECIFIED = 0,
        MIG_PHASE_STATE_SUCCESS = 1,
        MIG_PHASE_STATE_CANCELLED = 2,
        MIG_PHASE_STATE_GUEST_INITIATED_CANCELLATION = 3,
        MIG_PHASE_STATE_SOURCE_FAILED = 4,
        MIG_PHASE_STATE_DESTINATION_FAILED = 5,
        MIG_PHASE_STATE_RECOVERY_FAILED = 6,
};

/* Converts hn (borrowed) into *ret (message id and session times left 0); an event without an
 * origin takes fallback (this side). */
void mig_notification_from_host(const struct hcs_notification *hn, enum mig_origin fallback,
                                struct mig_notification *ret);
