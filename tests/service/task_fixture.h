/* SPDX-License-Identifier: MIT */
/* The fixture the Task service tests share (test_task.c, test_task_vm.c, test_task_devices.c):
 * a shim (src/service/shim.h) serving a unix socket in a fresh directory and a ttrpc client
 * connected to it, both on one loop. Every step is asserted, so a broken fixture fails the test
 * it was set up for. */
#pragma once

#include "client.h"

#include "service/events.h"
#include "service/sandbox.h"
#include "service/shim.h"

struct fixture {
        uv_loop_t loop;
        char dir[64];
        char sock[128];
        char log[128]; /* the shim's event log ("" when the test asked for none) */
        struct shim *shim;
        struct ttrpc_client *c; /* connected to sock */
        bool exited;            /* the shim's shutdown has finished */
        /* what the test's event subscriber kept (its own format) and how many it saw */
        char events[1024];
        unsigned n_events;
};

struct fixture_options {
        const char *name; /* the directory is /tmp/ferry-<name>-XXXXXX */
        struct sandbox_options sandbox;
        bool event_log;         /* the shim appends its events to <dir>/events.log */
        shim_event_fn on_event; /* subscribed with the fixture as userdata; may be NULL */
};

/* For cmocka's setup: a new fixture in *state, with o (borrowed) and the fault table reset.
 * Returns 0 (a failure fails the test). */
int fixture_setup(void **state, const struct fixture_options *o);

/* For cmocka's teardown: closes the client, shuts the shim down (waiting for its end), closes
 * the loop, removes the directory with all the test put in it and resets the fault table. */
int fixture_teardown(void **state);

/* The sim VM behind the sandbox (NULL before the VM exists). */
struct sim_vm *fixture_sim(struct fixture *f);

/* The loop, as the helpers of client.h take it. */
#define L (&f->loop)

#define FIXTURE_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, fixture_teardown)
