/* SPDX-License-Identifier: MIT */
/* Drives the fuzz target without libFuzzer (gcc builds, CI): runs every file named on the
 * command line, the golden frames as a built-in seed corpus, then a fixed number of seeded
 * random mutations of those seeds. Usage: fuzz-replay [-n MUTATIONS] [-s SEED] [FILE...] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT (128u << 10)

struct seed {
        const uint8_t *p;
        size_t n;
};

static const struct seed seeds[] = {
    {gold_unary_request, sizeof(gold_unary_request)},
    {gold_unary_request_md, sizeof(gold_unary_request_md)},
    {gold_unary_reply, sizeof(gold_unary_reply)},
    {gold_stream_request, sizeof(gold_stream_request)},
    {gold_stream_data1, sizeof(gold_stream_data1)},
    {gold_stream_close, sizeof(gold_stream_close)},
    {gold_oversize_header, sizeof(gold_oversize_header)},
    {gold_oversize_reply, sizeof(gold_oversize_reply)},
    {gold_even_sid_reply, sizeof(gold_even_sid_reply)},
};

static uint64_t rng;

static uint32_t next_rand(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)rng;
}

static int run_file(const char *path, uint8_t *buf)
{
        FILE *f = fopen(path, "rbe");
        if (!f) {
                fprintf(stderr, "fuzz-replay: cannot open %s\n", path);
                return -1;
        }
        size_t n = fread(buf, 1, MAX_INPUT, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        return 0;
}

int main(int argc, char **argv)
{
        unsigned long mutations = 3000;
        rng = 0x9e3779b97f4a7c15ull;
        int i = 1;
        for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
                if (strcmp(argv[i], "-n") == 0)
                        mutations = strtoul(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "-s") == 0)
                        rng = strtoull(argv[i + 1], NULL, 10) | 1;
        }
        uint8_t *buf = malloc(MAX_INPUT);
        if (!buf)
                return 1;
        int files = argc - i;
        for (; i < argc; i++)
                if (run_file(argv[i], buf) < 0)
                        return 1;

        /* the seeds alone, then all of them back to back behind a split seed byte */
        size_t all = 1;
        buf[0] = 0;
        for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
                buf[0] = (uint8_t)s;
                memcpy(buf + 1, seeds[s].p, seeds[s].n);
                LLVMFuzzerTestOneInput(buf, seeds[s].n + 1);
        }
        uint8_t *base = malloc(MAX_INPUT);
        base[0] = 0;
        for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
                memcpy(base + all, seeds[s].p, seeds[s].n);
                all += seeds[s].n;
        }
        LLVMFuzzerTestOneInput(base, all);

        for (unsigned long m = 0; m < mutations; m++) {
                /* splice 1..4 seeds, then flip, insert or truncate a few bytes */
                size_t n = 1;
                buf[0] = (uint8_t)next_rand();
                int parts = 1 + (int)(next_rand() % 4);
                for (int k = 0; k < parts; k++) {
                        const struct seed *sd =
                            &seeds[next_rand() % (sizeof(seeds) / sizeof(seeds[0]))];
                        memcpy(buf + n, sd->p, sd->n);
                        n += sd->n;
                }
                int edits = (int)(next_rand() % 6);
                for (int k = 0; k < edits && n > 1; k++) {
                        size_t at = 1 + next_rand() % (n - 1);
                        switch (next_rand() % 3) {
                        case 0:
                                buf[at] ^= (uint8_t)(1u << (next_rand() % 8));
                                break;
                        case 1:
                                buf[at] = (uint8_t)next_rand();
                                break;
                        default:
                                n = at + 1;
                                break;
                        }
                }
                LLVMFuzzerTestOneInput(buf, n);
        }
        printf("fuzz-replay: %lu mutations, %d files\n", mutations, files);
        free(base);
        free(buf);
        return 0;
}
