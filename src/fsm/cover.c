/* SPDX-License-Identifier: MIT */
#include "fsm/cover.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

#define N_COLS     (FSM_RESULT__COUNT + 2) /* results, then guard true, guard false */
#define COL_GTRUE  FSM_RESULT__COUNT
#define COL_GFALSE (FSM_RESULT__COUNT + 1)

struct cover_machine {
        const struct fsm_machine *machine; /* borrowed: generated tables live forever */
        uint64_t *counts;                  /* n_arms × N_COLS, owned */
};

struct fsm_cover {
        struct cover_machine *machines; /* owned */
        size_t n_machines;
        uint64_t dropped; /* records lost to allocation failures */
};

int fsm_cover_new(struct fsm_cover **ret_cover)
{
        struct fsm_cover *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        *ret_cover = c;
        return 0;
}

struct fsm_cover *fsm_cover_free(struct fsm_cover *cover)
{
        if (!cover)
                return NULL;
        for (size_t i = 0; i < cover->n_machines; i++)
                free(cover->machines[i].counts);
        free(cover->machines);
        free(cover);
        return NULL;
}

static const struct cover_machine *find(const struct fsm_cover *cover, const struct fsm_machine *mc)
{
        for (size_t i = 0; i < cover->n_machines; i++)
                if (cover->machines[i].machine == mc)
                        return &cover->machines[i];
        return NULL;
}

static int get(struct fsm_cover *cover, const struct fsm_machine *mc, struct cover_machine **ret)
{
        struct cover_machine *ms;
        uint64_t *counts;

        for (size_t i = 0; i < cover->n_machines; i++)
                if (cover->machines[i].machine == mc) {
                        *ret = &cover->machines[i];
                        return 0;
                }
        counts = calloc((size_t)mc->n_arms * N_COLS, sizeof(*counts));
        if (!counts)
                return -ENOMEM;
        ms = realloc(cover->machines, (cover->n_machines + 1) * sizeof(*ms));
        if (!ms) {
                free(counts);
                return -ENOMEM;
        }
        cover->machines = ms;
        ms[cover->n_machines] = (struct cover_machine){.machine = mc, .counts = counts};
        *ret = &ms[cover->n_machines++];
        return 0;
}

int fsm_cover_record(struct fsm_cover *cover, const struct fsm_trace *rec)
{
        const struct fsm_machine *mc = rec->machine;
        const struct fsm_arm *a;
        struct cover_machine *ms;
        int r;

        if (rec->arm >= mc->n_arms || rec->from >= mc->n_states || rec->event >= mc->n_events ||
            (unsigned)rec->result >= FSM_RESULT__COUNT)
                return -EINVAL;
        r = get(cover, mc, &ms);
        if (r < 0) {
                cover->dropped++;
                return r;
        }
        ms->counts[(size_t)rec->arm * N_COLS + rec->result]++;
        /* guard outcomes: walk the cell's chain up to the deciding arm */
        a = fsm_cell_arm(mc, rec->from, rec->event, NULL);
        while (a) {
                size_t i = (size_t)(a - mc->arms);

                if (i == rec->arm) {
                        if (a->guard)
                                ms->counts[i * N_COLS + COL_GTRUE]++;
                        break;
                }
                if (a->guard)
                        ms->counts[i * N_COLS + COL_GFALSE]++;
                a = a->next != FSM_NONE ? &mc->arms[a->next] : NULL;
        }
        return 0;
}

void fsm_cover_hook(const struct fsm_trace *rec, void *userdata)
{
        /* a hook cannot fail: drops are counted in the recorder */
        (void)fsm_cover_record(userdata, rec);
}

uint64_t fsm_cover_count(const struct fsm_cover *cover, const struct fsm_machine *machine,
                         unsigned arm, enum fsm_result result)
{
        const struct cover_machine *ms = find(cover, machine);

        if (!ms || arm >= machine->n_arms || (unsigned)result >= FSM_RESULT__COUNT)
                return 0;
        return ms->counts[(size_t)arm * N_COLS + result];
}

