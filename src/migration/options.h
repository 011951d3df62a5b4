/* SPDX-License-Identifier: MIT */
/* InitializeOptions (the Migration API) as a host-compute MigrationInitializeOptions document
 * (reference parse.go InitializeOptionsFromProto; hcs schema field names). */
#pragma once

#include "migration.pb-c.h"

/* *ret (new, free()) gets the document without Origin (the session stamps it), or NULL when
 * o is NULL. Errors: -EINVAL memory transport not TCP ("unsupported memory transport"),
 * -ENOMEM. minimum_throttle_percentage is narrowed to 8 bits by truncation, as the reference. */
int mig_options_to_json(const InitializeOptions *o, char **ret);
