/* SPDX-License-Identifier: MIT */
#include "migration/notify.h"

#include <string.h>
#include <time.h>

#include "util/util.h"

static int phase_of(enum hcs_event e)
{
        switch (e) {
        case HCS_EVENT_SETUP_DONE:
                return MIG_PHASE_SETUP_DONE;
        case HCS_EVENT_TRANSFER_IN_PROGRESS:
                return MIG_PHASE_TRANSFER_IN_PROGRESS;
        case HCS_EVENT_BLACKOUT_STARTED:
                return MIG_PHASE_BLACKOUT_STARTED;
        case HCS_EVENT_BLACKOUT_EXITED:
                return MIG_PHASE_BLACKOUT_EXITED;
        case HCS_EVENT_MIGRATION_DONE:
                return MIG_PHASE_DONE;
        case HCS_EVENT_RECOVERY_DONE:
                return MIG_PHASE_RECOVERY_DONE;
        case HCS_EVENT_MIGRATION_FAILED:
                return MIG_PHASE_FAILED;
        }
        return MIG_PHASE_UNSPECIFIED;
}

/* The result decides for terminal phases; progress phases are successes by nature. */
static int phase_state_of(const struct hcs_notification *hn, int phase)
{
        if (phase == MIG_PHASE_DONE || phase == MIG_PHASE_RECOVERY_DONE ||
            phase == MIG_PHASE_FAILED) {
                switch (hn->result) {
                case HCS_RESULT_SUCCESS:
                        return MIG_PHASE_STATE_SUCCESS;
                case HCS_RESULT_CANCELLED:
                        return MIG_PHASE_STATE_CANCELLED;
                case HCS_RESULT_SOURCE_FAILED:
                        return MIG_PHASE_STATE_SOURCE_FAILED;
                case HCS_RESULT_DESTINATION_FAILED:
                        return MIG_PHASE_STATE_DESTINATION_FAILED;
                case HCS_RESULT_RECOVERY_FAILED:
                        return MIG_PHASE_STATE_RECOVERY_FAILED;
                }
                return MIG_PHASE_STATE_UNSPECIFIED;
        }
        return phase == MIG_PHASE_UNSPECIFIED ? MIG_PHASE_STATE_UNSPECIFIED
                                              : MIG_PHASE_STATE_SUCCESS;
}

void mig_notification_from_host(const struct hcs_notification *hn, enum mig_origin fallback,
                                struct mig_notification *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->origin = hn->origin == HCS_ORIGIN_SOURCE        ? MIG_ORIGIN_SOURCE
                      : hn->origin == HCS_ORIGIN_DESTINATION ? MIG_ORIGIN_DESTINATION
                                                             : fallback;
        ret->phase = phase_of(hn->event);
        ret->state = phase_state_of(hn, ret->phase);
        if (hn->event == HCS_EVENT_BLACKOUT_EXITED) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ret->has_blackout = true;
                ret->blackout_ms = hn->blackout_us / 1000;
                ret->blackout_stop_unix_us =
                    (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
        }
        if (hn->event == HCS_EVENT_TRANSFER_IN_PROGRESS) {
                ret->bytes = hn->bytes;
                ret->pass = hn->pass;
                ret->dirty_pages = hn->dirty_pages;
        }
        if (hn->event == HCS_EVENT_MIGRATION_FAILED)
                ferry_strscpy(ret->reason, hn->reason, sizeof(ret->reason));
}
