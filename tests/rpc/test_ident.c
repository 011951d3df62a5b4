/* SPDX-License-Identifier: MIT */
/* rpc/ident: the id, path and method-name grammars. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/ident.h"

#define S(x) x, sizeof(x) - 1

static void test_ids(void **state)
{
        assert_int_equal(ttrpc_valid_id(S("a")), 0);
        assert_int_equal(ttrpc_valid_id(S("pod-1")), 0);
        assert_int_equal(ttrpc_valid_id(S("k8s.io_sandbox-0a1b")), 0);
        assert_int_equal(ttrpc_valid_id(S("0123456789abcdef")), 0);
        assert_int_equal(ttrpc_valid_id(S("")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S("-lead")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S(".hidden")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S("trail-")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S("double--sep")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S("a/b")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S("a b")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S("a\0b")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S("..")), -EINVAL);
        assert_int_equal(ttrpc_valid_id(S("caf\xc3\xa9")), -EINVAL);
        char id[TTRPC_ID_MAX + 2];
        memset(id, 'a', sizeof(id));
        assert_int_equal(ttrpc_valid_id(id, TTRPC_ID_MAX), 0);
        assert_int_equal(ttrpc_valid_id(id, TTRPC_ID_MAX + 1), -ENAMETOOLONG);
}

static void test_paths(void **state)
{
        assert_int_equal(ttrpc_valid_path(S("/")), 0);
        assert_int_equal(ttrpc_valid_path(S("/run/ferry/s/abc")), 0);
        assert_int_equal(ttrpc_valid_path(S("/a/b/")), 0);
        assert_int_equal(ttrpc_valid_path(S("/a//b")), 0);
        assert_int_equal(ttrpc_valid_path(S("/a/.../b")), 0);
        assert_int_equal(ttrpc_valid_path(S("/a/..b/c..")), 0);
        assert_int_equal(ttrpc_valid_path(S("/a/./b")), 0);
        assert_int_equal(ttrpc_valid_path(S("")), -EINVAL);
        assert_int_equal(ttrpc_valid_path(S("relative/x")), -EINVAL);
        assert_int_equal(ttrpc_valid_path(S("/..")), -EINVAL);
        assert_int_equal(ttrpc_valid_path(S("/a/../b")), -EINVAL);
        assert_int_equal(ttrpc_valid_path(S("/a/..")), -EINVAL);
        assert_int_equal(ttrpc_valid_path(S("/a/../")), -EINVAL);
        assert_int_equal(ttrpc_valid_path(S("/a\0/b")), -EINVAL);
        static char p[TTRPC_PATH_MAX + 2];
        memset(p, 'x', sizeof(p));
        p[0] = '/';
        assert_int_equal(ttrpc_valid_path(p, TTRPC_PATH_MAX), 0);
        assert_int_equal(ttrpc_valid_path(p, TTRPC_PATH_MAX + 1), -ENAMETOOLONG);
}

static void test_methods(void **state)
{
        assert_int_equal(ttrpc_valid_method(S("/Migration/PrepareSandbox")), 0);
        assert_int_equal(ttrpc_valid_method(S("/containerd.task.v2.Task/Create")), 0);
        assert_int_equal(ttrpc_valid_method(S("/_x.y_1/Z_")), 0);
        assert_int_equal(ttrpc_valid_method(S("Migration/Cancel")), -EINVAL);
        assert_int_equal(ttrpc_valid_method(S("/Migration")), -EINVAL);
        assert_int_equal(ttrpc_valid_method(S("/Migration/")), -EINVAL);
        assert_int_equal(ttrpc_valid_method(S("//Cancel")), -EINVAL);
        assert_int_equal(ttrpc_valid_method(S("/a..b/C")), -EINVAL);
        assert_int_equal(ttrpc_valid_method(S("/a./C")), -EINVAL);
        assert_int_equal(ttrpc_valid_method(S("/1a/C")), -EINVAL);
        assert_int_equal(ttrpc_valid_method(S("/a/b/c")), -EINVAL);
        assert_int_equal(ttrpc_valid_method(S("/a/b c")), -EINVAL);
        static char m[TTRPC_METHOD_MAX + 2];
        memset(m, 'a', sizeof(m));
        m[0] = '/';
        m[2] = '/';
        assert_int_equal(ttrpc_valid_method(m, TTRPC_METHOD_MAX), 0);
        assert_int_equal(ttrpc_valid_method(m, TTRPC_METHOD_MAX + 1), -ENAMETOOLONG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ids),
            cmocka_unit_test(test_paths),
            cmocka_unit_test(test_methods),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
