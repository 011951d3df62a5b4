/* SPDX-License-Identifier: MIT */
/* ttrpc unary round trips against the physical floor: a plain length-prefixed echo over the
 * same kind of unix socket carrying the same number of bytes each way, in the same run.
 * Reports calls/s, p50 and p99 latency over 1 and over 8 connections (one call in flight per
 * connection), and the ttrpc/plain ratio. Usage: bench-rpc [SECONDS_PER_SAMPLE] */
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "echo_service.h"
#include "util/util.h"

#define MAX_CONNS   8
#define MAX_SAMPLES (4u << 20)

struct stats {
        double rate;
        double p50_us, p99_us;
        uint64_t n;
};

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void summarize(uint64_t *lat, uint64_t n, uint64_t elapsed_ns, struct stats *st)
{
        qsort(lat, n, sizeof(*lat), cmp_u64);
        st->n = n;
        st->rate = n / (elapsed_ns / 1e9);
        st->p50_us = n ? lat[n / 2] / 1e3 : 0;
        st->p99_us = n ? lat[(n * 99) / 100] / 1e3 : 0;
}

/* ---------------- ttrpc ---------------- */

struct tconn {
        struct ttrpc_client *c;
        Ferry__Test__EchoRequest req;
        uint64_t t0;
        int stop;
};

static uint64_t *t_lat;
static uint64_t t_n;
static int t_active;
static uint64_t t_end;

static void t_issue(struct tconn *tc);

static void t_done(enum ferry_code code, const char *msg, ProtobufCMessage *resp, void *ud)
{
        struct tconn *tc = ud;
        uint64_t now = ferry_now_ns();
        if (code != FERRY_CODE_OK) {
                fprintf(stderr, "bench: call failed: %d %s\n", code, msg ? msg : "");
                exit(1);
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        if (t_n < MAX_SAMPLES)
                t_lat[t_n++] = now - tc->t0;
        if (now >= t_end) {
                t_active--;
                return;
        }
        t_issue(tc);
}

static void t_issue(struct tconn *tc)
{
        tc->t0 = ferry_now_ns();
        int r = ttrpc_client_call(tc->c, "ferry.test.Echo", "Echo", &tc->req.base,
                                  &ferry__test__echo_response__descriptor, NULL, t_done, tc);
        if (r < 0) {
                fprintf(stderr, "bench: call: %s\n", strerror(-r));
                exit(1);
        }
}

static void bench_ttrpc(const char *path, int conns, double secs, struct stats *st)
{
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct tconn tc[MAX_CONNS];
        for (int i = 0; i < conns; i++) {
                Ferry__Test__EchoRequest init = FERRY__TEST__ECHO_REQUEST__INIT;
                tc[i].req = init;
                tc[i].req.text = "ping";
                if (ttrpc_client_connect(&loop, path, NULL, &tc[i].c) < 0) {
                        fprintf(stderr, "bench: connect failed\n");
                        exit(1);
                }
        }
        /* warm-up */
        t_n = 0;
        t_active = conns;
        t_end = ferry_now_ns() + 200 * 1000 * 1000ull;
        for (int i = 0; i < conns; i++)
                t_issue(&tc[i]);
        while (t_active)
                uv_run(&loop, UV_RUN_ONCE);

        t_n = 0;
        t_active = conns;
        uint64_t start = ferry_now_ns();
        t_end = start + (uint64_t)(secs * 1e9);
        for (int i = 0; i < conns; i++)
                t_issue(&tc[i]);
        while (t_active)
                uv_run(&loop, UV_RUN_ONCE);
        summarize(t_lat, t_n, ferry_now_ns() - start, st);
        for (int i = 0; i < conns; i++)
                ttrpc_client_close(tc[i].c);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
}

/* ---------------- plain echo: u32 length + payload, echoed back ---------------- */

static int read_full(int fd, void *buf, size_t n)
{
        size_t got = 0;
        while (got < n) {
                ssize_t r = read(fd, (char *)buf + got, n - got);
                if (r <= 0)
                        return -1;
                got += (size_t)r;
        }
        return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
        size_t put = 0;
        while (put < n) {
                ssize_t r = write(fd, (const char *)buf + put, n - put);
                if (r <= 0)
                        return -1;
                put += (size_t)r;
        }
        return 0;
}

static void *plain_conn(void *arg)
{
        int fd = (int)(intptr_t)arg;
        uint8_t buf[4096];
        for (;;) {
                uint32_t len;
                if (read_full(fd, &len, 4) < 0 || len > sizeof(buf) - 4 ||
                    read_full(fd, buf + 4, len) < 0)
                        break;
                memcpy(buf, &len, 4);
                if (write_full(fd, buf, len + 4) < 0)
                        break;
        }
        close(fd);
        return NULL;
}

static void *plain_server(void *arg)
{
        int lfd = (int)(intptr_t)arg;
        for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        return NULL;
                pthread_t t;
                pthread_create(&t, NULL, plain_conn, (void *)(intptr_t)fd);
                pthread_detach(t);
        }
}

struct pclient {
        const char *path;
        size_t req_len, resp_len;
        double secs;
        uint64_t *lat;
        uint64_t n;
        pthread_barrier_t *bar;
};

