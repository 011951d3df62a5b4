/* SPDX-License-Identifier: MIT */
/* The scaffolding every controller test stands on: the hcs test helpers (loop, run_until, result
 * recorders, sim systems), a created and started sim VM with a connected guest and the
 * controller environment over them, and the macros that run one asynchronous call to its end.
 * Each test program still owns its loop and backend (setup_loop / teardown_loop of helpers.h);
 * the fixture borrows them. */
#pragma once

/* helpers.h brings helpers a given test does not use */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "helpers.h"
#pragma GCC diagnostic pop

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"
#include "guest/guest.h"

/* A running sim VM, its notifications, a connected guest and the environment over both. */
struct ctrl_fixture {
        struct hcs_system *vm;
        struct notes notes;
        struct guest_conn *conn;
        struct ctrl_env env;
};

/* Creates and starts VM id (8 MB, rate dirty pages/s) on backend and connects its guest; env
 * publishes through publish (may be NULL). Fails the test on any error. */
void fixture_up(struct ctrl_fixture *f, uv_loop_t *l, struct hcs_backend *b, const char *id,
                uint64_t rate, ctrl_publish_fn publish);

/* Closes the guest and the VM (when f->vm is still set); the loop stays for teardown_loop. */
void fixture_down(struct ctrl_fixture *f);

/* A guest_done_fn recording into a struct result (helpers.h). */
void fixture_guest_done(int r, uint64_t value, void *ud);

/* A controller call taking (…, done, ud): its refusal, or, when taken, done's result. */
#define CTRL_CALL(fn, ...)                                                                         \
        ({                                                                                         \
                struct result _x = {0};                                                            \
                int _r = fn(__VA_ARGS__, on_done, &_x);                                            \
                if (_r == 0) {                                                                     \
                        run_until(&_x.done, 5000);                                                 \
                        _r = _x.r;                                                                 \
                }                                                                                  \
                _r;                                                                                \
        })

/* A call taking (…, done, ud) that must be taken: done's result. */
#define CTRL_SYNC(fn, ...)                                                                         \
        ({                                                                                         \
                struct result _x = {0};                                                            \
                assert_int_equal(fn(__VA_ARGS__, on_done, &_x), 0);                                \
                run_until(&_x.done, 5000);                                                         \
                _x.r;                                                                              \
        })

/* A guest call taking (…, guest_done_fn, ud) that must be taken: its result. */
#define GSYNC(fn, ...)                                                                             \
        ({                                                                                         \
                struct result _x = {0};                                                            \
                assert_int_equal(fn(__VA_ARGS__, fixture_guest_done, &_x), 0);                     \
                run_until(&_x.done, 5000);                                                         \
                _x.r;                                                                              \
        })

/* A new copy of e made through its bytes, as it travels between hosts (free with
 * ctrl_envelope_free). Fails the test on any error. */
ctrl_envelope *fixture_through_bytes(const ctrl_envelope *e);

/* Arms fault point (hcs/fault.h) to fail its nth call with error. */
void fixture_fault(const char *point, uint32_t nth, int error);

/* Whether the host table tab of sys's sim VM (its nics, shares or vpci: cap entries) holds name. */
bool fixture_host_has(struct hcs_system *sys, const struct sim_named *tab, size_t cap,
                      const char *name);

/* A cmocka case run between the test program's own setup() and teardown(). */
#define CTRL_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* A cmocka case on a bare loop and sim backend (helpers.h), for tests that build their own VMs. */
#define CTRL_LOOP_TEST(fn) LOOP_TEST(fn)
