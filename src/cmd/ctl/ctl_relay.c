/* SPDX-License-Identifier: MIT */
#include "ctl_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/util.h"

#define RELAY_BUF (64 * 1024)

/* One direction: bytes read from `from` and not yet written to `to`. */
struct pipe_dir {
        int from, to;
        size_t off, len;
        bool closed; /* from reached EOF or failed: nothing more to forward this way */
        uint8_t buf[RELAY_BUF];
};

struct ctl_relay {
        int fds[2]; /* [0] the source's peer, [1] the destination's peer */
        int stop[2];
        uint64_t drop_after;
        uint64_t read_total; /* relay thread only: bounds reads to the budget */
        enum ctl_drop_side side;
        _Atomic uint64_t sent;
        atomic_bool dropped;
        pthread_t thread;
        bool started;
        struct pipe_dir dir[2]; /* [0] source -> destination, [1] destination -> source */
};

const char *ctl_drop_side_name(enum ctl_drop_side side)
{
        return side == CTL_DROP_SOURCE        ? "source"
               : side == CTL_DROP_DESTINATION ? "destination"
                                              : "both";
}

int ctl_relay_parse(const char *arg, uint64_t *ret_bytes, enum ctl_drop_side *ret_side)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(arg, &end, 10);
        if (errno || end == arg)
                return -EINVAL;
        if (*end == 'k' || *end == 'K')
                v <<= 10, end++;
        else if (*end == 'm' || *end == 'M')
                v <<= 20, end++;
        if (v == 0)
                return -EINVAL;
        *ret_side = CTL_DROP_BOTH;
        if (*end == ':') {
                end++;
                if (!strcmp(end, "source"))
                        *ret_side = CTL_DROP_SOURCE;
                else if (!strcmp(end, "destination"))
                        *ret_side = CTL_DROP_DESTINATION;
                else if (strcmp(end, "both") != 0)
                        return -EINVAL;
        } else if (*end) {
                return -EINVAL;
        }
        *ret_bytes = v;
        return 0;
}

/* Resets the connection of fds[i]: closed with a zero linger, so a TCP peer gets an RST and
 * fails its next read or write at once (a plain shutdown leaves a peer that only writes blocked
 * on a full window, as a partition would; the transfer's timeout then ends it, 30 s later). */
static void reset(struct ctl_relay *r, size_t i)
{
        struct linger l = {.l_onoff = 1, .l_linger = 0};

        (void)setsockopt(r->fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        (void)shutdown(r->fds[i], SHUT_RDWR);
        close(r->fds[i]);
        r->fds[i] = -1;
}

/* The budget is spent: cut the chosen side(s). The socket not cut stays open and silent. */
static void drop(struct ctl_relay *r)
{
        /* first: a peer sees the reset at once and ferryctl may read the flag right after */
        atomic_store(&r->dropped, true);
        if (r->side != CTL_DROP_DESTINATION)
                reset(r, 0);
        if (r->side != CTL_DROP_SOURCE)
                reset(r, 1);
}

static void dir_read(struct ctl_relay *r, struct pipe_dir *d)
{
        size_t want = sizeof(d->buf);
        ssize_t n;

        if (r->drop_after - r->read_total < want)
                want = (size_t)(r->drop_after - r->read_total);
        n = recv(d->from, d->buf, want, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                /* the peer finished (or failed): pass the end on */
                d->closed = true;
                (void)shutdown(d->to, SHUT_WR);
                return;
        }
        d->off = 0;
        d->len = (size_t)n;
        r->read_total += (uint64_t)n;
}

static void dir_write(struct ctl_relay *r, struct pipe_dir *d)
{
        ssize_t n = send(d->to, d->buf + d->off, d->len - d->off, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n < 0) {
                /* the receiver is gone: the sender learns it as a relay would make it */
                d->closed = true;
                d->len = d->off = 0;
                (void)shutdown(d->from, SHUT_RD);
                return;
        }
        d->off += (size_t)n;
        if (d->off == d->len)
                d->off = d->len = 0;
        if (atomic_fetch_add(&r->sent, (uint64_t)n) + (uint64_t)n >= r->drop_after)
                drop(r);
}

static void *relay_main(void *arg)
{
        struct ctl_relay *r = arg;

        for (;;) {
                struct pollfd p[5] = {{.fd = r->stop[0], .events = POLLIN}};
                int idx[2][2] = {{-1, -1}, {-1, -1}};
                nfds_t n = 1;

                for (int i = 0; i < 2 && !atomic_load(&r->dropped); i++) {
                        struct pipe_dir *d = &r->dir[i];

                        if (d->len) {
                                idx[i][1] = (int)n;
                                p[n++] = (struct pollfd){.fd = d->to, .events = POLLOUT};
                        } else if (!d->closed && r->read_total < r->drop_after) {
                                idx[i][0] = (int)n;
                                p[n++] = (struct pollfd){.fd = d->from, .events = POLLIN};
                        }
                }
                if (poll(p, n, -1) < 0 && errno != EINTR)
                        break;
                if (p[0].revents)
                        break;
                /* once dropped, a reset socket's fd number may already be reused elsewhere
                 * in ferryctl: never touch it again */
                for (int i = 0; i < 2 && !atomic_load(&r->dropped); i++) {
                        if (idx[i][0] >= 0 && p[idx[i][0]].revents)
                                dir_read(r, &r->dir[i]);
                        else if (idx[i][1] >= 0 && p[idx[i][1]].revents)
                                dir_write(r, &r->dir[i]);
                }
        }
        return NULL;
}

int ctl_relay_start(int src_fd, int dst_fd, uint64_t drop_after, enum ctl_drop_side side,
                    struct ctl_relay **ret)
{
        struct ctl_relay *r;
        int e;

        if (drop_after == 0) {
                close(src_fd);
                close(dst_fd);
                return -EINVAL;
        }
        r = calloc(1, sizeof(*r));
        if (!r) {
                close(src_fd);
                close(dst_fd);
                return -ENOMEM;
        }
        r->fds[0] = src_fd;
        r->fds[1] = dst_fd;
        r->drop_after = drop_after;
        r->side = side;
        r->dir[0] = (struct pipe_dir){.from = src_fd, .to = dst_fd};
        r->dir[1] = (struct pipe_dir){.from = dst_fd, .to = src_fd};
        if (pipe2(r->stop, O_CLOEXEC) < 0) {
                e = -errno;
                r->stop[0] = r->stop[1] = -1;
                ctl_relay_free(r);
                return e;
        }
        e = pthread_create(&r->thread, NULL, relay_main, r);
        if (e) {
                ctl_relay_free(r);
                return -e;
        }
        r->started = true;
        *ret = r;
        return 0;
}

uint64_t ctl_relay_bytes(struct ctl_relay *r)
{
        return r ? atomic_load(&r->sent) : 0;
}

bool ctl_relay_dropped(struct ctl_relay *r)
{
        return r && atomic_load(&r->dropped);
}

void ctl_relay_free(struct ctl_relay *r)
{
        if (!r)
                return;
        if (r->started) {
                (void)!write(r->stop[1], "x", 1);
                pthread_join(r->thread, NULL);
        }
        for (size_t i = 0; i < 2; i++) {
                if (r->stop[i] >= 0)
                        close(r->stop[i]);
                if (r->fds[i] >= 0)
                        close(r->fds[i]);
        }
        free(r);
}
