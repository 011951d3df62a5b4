/* SPDX-License-Identifier: MIT */
/* ctl_relay (src/cmd/ctl/ctl_relay.c): once a peer sees the connection cut, the relay must
 * already say it dropped. It used to reset the sockets first and set the flag after, so
 * ferryctl could report "the relay never dropped" for a drop its shims had seen (e2e-drop
 * failed that way on a loaded machine). */
/* assert() is this test's check: the release build (NDEBUG) must not remove it */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd/ctl/ctl_relay.h"

#define ROUNDS 300

/* One relay that drops after 100 bytes: the destination's end reads until the cut, then the
 * flag is checked at once, while the relay thread may still be inside its drop. */
static void drop_once(enum ctl_drop_side side)
{
        int src[2], dst[2];
        char buf[256] = {0};
        struct ctl_relay *r;
        ssize_t n;

        assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, src) == 0);
        assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, dst) == 0);
        assert(ctl_relay_start(src[1], dst[0], 100, side, &r) == 0);
        assert(write(src[0], buf, sizeof(buf)) == (ssize_t)sizeof(buf));
        do
                n = read(dst[1], buf, sizeof(buf));
        while (n > 0 || (n < 0 && errno == EINTR));
        assert(ctl_relay_dropped(r));
        assert(ctl_relay_bytes(r) >= 100);
        ctl_relay_free(r);
        close(src[0]);
        close(dst[1]);
}

int main(void)
{
        for (int i = 0; i < ROUNDS; i++) {
                drop_once(CTL_DROP_DESTINATION);
                drop_once(CTL_DROP_BOTH);
        }
        printf("ctl_relay: %d drops seen by the flag first\n", 2 * ROUNDS);
        return 0;
}
