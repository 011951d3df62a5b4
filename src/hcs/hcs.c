/* SPDX-License-Identifier: MIT */
/* The generic half of the host compute interface: handles, the thread-pool dispatch of backend
 * calls, and delivery of notifications and exits on the loop thread. */
#include "hcs/hcs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hcs/backend.h"
#include "util/util.h"

#define NOTIFY_QUEUE 256

struct hcs_backend {
        uv_loop_t *loop;
        const struct hcs_backend_ops *ops;
        void *state;
        unsigned systems;
};

struct hcs_waiter {
        hcs_done_fn done;
        void *userdata;
};

struct hcs_system {
        struct hcs_backend *backend;
        void *vm;
        char id[64];
        struct json_object *doc;
        hcs_notify_fn notify;
        void *notify_userdata;
        uv_async_t async;

        /* Shared with worker threads. */
        pthread_mutex_t lock;
        /* Calls queued or running that a Cancel must not overtake (every call but the
         * transfer, which a Cancel exists to interrupt, and Cancel itself), and where a Cancel
         * waits for them: a host answers calls to one system in order, and a Cancel that ran
         * before a start still queued found "nothing to abort" while the start went on. */
        unsigned ordered;
        pthread_cond_t ordered_done;
        struct hcs_notification queue[NOTIFY_QUEUE];
        unsigned head, count;
        uint64_t dropped;
        bool exited;
        int exit_status;

        /* Loop thread only. */
        struct hcs_waiter *waiters;
        size_t n_waiters;
        unsigned inflight;
        bool closing;
        hcs_done_fn closed;
        void *closed_userdata;
};

enum hcs_op_kind {
        OP_CREATE,
        OP_START,
        OP_PAUSE,
        OP_RESUME,
        OP_TERMINATE,
        OP_MODIFY,
        OP_PROPERTIES,
        OP_LM_INITIALIZE,
        OP_LM_START_SOURCE,
        OP_LM_START_DESTINATION,
        OP_LM_TRANSFER,
        OP_LM_FINALIZE,
        OP_LM_CANCEL,
        OP_FREE,
};

struct hcs_op {
        uv_work_t work;
        struct hcs_system *sys;
        enum hcs_op_kind kind;
        struct json_object *arg;
        int fd;
        uint32_t session_id;
        bool resume;
        int result;
        struct json_object *out_json;
        void *out_blob;
        size_t out_size;
        hcs_done_fn done;
        hcs_json_fn done_json;
        hcs_blob_fn done_blob;
        void *userdata;
};

static const struct hcs_backend_ops *const hcs_backends[] = {&hcs_sim_ops};

int hcs_backend_open(uv_loop_t *loop, const char *name, const char *opts_json,
                     struct hcs_backend **ret)
{
        const struct hcs_backend_ops *ops = NULL;
        if (!loop || !name || !ret)
                return -EINVAL;
        for (size_t i = 0; i < ARRAY_SIZE(hcs_backends); i++)
                if (strcmp(hcs_backends[i]->name, name) == 0)
                        ops = hcs_backends[i];
        if (!ops)
                return -ENOENT;
        struct json_object *opts = NULL;
        if (opts_json) {
                opts = json_tokener_parse(opts_json);
                if (!opts || !json_object_is_type(opts, json_type_object)) {
                        json_object_put(opts);
                        return -EINVAL;
                }
        }
        _cleanup_free_ struct hcs_backend *b = calloc(1, sizeof(*b));
        if (!b) {
                json_object_put(opts);
                return -ENOMEM;
        }
        int r = ops->open(opts, &b->state);
        json_object_put(opts);
        if (r < 0)
                return r;
        b->loop = loop;
        b->ops = ops;
        *ret = TAKE_PTR(b);
        return 0;
}

struct hcs_backend *hcs_backend_free(struct hcs_backend *b)
{
        if (!b)
                return NULL;
        if (b->systems > 0)
                return b;
        b->ops->close(b->state);
        free(b);
        return NULL;
}

const char *hcs_backend_name(const struct hcs_backend *b)
{
        return b->ops->name;
}