static void *plain_client(void *arg)
{
        struct pclient *pc = arg;
        int fd = echo_connect_raw(pc->path);
        if (fd < 0)
                exit(1);
        uint8_t buf[4096] = {0};
        uint32_t len = (uint32_t)(pc->req_len - 4);
        pthread_barrier_wait(pc->bar);
        uint64_t end = ferry_now_ns() + (uint64_t)(pc->secs * 1e9);
        for (;;) {
                uint64_t t0 = ferry_now_ns();
                memcpy(buf, &len, 4);
                if (write_full(fd, buf, pc->req_len) < 0 || read_full(fd, buf, pc->req_len) < 0)
                        exit(1);
                uint64_t now = ferry_now_ns();
                if (pc->n < MAX_SAMPLES / MAX_CONNS)
                        pc->lat[pc->n++] = now - t0;
                if (now >= end)
                        break;
        }
        close(fd);
        return NULL;
}

static void bench_plain(const char *path, int conns, size_t req_len, double secs, struct stats *st)
{
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)conns + 1);
        struct pclient pc[MAX_CONNS];
        pthread_t th[MAX_CONNS];
        for (int i = 0; i < conns; i++) {
                pc[i] = (struct pclient){.path = path,
                                         .req_len = req_len,
                                         .secs = secs,
                                         .lat = t_lat + (size_t)i * (MAX_SAMPLES / MAX_CONNS),
                                         .bar = &bar};
                pthread_create(&th[i], NULL, plain_client, &pc[i]);
        }
        uint64_t start = ferry_now_ns();
        pthread_barrier_wait(&bar);
        start = ferry_now_ns();
        for (int i = 0; i < conns; i++)
                pthread_join(th[i], NULL);
        uint64_t elapsed = ferry_now_ns() - start;
        /* gather the per-thread samples into one array */
        uint64_t n = 0;
        for (int i = 0; i < conns; i++) {
                memmove(t_lat + n, pc[i].lat, pc[i].n * sizeof(uint64_t));
                n += pc[i].n;
        }
        summarize(t_lat, n, elapsed, st);
        pthread_barrier_destroy(&bar);
}

int main(int argc, char **argv)
{
        signal(SIGPIPE, SIG_IGN); /* a peer that goes away must not kill the test */
        double secs = argc > 1 ? strtod(argv[1], NULL) : 0.5;
        t_lat = malloc(MAX_SAMPLES * sizeof(uint64_t));
        struct echo_server es;
        if (!t_lat || echo_server_start(&es, NULL) < 0) {
                fprintf(stderr, "bench: cannot start the ttrpc server\n");
                return 1;
        }

        /* the plain echo moves the same bytes as one ttrpc call: request frame each way */
        Ferry__Test__EchoRequest req = FERRY__TEST__ECHO_REQUEST__INIT;
        req.text = "ping";
        size_t payload = protobuf_c_message_get_packed_size(&req.base);
        size_t req_frame =
            TTRPC_HEADER_LEN + 2 + strlen("ferry.test.Echo") + 2 + strlen("Echo") + 2 + payload;

        char ppath[128];
        ferry_bprintf(ppath, sizeof(ppath), "%s/plain", es.dir);
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        ferry_strscpy(sa.sun_path, ppath, sizeof(sa.sun_path));
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 64) < 0) {
                fprintf(stderr, "bench: plain listener: %s\n", strerror(errno));
                return 1;
        }
        pthread_t pt;
        pthread_create(&pt, NULL, plain_server, (void *)(intptr_t)lfd);
        pthread_detach(pt);

        /* The two kinds alternate in short samples and each keeps its best: on a shared
         * machine a burst of other work then hurts neither side more than the other. */
        int rounds = 5;
        printf("ttrpc unary echo vs plain length-prefixed echo, unix socket, %zu-byte request "
               "frame, best of %d interleaved %.2f s samples, one call in flight per "
               "connection\n",
               req_frame, rounds, secs);
        printf("%-6s %-6s %12s %10s %10s\n", "conns", "kind", "calls/s", "p50 us", "p99 us");
        int cases[] = {1, 8};
        for (size_t k = 0; k < 2; k++) {
                int n = cases[k];
                struct stats plain = {0}, tt = {0};
                for (int r = 0; r < rounds; r++) {
                        struct stats a, b;
                        bench_plain(ppath, n, req_frame, secs, &a);
                        bench_ttrpc(es.path, n, secs, &b);
                        if (a.rate > plain.rate)
                                plain = a;
                        if (b.rate > tt.rate)
                                tt = b;
                }
                printf("%-6d %-6s %12.0f %10.1f %10.1f\n", n, "plain", plain.rate, plain.p50_us,
                       plain.p99_us);
                printf("%-6d %-6s %12.0f %10.1f %10.1f\n", n, "ttrpc", tt.rate, tt.p50_us,
                       tt.p99_us);
                printf("%-6d ratio  %11.0f%%\n", n, 100.0 * tt.rate / plain.rate);
        }
        fflush(stdout);
        unlink(ppath);
        close(lfd);
        echo_server_stop(&es);
        free(t_lat);
        return 0;
}
