/* SPDX-License-Identifier: MIT */
#include "migration/socket.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"

#define PREFIX    "ferry-socket-v1 "
#define HELLO     "FERRYFD1"
#define HELLO_LEN 8
#define MSG_LEN   (HELLO_LEN + MIG_TOKEN_LEN)

static bool is_hex_token(const char *t, size_t n)
{
        if (n != MIG_TOKEN_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
                        return false;
        return true;
}

/* A decimal in [0, INT32_MAX] ending at a space or the end; advances *p. */
static int parse_uint(const char **p, int *ret)
{
        const char *s = *p;
        long v = 0;
        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
                v = v * 10 + (*s - '0');
                if (v > 0x7fffffff)
                        return -EINVAL;
        }
        *ret = (int)v;
        *p = s;
        return 0;
}

int mig_socket_parse(const void *info, size_t len, struct mig_socket_ref *ret)
{
        char buf[MIG_PROTOCOL_INFO_MAX + 1];
        struct mig_socket_ref ref = {.pid = 0, .fd = -1};
        if (!info || len <= strlen(PREFIX) || len > MIG_PROTOCOL_INFO_MAX)
                return -EINVAL;
        memcpy(buf, info, len);
        buf[len] = '\0';
        if (strlen(buf) != len || strncmp(buf, PREFIX, strlen(PREFIX)) != 0)
                return -EINVAL;
        const char *p = buf + strlen(PREFIX);
        if (!strncmp(p, "token=", 6)) {
                p += 6;
                if (!is_hex_token(p, strlen(p)))
                        return -EINVAL;
                memcpy(ref.token, p, MIG_TOKEN_LEN + 1);
        } else if (!strncmp(p, "pid=", 4)) {
                p += 4;
                if (parse_uint(&p, &ref.pid) < 0 || ref.pid == 0 || strncmp(p, " fd=", 4) != 0)
                        return -EINVAL;
                p += 4;
                if (parse_uint(&p, &ref.fd) < 0 || *p)
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (ret)
                *ret = ref;
        return 0;
}

static int pid_getfd(int pid, int fd, int *ret_fd)
{
        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
                return -errno;
        int r = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0); /* close-on-exec by definition */
        if (r < 0)
                return -errno;
        *ret_fd = r;
        return 0;
}

int mig_socket_resolve(struct mig_handoff *h, const void *info, size_t len, int *ret_fd)
{
        struct mig_socket_ref ref;
        int r = mig_socket_parse(info, len, &ref);
        if (r < 0)
                return r;
        if (ref.token[0])
                return h ? mig_handoff_claim(h, ref.token, ret_fd) : -ENOENT;
        return pid_getfd(ref.pid, ref.fd, ret_fd);
}

int mig_socket_check(int fd)
{
        int type = 0;
        socklen_t len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return errno == ENOTSOCK ? -ENOTSOCK : -errno;
        if (type != SOCK_STREAM)
                return -EPROTOTYPE;
        struct sockaddr_storage peer;
        len = sizeof(peer);
        if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
                return errno == ENOTCONN ? -EBUSY : -errno;
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
                fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        return 0;
}

int mig_token_new(char out[MIG_TOKEN_LEN + 1])
{
        uint8_t raw[MIG_TOKEN_LEN / 2];
        static const char hex[] = "0123456789abcdef";
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
                return -EIO;
        for (size_t i = 0; i < sizeof(raw); i++) {
                out[2 * i] = hex[raw[i] >> 4];
                out[2 * i + 1] = hex[raw[i] & 15];
        }
        out[MIG_TOKEN_LEN] = '\0';
        return 0;
}

/* ---- the shim's handoff listener ------------------------------------------------------ */

struct handoff_slot {
        char token[MIG_TOKEN_LEN + 1];
        int fd;
        uint64_t at_us;
};

