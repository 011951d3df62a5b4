/* SPDX-License-Identifier: MIT */
/* Saved controllers travel in a self-describing envelope (proto/envelope.proto): a type URL
 * "type.ferry.dev/ferry.<controller>.save.v1.Payload", the schema version outside the payload,
 * and the payload's bytes. Children nest as envelopes inside their parent's payload.
 *
 * Every controller's import runs the same checks in the same order, here: the envelope is
 * present, its type URL is the controller's, its bytes decode, its schema version is one this
 * build reads. Nothing is committed by these calls; the caller commits once all of them pass. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "envelope.pb-c.h"

typedef Ferry__Save__V1__Envelope ctrl_envelope;

/* The longest controller name an envelope carries ("scsi_disk", "container", …). */
#define CTRL_NAME_MAX 32

/* Writes "type.ferry.dev/ferry.<controller>.save.v1.Payload" into buf (size >= 96).
 * Returns the length, or -EINVAL for an empty or over-long name. */
int ctrl_type_url(const char *controller, char *buf, size_t size);

/* Packs msg as controller's payload at schema_version into a new envelope (*ret, free with
 * ctrl_envelope_free). Returns 0, -EINVAL, or -ENOMEM. */
int ctrl_envelope_pack(const char *controller, uint32_t schema_version,
                       const ProtobufCMessage *msg, ctrl_envelope **ret);

/* Unpacks env as controller's payload. Checks, in order: env present (-EINVAL "no envelope"),
 * type URL (-EINVAL), bytes decode with desc (-EBADMSG), schema version within
 * [1, max_version] (-EPROTONOSUPPORT is not a status class: -EINVAL). On success *ret is the
 * decoded message (free with protobuf_c_message_free_unpacked) and *ret_version its version.
 * why (may be NULL) receives a static text naming the failed check. */
int ctrl_envelope_unpack(const ctrl_envelope *env, const char *controller, uint32_t max_version,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret,
                         uint32_t *ret_version, const char **why);

/* Serialises an envelope to a new buffer (*ret, *ret_len; free()) and back. from_bytes returns
 * -EBADMSG for bytes that are not an envelope. */
int ctrl_envelope_to_bytes(const ctrl_envelope *env, uint8_t **ret, size_t *ret_len);
int ctrl_envelope_from_bytes(const uint8_t *buf, size_t len, ctrl_envelope **ret);

/* Deep copy (children are kept by copy in parent payloads); -ENOMEM. */
int ctrl_envelope_dup(const ctrl_envelope *env, ctrl_envelope **ret);

/* Frees an envelope from pack, from_bytes or dup (not one inside an unpacked message); NULL ok. */
void ctrl_envelope_free(ctrl_envelope *env);
