/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/ctl/ctl_proc.h"
#include "cmd/ctl/ctl_rpc.h"
#include "util/util.h"

#define CONNECT_RETRY_MS 20
/* After SIGINT/SIGTERM a call waits this long for its answer, so the rollback that follows can
 * still use a live connection; a shim that stays silent longer has its connection dropped. */
#define INTERRUPT_GRACE_MS 2000

void ctl_error_set(struct ctl_error *err, int r, const char *fmt, ...)
{
        va_list ap;

        if (!err)
                return;
        err->code = ferry_errno_to_code(r);
        va_start(ap, fmt);
        (void)vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
}

void ctl_error_print(const struct ctl_error *err, const char *what)
{
        fprintf(stderr, "ferryctl: %s: %s: %s\n", what, ferry_code_name(err->code),
                err->message[0] ? err->message : "(no message)");
}

static void sleep_ms(uint32_t ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int ctl_connect(uv_loop_t *loop, const char *address, uint32_t wait_ms, struct ctl_conn *conn,
                struct ctl_error *err)
{
        uint64_t deadline = ferry_now_us() + (uint64_t)wait_ms * 1000;
        int r;

        *conn = (struct ctl_conn){.loop = loop, .address = address, .timeout_ns = 0};
        for (;;) {
                r = ttrpc_client_connect(loop, address, NULL, &conn->client);
                if (r == 0)
                        return 0;
                /* a shim that is starting has not bound its socket yet; a busy one's backlog
                 * may be full for a moment */
                if ((r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN) ||
                    ferry_now_us() >= deadline || ctl_interrupted)
                        break;
                sleep_ms(CONNECT_RETRY_MS);
        }
        conn->client = NULL;
        ctl_error_set(err, r, "connect %s: %s", address, strerror(-r));
        return r;
}

void ctl_disconnect(struct ctl_conn *conn)
{
        if (!conn->client)
                return;
        ttrpc_client_close(conn->client);
        conn->client = NULL;
        /* let the loop run the close callbacks so nothing is left behind */
        uv_run(conn->loop, UV_RUN_NOWAIT);
}

struct unary {
        bool done;
        enum ferry_code code;
        char message[512];
        ProtobufCMessage *resp;
};

static void unary_done(enum ferry_code code, const char *message, ProtobufCMessage *resp,
                       void *userdata)
{
        struct unary *u = userdata;

        u->done = true;
        u->code = code;
        u->resp = resp;
        (void)ferry_strscpy(u->message, message ? message : "", sizeof(u->message));
}

static bool unary_is_done(void *userdata)
{
        return ((struct unary *)userdata)->done;
}

/* No answer in time: the connection goes, which fails the call (and every stream on it) at
 * once, so nothing is left pointing at u. Returns r with err saying why (what). */
static int call_abandon(struct ctl_conn *conn, struct unary *u, const char *service,
                        const char *method, int r, const char *what, struct ctl_error *err)
{
        conn->lost = true;
        ctl_disconnect(conn);
        while (!u->done && uv_run(conn->loop, UV_RUN_NOWAIT))
                ;
        assert(u->done); /* ttrpc_client_close() ends every pending call */
        if (u->resp)
                protobuf_c_message_free_unpacked(u->resp, NULL);
        ctl_error_set(err, r, "%s/%s: %s; connection dropped", service, method, what);
        return r;
}

/* A signal arrived while the call waited: the call fails with -EINTR so the caller stops (and
 * rolls back). Its answer is still awaited for a while, so the connection stays usable. */
static int call_interrupted(struct ctl_conn *conn, struct unary *u, const char *service,
                            const char *method, struct ctl_error *err)
{
        int sig = ctl_interrupted;
        char what[96];

        (void)ctl_run_until(conn->loop, unary_is_done, u, INTERRUPT_GRACE_MS);
        if (!u->done) {
                (void)snprintf(what, sizeof(what),
                               "interrupted by signal %d, no answer within %d ms", sig,
                               INTERRUPT_GRACE_MS);
                return call_abandon(conn, u, service, method, -EINTR, what, err);
        }
        if (u->resp)
                protobuf_c_message_free_unpacked(u->resp, NULL);
        ctl_error_set(err, -EINTR, "%s/%s: interrupted by signal %d", service, method, sig);
        return -EINTR;
}

int ctl_call(struct ctl_conn *conn, const char *service, const char *method,
             const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
             ProtobufCMessage **ret_resp, struct ctl_error *err)
{
        struct ttrpc_call_opts opts = {.timeout_ns = conn->timeout_ns};
        struct unary u = {0};
        int r;

        if (!conn->client || conn->lost) {
                ctl_error_set(err, -ENOTCONN, "%s: not connected", conn->address);
                return -ENOTCONN;
        }
        r = ttrpc_client_call(conn->client, service, method, req, resp_desc, &opts, unary_done, &u);
        if (r < 0) {
                if (r == -ENOTCONN)
                        conn->lost = true;
                ctl_error_set(err, r, "%s/%s: %s", service, method, strerror(-r));
                return r;
        }
        /* once interrupted (the rollback's calls), a silent shim must not hold ferryctl */
        r = ctl_run_until(conn->loop, unary_is_done, &u, ctl_interrupted ? INTERRUPT_GRACE_MS : 0);
        if (r == -EINTR)
                r = call_interrupted(conn, &u, service, method, err);
        else if (r == -ETIMEDOUT)
                r = call_abandon(conn, &u, service, method, r, "no answer after an interrupt", err);
        else if (!u.done) /* cannot happen while the client is open: it keeps the loop alive */
                r = call_abandon(conn, &u, service, method, -EIO, "loop stopped before the answer",
                                 err);
        if (r < 0)
                return r;
        if (u.code != FERRY_CODE_OK) {
                if (u.resp)
                        protobuf_c_message_free_unpacked(u.resp, NULL);
                if (err) {
                        err->code = u.code;
                        (void)ferry_strscpy(err->message, u.message, sizeof(err->message));
                }
                return ferry_code_to_errno(u.code);
        }
        if (ret_resp)
                *ret_resp = u.resp;
        else if (u.resp)
                protobuf_c_message_free_unpacked(u.resp, NULL);
        return 0;
}

static void stream_msg(ProtobufCMessage *msg, void *userdata)
{
        struct ctl_stream *st = userdata;

        if (st->on_msg)
                st->on_msg(msg, st->userdata);
        else
                protobuf_c_message_free_unpacked(msg, NULL);
}

static void stream_done(enum ferry_code code, const char *message, ProtobufCMessage *resp,
                        void *userdata)
{
        struct ctl_stream *st = userdata;

        if (resp)
                protobuf_c_message_free_unpacked(resp, NULL);
        st->done = true;
        st->code = code;
        (void)ferry_strscpy(st->message, message ? message : "", sizeof(st->message));
}

int ctl_stream_open(struct ctl_conn *conn, const char *service, const char *method,
                    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                    struct ctl_stream *st, struct ctl_error *err)
{
        struct ttrpc_call_opts opts = {0};
        int r;

        st->done = false;
        st->code = FERRY_CODE_OK;
        st->message[0] = '\0';
        if (!conn->client) {
                ctl_error_set(err, -ENOTCONN, "%s: not connected", conn->address);
                return -ENOTCONN;
        }
        r = ttrpc_client_stream(conn->client, service, method, req, resp_desc, &opts, stream_msg,
                                stream_done, st);
        if (r < 0)
                ctl_error_set(err, r, "%s/%s: %s", service, method, strerror(-r));
        return r;
}

static void handle_closed(uv_handle_t *h)
{
        *(bool *)h->data = true;
}

static void wake_stop(uv_poll_t *wake)
{
        bool closed = false;

        wake->data = &closed;
        uv_close((uv_handle_t *)wake, handle_closed);
        while (!closed)
                uv_run(wake->loop, UV_RUN_NOWAIT);
}

/* libuv 1.44's UV_RUN_ONCE runs due timers before it polls: a timer that fires there must also
 * stop the loop, or the poll waits with no timeout left for I/O that may never come. */
static void timer_fired(uv_timer_t *t)
{
        *(bool *)t->data = true;
        uv_stop(t->loop);
}

/* The signal handler's byte (ctl_proc_wake_fd()): drained, and the loop stopped so the wait
 * looks at the signal count. */
static void wake_readable(uv_poll_t *p, int status, int events)
{
        char buf[64];
        uv_os_fd_t fd;

        (void)status;
        (void)events;
        if (uv_fileno((uv_handle_t *)p, &fd) == 0)
                while (read(fd, buf, sizeof(buf)) > 0)
                        ;
        uv_stop(p->loop);
}

/* Watches the wake pipe on loop; unreferenced, so it never keeps an idle loop alive. False
 * when there is no pipe (no handler installed) or loop already watches it (a nested wait). */
static bool wake_start(uv_loop_t *loop, uv_poll_t *wake)
{
        int fd = ctl_proc_wake_fd();

        if (fd < 0 || uv_poll_init(loop, wake, fd) < 0)
                return false;
        if (uv_poll_start(wake, UV_READABLE, wake_readable) < 0) {
                wake_stop(wake);
                return false;
        }
        uv_unref((uv_handle_t *)wake);
        return true;
}

int ctl_run_until(uv_loop_t *loop, bool (*done)(void *userdata), void *userdata,
                  uint64_t timeout_ms)
{
        sig_atomic_t signals = ctl_signals;
        bool expired = false, closed = false, waking;
        uv_timer_t timer;
        uv_poll_t wake;
        int r = 0;

        waking = wake_start(loop, &wake);
        if (timeout_ms) {
                uv_timer_init(loop, &timer);
                timer.data = &expired;
                uv_timer_start(&timer, timer_fired, timeout_ms, 0);
        }
        while (!done(userdata)) {
                if (ctl_signals != signals) {
                        r = -EINTR;
                        break;
                }
                if (expired) {
                        r = -ETIMEDOUT;
                        break;
                }
                if (uv_run(loop, UV_RUN_ONCE) == 0 && !done(userdata)) {
                        r = -EIO;
                        break;
                }
        }
        if (timeout_ms) {
                uv_timer_stop(&timer);
                timer.data = &closed;
                uv_close((uv_handle_t *)&timer, handle_closed);
                while (!closed)
                        uv_run(loop, UV_RUN_NOWAIT);
        }
        if (waking)
                wake_stop(&wake);
        return r;
}