struct handoff_conn {
        uv_poll_t poll;
        int fd;
        bool ending;
        struct mig_handoff *h;
        struct handoff_conn *next, **pprev; /* open connections, closed with the listener */
};

struct mig_handoff {
        uv_loop_t *loop;
        uv_poll_t poll;
        int fd;
        unsigned open_handles;
        bool closing;
        struct handoff_conn *conns;
        struct handoff_slot slots[MIG_HANDOFF_SLOTS];
};

static void slot_clear(struct handoff_slot *sl)
{
        if (sl->fd >= 0)
                close(sl->fd);
        sl->fd = -1;
        sl->token[0] = '\0';
}

static void expire(struct mig_handoff *h)
{
        uint64_t now = ferry_now_us();
        for (size_t i = 0; i < MIG_HANDOFF_SLOTS; i++)
                if (h->slots[i].fd >= 0 && now - h->slots[i].at_us > MIG_HANDOFF_TTL_US)
                        slot_clear(&h->slots[i]);
}

static void maybe_free(struct mig_handoff *h)
{
        if (h->closing && h->open_handles == 0)
                free(h);
}

static void conn_closed(uv_handle_t *handle)
{
        struct handoff_conn *c = handle->data;
        struct mig_handoff *h = c->h;
        close(c->fd);
        free(c);
        h->open_handles--;
        maybe_free(h);
}

static void conn_end(struct handoff_conn *c)
{
        if (c->ending)
                return;
        c->ending = true;
        *c->pprev = c->next;
        if (c->next)
                c->next->pprev = c->pprev;
        uv_poll_stop(&c->poll);
        uv_close((uv_handle_t *)&c->poll, conn_closed);
}

/* Stores (token, fd); fd taken. */
static int store(struct mig_handoff *h, const char *token, int fd)
{
        expire(h);
        struct handoff_slot *free_slot = NULL;
        for (size_t i = 0; i < MIG_HANDOFF_SLOTS; i++) {
                struct handoff_slot *sl = &h->slots[i];
                if (sl->fd >= 0 && !strcmp(sl->token, token)) {
                        close(fd);
                        return -EEXIST; /* tokens are one-time */
                }
                if (sl->fd < 0 && !free_slot)
                        free_slot = sl;
        }
        if (!free_slot) {
                close(fd);
                return -ENOSPC;
        }
        memcpy(free_slot->token, token, MIG_TOKEN_LEN + 1);
        free_slot->fd = fd;
        free_slot->at_us = ferry_now_us();
        return 0;
}

static void conn_readable(uv_poll_t *p, int status, int events)
{
        struct handoff_conn *c = p->data;
        char buf[MSG_LEN + 1];
        union {
                char b[CMSG_SPACE(sizeof(int) * 4)];
                struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = buf, .iov_len = MSG_LEN};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.b,
                             .msg_controllen = sizeof(ctl.b)};
        ssize_t n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        int got = -1, extra = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *fds = (int *)CMSG_DATA(cm);
                for (size_t i = 0; i < nfd; i++) {
                        if (got < 0)
                                got = fds[i];
                        else
                                close(fds[i]), extra++;
                }
        }
        uint8_t ack = 1;
        if (n == MSG_LEN && got >= 0 && !extra && !(msg.msg_flags & MSG_CTRUNC) &&
            !memcmp(buf, HELLO, HELLO_LEN) && is_hex_token(buf + HELLO_LEN, MIG_TOKEN_LEN)) {
                buf[MSG_LEN] = '\0';
                ack = store(c->h, buf + HELLO_LEN, got) == 0 ? 0 : 1;
        } else if (got >= 0) {
                close(got);
        }
        /* best effort (the orchestrator may have gone): never SIGPIPE */
        ssize_t w = send(c->fd, &ack, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        conn_end(c);
}

