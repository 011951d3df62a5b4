/* SPDX-License-Identifier: MIT */
#include "rpc/io.h"

#include <errno.h>
#include <stdlib.h>

#include "util/util.h"

struct write_req {
        uv_write_t req;
        uint8_t *buf;
};

static void fatal(struct ttrpc_io *io, int err)
{
        if (io->failed || io->closing)
                return;
        io->failed = 1;
        uv_read_stop((uv_stream_t *)&io->pipe);
        if (io->ops->on_fatal)
                io->ops->on_fatal(io, err);
}

static void flush(struct ttrpc_io *io);

static void write_cb(uv_write_t *req, int status)
{
        struct write_req *w = (struct write_req *)req;
        struct ttrpc_io *io = req->data;
        free(w->buf);
        free(w);
        io->writing = 0;
        if (status < 0) {
                fatal(io, status);
                return;
        }
        flush(io);
}

static void flush(struct ttrpc_io *io)
{
        if (io->writing || io->closing || io->failed)
                return;
        uint8_t *buf;
        size_t len;
        if (ttrpc_session_take_output(io->sess, &buf, &len) < 0)
                return;
        /* most replies fit the socket buffer: write them now, queue only the rest */
        uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&io->pipe, &b, 1);
        if (n == (int)len) {
                free(buf);
                return;
        }
        if (n < 0 && n != UV_EAGAIN) {
                free(buf);
                fatal(io, n);
                return;
        }
        size_t off = n > 0 ? (size_t)n : 0;
        struct write_req *w = malloc(sizeof(*w));
        if (!w) {
                free(buf);
                fatal(io, -ENOMEM);
                return;
        }
        w->buf = buf;
        w->req.data = io;
        b = uv_buf_init((char *)buf + off, (unsigned)(len - off));
        int r = uv_write(&w->req, (uv_stream_t *)&io->pipe, &b, 1, write_cb);
        if (r < 0) {
                free(buf);
                free(w);
                fatal(io, r);
                return;
        }
        io->writing = 1;
}

static void timer_cb(uv_timer_t *t);

/* Arms the timer for the session's next deadline. It never expires anything itself, so no
 * user callback runs from inside an API call (a call that times out is reported from the
 * timer callback). */
static void arm_timer(struct ttrpc_io *io)
{
        uint64_t next = ttrpc_session_next_timeout(io->sess);
        if (!next) {
                if (uv_is_active((uv_handle_t *)&io->timer))
                        uv_timer_stop(&io->timer);
                return;
        }
        uint64_t now = ferry_now_us();
        uint64_t ms = next > now ? (next - now + 999) / 1000 : 0;
        uv_timer_start(&io->timer, timer_cb, ms, 0);
}

static void timer_cb(uv_timer_t *t)
{
        struct ttrpc_io *io = t->data;
        if (io->closing || io->failed)
                return;
        int r = ttrpc_session_expire(io->sess, ferry_now_us(), NULL);
        if (r < 0) {
                fatal(io, r);
                return;
        }
        ttrpc_io_kick(io);
}

void ttrpc_io_kick(struct ttrpc_io *io)
{
        if (io->closing || io->failed)
                return;
        arm_timer(io);
        flush(io);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct ttrpc_io *io = h->data;
        *buf = uv_buf_init((char *)io->rbuf, TTRPC_IO_READ_BUF);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        struct ttrpc_io *io = s->data;
        if (n == 0)
                return;
        if (n < 0) {
                fatal(io, n == UV_EOF ? -ECONNRESET : (int)n);
                return;
        }
        int r = ttrpc_session_recv(io->sess, (const uint8_t *)buf->base, (size_t)n, ferry_now_us());
        if (r < 0) {
                fatal(io, r);
                return;
        }
        ttrpc_io_kick(io);
}

static void close_cb(uv_handle_t *h)
{
        struct ttrpc_io *io = h->data;
        if (--io->open_handles == 0) {
                free(io->rbuf);
                io->rbuf = NULL;
                if (io->ops->on_closed)
                        io->ops->on_closed(io);
        }
}

int ttrpc_io_start(struct ttrpc_io *io, uv_loop_t *loop, int fd, const struct ttrpc_io_ops *ops)
{
        io->ops = ops;
        io->rbuf = malloc(TTRPC_IO_READ_BUF);
        int r = uv_timer_init(loop, &io->timer);
        if (r < 0 || !io->rbuf) {
                close(fd);
                free(io->rbuf);
                io->rbuf = NULL;
                return r < 0 ? r : -ENOMEM;
        }
        io->timer.data = io;
        io->open_handles = 1;
        r = uv_pipe_init(loop, &io->pipe, 0);
        if (r < 0) {
                close(fd);
                io->closing = 1;
                uv_close((uv_handle_t *)&io->timer, close_cb);
                return r;
        }
        io->pipe.data = io;
        io->open_handles = 2;
        r = uv_pipe_open(&io->pipe, fd);
        if (r < 0) {
                close(fd);
                ttrpc_io_close(io);
                return r;
        }
        r = uv_read_start((uv_stream_t *)&io->pipe, alloc_cb, read_cb);
        if (r < 0) {
                ttrpc_io_close(io);
                return r;
        }
        return 0;
}

void ttrpc_io_close(struct ttrpc_io *io)
{
        if (io->closing)
                return;
        io->closing = 1;
        uv_close((uv_handle_t *)&io->pipe, close_cb);
        uv_close((uv_handle_t *)&io->timer, close_cb);
}
