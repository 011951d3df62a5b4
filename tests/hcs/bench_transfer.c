/* SPDX-License-Identifier: MIT */
/* Benchmark: sim-backend migration of a 256 MiB image over a unix socketpair and loopback TCP,
 * beside a plain write/read copy of the same bytes over the same kind of socket in the same
 * run; plus blackout and passes for an idle and a busy workload. Prints one line per figure. */
#include "helpers.h"

#include <pthread.h>
#include <sys/mman.h>

#define BENCH_MB 256
#define REPEATS  7

struct writer {
        int fd;
        size_t chunk;
        const uint8_t *buf;
        size_t size;
};

static void *writer_main(void *arg)
{
        struct writer *w = arg;
        size_t off = 0;
        while (off < w->size) {
                size_t n = w->size - off < w->chunk ? w->size - off : w->chunk;
                ssize_t r = write(w->fd, w->buf + off, n);
                if (r <= 0)
                        break;
                off += (size_t)r;
        }
        return NULL;
}

/* Plain copy: one thread writes the image in chunk-sized writes, this one reads it into a committed
 * (pre-faulted) mapping, as the destination VM's memory is. Returns MiB/s. */
static double plain_copy(bool tcp, const uint8_t *src, size_t size, size_t chunk)
{
        int fds[2];
        if (tcp)
                tcp_pair(fds);
        else
                socket_pair(fds);
        /* The same socket buffers the sim asks for on its adopted socket. */
        int buf = SIM_SOCKET_BUFFER;
        for (int i = 0; i < 2; i++) {
                setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
                setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
        }
        uint8_t *dst = mmap(NULL, size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        assert_true(dst != MAP_FAILED);
        struct writer w = {.fd = fds[0], .chunk = chunk, .buf = src, .size = size};
        pthread_t t;
        uint64_t t0 = ferry_now_ns();
        assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
        size_t off = 0;
        while (off < size) {
                size_t n = size - off < chunk ? size - off : chunk;
                ssize_t r = read(fds[1], dst + off, n);
                assert_true(r > 0);
                off += (size_t)r;
        }
        uint64_t t1 = ferry_now_ns();
        pthread_join(t, NULL);
        assert_int_equal(memcmp(src, dst, size), 0);
        munmap(dst, size);
        close(fds[0]);
        close(fds[1]);
        return (double)size / (1 << 20) / ((double)(t1 - t0) / 1e9);
}

struct sim_result {
        double mib_s;
        uint32_t passes;
        uint64_t blackout_us;
        uint64_t checksum_us;
        uint64_t hash_src_us, hash_dst_us;
        uint64_t bytes;
};

static struct sim_result sim_transfer(bool tcp, uint64_t rate, const char *opts)
{
        struct notes ns = {0}, nd = {0};
        struct hcs_system *src = running_system("bsrc", BENCH_MB, rate, &ns);
        char data[512];
        compat_b64(src, data, sizeof(data));
        struct hcs_system *dst = new_system("bdst", BENCH_MB, rate, data, &nd);
        assert_int_equal(SYNC(hcs_create, dst), 0);
        run_for_ms(rate ? 200 : 1); /* let a busy workload get going */
        struct result ri = {0};
        assert_int_equal(hcs_lm_initialize(src, opts, on_blob, &ri), 0);
        run_until(&ri.done, 5000);
        assert_int_equal(ri.r, 0);
        int fds[2];
        if (tcp)
                tcp_pair(fds);
        else
                socket_pair(fds);
        assert_int_equal(SYNC(hcs_lm_start_source, src, fds[0], 1), 0);
        assert_int_equal(SYNC(hcs_lm_start_destination, dst, fds[1], 1), 0);
        struct result rs = {0}, rd = {0};
        uint64_t t0 = ferry_now_ns();
        assert_int_equal(hcs_lm_transfer(src, on_done, &rs), 0);
        assert_int_equal(hcs_lm_transfer(dst, on_done, &rd), 0);
        run_until(&rs.done, 60000);
        run_until(&rd.done, 60000);
        uint64_t t1 = ferry_now_ns();
        assert_int_equal(rs.r, 0);
        assert_int_equal(rd.r, 0);
        assert_int_equal(image_hash(src), image_hash(dst));
        struct sim_vm *v = vm_of(src);
        struct sim_result res = {
            .mib_s = (double)v->mem_size / (1 << 20) / ((double)(t1 - t0) / 1e9),
            .passes = v->last_passes,
            .blackout_us = v->last_blackout_us,
            .checksum_us = v->last_checksum_us,
            .hash_src_us = v->last_hash_us,
            .hash_dst_us = vm_of(dst)->last_hash_us,
            .bytes = v->last_bytes,
        };
        assert_int_equal(SYNC(hcs_lm_finalize, src, false), 0);
        assert_int_equal(SYNC(hcs_lm_finalize, dst, true), 0);
        close_system(src);
        close_system(dst);
        return res;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static void bench(void **state)
{
        size_t size = (size_t)BENCH_MB << 20;
        uint8_t *img = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(img != MAP_FAILED);
        for (size_t i = 0; i < size / 8; i++)
                ((uint64_t *)img)[i] = i * 0x9e3779b97f4a7c15ULL;
        uint64_t h0 = ferry_now_ns();
        volatile uint64_t sink = hcs_hash64(img, size, 1);
        (void)sink;
        printf("checksum: %.0f MiB/s (%.1f ms per 256 MiB image)\n",
               (double)BENCH_MB / ((double)(ferry_now_ns() - h0) / 1e9),
               (double)(ferry_now_ns() - h0) / 1e6);

        for (int tcp = 0; tcp <= 1; tcp++) {
                const char *kind = tcp ? "tcp-loopback" : "unix-socketpair";
                double plain2[REPEATS], plain8[REPEATS], sim[REPEATS], nosum[REPEATS];
                struct sim_result last = {0}, last_nosum = {0};
                /* Interleaved so all three see the same machine state. */
                for (int i = 0; i < REPEATS; i++) {
                        plain2[i] = plain_copy(tcp, img, size, 2u << 20);
                        plain8[i] = plain_copy(tcp, img, size, 8u << 20);
                        last = sim_transfer(tcp, 0, NULL);
                        sim[i] = last.mib_s;
                        last_nosum = sim_transfer(tcp, 0, "{\"ChecksumVerification\":false}");
                        nosum[i] = last_nosum.mib_s;
                }
                qsort(plain2, REPEATS, sizeof(double), cmp_double);
                qsort(plain8, REPEATS, sizeof(double), cmp_double);
                qsort(sim, REPEATS, sizeof(double), cmp_double);
                qsort(nosum, REPEATS, sizeof(double), cmp_double);
                /* The baseline is the better of 2 MiB and 8 MiB writes/reads. */
                double p2 = plain2[REPEATS / 2], p8 = plain8[REPEATS / 2];
                double p = p2 > p8 ? p2 : p8;
                printf("%s: plain copy %.0f MiB/s (2 MiB chunks %.0f, 8 MiB chunks %.0f)\n", kind,
                       p, p2, p8);
                printf("%s: sim transfer, checksum on:  %.0f MiB/s, ratio %.2f (idle: %u passes, "
                       "blackout %.1f ms; page hashing %.1f ms source, %.1f ms destination)\n",
                       kind, sim[REPEATS / 2], sim[REPEATS / 2] / p, last.passes,
                       (double)last.blackout_us / 1000, (double)last.hash_src_us / 1000,
                       (double)last.hash_dst_us / 1000);
                printf("%s: sim transfer, checksum off: %.0f MiB/s, ratio %.2f (idle: %u passes, "
                       "blackout %.1f ms)\n",
                       kind, nosum[REPEATS / 2], nosum[REPEATS / 2] / p, last_nosum.passes,
                       (double)last_nosum.blackout_us / 1000);
        }
        munmap(img, size);

        static const uint64_t rates[] = {25000, 100000};
        for (size_t i = 0; i < ARRAY_SIZE(rates); i++) {
                struct sim_result r = sim_transfer(false, rates[i], NULL);
                printf("busy workload %llu pages/s (%.0f MiB/s dirtied), unix: %u passes, "
                       "%.0f MiB sent, blackout %.1f ms, effective %.0f MiB/s\n",
                       (unsigned long long)rates[i], (double)rates[i] * 4096 / (1 << 20), r.passes,
                       (double)r.bytes / (1 << 20), (double)r.blackout_us / 1000, r.mib_s);
        }
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(bench, setup_loop, teardown_loop),
        };
        return cmocka_run_group_tests_name("bench_transfer", tests, NULL, NULL);
}
