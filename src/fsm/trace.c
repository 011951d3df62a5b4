/* SPDX-License-Identifier: MIT */
#include "fsm/trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

#define MAGIC "fsm1"

/* Percent-encodes a name into dst: one token without spaces. Returns the length or -E2BIG. */
static ssize_t encode_name(const char *name, char *dst, size_t size)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t n = 0;

        if (!name || !*name)
                return ferry_strscpy(dst, "-", size);
        for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
                /* printable, not the escape, and not a lone "-" (which means no name) */
                bool lone_dash = *p == '-' && p == (const unsigned char *)name && !p[1];
                bool plain = *p > ' ' && *p < 0x7f && *p != '%' && !lone_dash;

                if (n + (plain ? 1 : 3) >= size)
                        return -E2BIG;
                if (plain) {
                        dst[n++] = (char)*p;
                } else {
                        dst[n++] = '%';
                        dst[n++] = hex[*p >> 4];
                        dst[n++] = hex[*p & 15];
                }
        }
        dst[n] = '\0';
        return (ssize_t)n;
}

ssize_t fsm_trace_format(const struct fsm_trace *rec, char *buf, size_t size)
{
        const struct fsm_machine *mc = rec->machine;
        char inst[256];

        if (encode_name(rec->instance ? rec->instance->name : NULL, inst, sizeof(inst)) < 0)
                return -E2BIG;
        return ferry_bprintf(
            buf, size, MAGIC " %s %s %s %s %s %s %s %d %llu\n", mc->name, mc->spec_hash, inst,
            rec->from < mc->n_states ? mc->state_names[rec->from] : "?",
            rec->event < mc->n_events ? mc->event_names[rec->event] : "?",
            rec->to < mc->n_states ? mc->state_names[rec->to] : "?", fsm_result_name(rec->result),
            rec->err, (unsigned long long)rec->time_us);
}

int fsm_trace_write(FILE *f, const struct fsm_trace *rec)
{
        char line[FSM_TRACE_LINE_MAX];
        ssize_t n = fsm_trace_format(rec, line, sizeof(line));

        if (n < 0)
                return (int)n;
        return fwrite(line, 1, (size_t)n, f) == (size_t)n ? 0 : -EIO;
}

int fsm_trace_write_fd(int fd, const struct fsm_trace *rec)
{
        char line[FSM_TRACE_LINE_MAX];
        ssize_t n = fsm_trace_format(rec, line, sizeof(line));
        size_t off = 0;

        if (n < 0)
                return (int)n;
        while (off < (size_t)n) {
                ssize_t w = write(fd, line + off, (size_t)n - off);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t)w;
        }
        return 0;
}

void fsm_trace_hook(const struct fsm_trace *rec, void *userdata)
{
        /* a hook cannot fail: the stream's error flag keeps the failure */
        (void)fsm_trace_write(userdata, rec);
}

/* ---- replay ---- */

struct instance {
        const struct fsm_machine *machine;
        char *name; /* as encoded in the trace; owned */
        uint16_t state;
};

struct replay {
        struct instance *v; /* owned */
        size_t n, cap;
};

static void replay_done(struct replay *rp)
{
        for (size_t i = 0; i < rp->n; i++)
                free(rp->v[i].name);
        free(rp->v);
}

