/* SPDX-License-Identifier: MIT */
#include "echo_service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"

struct delayed {
        uv_timer_t timer;
        struct ttrpc_call *call;
        struct echo_server *es;
        Ferry__Test__EchoResponse resp;
        uint8_t *blob;
        uint32_t left, next; /* Count */
        int fail;
};

static void delayed_free(uv_handle_t *h)
{
        struct delayed *d = h->data;
        free(d->blob);
        free(d);
}

static void fill_response(struct delayed *d, const Ferry__Test__EchoRequest *req,
                          struct ttrpc_call *call)
{
        Ferry__Test__EchoResponse init = FERRY__TEST__ECHO_RESPONSE__INIT;
        d->resp = init;
        d->resp.text = req->text;
        if (req->reply_bytes) {
                d->blob = calloc(1, req->reply_bytes);
                d->resp.blob.data = d->blob;
                d->resp.blob.len = req->reply_bytes;
        } else {
                d->resp.blob = req->blob;
        }
        const char *md = ttrpc_call_metadata(call, "x-test");
        d->resp.metadata = md ? (char *)md : "";
        uint64_t dl = ttrpc_call_deadline_us(call);
        d->resp.deadline_left_ms = dl ? (int64_t)(dl - ferry_now_us()) / 1000 : -1;
}

static void echo_timer(uv_timer_t *t)
{
        struct delayed *d = t->data;
        if (d->call) {
                /* text/blob borrow the request, alive until the call ends */
                ttrpc_call_reply(d->call, &d->resp.base);
                d->call = NULL;
        }
        uv_close((uv_handle_t *)&d->timer, delayed_free);
}

static void on_cancel(struct ttrpc_call *call, void *userdata)
{
        struct delayed *d = userdata;
        __atomic_fetch_add(&d->es->cancels, 1, __ATOMIC_RELAXED); /* read by the test thread */
        /* end the call now and drop its timer, so a closing server's loop can finish */
        ttrpc_call_fail(call, -ECANCELED, "cancelled");
        d->call = NULL;
        uv_close((uv_handle_t *)&d->timer, delayed_free);
}

static void handle_echo(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct echo_server *es = userdata;
        const Ferry__Test__EchoRequest *req = (const Ferry__Test__EchoRequest *)msg;
        es->calls++;
        if (req->delay_ms == 0) {
                struct delayed d = {0};
                fill_response(&d, req, call);
                ttrpc_call_reply(call, &d.resp.base);
                free(d.blob);
                return;
        }
        struct delayed *d = calloc(1, sizeof(*d));
        d->es = es;
        d->call = call;
        fill_response(d, req, call);
        uv_timer_init(&es->loop, &d->timer);
        d->timer.data = d;
        ttrpc_call_on_cancel(call, on_cancel, d);
        uv_timer_start(&d->timer, echo_timer, req->delay_ms, 0);
}

static void count_tick(uv_timer_t *t)
{
        struct delayed *d = t->data;
        if (!d->call) {
                uv_close((uv_handle_t *)&d->timer, delayed_free);
                return;
        }
        if (d->left == 0) {
                if (d->fail)
                        ttrpc_call_fail(d->call, -EBUSY, "count failed");
                else
                        ttrpc_call_close(d->call);
                d->call = NULL;
                uv_close((uv_handle_t *)&d->timer, delayed_free);
                return;
        }
        Ferry__Test__CountResponse m = FERRY__TEST__COUNT_RESPONSE__INIT;
        m.i = ++d->next;
        d->left--;
        if (ttrpc_call_send(d->call, &m.base) < 0) {
                ttrpc_call_fail(d->call, -ECANCELED, NULL);
                d->call = NULL;
        }
}

static void handle_count(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct echo_server *es = userdata;
        const Ferry__Test__CountRequest *req = (const Ferry__Test__CountRequest *)msg;
        es->calls++;
        if (req->interval_ms == 0) {
                for (uint32_t i = 1; i <= req->n; i++) {
                        Ferry__Test__CountResponse m = FERRY__TEST__COUNT_RESPONSE__INIT;
                        m.i = i;
                        if (ttrpc_call_send(call, &m.base) < 0) {
                                ttrpc_call_fail(call, -ENOBUFS, NULL);
                                return;
                        }
                }
                if (req->fail)
                        ttrpc_call_fail(call, -EBUSY, "count failed");
                else
                        ttrpc_call_close(call);
                return;
        }
        struct delayed *d = calloc(1, sizeof(*d));
        d->es = es;
        d->call = call;
        d->left = req->n;
        d->fail = req->fail;
        uv_timer_init(&es->loop, &d->timer);
        d->timer.data = d;
        ttrpc_call_on_cancel(call, on_cancel, d);
        uv_timer_start(&d->timer, count_tick, req->interval_ms, req->interval_ms);
}

struct sum {
        uint32_t total;
};

static void sum_cancel(struct ttrpc_call *call, void *userdata)
{
        free(userdata);
        ttrpc_call_fail(call, -ECANCELED, NULL);
}

