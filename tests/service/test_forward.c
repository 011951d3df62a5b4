/* SPDX-License-Identifier: MIT */
/* Events forwarded to containerd (src/service/forward.c): a fake containerd Events ttrpc
 * service on the test's loop decodes every Forward. A task's lifecycle through the shim's Task
 * service, containerd absent then present, a connection that drops, a full queue, error
 * answers, bad bodies, the close's flush, and (when the test is given the binary) ferry-shim
 * serve picking TTRPC_ADDRESS and -namespace up. */
#include "client.h"

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "events.pb-c.h"
#include "events_ttrpc.pb-c.h"
#include "service/events.h"
#include "service/forward.h"
#include "service/shim.h"

static const char *shim_bin; /* argv[1]: ferry-shim, for the process test */

/* -- a fake containerd -- */

/* One Forward as the fake saw it. */
struct got {
        char ns[32], md_ns[32], topic[32], type_url[64];
        int64_t ts_sec;
        char cid[32], id[32], bundle[64];
        uint32_t pid, exit_status;
        int64_t exited_sec;
        int32_t exited_nanos;
        bool terminal;
        bool ok; /* answered OK */
};

struct fake {
        uv_loop_t *loop;
        char path[128];
        struct ttrpc_server *srv;
        struct got got[64];
        unsigned n;         /* calls seen */
        unsigned n_ok;      /* answered OK */
        unsigned fail_next; /* answer the next calls FAILED_PRECONDITION */
        char fail_cid[32];  /* always fail the events of this container */
        bool park;          /* leave calls unanswered (until the server closes) */
        unsigned n_parked;
};

static void copy(char *dst, size_t size, const char *src)
{
        ferry_strscpy(dst, src ? src : "", size);
}

static void set_exited(struct got *g, const Containerd__Task__V2__Timestamp *ts)
{
        assert_non_null(ts);
        g->exited_sec = ts->seconds;
        g->exited_nanos = ts->nanos;
}

/* Decodes the Any with the message its type URL names. */
static void decode_event(struct got *g, const Containerd__Task__V2__Any *any)
{
        static const ProtobufCMessageDescriptor *descs[] = {
            &containerd__events__task_create__descriptor,
            &containerd__events__task_start__descriptor,
            &containerd__events__task_exit__descriptor,
            &containerd__events__task_delete__descriptor,
            &containerd__events__task_exec_added__descriptor,
            &containerd__events__task_exec_started__descriptor,
            &containerd__events__task_paused__descriptor,
            &containerd__events__task_resumed__descriptor,
        };
        const ProtobufCMessageDescriptor *d = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(descs); i++)
                if (!strcmp(any->type_url, descs[i]->name))
                        d = descs[i];
        assert_non_null(d);
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data);
        assert_non_null(m);
        /* container_id is field 1 of every task event */
        copy(g->cid, sizeof(g->cid), *(const char **)((char *)m + d->fields[0].offset));
        if (d == &containerd__events__task_create__descriptor) {
                const Containerd__Events__TaskCreate *e = (const void *)m;
                copy(g->bundle, sizeof(g->bundle), e->bundle);
                g->pid = e->pid;
                g->terminal = e->io && e->io->terminal;
        } else if (d == &containerd__events__task_start__descriptor) {
                g->pid = ((const Containerd__Events__TaskStart *)m)->pid;
        } else if (d == &containerd__events__task_exit__descriptor) {
                const Containerd__Events__TaskExit *e = (const void *)m;
                copy(g->id, sizeof(g->id), e->id);
                g->pid = e->pid;
                g->exit_status = e->exit_status;
                set_exited(g, e->exited_at);
        } else if (d == &containerd__events__task_delete__descriptor) {
                const Containerd__Events__TaskDelete *e = (const void *)m;
                copy(g->id, sizeof(g->id), e->id);
                g->pid = e->pid;
                g->exit_status = e->exit_status;
                set_exited(g, e->exited_at);
        } else if (d == &containerd__events__task_exec_added__descriptor) {
                copy(g->id, sizeof(g->id), ((const Containerd__Events__TaskExecAdded *)m)->exec_id);
        } else if (d == &containerd__events__task_exec_started__descriptor) {
                const Containerd__Events__TaskExecStarted *e = (const void *)m;
                copy(g->id, sizeof(g->id), e->exec_id);
                g->pid = e->pid;
        }
        protobuf_c_message_free_unpacked(m, NULL);
}

