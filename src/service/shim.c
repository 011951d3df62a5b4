/* SPDX-License-Identifier: MIT */
#include "service/shim.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsm/fsm.h"
#include "fsm/trace.h"
#include "hcs/hcs.h"
#include "migration/session.h"
#include "migration/socket.h"
#include "rpc/ttrpc.h"
#include "service/events.h"
#include "service/migration.h"
#include "service/task.h"
#include "util/util.h"

/* Time a queued reply (a Shutdown's own answer) gets to reach its client before the server
 * closes the connections. */
#define SHIM_LINGER_MS 20

struct shim {
        uv_loop_t *loop;
        struct shim_options opts;
        struct hcs_backend *backend;
        struct shim_events *events;
        struct shim_forward *fwd;           /* NULL once closed */
        struct shim_forward_stats fwd_last; /* its final figures */
        bool fwd_on;
        struct sandbox *sb;
        struct task_service *tasks;
        struct mig_session *mig;
        struct ttrpc_server *srv;
        struct mig_handoff *handoff; /* CreateDuplicateSocket's token hand-off; may be NULL */
        char *handoff_path;          /* unlinked at shutdown */
        FILE *trace;
        uv_signal_t sigterm, sigint;
        uv_timer_t linger;
        bool signals_on;
        bool shutting_down;
        bool finished;
};

struct ttrpc_server *shim_server(struct shim *s)
{
        return s->srv;
}

struct sandbox *shim_sandbox(struct shim *s)
{
        return s->sb;
}

struct shim_events *shim_get_events(struct shim *s)
{
        return s->events;
}

bool shim_get_forward_stats(const struct shim *s, struct shim_forward_stats *ret)
{
        if (s->fwd)
                shim_forward_get_stats(s->fwd, ret);
        else
                *ret = s->fwd_last;
        return s->fwd_on;
}

bool shim_finished(const struct shim *s)
{
        return s->finished;
}

static void shutdown_cb(void *userdata)
{
        shim_shutdown(userdata);
}

static void on_signal(uv_signal_t *h, int signum)
{
        shim_shutdown(h->data);
}

static int open_trace(struct shim *s, const char *path)
{
        s->trace = fopen(path, "ae");
        if (!s->trace)
                return -errno;
        setvbuf(s->trace, NULL, _IOLBF, 0); /* a crash keeps every finished line */
        fsm_set_trace(fsm_trace_hook, s->trace);
        return 0;
}

static int start_signals(struct shim *s)
{
        uv_signal_init(s->loop, &s->sigterm);
        uv_signal_init(s->loop, &s->sigint);
        s->sigterm.data = s->sigint.data = s;
        s->signals_on = true;
        int r = uv_signal_start(&s->sigterm, on_signal, SIGTERM);
        if (r == 0)
                r = uv_signal_start(&s->sigint, on_signal, SIGINT);
        return r;
}

static int register_services(struct shim *s)
{
        int r = sandbox_service_register(s->srv, s->sb, shutdown_cb, s);
        if (r == 0)
                r = task_service_register(s->srv, s->tasks);
        if (r == 0)
                r = mig_service_register(s->srv, s->mig);
        return r;
}

int shim_new(uv_loop_t *loop, const struct shim_options *opts, struct shim **ret)
{
        struct shim *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        if (opts)
                s->opts = *opts;
        uv_timer_init(loop, &s->linger);
        s->linger.data = s;
        int r = hcs_backend_open(loop, s->opts.backend ? s->opts.backend : "sim",
                                 s->opts.backend_opts ? s->opts.backend_opts : "{}", &s->backend);
        if (r == 0)
                r = shim_events_new(s->opts.event_log, &s->events);
        if (r == 0 && s->opts.forward.address) {
                r = shim_forward_new(loop, s->events, &s->opts.forward, &s->fwd);
                s->fwd_on = r == 0;
        }
        if (r == 0 && s->opts.trace_path)
                r = open_trace(s, s->opts.trace_path);
        if (r == 0)
                r = sandbox_new(loop, s->backend, s->events, &s->opts.sandbox, &s->sb);
        if (r == 0)
                r = task_service_new(s->sb, s->events, shutdown_cb, s, &s->tasks);
        if (r == 0)
                r = mig_session_new(loop, &sandbox_mig_ops, s->sb, &s->mig);
        if (r == 0) {
                sandbox_set_migration(s->sb, s->mig);
                task_service_set_migration(s->tasks, s->mig);
                r = ttrpc_server_new(loop, NULL, &s->srv);
        }
        if (r == 0)
                r = register_services(s);
        if (r == 0 && s->opts.handle_signals)
                r = start_signals(s);
        if (r < 0) {
                s->opts.on_exit = NULL;
                shim_shutdown(s);
                /* the caller runs the loop to let the closes finish, then frees */
                *ret = s;
                return r;
        }
        *ret = s;
        return 0;
}

