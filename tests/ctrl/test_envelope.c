/* SPDX-License-Identifier: MIT */
/* The envelope every saved controller travels in: round trip, and import's checks in order. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctrl/common/envelope.h"

/* An envelope is itself a message: use one as the payload under test. */
static ctrl_envelope *inner(void)
{
        static ctrl_envelope m = FERRY__SAVE__V1__ENVELOPE__INIT;
        m.type_url = "payload";
        m.schema_version = 7;
        return &m;
}

static void test_type_url(void **state)
{
        char buf[96];
        assert_int_equal(ctrl_type_url("process", buf, sizeof(buf)),
                         (int)strlen("type.ferry.dev/ferry.process.save.v1.Payload"));
        assert_string_equal(buf, "type.ferry.dev/ferry.process.save.v1.Payload");
        assert_int_equal(ctrl_type_url("", buf, sizeof(buf)), -EINVAL);
        assert_int_equal(ctrl_type_url(NULL, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(ctrl_type_url("process", buf, 10), -EINVAL);
}

static void test_round_trip_through_bytes(void **state)
{
        ctrl_envelope *e = NULL, *back = NULL;
        assert_int_equal(ctrl_envelope_pack("container", 1, &inner()->base, &e), 0);
        assert_string_equal(e->type_url, "type.ferry.dev/ferry.container.save.v1.Payload");
        uint8_t *bytes;
        size_t len;
        assert_int_equal(ctrl_envelope_to_bytes(e, &bytes, &len), 0);
        assert_int_equal(ctrl_envelope_from_bytes(bytes, len, &back), 0);
        free(bytes);

        ProtobufCMessage *m = NULL;
        uint32_t v = 0;
        const char *why = "unset";
        assert_int_equal(ctrl_envelope_unpack(back, "container", 1,
                                              &ferry__save__v1__envelope__descriptor, &m, &v, &why),
                         0);
        assert_null(why);
        assert_int_equal(v, 1);
        ctrl_envelope *p = (ctrl_envelope *)m;
        assert_string_equal(p->type_url, "payload");
        assert_int_equal(p->schema_version, 7);
        protobuf_c_message_free_unpacked(m, NULL);
        ctrl_envelope_free(e);
        ctrl_envelope_free(back);
}

/* Each check fails on its own and names itself; nothing is returned on failure. */
static void test_checks_in_order(void **state)
{
        const ProtobufCMessageDescriptor *d = &ferry__save__v1__envelope__descriptor;
        ProtobufCMessage *m = (ProtobufCMessage *)0x1;
        const char *why;

        assert_int_equal(ctrl_envelope_unpack(NULL, "process", 1, d, &m, NULL, &why), -EINVAL);
        assert_string_equal(why, "no envelope");

        ctrl_envelope *e = NULL;
        assert_int_equal(ctrl_envelope_pack("process", 2, &inner()->base, &e), 0);
        assert_int_equal(ctrl_envelope_unpack(e, "container", 2, d, &m, NULL, &why), -EINVAL);
        assert_string_equal(why, "foreign envelope: type URL does not match");

        /* A type URL check comes before decoding: a foreign corrupt envelope is foreign. */
        uint8_t junk[] = {0xff, 0xff, 0xff};
        ctrl_envelope bad = *e;
        bad.value.data = junk;
        bad.value.len = sizeof(junk);
        assert_int_equal(ctrl_envelope_unpack(&bad, "container", 2, d, &m, NULL, &why), -EINVAL);
        assert_int_equal(ctrl_envelope_unpack(&bad, "process", 2, d, &m, NULL, &why), -EBADMSG);
        assert_string_equal(why, "payload does not decode");

        /* Decoding comes before the version check; a future version is refused. */
        assert_int_equal(ctrl_envelope_unpack(e, "process", 1, d, &m, NULL, &why), -EINVAL);
        assert_string_equal(why, "unsupported schema version");
        bad = *e;
        bad.schema_version = 0;
        assert_int_equal(ctrl_envelope_unpack(&bad, "process", 2, d, &m, NULL, &why), -EINVAL);
        assert_ptr_equal(m, (ProtobufCMessage *)0x1);
        ctrl_envelope_free(e);
}

static void test_from_bytes_rejects_garbage(void **state)
{
        ctrl_envelope *e = NULL;
        uint8_t junk[] = {0x0a, 0x40, 'x'}; /* a length past the end */
        assert_int_equal(ctrl_envelope_from_bytes(junk, sizeof(junk), &e), -EBADMSG);
        assert_null(e);
}

static void test_dup(void **state)
{
        ctrl_envelope *e = NULL, *d = NULL;
        assert_int_equal(ctrl_envelope_pack("vpci", 1, &inner()->base, &e), 0);
        assert_int_equal(ctrl_envelope_dup(e, &d), 0);
        assert_ptr_not_equal(d->value.data, e->value.data);
        assert_memory_equal(d->value.data, e->value.data, e->value.len);
        assert_string_equal(d->type_url, e->type_url);
        ctrl_envelope_free(e);
        ctrl_envelope_free(d);
        assert_int_equal(ctrl_envelope_dup(NULL, &d), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_type_url),
            cmocka_unit_test(test_round_trip_through_bytes),
            cmocka_unit_test(test_checks_in_order),
            cmocka_unit_test(test_from_bytes_rejects_garbage),
            cmocka_unit_test(test_dup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