static void listener_readable(uv_poll_t *p, int status, int events)
{
        struct mig_handoff *h = p->data;
        for (;;) {
                int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                struct handoff_conn *c = calloc(1, sizeof(*c));
                if (!c || uv_poll_init(h->loop, &c->poll, fd) < 0) {
                        free(c);
                        close(fd);
                        continue;
                }
                c->fd = fd;
                c->h = h;
                c->poll.data = c;
                c->next = h->conns;
                if (c->next)
                        c->next->pprev = &c->next;
                c->pprev = &h->conns;
                h->conns = c;
                h->open_handles++;
                uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT, conn_readable);
        }
}

int mig_handoff_listen(uv_loop_t *loop, const char *path, struct mig_handoff **ret)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (ferry_strscpy(sa.sun_path, path, sizeof(sa.sun_path)) < 0)
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        if (chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
                int r = -errno;
                unlink(path);
                return r;
        }
        struct mig_handoff *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < MIG_HANDOFF_SLOTS; i++)
                h->slots[i].fd = -1;
        h->loop = loop;
        h->fd = TAKE_FD(fd);
        int r = uv_poll_init(loop, &h->poll, h->fd);
        if (r < 0) {
                close(h->fd);
                free(h);
                return r;
        }
        h->poll.data = h;
        h->open_handles = 1;
        uv_poll_start(&h->poll, UV_READABLE, listener_readable);
        *ret = h;
        return 0;
}

int mig_handoff_claim(struct mig_handoff *h, const char *token, int *ret_fd)
{
        expire(h);
        for (size_t i = 0; i < MIG_HANDOFF_SLOTS; i++) {
                struct handoff_slot *sl = &h->slots[i];
                if (sl->fd >= 0 && !strcmp(sl->token, token)) {
                        *ret_fd = TAKE_FD(sl->fd);
                        sl->token[0] = '\0';
                        return 0;
                }
        }
        return -ENOENT;
}

unsigned mig_handoff_held(const struct mig_handoff *h)
{
        unsigned n = 0;
        for (size_t i = 0; i < MIG_HANDOFF_SLOTS; i++)
                n += h->slots[i].fd >= 0;
        return n;
}

static void listener_closed(uv_handle_t *handle)
{
        struct mig_handoff *h = handle->data;
        close(h->fd);
        h->open_handles--;
        maybe_free(h);
}

void mig_handoff_close(struct mig_handoff *h)
{
        if (!h)
                return;
        for (size_t i = 0; i < MIG_HANDOFF_SLOTS; i++)
                slot_clear(&h->slots[i]);
        h->closing = true;
        while (h->conns)
                conn_end(h->conns);
        uv_poll_stop(&h->poll);
        uv_close((uv_handle_t *)&h->poll, listener_closed);
}

/* ---- the orchestrator's side ---------------------------------------------------------- */

int mig_handoff_send(const char *path, int fd, const char *token, int timeout_ms)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (!is_hex_token(token, strlen(token)))
                return -EINVAL;
        if (ferry_strscpy(sa.sun_path, path, sizeof(sa.sun_path)) < 0)
                return -ENAMETOOLONG;
        _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return -errno;
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        char buf[MSG_LEN];
        memcpy(buf, HELLO, HELLO_LEN);
        memcpy(buf + HELLO_LEN, token, MIG_TOKEN_LEN);
        union {
                char b[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof(ctl));
        struct iovec iov = {.iov_base = buf, .iov_len = MSG_LEN};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.b,
                             .msg_controllen = sizeof(ctl.b)};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        ssize_t w = sendmsg(s, &msg, MSG_NOSIGNAL);
        if (w < 0)
                return -errno;
        if (w != MSG_LEN)
                return -EIO;
        struct pollfd pfd = {.fd = s, .events = POLLIN};
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0)
                return -errno;
        if (r == 0)
                return -ETIMEDOUT;
        uint8_t ack = 1;
        if (read(s, &ack, 1) != 1)
                return -EPROTO;
        return ack == 0 ? 0 : -EPROTO;
}