static void sum_recv(struct ttrpc_call *call, ProtobufCMessage *msg, void *userdata)
{
        struct sum *st = userdata;
        if (msg) {
                st->total += ((Ferry__Test__CountResponse *)msg)->i;
                protobuf_c_message_free_unpacked(msg, NULL);
                return;
        }
        Ferry__Test__CountResponse r = FERRY__TEST__COUNT_RESPONSE__INIT;
        r.i = st->total;
        free(st);
        ttrpc_call_reply(call, &r.base);
}

static void handle_sum(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct echo_server *es = userdata;
        es->calls++;
        struct sum *st = calloc(1, sizeof(*st));
        if (!st) {
                ttrpc_call_fail(call, -ENOMEM, NULL);
                return;
        }
        ttrpc_call_on_recv(call, sum_recv, st);
        ttrpc_call_on_cancel(call, sum_cancel, st);
}

static void double_cancel(struct ttrpc_call *call, void *userdata)
{
        ttrpc_call_fail(call, -ECANCELED, NULL);
}

static void double_recv(struct ttrpc_call *call, ProtobufCMessage *msg, void *userdata)
{
        if (!msg) {
                ttrpc_call_close(call);
                return;
        }
        Ferry__Test__CountResponse r = FERRY__TEST__COUNT_RESPONSE__INIT;
        r.i = 2 * ((Ferry__Test__CountResponse *)msg)->i;
        protobuf_c_message_free_unpacked(msg, NULL);
        if (ttrpc_call_send(call, &r.base) < 0)
                ttrpc_call_fail(call, -ECANCELED, NULL);
}

static void handle_double(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct echo_server *es = userdata;
        es->calls++;
        if (msg) { /* a first message in the Request envelope */
                Ferry__Test__CountResponse r = FERRY__TEST__COUNT_RESPONSE__INIT;
                r.i = 2 * ((const Ferry__Test__CountResponse *)msg)->i;
                ttrpc_call_send(call, &r.base);
        }
        ttrpc_call_on_recv(call, double_recv, NULL);
        ttrpc_call_on_cancel(call, double_cancel, NULL);
}

/* in the descriptor's method order: Echo, Count, Unimpl, Sum, Twice */
static const struct ttrpc_method echo_methods[] = {
    {handle_echo, TTRPC_UNARY},        {handle_count, TTRPC_SERVER_STREAM}, {NULL, TTRPC_UNARY},
    {handle_sum, TTRPC_CLIENT_STREAM}, {handle_double, TTRPC_BIDI_STREAM},
};

static void on_stop(uv_async_t *a)
{
        struct echo_server *es = a->data;
        ttrpc_server_close(es->srv);
        uv_close((uv_handle_t *)&es->stop, NULL);
        /* delayed calls still pending: let their timers run out */
}

static void signal_ready(struct echo_server *es, int err)
{
        pthread_mutex_lock(&es->lock);
        es->ready = 1;
        es->start_err = err;
        pthread_cond_signal(&es->cond);
        pthread_mutex_unlock(&es->lock);
}

static void *server_thread(void *arg)
{
        struct echo_server *es = arg;
        int r = ttrpc_server_new(&es->loop, &es->opts, &es->srv);
        if (r == 0)
                r = ttrpc_server_register(es->srv, &ferry__test__echo__descriptor, echo_methods,
                                          sizeof(echo_methods) / sizeof(echo_methods[0]), es);
        if (r == 0)
                r = ttrpc_server_listen(es->srv, es->path);
        signal_ready(es, r);
        if (r < 0)
                return NULL;
        uv_run(&es->loop, UV_RUN_DEFAULT);
        return NULL;
}

int echo_server_start(struct echo_server *es, const struct ttrpc_server_options *opts)
{
        memset(es, 0, sizeof(*es));
        if (opts)
                es->opts = *opts;
        ferry_strscpy(es->dir, "/tmp/ferry-rpc-XXXXXX", sizeof(es->dir));
        if (!mkdtemp(es->dir))
                return -errno;
        ferry_bprintf(es->path, sizeof(es->path), "%s/s", es->dir);
        uv_loop_init(&es->loop);
        uv_async_init(&es->loop, &es->stop, on_stop);
        es->stop.data = es;
        pthread_mutex_init(&es->lock, NULL);
        pthread_cond_init(&es->cond, NULL);
        pthread_create(&es->thread, NULL, server_thread, es);
        pthread_mutex_lock(&es->lock);
        while (!es->ready)
                pthread_cond_wait(&es->cond, &es->lock);
        pthread_mutex_unlock(&es->lock);
        return es->start_err;
}

void echo_server_stop(struct echo_server *es)
{
        uv_async_send(&es->stop);
        pthread_join(es->thread, NULL);
        uv_loop_close(&es->loop);
        unlink(es->path);
        rmdir(es->dir);
}

int echo_connect_raw(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        ferry_strscpy(sa.sun_path, path, sizeof(sa.sun_path));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}
