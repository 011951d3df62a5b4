/* SPDX-License-Identifier: MIT */
/* Benchmark: sim-backend migration of a 256 MiB image over a unix socketpair and loopback TCP,
 * beside a plain write/read copy of the same bytes over the same kind of socket in the same
 * run; plus blackout and passes for an idle and a busy workload. Prints one line per figure. */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define BENCH_MB    256
#define REPEATS     7 /* default; FERRY_BENCH_REPEATS overrides (odd, at most REPEATS_MAX) */
#define REPEATS_MAX 31

/* Knobs for profiling one path without the full run: FERRY_BENCH_REPEATS=n,
 * FERRY_BENCH_SOCKETS=unix|tcp (default both), FERRY_BENCH_BUSY=0 skips the busy workloads. */
static int env_int(const char *name, int def)
{
        const char *v = getenv(name);
        return v && *v ? atoi(v) : def;
}

struct writer {
        int fd;
        size_t chunk;
        const uint8_t *buf;
        size_t size;
};

/* CPU time of the whole process (all threads, user + system), in ms. On 2 cores both ends of
 * a transfer are CPU-bound, so CPU per image is the cost that a shared, noisy machine does not
 * blur the way wall time is blurred. */
static double cpu_ms(void)
{
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* One measurement: throughput and the CPU it took. */
struct fig {
        double mib_s, cpu_ms;
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
 * (pre-faulted) mapping, as the destination VM's memory is. */
static struct fig plain_copy(bool tcp, const uint8_t *src, size_t size, size_t chunk)
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
        double c0 = cpu_ms();
        uint64_t t0 = ferry_now_ns();
        assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
        size_t off = 0;
        while (off < size) {
                size_t n = size - off < chunk ? size - off : chunk;
                ssize_t r = read(fds[1], dst + off, n);
                assert_true(r > 0);
                off += (size_t)r;
        }
        pthread_join(t, NULL);
        uint64_t t1 = ferry_now_ns();
        double c1 = cpu_ms();
        assert_int_equal(memcmp(src, dst, size), 0);
        munmap(dst, size);
        close(fds[0]);
        close(fds[1]);
        return (struct fig){(double)size / (1 << 20) / ((double)(t1 - t0) / 1e9), c1 - c0};
}

struct sim_result {
        double mib_s, cpu_ms;
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
        double c0 = cpu_ms();
        uint64_t t0 = ferry_now_ns();
        assert_int_equal(hcs_lm_transfer(src, on_done, &rs), 0);
        assert_int_equal(hcs_lm_transfer(dst, on_done, &rd), 0);
        run_until(&rs.done, 60000);
        run_until(&rd.done, 60000);
        uint64_t t1 = ferry_now_ns();
        double c1 = cpu_ms();
        assert_int_equal(rs.r, 0);
        assert_int_equal(rd.r, 0);
        assert_int_equal(image_hash(src), image_hash(dst));
        struct sim_vm *v = vm_of(src);
        struct sim_result res = {
            .mib_s = (double)v->mem_size / (1 << 20) / ((double)(t1 - t0) / 1e9),
            .cpu_ms = c1 - c0,
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

/* Median and best of n figures. */
struct summary {
        double med, best, cpu;
};

static struct summary summarize(const struct fig *f, int n)
{
        double t[REPEATS_MAX], c[REPEATS_MAX];
        for (int i = 0; i < n; i++) {
                t[i] = f[i].mib_s;
                c[i] = f[i].cpu_ms;
        }
        qsort(t, (size_t)n, sizeof(double), cmp_double);
        qsort(c, (size_t)n, sizeof(double), cmp_double);
        return (struct summary){t[n / 2], t[n - 1], c[n / 2]};
}

/* Median over the repeats of sim / plain where both ran back to back (plain: the better
 * chunk size of that repeat): on a shared machine neighbours in time see the same load. */
static double paired_ratio(const struct fig *sim, const struct fig *p2, const struct fig *p8, int n)
{
        double r[REPEATS_MAX];
        for (int i = 0; i < n; i++)
                r[i] = sim[i].mib_s / (p2[i].mib_s > p8[i].mib_s ? p2[i].mib_s : p8[i].mib_s);
        qsort(r, (size_t)n, sizeof(double), cmp_double);
        return r[n / 2];
}

static void print_sim(const char *kind, const char *what, struct summary s, struct summary p,
                      double paired, const struct sim_result *last)
{
        printf("%s: sim transfer, checksum %s: %.0f MiB/s, ratio %.2f (paired %.2f; best %.0f, "
               "ratio %.2f; CPU %.0f ms, %.2f x plain) idle: %u passes, blackout %.1f ms",
               kind, what, s.med, s.med / p.med, paired, s.best, s.best / p.best, s.cpu,
               s.cpu / p.cpu, last->passes, (double)last->blackout_us / 1000);
        if (last->hash_src_us || last->hash_dst_us)
                printf("; page hashing %.1f ms source, %.1f ms destination",
                       (double)last->hash_src_us / 1000, (double)last->hash_dst_us / 1000);
        printf("\n");
}

static void bench(void **state)
{
        size_t size = (size_t)BENCH_MB << 20;
        uint8_t *img = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(img != MAP_FAILED);
        for (size_t i = 0; i < size / 8; i++)
                ((uint64_t *)img)[i] = i * 0x9e3779b97f4a7c15ULL;
        /* Both hashes over the image from memory, page by page as the transfer calls them. */
        for (int bulk = 0; bulk <= 1; bulk++) {
                uint64_t h0 = ferry_now_ns();
                uint64_t acc = 0;
                for (size_t off = 0; off < size; off += SIM_PAGE_SIZE)
                        acc += bulk ? hcs_hash64_bulk(img + off, SIM_PAGE_SIZE, off)
                                    : hcs_hash64(img + off, SIM_PAGE_SIZE, off);
                double ms = (double)(ferry_now_ns() - h0) / 1e6;
                volatile uint64_t sink = acc;
                (void)sink;
                printf("page hash %s: %.0f MiB/s (%.1f ms per 256 MiB image, from memory)\n",
                       bulk ? "hcs_hash64_bulk (transfer)" : "hcs_hash64", BENCH_MB / (ms / 1e3),
                       ms);
        }

        int repeats = env_int("FERRY_BENCH_REPEATS", REPEATS);
        if (repeats < 1 || repeats > REPEATS_MAX)
                repeats = REPEATS;
        const char *only = getenv("FERRY_BENCH_SOCKETS");
        for (int tcp = 0; tcp <= 1; tcp++) {
                const char *kind = tcp ? "tcp-loopback" : "unix-socketpair";
                if (only && *only && strcmp(only, tcp ? "tcp" : "unix") != 0)
                        continue;
                struct fig plain2[REPEATS_MAX], plain8[REPEATS_MAX], sim[REPEATS_MAX],
                    nosum[REPEATS_MAX];
                struct sim_result last = {0}, last_nosum = {0};
                /* Interleaved so all four see the same machine state. */
                for (int i = 0; i < repeats; i++) {
                        plain2[i] = plain_copy(tcp, img, size, 2u << 20);
                        plain8[i] = plain_copy(tcp, img, size, 8u << 20);
                        last = sim_transfer(tcp, 0, NULL);
                        sim[i] = (struct fig){last.mib_s, last.cpu_ms};
                        last_nosum = sim_transfer(tcp, 0, "{\"ChecksumVerification\":false}");
                        nosum[i] = (struct fig){last_nosum.mib_s, last_nosum.cpu_ms};
                }
                struct summary p2 = summarize(plain2, repeats), p8 = summarize(plain8, repeats);
                /* The baseline is the better of 2 MiB and 8 MiB writes/reads (by median). */
                struct summary p = p2.med > p8.med ? p2 : p8;
                printf("%s: plain copy %.0f MiB/s (best %.0f; CPU %.0f ms) (2 MiB chunks %.0f, "
                       "8 MiB chunks %.0f)\n",
                       kind, p.med, p.best, p.cpu, p2.med, p8.med);
                print_sim(kind, "on ", summarize(sim, repeats), p,
                          paired_ratio(sim, plain2, plain8, repeats), &last);
                print_sim(kind, "off", summarize(nosum, repeats), p,
                          paired_ratio(nosum, plain2, plain8, repeats), &last_nosum);
        }
        munmap(img, size);

        static const uint64_t rates[] = {25000, 100000};
        for (size_t i = 0; i < ARRAY_SIZE(rates) && env_int("FERRY_BENCH_BUSY", 1); i++) {
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
            LOOP_TEST(bench),
        };
        return cmocka_run_group_tests_name("bench_transfer", tests, NULL, NULL);
}