static int instance_get(struct replay *rp, const struct fsm_machine *mc, const char *name,
                        struct instance **ret)
{
        for (size_t i = 0; i < rp->n; i++)
                if (rp->v[i].machine == mc && strcmp(rp->v[i].name, name) == 0) {
                        *ret = &rp->v[i];
                        return 0;
                }
        if (rp->n == rp->cap) {
                size_t cap = rp->cap ? rp->cap * 2 : 16;
                struct instance *v = realloc(rp->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                rp->v = v;
                rp->cap = cap;
        }
        rp->v[rp->n] = (struct instance){.machine = mc, .name = strdup(name), .state = FSM_NONE};
        if (!rp->v[rp->n].name)
                return -ENOMEM;
        *ret = &rp->v[rp->n++];
        return 1; /* new */
}

static void diverge(struct fsm_replay_report *r, unsigned line, const char *fmt, ...)
    _printf_(3, 4);

static void diverge(struct fsm_replay_report *r, unsigned line, const char *fmt, ...)
{
        va_list ap;

        r->line = line;
        va_start(ap, fmt);
        (void)vsnprintf(r->what, sizeof(r->what), fmt, ap);
        va_end(ap);
}

/* Appends to a bounded buffer; truncation is harmless in a message. */
static void append(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);

static void append(char *buf, size_t size, const char *fmt, ...)
{
        size_t n = strlen(buf);
        va_list ap;

        if (n + 1 >= size)
                return;
        va_start(ap, fmt);
        (void)vsnprintf(buf + n, size - n, fmt, ap);
        va_end(ap);
}

/* Can the cell (from, event) make this decision? Describes what it allows into allows. */
static bool cell_allows(const struct fsm_machine *mc, unsigned from, unsigned event,
                        enum fsm_result res, unsigned to, long err, char *allows, size_t size)
{
        const struct fsm_arm *first = fsm_cell_arm(mc, from, event, NULL), *a;
        bool ok = false;

        allows[0] = '\0';
        for (a = first; a; a = a->next != FSM_NONE ? &mc->arms[a->next] : NULL) {
                if (a != first)
                        append(allows, size, "; ");
                if (a->guard || a != first)
                        append(allows, size, "[%s] ",
                               a->guard ? mc->guard_names[a->guard_id] : "else");
                if (a->kind == FSM_REJECT) {
                        append(allows, size, "rejected %d", a->err);
                        ok |= res == FSM_RESULT_REJECTED && to == from && err == a->err;
                } else if (a->kind == FSM_IGNORE) {
                        append(allows, size, "ignored");
                        ok |= res == FSM_RESULT_IGNORED && to == from && err == 0;
                } else {
                        append(allows, size, "ok -> %s", mc->state_names[a->to]);
                        ok |= res == FSM_RESULT_OK && to == a->to && err == 0;
                        if (a->action) {
                                append(allows, size, ", failed -> %s",
                                       mc->state_names[a->on_error]);
                                ok |= res == FSM_RESULT_FAILED && to == a->on_error && err < 0;
                                if (mc->state_flags[a->pending] & FSM_STATE_INFLIGHT) {
                                        append(allows, size, ", pending -> %s",
                                               mc->state_names[a->pending]);
                                        ok |= res == FSM_RESULT_PENDING && to == a->pending &&
                                              err == 0;
                                }
                        }
                }
        }
        return ok;
}

static int result_by_name(const char *name)
{
        for (int i = 0; i < FSM_RESULT__COUNT; i++)
                if (strcmp(fsm_result_name((enum fsm_result)i), name) == 0)
                        return i;
        return -ENOENT;
}

/* Checks one record line; fills the report and returns -EBADMSG on a divergence. */
static int check_line(struct replay *rp, char *line, unsigned lineno, uint64_t *last_time,
                      const struct fsm_machine *const *machines, size_t n_machines,
                      struct fsm_replay_report *rep)
{
        char *f[10], *save = NULL, *tok, *end;
        const struct fsm_machine *mc = NULL;
        struct instance *inst;
        int from, event, to, res, r;
        unsigned nf = 0;
        long err;
        unsigned long long t;
        char allows[512];

