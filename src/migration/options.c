/* SPDX-License-Identifier: MIT */
#include "migration/options.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

static void add_u32(struct json_object *o, const char *key, bool has, uint32_t v)
{
        if (has)
                json_object_object_add(o, key, json_object_new_int64(v));
}

static struct json_object *throttle_json(const MemoryTransferThrottleParams *t)
{
        struct json_object *o = json_object_new_object();
        if (!o)
                return NULL;
        if (t->skip_throttling)
                json_object_object_add(o, "SkipThrottling",
                                       json_object_new_boolean(t->skip_throttling));
        if (t->throttling_scale != 0)
                json_object_object_add(o, "ThrottlingScale",
                                       json_object_new_double(t->throttling_scale));
        add_u32(o, "MinimumThrottlePercentage", t->minimum_throttle_percentage != 0,
                (uint8_t)t->minimum_throttle_percentage);
        add_u32(o, "TargetNumberOfBrownoutTransferPasses",
                t->target_number_of_brownout_transfer_passes != 0,
                t->target_number_of_brownout_transfer_passes);
        add_u32(o, "StartingBrownoutPassNumberForThrottling",
                t->starting_brownout_pass_number_for_throttling != 0,
                t->starting_brownout_pass_number_for_throttling);
        add_u32(o, "MaximumNumberOfBrownoutTransferPasses",
                t->maximum_number_of_brownout_transfer_passes != 0,
                t->maximum_number_of_brownout_transfer_passes);
        add_u32(o, "TargetBlackoutTransferTime", t->target_blackout_transfer_time != 0,
                t->target_blackout_transfer_time);
        add_u32(o, "BlackoutTimeThresholdForCancellingMigration",
                t->blackout_time_threshold_for_cancelling_migration != 0,
                t->blackout_time_threshold_for_cancelling_migration);
        return o;
}

int mig_options_to_json(const InitializeOptions *o, char **ret)
{
        *ret = NULL;
        if (!o)
                return 0;
        if (o->memory_transport != MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP)
                return -EINVAL;
        struct json_object *j = json_object_new_object();
        if (!j)
                return -ENOMEM;
        json_object_object_add(j, "MemoryTransport", json_object_new_string("TCP"));
        if (o->memory_transfer_throttle_params)
                json_object_object_add(j, "MemoryTransferThrottleParams",
                                       throttle_json(o->memory_transfer_throttle_params));
        if (o->compression_settings) {
                struct json_object *c = json_object_new_object();
                add_u32(c, "ThrottleWorkerCount",
                        o->compression_settings->throttle_worker_count != 0,
                        o->compression_settings->throttle_worker_count);
                json_object_object_add(j, "CompressionSettings", c);
        }
        json_object_object_add(j, "ChecksumVerification",
                               json_object_new_boolean(o->checksum_verification));
        json_object_object_add(j, "PerfTracingEnabled",
                               json_object_new_boolean(o->perf_tracing_enabled));
        json_object_object_add(j, "CancelIfBlackoutThresholdExceeds",
                               json_object_new_boolean(o->cancel_if_blackout_threshold_exceeds));
        json_object_object_add(j, "PrepareMemoryTransferMode",
                               json_object_new_boolean(o->prepare_memory_transfer_mode));
        *ret = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        json_object_put(j);
        return *ret ? 0 : -ENOMEM;
}
