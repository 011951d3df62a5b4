/* SPDX-License-Identifier: MIT */
/* Test helper: the ferry.test.Echo service served by a ttrpc server on its own thread and loop,
 * on a unix socket in a fresh temporary directory. */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "echo_test.pb-c.h"
#include "rpc/ttrpc.h"

struct echo_server {
        uv_loop_t loop;
        uv_async_t stop;
        pthread_t thread;
        struct ttrpc_server *srv;
        struct ttrpc_server_options opts;
        char dir[64];
        char path[108];
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int ready;
        int start_err;
        /* counters, touched on the server thread only; read after stop */
        unsigned calls;
        unsigned cancels;
};

/* Starts the server thread (opts may be NULL); returns 0 or a negative errno. */
int echo_server_start(struct echo_server *es, const struct ttrpc_server_options *opts);

/* Stops the server thread, closes the server and removes the socket and directory. */
void echo_server_stop(struct echo_server *es);

/* A blocking unix-socket connection to path; returns the fd or a negative errno. */
int echo_connect_raw(const char *path);