        for (tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
                if (nf == ARRAY_SIZE(f)) {
                        diverge(rep, lineno, "malformed record: more than %zu fields",
                                ARRAY_SIZE(f));
                        return -EBADMSG;
                }
                f[nf++] = tok;
        }
        if (nf != ARRAY_SIZE(f) || strcmp(f[0], MAGIC) != 0) {
                diverge(rep, lineno,
                        "malformed record: expected '" MAGIC
                        " machine hash instance from event to result errno time'");
                return -EBADMSG;
        }
        for (size_t i = 0; i < n_machines; i++)
                if (strcmp(machines[i]->name, f[1]) == 0)
                        mc = machines[i];
        if (!mc) {
                diverge(rep, lineno, "unknown machine '%s'", f[1]);
                return -EBADMSG;
        }
        if (strcmp(mc->spec_hash, f[2]) != 0) {
                diverge(rep, lineno, "%s: recorded with spec hash %s, the tables are %s", mc->name,
                        f[2], mc->spec_hash);
                return -EBADMSG;
        }
        from = fsm_state_by_name(mc, f[4]);
        event = fsm_event_by_name(mc, f[5]);
        to = fsm_state_by_name(mc, f[6]);
        res = result_by_name(f[7]);
        if (from < 0 || event < 0 || to < 0 || res < 0) {
                diverge(rep, lineno, "%s: unknown %s '%s'", mc->name,
                        from < 0    ? "state"
                        : event < 0 ? "event"
                        : to < 0    ? "state"
                                    : "result",
                        from < 0    ? f[4]
                        : event < 0 ? f[5]
                        : to < 0    ? f[6]
                                    : f[7]);
                return -EBADMSG;
        }
        errno = 0;
        err = strtol(f[8], &end, 10);
        if (errno || *end || end == f[8] || err > 0 || err < -4095) {
                diverge(rep, lineno, "malformed errno '%s'", f[8]);
                return -EBADMSG;
        }
        errno = 0;
        t = strtoull(f[9], &end, 10);
        if (errno || *end || end == f[9] || f[9][0] == '-') {
                diverge(rep, lineno, "malformed time '%s'", f[9]);
                return -EBADMSG;
        }
        if (t < *last_time) {
                diverge(rep, lineno, "time goes backwards: %llu after %llu", t,
                        (unsigned long long)*last_time);
                return -EBADMSG;
        }
        *last_time = t;

        r = instance_get(rp, mc, f[3], &inst);
        if (r < 0)
                return r;
        if (r == 0 && inst->state != (unsigned)from) {
                diverge(rep, lineno,
                        "%s '%s': recorded from %s, but its previous record left it in %s",
                        mc->name, f[3], f[4], mc->state_names[inst->state]);
                return -EBADMSG;
        }
        if (!cell_allows(mc, (unsigned)from, (unsigned)event, (enum fsm_result)res, (unsigned)to,
                         err, allows, sizeof(allows))) {
                diverge(rep, lineno,
                        "%s '%s': %s x %s recorded as %s -> %s (errno %ld); the tables allow: %s",
                        mc->name, f[3], f[4], f[5], f[7], f[6], err, allows);
                return -EBADMSG;
        }
        inst->state = (uint16_t)to;
        rep->records++;
        return 0;
}

int fsm_replay(FILE *in, const struct fsm_machine *const *machines, size_t n,
               struct fsm_replay_report *ret_report)
{
        struct replay rp = {0};
        char *line = NULL;
        size_t cap = 0;
        uint64_t last_time = 0;
        ssize_t len;
        int r = 0;

        memset(ret_report, 0, sizeof(*ret_report));
        while ((len = getline(&line, &cap, in)) >= 0) {
                unsigned lineno = ++ret_report->lines;

                if (len > 0 && line[len - 1] == '\n')
                        line[--len] = '\0';
                if ((size_t)len >= FSM_TRACE_LINE_MAX) {
                        diverge(ret_report, lineno, "line longer than %d bytes",
                                FSM_TRACE_LINE_MAX);
                        r = -EBADMSG;
                        break;
                }
                if (len == 0 || line[0] == '#')
                        continue;
                r = check_line(&rp, line, lineno, &last_time, machines, n, ret_report);
                if (r < 0)
                        break;
        }
        if (r == 0 && ferror(in))
                r = -EIO;
        if (r == -ENOMEM)
                diverge(ret_report, ret_report->lines, "out of memory");
        free(line);
        replay_done(&rp);
        return r;
}

int fsm_replay_print(const struct fsm_replay_report *report, const char *name, FILE *out)
{
        if (report->line)
                fprintf(out, "%s:%u: %s\n", name, report->line, report->what);
        else
                fprintf(out, "%s: %u records conform to the tables\n", name, report->records);
        return fflush(out) == 0 ? 0 : -EIO;
}