static bool id_valid(const char *id)
{
        size_t n = id ? strlen(id) : 0;
        if (n == 0 || n >= 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = id[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static void system_async_cb(uv_async_t *h)
{
        struct hcs_system *sys = h->data;
        struct hcs_notification batch[32];

        for (;;) {
                unsigned n = 0;
                pthread_mutex_lock(&sys->lock);
                while (sys->count > 0 && n < ARRAY_SIZE(batch)) {
                        batch[n++] = sys->queue[sys->head];
                        sys->head = (sys->head + 1) % NOTIFY_QUEUE;
                        sys->count--;
                }
                pthread_mutex_unlock(&sys->lock);
                if (n == 0)
                        break;
                for (unsigned i = 0; i < n; i++)
                        if (sys->notify)
                                sys->notify(sys, &batch[i], sys->notify_userdata);
        }

        pthread_mutex_lock(&sys->lock);
        bool exited = sys->exited;
        int status = sys->exit_status;
        pthread_mutex_unlock(&sys->lock);
        if (exited && sys->n_waiters > 0) {
                /* Waiters may add waiters; take the list first so each is called once. */
                struct hcs_waiter *w = sys->waiters;
                size_t n = sys->n_waiters;
                sys->waiters = NULL;
                sys->n_waiters = 0;
                for (size_t i = 0; i < n; i++)
                        w[i].done(status, w[i].userdata);
                free(w);
        }
}

int hcs_system_new(struct hcs_backend *b, const char *id, const char *doc_json,
                   hcs_notify_fn notify, void *notify_userdata, struct hcs_system **ret)
{
        if (!b || !ret || !id_valid(id) || !doc_json)
                return -EINVAL;
        struct json_object *doc = json_tokener_parse(doc_json);
        if (!doc || !json_object_is_type(doc, json_type_object)) {
                json_object_put(doc);
                return -EINVAL;
        }
        struct hcs_system *sys = calloc(1, sizeof(*sys));
        if (!sys) {
                json_object_put(doc);
                return -ENOMEM;
        }
        sys->backend = b;
        ferry_strscpy(sys->id, id, sizeof(sys->id));
        sys->doc = doc;
        sys->notify = notify;
        sys->notify_userdata = notify_userdata;
        pthread_mutex_init(&sys->lock, NULL);
        pthread_cond_init(&sys->ordered_done, NULL);
        int r = b->ops->vm_new(b->state, sys, id, doc, &sys->vm);
        if (r < 0)
                goto fail;
        r = uv_async_init(b->loop, &sys->async, system_async_cb);
        if (r < 0) {
                b->ops->vm_free(sys->vm);
                goto fail;
        }
        sys->async.data = sys;
        b->systems++;
        *ret = sys;
        return 0;
fail:
        pthread_cond_destroy(&sys->ordered_done);
        pthread_mutex_destroy(&sys->lock);
        json_object_put(doc);
        free(sys);
        return r;
}

static void system_closed_cb(uv_handle_t *h)
{
        struct hcs_system *sys = h->data;
        hcs_done_fn closed = sys->closed;
        void *ud = sys->closed_userdata;
        sys->backend->systems--;
        pthread_cond_destroy(&sys->ordered_done);
        pthread_mutex_destroy(&sys->lock);
        json_object_put(sys->doc);
        /* Waits still pending end now: the system is gone. */
        for (size_t i = 0; i < sys->n_waiters; i++)
                sys->waiters[i].done(-ECANCELED, sys->waiters[i].userdata);
        free(sys->waiters);
        free(sys);
        if (closed)
                closed(0, ud);
}

const char *hcs_system_id(const struct hcs_system *sys)
{
        return sys->id;
}

const char *hcs_system_backend(const struct hcs_system *sys)
{
        return sys->backend->ops->name;
}

void *hcs_system_backend_vm(struct hcs_system *sys)
{
        return sys->vm;
}

uint64_t hcs_system_dropped_notifications(const struct hcs_system *sys)
{
        struct hcs_system *s = (struct hcs_system *)sys;
        pthread_mutex_lock(&s->lock);
        uint64_t d = s->dropped;
        pthread_mutex_unlock(&s->lock);
        return d;
}

void hcs_system_emit(struct hcs_system *sys, const struct hcs_notification *n)
{
        pthread_mutex_lock(&sys->lock);
        if (sys->count == NOTIFY_QUEUE) {
                sys->dropped++;
        } else {
                sys->queue[(sys->head + sys->count) % NOTIFY_QUEUE] = *n;
                sys->count++;
        }
        pthread_mutex_unlock(&sys->lock);
        uv_async_send(&sys->async);
}

void hcs_system_exited(struct hcs_system *sys, int status)
{
        pthread_mutex_lock(&sys->lock);
        if (!sys->exited) {
                sys->exited = true;
                sys->exit_status = status;
        }
        pthread_mutex_unlock(&sys->lock);
        uv_async_send(&sys->async);
}

static bool op_ordered(enum hcs_op_kind kind)
{
        return kind != OP_LM_TRANSFER && kind != OP_LM_CANCEL && kind != OP_FREE;
}

static void op_work_cb(uv_work_t *w)
{
        struct hcs_op *op = w->data;
        struct hcs_system *sys = op->sys;
        const struct hcs_backend_ops *ops = sys->backend->ops;
        void *vm = sys->vm;

        if (op->kind == OP_LM_CANCEL) {
                /* every call queued before this one has been picked up by the pool already
                 * (it runs its queue in order), so none of them waits on this thread */
                pthread_mutex_lock(&sys->lock);
                while (sys->ordered > 0)
                        pthread_cond_wait(&sys->ordered_done, &sys->lock);
                pthread_mutex_unlock(&sys->lock);
        }

        switch (op->kind) {
        case OP_CREATE:
                op->result = ops->create(vm);
                break;
        case OP_START:
                op->result = ops->start(vm);
                break;
        case OP_PAUSE:
                op->result = ops->pause(vm);
                break;
        case OP_RESUME:
                op->result = ops->resume(vm);
                break;
        case OP_TERMINATE:
                op->result = ops->terminate(vm);
                break;
        case OP_MODIFY:
                op->result = ops->modify(vm, op->arg);
                break;
        case OP_PROPERTIES:
                op->result = ops->properties(vm, op->arg, &op->out_json);
                break;
        case OP_LM_INITIALIZE:
                op->result = ops->lm_initialize(vm, op->arg, &op->out_blob, &op->out_size);
                break;
        case OP_LM_START_SOURCE:
                op->result = ops->lm_start_source(vm, op->fd, op->session_id);
                break;
        case OP_LM_START_DESTINATION:
                op->result = ops->lm_start_destination(vm, op->fd, op->session_id);
                break;
        case OP_LM_TRANSFER:
                op->result = ops->lm_transfer(vm);
                break;
        case OP_LM_FINALIZE:
                op->result = ops->lm_finalize(vm, op->resume);
                break;
        case OP_LM_CANCEL:
                op->result = ops->lm_cancel(vm);
                break;
        case OP_FREE:
                ops->vm_free(vm);
                op->result = 0;
                break;
        }
        if (op_ordered(op->kind)) {
                pthread_mutex_lock(&sys->lock);
                sys->ordered--;
                pthread_cond_broadcast(&sys->ordered_done);
                pthread_mutex_unlock(&sys->lock);
        }
}

static void op_after_cb(uv_work_t *w, int status)
{
        struct hcs_op *op = w->data;
        struct hcs_system *sys = op->sys;
        int r = status < 0 ? status : op->result;

        if (op->kind == OP_FREE) {
                /* Deliver what the last calls emitted, then release the handle. */
                system_async_cb(&sys->async);
                uv_close((uv_handle_t *)&sys->async, system_closed_cb);
        } else {
                sys->inflight--;
                if (op->done_json)
                        op->done_json(r, r < 0 ? NULL : op->out_json, op->userdata);
                else if (op->done_blob)
                        op->done_blob(r, r < 0 ? NULL : op->out_blob, r < 0 ? 0 : op->out_size,
                                      op->userdata);
                else if (op->done)
                        op->done(r, op->userdata);
        }
        json_object_put(op->arg);
        json_object_put(op->out_json);
        free(op->out_blob);
        free(op);
}

static struct hcs_op *op_new(struct hcs_system *sys, enum hcs_op_kind kind, void *userdata)
{
        struct hcs_op *op = calloc(1, sizeof(*op));
        if (!op)
                return NULL;
        op->sys = sys;
        op->kind = kind;
        op->fd = -1;
        op->userdata = userdata;
        op->work.data = op;
        return op;
}

static void ordered_add(struct hcs_system *sys, int n)
{
        pthread_mutex_lock(&sys->lock);
        sys->ordered += (unsigned)n;
        pthread_mutex_unlock(&sys->lock);
}

static int op_queue(struct hcs_op *op)
{
        /* counted before the pool can run it, so its worker never counts down first */
        if (op_ordered(op->kind))
                ordered_add(op->sys, 1);
        int r = uv_queue_work(op->sys->backend->loop, &op->work, op_work_cb, op_after_cb);
        if (r < 0) {
                if (op_ordered(op->kind))
                        ordered_add(op->sys, -1);
                json_object_put(op->arg);
                free(op);
                return r;
        }
        if (op->kind != OP_FREE)
                op->sys->inflight++;
        return 0;
}

static int simple_call(struct hcs_system *sys, enum hcs_op_kind kind, hcs_done_fn done,
                       void *userdata)
{
        if (!sys || !done || sys->closing)
                return -EINVAL;
        struct hcs_op *op = op_new(sys, kind, userdata);
        if (!op)
                return -ENOMEM;
        op->done = done;
        return op_queue(op);
}

int hcs_system_close(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        if (!sys)
                return 0;
        if (sys->inflight > 0)
                return -EBUSY;
        if (sys->closing)
                return -EALREADY;
        struct hcs_op *op = op_new(sys, OP_FREE, NULL);
        if (!op)
                return -ENOMEM;
        int r = op_queue(op);
        if (r < 0)
                return r;
        sys->closing = true;
        sys->closed = done;
        sys->closed_userdata = userdata;
        return 0;
}

int hcs_create(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        return simple_call(sys, OP_CREATE, done, userdata);
}

int hcs_start(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        return simple_call(sys, OP_START, done, userdata);
}

int hcs_pause(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        return simple_call(sys, OP_PAUSE, done, userdata);
}

int hcs_resume(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        return simple_call(sys, OP_RESUME, done, userdata);
}

int hcs_terminate(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        return simple_call(sys, OP_TERMINATE, done, userdata);
}

int hcs_lm_transfer(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        return simple_call(sys, OP_LM_TRANSFER, done, userdata);
}

int hcs_lm_cancel(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        return simple_call(sys, OP_LM_CANCEL, done, userdata);
}

int hcs_lm_finalize(struct hcs_system *sys, bool resume, hcs_done_fn done, void *userdata)
{
        if (!sys || !done || sys->closing)
                return -EINVAL;
        struct hcs_op *op = op_new(sys, OP_LM_FINALIZE, userdata);
        if (!op)
                return -ENOMEM;
        op->done = done;
        op->resume = resume;
        return op_queue(op);
}

static int parse_object(const char *json, struct json_object **ret)
{
        struct json_object *o = json_tokener_parse(json);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EINVAL;
        }
        *ret = o;
        return 0;
}

int hcs_modify(struct hcs_system *sys, const char *request_json, hcs_done_fn done, void *userdata)
{
        if (!sys || !done || !request_json || sys->closing)
                return -EINVAL;
        struct json_object *req;
        int r = parse_object(request_json, &req);
        if (r < 0)
                return r;
        struct hcs_op *op = op_new(sys, OP_MODIFY, userdata);
        if (!op) {
                json_object_put(req);
                return -ENOMEM;
        }
        op->arg = req;
        op->done = done;
        return op_queue(op);
}

int hcs_properties(struct hcs_system *sys, hcs_json_fn done, void *userdata)
{
        if (!sys || !done || sys->closing)
                return -EINVAL;
        struct hcs_op *op = op_new(sys, OP_PROPERTIES, userdata);
        if (!op)
                return -ENOMEM;
        op->done_json = done;
        return op_queue(op);
}

int hcs_properties_query(struct hcs_system *sys, const char *query_json, hcs_json_fn done,
                         void *userdata)
{
        if (!sys || !done || !query_json || sys->closing)
                return -EINVAL;
        struct json_object *query;
        int r = parse_object(query_json, &query);
        if (r < 0)
                return r;
        struct hcs_op *op = op_new(sys, OP_PROPERTIES, userdata);
        if (!op) {
                json_object_put(query);
                return -ENOMEM;
        }
        op->arg = query;
        op->done_json = done;
        return op_queue(op);
}

int hcs_wait(struct hcs_system *sys, hcs_done_fn done, void *userdata)
{
        if (!sys || !done || sys->closing)
                return -EINVAL;
        struct hcs_waiter *w = realloc(sys->waiters, (sys->n_waiters + 1) * sizeof(*w));
        if (!w)
                return -ENOMEM;
        sys->waiters = w;
        w[sys->n_waiters++] = (struct hcs_waiter){.done = done, .userdata = userdata};
        /* If it already exited, the async callback completes the wait on the next turn. */
        return uv_async_send(&sys->async);
}

int hcs_lm_initialize(struct hcs_system *sys, const char *opts_json, hcs_blob_fn done,
                      void *userdata)
{
        if (!sys || !done || sys->closing)
                return -EINVAL;
        struct json_object *opts = NULL;
        if (opts_json) {
                int r = parse_object(opts_json, &opts);
                if (r < 0)
                        return r;
        }
        struct hcs_op *op = op_new(sys, OP_LM_INITIALIZE, userdata);
        if (!op) {
                json_object_put(opts);
                return -ENOMEM;
        }
        op->arg = opts;
        op->done_blob = done;
        return op_queue(op);
}

static int lm_start(struct hcs_system *sys, enum hcs_op_kind kind, int fd, uint32_t session_id,
                    hcs_done_fn done, void *userdata)
{
        if (!sys || !done || fd < 0 || sys->closing) {
                if (fd >= 0)
                        close(fd);
                return -EINVAL;
        }
        struct hcs_op *op = op_new(sys, kind, userdata);
        if (!op) {
                close(fd);
                return -ENOMEM;
        }
        op->fd = fd;
        op->session_id = session_id;
        op->done = done;
        int r = op_queue(op);
        if (r < 0)
                close(fd);
        return r;
}

int hcs_lm_start_source(struct hcs_system *sys, int fd, uint32_t session_id, hcs_done_fn done,
                        void *userdata)
{
        return lm_start(sys, OP_LM_START_SOURCE, fd, session_id, done, userdata);
}

int hcs_lm_start_destination(struct hcs_system *sys, int fd, uint32_t session_id, hcs_done_fn done,
                             void *userdata)
{
        return lm_start(sys, OP_LM_START_DESTINATION, fd, session_id, done, userdata);
}

const char *hcs_event_name(enum hcs_event e)
{
        static const char *const names[] = {
            [HCS_EVENT_SETUP_DONE] = "SetupDone",
            [HCS_EVENT_TRANSFER_IN_PROGRESS] = "TransferInProgress",
            [HCS_EVENT_BLACKOUT_STARTED] = "BlackoutStarted",
            [HCS_EVENT_BLACKOUT_EXITED] = "BlackoutExited",
            [HCS_EVENT_MIGRATION_DONE] = "MigrationDone",
            [HCS_EVENT_RECOVERY_DONE] = "MigrationRecoveryDone",
            [HCS_EVENT_MIGRATION_FAILED] = "MigrationFailed",
        };
        if ((size_t)e < ARRAY_SIZE(names) && names[e])
                return names[e];
        return "Unknown";
}

const char *hcs_result_name(enum hcs_result r)
{
        static const char *const names[] = {
            [HCS_RESULT_SUCCESS] = "Success",
            [HCS_RESULT_CANCELLED] = "MigrationCancelled",
            [HCS_RESULT_SOURCE_FAILED] = "SourceMigrationFailed",
            [HCS_RESULT_DESTINATION_FAILED] = "DestinationMigrationFailed",
            [HCS_RESULT_RECOVERY_FAILED] = "MigrationRecoveryFailed",
        };
        if ((size_t)r < ARRAY_SIZE(names) && names[r])
                return names[r];
        return "Invalid";
}