/* A parked call's server closed: the handler still ends it. */
static void on_park_cancel(struct ttrpc_call *call, void *userdata)
{
        struct fake *fk = userdata;
        fk->n_parked--;
        ttrpc_call_fail(call, -ECANCELED, NULL);
}

static void handle_forward(struct ttrpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
        struct fake *fk = userdata;
        const Containerd__Services__Events__Ttrpc__V1__ForwardRequest *req = (const void *)msg;
        assert_true(fk->n < ARRAY_SIZE(fk->got));
        struct got *g = &fk->got[fk->n++];
        memset(g, 0, sizeof(*g));
        assert_non_null(req->envelope);
        const Containerd__Services__Events__Ttrpc__V1__Envelope *env = req->envelope;
        copy(g->ns, sizeof(g->ns), env->namespace_);
        copy(g->md_ns, sizeof(g->md_ns), ttrpc_call_metadata(call, SHIM_FORWARD_NS_KEY));
        copy(g->topic, sizeof(g->topic), env->topic);
        assert_non_null(env->timestamp);
        g->ts_sec = env->timestamp->seconds;
        assert_non_null(env->event);
        copy(g->type_url, sizeof(g->type_url), env->event->type_url);
        decode_event(g, env->event);
        if (fk->park) {
                fk->n_parked++;
                ttrpc_call_on_cancel(call, on_park_cancel, fk);
                return;
        }
        if (fk->fail_next || (fk->fail_cid[0] && !strcmp(fk->fail_cid, g->cid))) {
                if (fk->fail_next)
                        fk->fail_next--;
                ttrpc_call_fail_code(call, FERRY_CODE_FAILED_PRECONDITION, "not now");
                return;
        }
        g->ok = true;
        fk->n_ok++;
        ttrpc_call_reply(call, NULL);
}

static const struct ttrpc_method events_methods[] = {{handle_forward, TTRPC_UNARY}};

static void fake_start(struct fake *fk)
{
        assert_null(fk->srv);
        assert_int_equal(ttrpc_server_new(fk->loop, NULL, &fk->srv), 0);
        assert_int_equal(ttrpc_server_register(
                             fk->srv, &containerd__services__events__ttrpc__v1__events__descriptor,
                             events_methods, ARRAY_SIZE(events_methods), fk),
                         0);
        assert_int_equal(ttrpc_server_listen(fk->srv, fk->path), 0);
}

/* containerd goes away: its connections close, its socket is removed. */
static void fake_stop(struct fake *fk)
{
        ttrpc_server_close(TAKE_PTR(fk->srv));
        unlink(fk->path);
        uvrun_for_ms(fk->loop, 5);
}

/* Runs the loop until the fake has answered n calls OK (at most ms). */

/* -- a loop, a directory, a fake and (some tests) a forwarder on a bare publisher -- */

struct env {
        uv_loop_t loop;
        char dir[64];
        struct fake fake;
        struct shim_events *ev;
        struct shim_forward *fwd;
        bool closed;
        struct shim_forward_stats final;
        uint64_t closed_at_us;
        /* what a test that failed half-way leaves for the teardown */
        struct shim *shim;
        struct ttrpc_client *client;
        bool shim_exited;
        pid_t child;
};