uint64_t fsm_cover_guard(const struct fsm_cover *cover, const struct fsm_machine *machine,
                         unsigned arm, bool outcome)
{
        const struct cover_machine *ms = find(cover, machine);

        if (!ms || arm >= machine->n_arms)
                return 0;
        return ms->counts[(size_t)arm * N_COLS + (outcome ? COL_GTRUE : COL_GFALSE)];
}

int fsm_cover_dump(const struct fsm_cover *cover, FILE *f)
{
        fprintf(f, "ferry-fsm-cover 1\n");
        for (size_t i = 0; i < cover->n_machines; i++) {
                const struct cover_machine *ms = &cover->machines[i];
                const struct fsm_machine *mc = ms->machine;

                fprintf(f, "machine %s %s %u\n", mc->name, mc->spec_hash, mc->n_arms);
                for (unsigned a = 0; a < mc->n_arms; a++) {
                        const uint64_t *c = &ms->counts[(size_t)a * N_COLS];
                        uint64_t any = 0;

                        for (unsigned k = 0; k < N_COLS; k++)
                                any |= c[k];
                        if (!any)
                                continue;
                        fprintf(f, "arm %u %llu %llu %llu %llu %llu %llu %llu\n", a,
                                (unsigned long long)c[FSM_RESULT_OK],
                                (unsigned long long)c[FSM_RESULT_PENDING],
                                (unsigned long long)c[FSM_RESULT_FAILED],
                                (unsigned long long)c[FSM_RESULT_IGNORED],
                                (unsigned long long)c[FSM_RESULT_REJECTED],
                                (unsigned long long)c[COL_GTRUE],
                                (unsigned long long)c[COL_GFALSE]);
                }
        }
        if (cover->dropped)
                fprintf(f, "dropped %llu\n", (unsigned long long)cover->dropped);
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}

int fsm_cover_dump_dir(const struct fsm_cover *cover, const char *dir)
{
        static unsigned seq;
        char path[4096];
        FILE *f;
        int fd, r;

        for (;;) {
                if (ferry_bprintf(path, sizeof(path), "%s/fsm-cover-%ld-%u.txt", dir,
                                  (long)getpid(), seq++) < 0)
                        return -ENAMETOOLONG;
                fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd >= 0)
                        break;
                if (errno != EEXIST)
                        return -errno;
        }
        f = fdopen(fd, "w");
        if (!f) {
                r = -errno;
                close(fd);
                return r;
        }
        r = fsm_cover_dump(cover, f);
        if (fclose(f) != 0 && r == 0)
                r = -EIO;
        return r;
}

/* Loop threads of one process (a test may run two) share the process-wide recorder. */
static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;

static struct fsm_cover *env_cover;
static char env_dir[4096];

static void dump_at_exit(void)
{
        /* nobody is left to tell: a failed dump shows as missing counts in the report */
        pthread_mutex_lock(&env_lock);
        (void)fsm_cover_dump_dir(env_cover, env_dir);
        pthread_mutex_unlock(&env_lock);
}

void fsm_cover_env_hook(const struct fsm_trace *rec, void *userdata)
{
        pthread_mutex_lock(&env_lock);
        (void)fsm_cover_record(userdata, rec);
        pthread_mutex_unlock(&env_lock);
}

static struct fsm_cover *cover_from_env_locked(void);

struct fsm_cover *fsm_cover_from_env(void)
{
        pthread_mutex_lock(&env_lock);
        struct fsm_cover *c = cover_from_env_locked();
        pthread_mutex_unlock(&env_lock);
        return c;
}

static struct fsm_cover *cover_from_env_locked(void)
{
        const char *dir = getenv("FERRY_FSM_COVERAGE");

        if (!dir || !*dir)
                return NULL;
        if (!env_cover) {
                if (ferry_strscpy(env_dir, dir, sizeof(env_dir)) < 0)
                        return NULL;
                if (mkdir(env_dir, 0755) < 0 && errno != EEXIST)
                        return NULL;
                if (fsm_cover_new(&env_cover) < 0)
                        return NULL;
                if (atexit(dump_at_exit) != 0) {
                        env_cover = fsm_cover_free(env_cover);
                        return NULL;
                }
        }
        return env_cover;
}