int shim_listen(struct shim *s, const char *path)
{
        return ttrpc_server_listen(s->srv, path);
}

int shim_listen_fd(struct shim *s, int fd)
{
        return ttrpc_server_listen_fd(s->srv, fd);
}

int shim_listen_handoff(struct shim *s, const char *address)
{
        if (s->handoff)
                return -EALREADY;
        char *path = NULL;
        if (asprintf(&path, "%s.handoff", address) < 0)
                return -ENOMEM;
        /* The ttrpc socket at address is ours, so a handoff socket beside it is a stale one of
         * an earlier shim: ferryctl would send to it and fail, rather than fall back to pidfd. */
        unlink(path);
        int r = mig_handoff_listen(s->loop, path, &s->handoff);
        if (r < 0) {
                free(path);
                return r;
        }
        s->handoff_path = path;
        mig_session_set_handoff(s->mig, s->handoff);
        return 0;
}

static void close_handoff(struct shim *s)
{
        if (!s->handoff)
                return;
        if (s->mig)
                mig_session_set_handoff(s->mig, NULL);
        mig_handoff_close(TAKE_PTR(s->handoff));
        unlink(s->handoff_path);
        free(TAKE_PTR(s->handoff_path));
}

static void on_linger_closed(uv_handle_t *h)
{
        struct shim *s = h->data;
        s->finished = true;
        if (s->opts.on_exit)
                s->opts.on_exit(s->opts.on_exit_userdata);
}

static void on_forward_closed(const struct shim_forward_stats *final, void *userdata)
{
        struct shim *s = userdata;
        s->fwd_last = *final;
        uv_close((uv_handle_t *)&s->linger, on_linger_closed);
}

static void on_sandbox_closed(int result, void *userdata)
{
        struct shim *s = userdata;
        s->sb = NULL;
        /* The sandbox has let go of everything, so the session has nothing in flight: free it
         * now, while the loop still runs its close callback (shim_free is too late for that). */
        if (s->tasks)
                task_service_set_migration(s->tasks, NULL);
        if (s->mig && mig_session_free(s->mig) == 0)
                s->mig = NULL;
        s->backend = hcs_backend_free(s->backend);
        /* the sandbox's last events (exits of a stopped VM) are in the queue: flush, then end */
        if (s->fwd)
                shim_forward_close(TAKE_PTR(s->fwd), on_forward_closed, s);
        else
                uv_close((uv_handle_t *)&s->linger, on_linger_closed);
}

static void on_linger(uv_timer_t *t)
{
        struct shim *s = t->data;
        ttrpc_server_close(TAKE_PTR(s->srv));
        close_handoff(s);
        if (s->sb)
                sandbox_set_migration(s->sb, NULL);
        if (s->signals_on) {
                uv_close((uv_handle_t *)&s->sigterm, NULL);
                uv_close((uv_handle_t *)&s->sigint, NULL);
                s->signals_on = false;
        }
        sandbox_close(s->sb, on_sandbox_closed, s);
}

void shim_shutdown(struct shim *s)
{
        if (!s || s->shutting_down)
                return;
        s->shutting_down = true;
        uv_timer_start(&s->linger, on_linger, SHIM_LINGER_MS, 0);
}

void shim_free(struct shim *s)
{
        if (!s)
                return;
        /* after the loop ran the shutdown: every guest and host completion has been delivered,
         * so the session has nothing in flight (a refusal would only leak it at exit) */
        if (s->tasks)
                task_service_set_migration(s->tasks, NULL);
        if (s->mig && mig_session_free(s->mig) == 0)
                s->mig = NULL;
        close_handoff(s); /* a shim freed without its shutdown */
        /* ends once the loop runs again */
        shim_forward_close(TAKE_PTR(s->fwd), NULL, NULL);
        s->tasks = task_service_free(s->tasks);
        s->events = shim_events_free(s->events);
        if (s->trace) {
                fsm_set_trace(NULL, NULL);
                fclose(s->trace);
        }
        hcs_backend_free(s->backend);
        free(s);
}