static int setup(void **state)
{
        struct env *e = calloc(1, sizeof(*e));
        assert_non_null(e);
        assert_int_equal(uv_loop_init(&e->loop), 0);
        ferry_bprintf(e->dir, sizeof(e->dir), "/tmp/ferry-fwd-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        e->fake.loop = &e->loop;
        ferry_bprintf(e->fake.path, sizeof(e->fake.path), "%s/containerd.sock.ttrpc", e->dir);
        assert_int_equal(shim_events_new(NULL, &e->ev), 0);
        *state = e;
        return 0;
}

static void on_closed(const struct shim_forward_stats *final, void *ud)
{
        struct env *e = ud;
        e->closed = true;
        e->final = *final;
        e->closed_at_us = ferry_now_us();
}

/* Closes the forwarder (if the test did not), checking its done runs on the loop. */
static void env_close_forward(struct env *e)
{
        if (!e->fwd)
                return;
        shim_forward_close(TAKE_PTR(e->fwd), on_closed, e);
        assert_false(e->closed); /* never from inside the call */
        assert_true(uvrun_until(&e->loop, &e->closed, 5000));
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        return remove(path);
}

static void env_end_shim(struct env *e)
{
        ttrpc_client_close(TAKE_PTR(e->client));
        if (!e->shim)
                return;
        shim_shutdown(e->shim);
        assert_true(uvrun_until(&e->loop, &e->shim_exited, 10000));
}

static int teardown(void **state)
{
        struct env *e = *state;
        if (e->child > 0) {
                kill(e->child, SIGKILL);
                waitpid(e->child, NULL, 0);
        }
        env_end_shim(e);
        shim_free(e->shim);
        env_close_forward(e);
        if (e->fake.srv)
                fake_stop(&e->fake);
        shim_events_free(e->ev);
        uv_run(&e->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&e->loop), 0);
        assert_int_equal(nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
        free(e);
        return 0;
}

static void forward_new(struct env *e, struct shim_forward_options o)
{
        o.address = e->fake.path;
        if (!o.ns)
                o.ns = "k8s.io";
        assert_int_equal(shim_forward_new(&e->loop, e->ev, &o, &e->fwd), 0);
}

static struct shim_forward_stats stats(const struct env *e)
{
        struct shim_forward_stats st;
        shim_forward_get_stats(e->fwd, &st);
        return st;
}

/* Runs the loop until the fake answered n Forwards OK and, when the forwarder is in this
 * process, it has taken those answers: the fake counts an answer when it sends it, the
 * forwarder when it arrives (under valgrind that can be a while later). */
static bool until_ok(struct env *e, unsigned n, uint64_t ms)
{
        uint64_t end = ferry_now_us() + ms * 1000;
        struct shim_forward_stats st = {0};
        for (;;) {
                if (e->fwd)
                        shim_forward_get_stats(e->fwd, &st);
                else if (e->shim)
                        shim_get_forward_stats(e->shim, &st);
                bool mine = e->fwd || e->shim;
                if (e->fake.n_ok >= n && (!mine || st.forwarded >= n))
                        return true;
                if (ferry_now_us() >= end)
                        return false;
                uvrun_for_ms(&e->loop, 2);
        }
}

/* TaskStart of container "c<i>" with pid 100+i. */
static void publish_start(struct env *e, unsigned i)
{
        char cid[16];
        ferry_bprintf(cid, sizeof(cid), "c%u", i);
        assert_int_equal(shim_events_task_start(e->ev, cid, 100 + i), 0);
}

/* The fake's calls first..first+n-1 are the TaskStarts of c<from>.. in order. */
static void assert_starts(const struct fake *fk, unsigned first, unsigned n, unsigned from)
{
        for (unsigned k = 0; k < n; k++) {
                const struct got *g = &fk->got[first + k];
                char cid[16];
                ferry_bprintf(cid, sizeof(cid), "c%u", from + k);
                assert_string_equal(g->topic, "/tasks/start");
                assert_string_equal(g->type_url, "containerd.events.TaskStart");
                assert_string_equal(g->cid, cid);
                assert_int_equal(g->pid, 100 + from + k);
                assert_string_equal(g->ns, "k8s.io");
                assert_string_equal(g->md_ns, "k8s.io");
        }
}

/* -- tests -- */

static void on_shim_exit(void *ud)
{
        struct env *e = ud;
        e->shim_exited = true;
}

/* A task's Create, Start, Kill and Delete through the shim's Task service reach containerd as
 * TaskCreate, TaskStart, TaskExit, TaskDelete, in order, with the namespace in the envelope
 * and the metadata, containerd's type URLs and the fields decoded. The shim made the forwarder
 * from its options (shim_options.forward), as ferry-shim does. */
static void test_task_lifecycle(void **state)
{
        struct env *e = *state;
        struct fake *fk = &e->fake;
        char sock[128];
        ferry_bprintf(sock, sizeof(sock), "%s/shim.sock", e->dir);
        fake_start(fk);
        struct shim_options so = {
            .sandbox = {.memory_mb = 8},
            .forward = {.address = fk->path, .ns = "k8s.io"},
            .on_exit = on_shim_exit,
            .on_exit_userdata = e,
        };
        assert_int_equal(shim_new(&e->loop, &so, &e->shim), 0);
        struct shim *s = e->shim;
        assert_int_equal(shim_listen(s, sock), 0);
        assert_int_equal(ttrpc_client_connect(&e->loop, sock, NULL, &e->client), 0);
        struct ttrpc_client *c = e->client;
        uv_loop_t *L = &e->loop;
        uint64_t t0 = ferry_wall_ns() / 1000000000ull;

        uint32_t pid = 0, code = 0;
        assert_int_equal(task_create(L, c, "c1", "/run/bundle/c1"), FERRY_CODE_OK);
        assert_int_equal(task_start(L, c, "c1", &pid), FERRY_CODE_OK);
        assert_int_equal(task_kill(L, c, "c1", SIGTERM), FERRY_CODE_OK);
        assert_int_equal(task_wait_exit(L, c, "c1"), 128 + SIGTERM);
        assert_int_equal(task_delete(L, c, "c1", &code), FERRY_CODE_OK);
        assert_true(until_ok(e, 4, 5000));

        static const char *const topic[] = {"/tasks/create", "/tasks/start", "/tasks/exit",
                                            "/tasks/delete"};
        static const char *const url[] = {
            "containerd.events.TaskCreate", "containerd.events.TaskStart",
            "containerd.events.TaskExit", "containerd.events.TaskDelete"};
        assert_int_equal(fk->n, 4);
        for (unsigned i = 0; i < 4; i++) {
                const struct got *g = &fk->got[i];
                assert_string_equal(g->topic, topic[i]);
                assert_string_equal(g->type_url, url[i]);
                assert_string_equal(g->ns, "k8s.io");
                assert_string_equal(g->md_ns, "k8s.io");
                assert_string_equal(g->cid, "c1");
                assert_true(g->ts_sec >= (int64_t)t0 && g->ts_sec <= (int64_t)t0 + 60);
        }
        assert_string_equal(fk->got[0].bundle, "/run/bundle/c1");
        assert_int_equal(fk->got[1].pid, pid);
        /* the init's exit is named by the container id, as containerd expects */
        assert_string_equal(fk->got[2].id, "c1");
        assert_int_equal(fk->got[2].pid, pid);
        assert_int_equal(fk->got[2].exit_status, 128 + SIGTERM);
        assert_true(fk->got[2].exited_sec >= (int64_t)t0 - 1 &&
                    fk->got[2].exited_sec <= (int64_t)t0 + 60);
        assert_string_equal(fk->got[3].id, "");
        assert_int_equal(fk->got[3].exit_status, 128 + SIGTERM);
        assert_true(fk->got[3].exited_sec >= (int64_t)t0 - 1 &&
                    fk->got[3].exited_sec <= (int64_t)t0 + 60);

        struct shim_forward_stats st;
        assert_true(shim_get_forward_stats(s, &st));
        assert_int_equal(st.forwarded, 4);
        assert_int_equal(st.connects, 1);
        assert_true(st.connected);

        env_end_shim(e);
        assert_true(shim_get_forward_stats(s, &st)); /* the final figures */
        assert_int_equal(st.forwarded, 4);
        assert_int_equal(st.dropped + st.rejected + st.abandoned + st.bad, 0);
        assert_false(st.connected);
}

/* Events published while containerd is not there wait and go, in order, once it is; the same
 * after the connection drops. */
static void test_down_then_up(void **state)
{
        struct env *e = *state;
        struct fake *fk = &e->fake;
        forward_new(e, (struct shim_forward_options){.reconnect_ms = 5, .reconnect_max_ms = 20});
        for (unsigned i = 0; i < 5; i++)
                publish_start(e, i);
        uvrun_for_ms(&e->loop, 60);
        struct shim_forward_stats st = stats(e);
        assert_true(st.connect_failures >= 2); /* retried, with backoff */
        assert_int_equal(st.queued, 5);
        assert_int_equal(st.forwarded, 0);
        assert_false(st.connected);

        fake_start(fk);
        assert_true(until_ok(e, 5, 2000));
        assert_int_equal(fk->n, 5);
        assert_starts(fk, 0, 5, 0);
        st = stats(e);
        assert_int_equal(st.forwarded, 5);
        assert_int_equal(st.queued, 0);
        assert_int_equal(st.connects, 1);

        /* containerd restarts: its connection drops, events published meanwhile wait */
        fake_stop(fk);
        for (unsigned i = 5; i < 8; i++)
                publish_start(e, i);
        uvrun_for_ms(&e->loop, 40);
        assert_int_equal(fk->n, 5);
        assert_false(stats(e).connected);
        fake_start(fk);
        assert_true(until_ok(e, 8, 2000));
        assert_int_equal(fk->n, 8);
        assert_starts(fk, 5, 3, 5);
        st = stats(e);
        assert_int_equal(st.forwarded, 8);
        assert_int_equal(st.connects, 2);

        /* the connection drops with a Forward in flight: that event is sent again (containerd
         * may see it twice: at least once, as containerd's own shims), then the next */
        fk->park = true;
        publish_start(e, 8);
        uvrun_for_ms(&e->loop, 20);
        assert_int_equal(fk->n, 9);
        assert_int_equal(fk->n_parked, 1);
        publish_start(e, 9);
        fake_stop(fk);
        assert_int_equal(fk->n_parked, 0);
        fk->park = false;
        fake_start(fk);
        assert_true(until_ok(e, 10, 2000));
        assert_int_equal(fk->n, 11);
        assert_false(fk->got[8].ok);
        assert_starts(fk, 8, 1, 8);
        assert_starts(fk, 9, 2, 8);
        st = stats(e);
        assert_int_equal(st.forwarded, 10);
        assert_int_equal(st.connects, 3);
        assert_int_equal(st.dropped + st.rejected + st.bad + st.skipped + st.retries, 0);
}

/* A full queue takes no more: the newest are dropped and counted; the held ones go in order. */
static void test_queue_full(void **state)
{
        struct env *e = *state;
        struct fake *fk = &e->fake;
        forward_new(e, (struct shim_forward_options){
                           .max_queue = 4, .reconnect_ms = 5, .reconnect_max_ms = 10});
        for (unsigned i = 0; i < 10; i++)
                publish_start(e, i);
        struct shim_forward_stats st = stats(e);
        assert_int_equal(st.queued, 4);
        assert_int_equal(st.dropped, 6);
        fake_start(fk);
        assert_true(until_ok(e, 4, 2000));
        uvrun_for_ms(&e->loop, 30);
        assert_int_equal(fk->n, 4);
        assert_starts(fk, 0, 4, 0);
        st = stats(e);
        assert_int_equal(st.forwarded, 4);
        assert_int_equal(st.dropped, 6);
        assert_int_equal(st.queued, 0);
}

/* An error answer is retried after a delay, the later events waiting behind it (order kept);
 * after max_retries the event is given up, counted, and the next one goes. */
static void test_error_answers(void **state)
{
        struct env *e = *state;
        struct fake *fk = &e->fake;
        fake_start(fk);
        forward_new(e, (struct shim_forward_options){.max_retries = 3, .retry_ms = 5});
        fk->fail_next = 2;
        publish_start(e, 0);
        publish_start(e, 1);
        assert_true(until_ok(e, 2, 2000));
        assert_int_equal(fk->n, 4); /* c0 refused twice, then c0 and c1 */
        for (unsigned i = 0; i < 3; i++)
                assert_string_equal(fk->got[i].cid, "c0");
        assert_false(fk->got[0].ok);
        assert_false(fk->got[1].ok);
        assert_true(fk->got[2].ok);
        assert_string_equal(fk->got[3].cid, "c1");
        struct shim_forward_stats st = stats(e);
        assert_int_equal(st.retries, 2);
        assert_int_equal(st.forwarded, 2);
        assert_int_equal(st.rejected, 0);

        ferry_strscpy(fk->fail_cid, "c2", sizeof(fk->fail_cid));
        publish_start(e, 2);
        publish_start(e, 3);
        assert_true(until_ok(e, 3, 2000));
        assert_int_equal(fk->n, 4 + 4 + 1); /* c2: the first try and 3 retries; then c3 */
        for (unsigned i = 4; i < 8; i++) {
                assert_string_equal(fk->got[i].cid, "c2");
                assert_false(fk->got[i].ok);
        }
        assert_string_equal(fk->got[8].cid, "c3");
        st = stats(e);
        assert_int_equal(st.rejected, 1);
        assert_int_equal(st.retries, 5);
        assert_int_equal(st.forwarded, 3);
}

/* Bodies that are not events are counted and skipped, topics containerd has no message for
 * are skipped; the exec and pause events, a controller's TaskExit (wall exited_at_ns, empty
 * id) and a TaskCreate with its io arrive converted. */
static void test_bodies(void **state)
{
        struct env *e = *state;
        struct fake *fk = &e->fake;
        fake_start(fk);
        forward_new(e, (struct shim_forward_options){0});
        static const char *const bad[][2] = {
            {"/tasks/exit", "{"},
            {"/tasks/exit", "[]"},
            {"/tasks/start", "{\"pid\":1}"},
            {"/tasks/start", "{\"container_id\":\"\"}"},
            {"/tasks/start", "{\"container_id\":\"x\",\"pid\":\"1\"}"},
            {"/tasks/start", "{\"container_id\":\"x\",\"pid\":-1}"},
            {"/tasks/start", "{\"container_id\":\"x\",\"pid\":4294967296}"},
            {"/tasks/start", "{\"container_id\":\"x\",\"pid\":1.5}"},
            {"/tasks/start", "{\"container_id\":7}"},
            {"/tasks/exit", "{\"container_id\":\"x\",\"exited_at\":\"yesterday\"}"},
            {"/tasks/exit", "{\"container_id\":\"x\",\"exited_at\":\"2026-11-29T21:14:53+01:00\"}"},
            {"/tasks/exit", "{\"container_id\":\"x\",\"exited_at_ns\":-5}"},
            {"/tasks/create", "{\"container_id\":\"x\",\"io\":[]}"},
            {"/tasks/create", "{\"container_id\":\"x\",\"io\":{\"terminal\":1}}"},
            {"/tasks/start", "{\"container_id\":\"x\"} trailing"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                shim_events_publish(bad[i][0], bad[i][1], e->ev);
        shim_events_publish("/ferry/unknown", "{}", e->ev);
        shim_events_publish("/tasks/oom", "{\"container_id\":\"x\"}", e->ev);
        shim_events_publish("/tasks/exec-added", "{\"container_id\":\"c\",\"exec_id\":\"e1\"}",
                            e->ev);
        shim_events_publish("/tasks/exec-started",
                            "{\"container_id\":\"c\",\"exec_id\":\"e1\",\"pid\":9}", e->ev);
        shim_events_publish("/tasks/paused", "{\"container_id\":\"c\"}", e->ev);
        shim_events_publish("/tasks/resumed", "{\"container_id\":\"c\"}", e->ev);
        shim_events_publish("/tasks/exit",
                            "{\"container_id\":\"c\",\"id\":\"\",\"pid\":3,\"exit_status\":7,"
                            "\"exited_at_ns\":1795986893123456789}",
                            e->ev);
        shim_events_publish("/tasks/create",
                            "{\"container_id\":\"c\",\"bundle\":\"/b\",\"io\":{\"stdin\":\"\","
                            "\"stdout\":\"/o\",\"stderr\":\"\",\"terminal\":true},\"pid\":4}",
                            e->ev);
        shim_events_publish("/tasks/delete",
                            "{\"container_id\":\"c\",\"pid\":3,\"exit_status\":7,"
                            "\"exited_at\":\"2026-11-29T21:14:53.5Z\",\"id\":\"e1\"}",
                            e->ev);
        assert_true(until_ok(e, 7, 2000));
        struct shim_forward_stats st = stats(e);
        assert_int_equal(st.bad, ARRAY_SIZE(bad));
        assert_int_equal(st.skipped, 2);
        assert_int_equal(st.forwarded, 7);

        const struct got *g = fk->got;
        assert_string_equal(g[0].type_url, "containerd.events.TaskExecAdded");
        assert_string_equal(g[0].id, "e1");
        assert_string_equal(g[1].type_url, "containerd.events.TaskExecStarted");
        assert_int_equal(g[1].pid, 9);
        assert_string_equal(g[2].type_url, "containerd.events.TaskPaused");
        assert_string_equal(g[3].type_url, "containerd.events.TaskResumed");
        assert_string_equal(g[3].cid, "c");
        assert_string_equal(g[4].type_url, "containerd.events.TaskExit");
        assert_string_equal(g[4].id, "c");
        assert_int_equal(g[4].exit_status, 7);
        assert_int_equal(g[4].exited_sec, 1795986893); /* exited_at_ns, as it was read */
        assert_int_equal(g[4].exited_nanos, 123456789);
        assert_string_equal(g[5].type_url, "containerd.events.TaskCreate");
        assert_string_equal(g[5].bundle, "/b");
        assert_int_equal(g[5].pid, 4);
        assert_true(g[5].terminal);
        assert_string_equal(g[6].type_url, "containerd.events.TaskDelete");
        assert_string_equal(g[6].id, "e1");
        assert_int_equal(g[6].exited_sec, 1795986893); /* 2026-11-29T21:14:53Z */
        assert_int_equal(g[6].exited_nanos, 500000000);

        /* the conversion alone: a timestamp with every digit, and the errors it returns */
        const char *url;
        uint8_t *buf;
        size_t len;
        assert_int_equal(shim_forward_encode("/tasks/exit",
                                             "{\"container_id\":\"a\",\"exited_at\":"
                                             "\"2026-11-29T21:14:53.332938970Z\"}",
                                             &url, &buf, &len),
                         0);
        Containerd__Events__TaskExit *x = containerd__events__task_exit__unpack(NULL, len, buf);
        free(buf);
        assert_non_null(x);
        assert_string_equal(x->id, "a");
        assert_int_equal(x->exited_at->seconds, 1795986893);
        assert_int_equal(x->exited_at->nanos, 332938970);
        containerd__events__task_exit__free_unpacked(x, NULL);
        assert_int_equal(shim_forward_encode("/nope", "{}", &url, &buf, &len), -ENOENT);
        assert_int_equal(shim_forward_encode("/tasks/start", "{}", &url, &buf, &len), -EINVAL);
        assert_int_equal(shim_forward_encode("/tasks/start", NULL, &url, &buf, &len), -EINVAL);
}

/* Closing flushes what it can within the grace, then gives the rest up; done always runs
 * later on the loop. */
static void test_close(void **state)
{
        struct env *e = *state;
        struct fake *fk = &e->fake;
        fake_start(fk);
        forward_new(e, (struct shim_forward_options){0});
        for (unsigned i = 0; i < 3; i++)
                publish_start(e, i);
        env_close_forward(e); /* the first call is in flight, two wait */
        assert_int_equal(e->final.forwarded, 3);
        assert_int_equal(e->final.abandoned, 0);
        assert_int_equal(fk->n, 3);
        assert_starts(fk, 0, 3, 0);
        publish_start(e, 9); /* the closed forwarder no longer listens */
        assert_int_equal(shim_events_count(e->ev), 4);

        /* containerd away, a long backoff: the close tries once more, then gives up */
        fake_stop(fk);
        e->closed = false;
        forward_new(e, (struct shim_forward_options){.reconnect_ms = 1000, .grace_ms = 50});
        publish_start(e, 0);
        publish_start(e, 1);
        assert_int_equal(stats(e).connect_failures, 1);
        uint64_t t = ferry_now_us();
        env_close_forward(e);
        uint64_t took_ms = (e->closed_at_us - t) / 1000;
        assert_true(took_ms >= 45 && took_ms < 900);
        assert_int_equal(e->final.abandoned, 2);
        assert_int_equal(e->final.connect_failures, 2);
        assert_int_equal(e->final.queued, 0);
        assert_int_equal(e->final.forwarded, 0);
}

/* Bad options are refused. */
static void test_options(void **state)
{
        struct env *e = *state;
        struct shim_forward *f = NULL;
        struct shim_forward_options o = {.address = NULL};
        assert_int_equal(shim_forward_new(&e->loop, e->ev, &o, &f), -EINVAL);
        o.address = "/tmp/x";
        o.ns = "bad ns";
        assert_int_equal(shim_forward_new(&e->loop, e->ev, &o, &f), -EINVAL);
        char longp[200];
        memset(longp, 'a', sizeof(longp));
        longp[0] = '/';
        longp[sizeof(longp) - 1] = '\0';
        o = (struct shim_forward_options){.address = longp};
        assert_int_equal(shim_forward_new(&e->loop, e->ev, &o, &f), -ENAMETOOLONG);
        shim_forward_close(NULL, on_closed, e); /* accepted, nothing to call */
        assert_false(e->closed);
        /* "unix://" is taken off, an empty namespace is "default" */
        o = (struct shim_forward_options){.address = NULL, .ns = ""};
        char addr[160];
        ferry_bprintf(addr, sizeof(addr), "unix://%s", e->fake.path);
        o.address = addr;
        assert_int_equal(shim_forward_new(&e->loop, e->ev, &o, &e->fwd), 0);
        fake_start(&e->fake);
        publish_start(e, 0);
        assert_true(until_ok(e, 1, 2000));
        assert_string_equal(e->fake.got[0].ns, "default");
        assert_string_equal(e->fake.got[0].md_ns, "default");
}

/* -- ferry-shim serve, as containerd starts it -- */

static pid_t spawn_shim(const char *sock, const char *ttrpc_addr, const char *err_path,
                        int *ret_out)
{
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(p[1], 1);
                int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                dup2(err, 2);
                setenv("TTRPC_ADDRESS", ttrpc_addr, 1);
                execl(shim_bin, shim_bin, "-namespace", "ns1", "--address", sock, "--memory-mb",
                      "8", "serve", (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        *ret_out = p[0];
        return pid;
}

/* The shim's first stdout line ("unix://<sock>") says it accepts. */
static void wait_ready(int fd, const char *sock)
{
        char line[256];
        size_t n = 0;
        uint64_t end = ferry_now_us() + 5000000;
        while (n + 1 < sizeof(line) && ferry_now_us() < end) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                if (read(fd, line + n, 1) != 1 || line[n] == '\n')
                        break;
                n++;
        }
        line[n] = '\0';
        assert_true(!strncmp(line, "unix://", 7) && !strcmp(line + 7, sock));
}

static int reap(pid_t pid, uv_loop_t *loop)
{
        int status;
        for (int i = 0; i < 500; i++) {
                if (waitpid(pid, &status, WNOHANG) == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                uvrun_for_ms(loop, 10);
        }
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
}

static void test_shim_binary(void **state)
{
        struct env *e = *state;
        struct fake *fk = &e->fake;
        if (!shim_bin)
                skip();
        char sock[128], err_path[128];
        ferry_bprintf(sock, sizeof(sock), "%s/shim.sock", e->dir);
        ferry_bprintf(err_path, sizeof(err_path), "%s/shim.err", e->dir);
        fake_start(fk);
        int out = -1;
        pid_t pid = e->child = spawn_shim(sock, fk->path, err_path, &out);
        wait_ready(out, sock);
        close(out);
        assert_int_equal(ttrpc_client_connect(&e->loop, sock, NULL, &e->client), 0);
        struct ttrpc_client *c = e->client;
        uv_loop_t *L = &e->loop;
        uint32_t tpid = 0;
        assert_int_equal(task_create(L, c, "p1", "/run/bundle/p1"), FERRY_CODE_OK);
        assert_int_equal(task_start(L, c, "p1", &tpid), FERRY_CODE_OK);
        assert_int_equal(task_kill(L, c, "p1", SIGKILL), FERRY_CODE_OK);
        assert_int_equal(task_wait_exit(L, c, "p1"), 128 + SIGKILL);
        assert_int_equal(task_delete(L, c, "p1", NULL), FERRY_CODE_OK);
        assert_true(until_ok(e, 4, 5000));
        static const char *const topic[] = {"/tasks/create", "/tasks/start", "/tasks/exit",
                                            "/tasks/delete"};
        for (unsigned i = 0; i < 4; i++) {
                assert_string_equal(fk->got[i].topic, topic[i]);
                assert_string_equal(fk->got[i].cid, "p1");
                assert_string_equal(fk->got[i].ns, "ns1");
                assert_string_equal(fk->got[i].md_ns, "ns1");
        }
        assert_int_equal(fk->got[2].exit_status, 128 + SIGKILL);
        ttrpc_client_close(TAKE_PTR(e->client));
        assert_int_equal(kill(pid, SIGTERM), 0);
        assert_int_equal(reap(pid, L), 0);
        e->child = 0;
        char err[4096] = "";
        FILE *ef = fopen(err_path, "r");
        assert_non_null(ef);
        size_t n = fread(err, 1, sizeof(err) - 1, ef);
        err[n] = '\0';
        fclose(ef);
        assert_non_null(strstr(err, "ferry-shim: events forwarded=4 dropped=0 rejected=0 "
                                    "abandoned=0 bad=0 skipped=0"));
}

int main(int argc, char **argv)
{
        if (argc > 1)
                shim_bin = argv[1];
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_task_lifecycle, setup, teardown),
            cmocka_unit_test_setup_teardown(test_down_then_up, setup, teardown),
            cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
            cmocka_unit_test_setup_teardown(test_error_answers, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
            cmocka_unit_test_setup_teardown(test_close, setup, teardown),
            cmocka_unit_test_setup_teardown(test_options, setup, teardown),
            cmocka_unit_test_setup_teardown(test_shim_binary, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
