/* SPDX-License-Identifier: MIT */
#include "ctrl/common/envelope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int ctrl_type_url(const char *controller, char *buf, size_t size)
{
        size_t n = controller ? strlen(controller) : 0;
        if (n == 0 || n > CTRL_NAME_MAX)
                return -EINVAL;
        ssize_t r = ferry_bprintf(buf, size, "type.ferry.dev/ferry.%s.save.v1.Payload", controller);
        return r < 0 ? -EINVAL : (int)r;
}

/* Envelopes made here own their strings and bytes in one allocation with the struct. */
static ctrl_envelope *envelope_alloc(const char *url, uint32_t version, const uint8_t *data,
                                     size_t len)
{
        size_t ulen = strlen(url) + 1;
        ctrl_envelope *e = malloc(sizeof(*e) + ulen + len);
        if (!e)
                return NULL;
        ferry__save__v1__envelope__init(e);
        char *u = (char *)(e + 1);
        memcpy(u, url, ulen);
        e->type_url = u;
        e->schema_version = version;
        e->value.len = len;
        e->value.data = (uint8_t *)u + ulen;
        if (len)
                memcpy(e->value.data, data, len);
        return e;
}

int ctrl_envelope_pack(const char *controller, uint32_t schema_version,
                       const ProtobufCMessage *msg, ctrl_envelope **ret)
{
        char url[96];
        if (!msg || schema_version == 0 || ctrl_type_url(controller, url, sizeof(url)) < 0)
                return -EINVAL;
        size_t len = protobuf_c_message_get_packed_size(msg);
        _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
                return -ENOMEM;
        protobuf_c_message_pack(msg, buf);
        ctrl_envelope *e = envelope_alloc(url, schema_version, buf, len);
        if (!e)
                return -ENOMEM;
        *ret = e;
        return 0;
}

int ctrl_envelope_unpack(const ctrl_envelope *env, const char *controller, uint32_t max_version,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret,
                         uint32_t *ret_version, const char **why)
{
        const char *dummy;
        if (!why)
                why = &dummy;
        char url[96];
        if (ctrl_type_url(controller, url, sizeof(url)) < 0) {
                *why = "bad controller name";
                return -EINVAL;
        }
        if (!env) {
                *why = "no envelope";
                return -EINVAL;
        }
        if (!env->type_url || strcmp(env->type_url, url) != 0) {
                *why = "foreign envelope: type URL does not match";
                return -EINVAL;
        }
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, env->value.len, env->value.data);
        if (!m) {
                *why = "payload does not decode";
                return -EBADMSG;
        }
        if (env->schema_version == 0 || env->schema_version > max_version) {
                protobuf_c_message_free_unpacked(m, NULL);
                *why = "unsupported schema version";
                return -EINVAL;
        }
        *ret = m;
        if (ret_version)
                *ret_version = env->schema_version;
        *why = NULL;
        return 0;
}

int ctrl_envelope_to_bytes(const ctrl_envelope *env, uint8_t **ret, size_t *ret_len)
{
        size_t len = ferry__save__v1__envelope__get_packed_size(env);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
                return -ENOMEM;
        ferry__save__v1__envelope__pack(env, buf);
        *ret = buf;
        *ret_len = len;
        return 0;
}

int ctrl_envelope_from_bytes(const uint8_t *buf, size_t len, ctrl_envelope **ret)
{
        Ferry__Save__V1__Envelope *u = ferry__save__v1__envelope__unpack(NULL, len, buf);
        if (!u)
                return -EBADMSG;
        ctrl_envelope *e = envelope_alloc(u->type_url ? u->type_url : "", u->schema_version,
                                          u->value.data, u->value.len);
        ferry__save__v1__envelope__free_unpacked(u, NULL);
        if (!e)
                return -ENOMEM;
        *ret = e;
        return 0;
}

int ctrl_envelope_dup(const ctrl_envelope *env, ctrl_envelope **ret)
{
        if (!env)
                return -EINVAL;
        ctrl_envelope *e = envelope_alloc(env->type_url ? env->type_url : "", env->schema_version,
                                          env->value.data, env->value.len);
        if (!e)
                return -ENOMEM;
        *ret = e;
        return 0;
}

void ctrl_envelope_free(ctrl_envelope *env)
{
        free(env);
}
