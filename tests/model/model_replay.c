/* SPDX-License-Identifier: MIT */
/*
 * Replays a model checker's counterexample through the C runtime: tells a model bug from a
 * code bug. tests/model/model_trail.py turns a Spin trail into one dispatch a line,
 *
 *   <machine> <instance> <from> <event> <arm> <result> <to>
 *
 * (arm: the position of the deciding alternative in the cell's chain; result: ok, pending,
 * failed, ignored, rejected). For each line this tool dispatches the event to its instance
 * through fsm_dispatch on the generated tables it was linked with, steering the guards to pick
 * the same alternative and the action to return the same result (the stubs that
 * codegen/fsm_promela.py generates call model_steer_guard/model_steer_action), and checks that
 * the C runtime starts in `from` and ends in `to` with the same result and alternative.
 * An instance starts where its first line says (the scenario's initial states).
 *
 *   model_replay EVENTS [--trace FILE]   (--trace: also record an fsm1 trace, src/fsm/trace.h)
 *
 * Exit status: 0 the C runtime made the same run, 1 it diverged (the line is named), 2 usage,
 * I/O or a malformed line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fsm/fsm.h"
#include "fsm/trace.h"

extern const struct fsm_machine migration_machine;
extern const struct fsm_machine vm_machine;

bool model_steer_guard(void);
int model_steer_action(void);

#define MAX_INSTANCES 8
#define NAME_MAX_LEN  64

static const struct fsm_machine *const machines[] = {&migration_machine, &vm_machine};

static struct {
        unsigned arm;   /* the alternative the model took */
        unsigned calls; /* guards asked so far in this dispatch */
        int action;     /* what the action returns */
} steer;

struct instance {
        char name[NAME_MAX_LEN];
        struct fsm fsm;
};

static struct instance instances[MAX_INSTANCES];
static unsigned n_instances;

/* The guard of alternative k is the k-th guard the runtime asks: say yes to the model's. */
bool model_steer_guard(void)
{
        return steer.calls++ == steer.arm;
}

int model_steer_action(void)
{
        return steer.action;
}

static const struct fsm_machine *machine_by_name(const char *name)
{
        for (size_t i = 0; i < sizeof(machines) / sizeof(machines[0]); i++)
                if (strcmp(machines[i]->name, name) == 0)
                        return machines[i];
        return NULL;
}

/* The instance named `name`, created in state `from` on first use; NULL when the table is full. */
static struct fsm *instance_get(const struct fsm_machine *machine, const char *name, int from)
{
        struct instance *in;

        for (unsigned i = 0; i < n_instances; i++)
                if (strcmp(instances[i].name, name) == 0)
                        return &instances[i].fsm;
        if (n_instances == MAX_INSTANCES || strlen(name) >= NAME_MAX_LEN)
                return NULL;
        in = &instances[n_instances++];
        snprintf(in->name, sizeof(in->name), "%s", name);
        fsm_init(&in->fsm, machine, NULL, in->name);
        (void)fsm_set_state(&in->fsm, (unsigned)from);
        return &in->fsm;
}

/* Position of arm index `arm` in the chain of cell (state, event), or -1. */
static int chain_pos(const struct fsm_machine *m, unsigned state, unsigned event, unsigned arm)
{
        const struct fsm_arm *a = fsm_cell_arm(m, state, event, NULL);
        int pos = 0;

        while (a) {
                if ((unsigned)(a - m->arms) == arm)
                        return pos;
                if (a->next == FSM_NONE)
                        break;
                a = &m->arms[a->next];
                pos++;
        }
        return -1;
}

static int action_return(const char *result)
{
        if (strcmp(result, "failed") == 0)
                return -EIO;
        if (strcmp(result, "pending") == 0)
                return FSM_PENDING;
        return 0;
}

/* Replays one line; 0 same, 1 diverged, 2 malformed. */
static int replay_line(unsigned lineno, const char *line)
{
        char mname[NAME_MAX_LEN], iname[NAME_MAX_LEN], from[NAME_MAX_LEN], event[NAME_MAX_LEN];
        char result[16], to[NAME_MAX_LEN];
        const struct fsm_machine *m;
        struct fsm_outcome out;
        struct fsm *f;
        unsigned arm;
        int s_from, s_to, ev, pos;

        if (sscanf(line, "%63s %63s %63s %63s %u %15s %63s", mname, iname, from, event, &arm,
                   result, to) != 7) {
                printf("line %u: malformed\n", lineno);
                return 2;
        }
        m = machine_by_name(mname);
        s_from = m ? fsm_state_by_name(m, from) : -ENOENT;
        s_to = m ? fsm_state_by_name(m, to) : -ENOENT;
        ev = m ? fsm_event_by_name(m, event) : -ENOENT;
        if (!m || s_from < 0 || s_to < 0 || ev < 0) {
                /* a name the model knows and these tables do not: they are not the same graph */
                printf("line %u: %s, %s, %s or %s is not in these tables\n", lineno, mname, from,
                       event, to);
                return 1;
        }
        f = instance_get(m, iname, s_from);
        if (!f) {
                printf("line %u: too many instances\n", lineno);
                return 2;
        }
        if (fsm_state(f) != (unsigned)s_from) {
                printf("line %u: %s: the model is in %s, the C runtime in %s\n", lineno, iname,
                       from, fsm_state_name(f));
                return 1;
        }
        steer.arm = arm;
        steer.calls = 0;
        steer.action = action_return(result);
        (void)fsm_dispatch(f, (unsigned)ev, NULL, &out);
        pos = chain_pos(m, (unsigned)s_from, (unsigned)ev, out.arm);
        if (fsm_state(f) != (unsigned)s_to || strcmp(fsm_result_name(out.result), result) != 0 ||
            pos != (int)arm) {
                printf(
                    "line %u: %s %s --%s--> model: %s (%s, arm %u); C runtime: %s (%s, arm %d)\n",
                    lineno, iname, from, event, to, result, arm, fsm_state_name(f),
                    fsm_result_name(out.result), pos);
                return 1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        FILE *in, *trace = NULL;
        char line[512];
        unsigned lineno = 0;
        int r = 0;

        if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--trace") == 0)) {
                fprintf(stderr, "usage: %s EVENTS [--trace FILE]\n", argv[0]);
                return 2;
        }
        in = fopen(argv[1], "re");
        if (!in) {
                fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
                return 2;
        }
        if (argc == 4) {
                trace = fopen(argv[3], "we");
                if (!trace) {
                        fprintf(stderr, "%s: %s\n", argv[3], strerror(errno));
                        fclose(in);
                        return 2;
                }
                fsm_set_trace(fsm_trace_hook, trace);
        }
        while (r == 0 && fgets(line, sizeof(line), in)) {
                lineno++;
                if (line[0] == '#' || line[0] == '\n')
                        continue;
                r = replay_line(lineno, line);
        }
        fclose(in);
        if (trace) {
                fsm_set_trace(NULL, NULL);
                fclose(trace);
        }
        if (r == 0)
                printf("%s: %u dispatches: the C runtime (%s %s, %s %s) reaches the same states\n",
                       argv[1], lineno, migration_machine.name, migration_machine.spec_hash,
                       vm_machine.name, vm_machine.spec_hash);
        return r;
}
