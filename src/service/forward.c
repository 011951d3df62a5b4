/* SPDX-License-Identifier: MIT */
#include "service/forward.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include <json-c/json.h>

#include "events.pb-c.h"
#include "events_ttrpc.pb-c.h"
#include "rpc/ident.h"
#include "rpc/ttrpc.h"
#include "service/events.h"
#include "util/util.h"

#define RETRY_MAX_MS 5000u

/* -- the conversion -- */

/* containerd's topic for each message it has; the type URL is the message's full name. */
static const struct topic_map {
        const char *topic;
        const ProtobufCMessageDescriptor *desc;
} topics[] = {
    {"/tasks/create", &containerd__events__task_create__descriptor},
    {"/tasks/start", &containerd__events__task_start__descriptor},
    {"/tasks/exit", &containerd__events__task_exit__descriptor},
    {"/tasks/delete", &containerd__events__task_delete__descriptor},
    {"/tasks/exec-added", &containerd__events__task_exec_added__descriptor},
    {"/tasks/exec-started", &containerd__events__task_exec_started__descriptor},
    {"/tasks/paused", &containerd__events__task_paused__descriptor},
    {"/tasks/resumed", &containerd__events__task_resumed__descriptor},
};

static const struct topic_map *topic_find(const char *topic)
{
        for (size_t i = 0; i < ARRAY_SIZE(topics); i++)
                if (!strcmp(topics[i].topic, topic))
                        return &topics[i];
        return NULL;
}

/* The sub-messages one conversion allocates (a TaskIO, a Timestamp); strings are borrowed from
 * the parsed JSON, which outlives the packing. */
struct conv {
        void *allocs[4];
        size_t n_allocs;
};

static ProtobufCMessage *conv_new(struct conv *cv, const ProtobufCMessageDescriptor *d)
{
        if (cv->n_allocs == ARRAY_SIZE(cv->allocs))
                return NULL;
        ProtobufCMessage *m = calloc(1, d->sizeof_message);
        if (!m)
                return NULL;
        protobuf_c_message_init(d, m);
        cv->allocs[cv->n_allocs++] = m;
        return m;
}

static void conv_free(struct conv *cv)
{
        for (size_t i = 0; i < cv->n_allocs; i++)
                free(cv->allocs[i]);
}

/* protojson's Timestamp: "2026-11-29T21:14:53.332938970Z" (UTC, 0 to 9 fraction digits). */
static int parse_rfc3339(const char *s, uint64_t *ret_ns)
{
        struct tm tm = {0};
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        uint64_t frac = 0;
        unsigned digits = 0;
        if (*p == '.') {
                for (p++; *p >= '0' && *p <= '9' && digits < 9; p++, digits++)
                        frac = frac * 10 + (uint64_t)(*p - '0');
                if (digits == 0)
                        return -EINVAL;
        }
        if (strcmp(p, "Z") != 0)
                return -EINVAL;
        for (; digits < 9; digits++)
                frac *= 10;
        time_t t = timegm(&tm);
        if (t < 0)
                return -EINVAL;
        *ret_ns = (uint64_t)t * 1000000000ull + frac;
        return 0;
}

static int fill_timestamp(struct conv *cv, const ProtobufCFieldDescriptor *fd, void *slot,
                          struct json_object *v, struct json_object *parent)
{
        uint64_t ns;
        struct json_object *wall;
        char alt[64];
        if (v) {
                if (!json_object_is_type(v, json_type_string) ||
                    parse_rfc3339(json_object_get_string(v), &ns) < 0)
                        return -EINVAL;
        } else if (ferry_bprintf(alt, sizeof(alt), "%s_ns", fd->name) > 0 &&
                   json_object_object_get_ex(parent, alt, &wall)) {
                /* a controller's "exited_at_ns": ferry_wall_ns() read at the exit */
                int64_t n = json_object_get_int64(wall);
                if (!json_object_is_type(wall, json_type_int) || n <= 0)
                        return -EINVAL;
                ns = (uint64_t)n;
        } else {
                return 0; /* absent: unset, as protojson leaves it */
        }
        Containerd__Task__V2__Timestamp *ts =
            (void *)conv_new(cv, &containerd__task__v2__timestamp__descriptor);
        if (!ts)
                return -ENOMEM;
        ts->seconds = (int64_t)(ns / 1000000000ull);
        ts->nanos = (int32_t)(ns % 1000000000ull);
        *(void **)slot = ts;
        return 0;
}

static int fill_message(struct conv *cv, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                        struct json_object *o);

/* One field from the member of the same name (protojson's original names, as events.c and
 * the controllers write them). Repeated fields (TaskCreate.rootfs) are not carried. */
static int fill_field(struct conv *cv, const ProtobufCFieldDescriptor *fd, ProtobufCMessage *m,
                      struct json_object *o)
{
        void *slot = (char *)m + fd->offset;
        struct json_object *v = NULL;
        json_object_object_get_ex(o, fd->name, &v);
        if (fd->label == PROTOBUF_C_LABEL_REPEATED)
                return 0;
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE &&
            fd->descriptor == &containerd__task__v2__timestamp__descriptor)
                return fill_timestamp(cv, fd, slot, v, o);
        if (!v)
                return 0;
        int64_t n = json_object_get_int64(v);
        switch (fd->type) {
        case PROTOBUF_C_TYPE_STRING:
                if (!json_object_is_type(v, json_type_string))
                        return -EINVAL;
                *(const char **)slot = json_object_get_string(v);
                return 0;
        case PROTOBUF_C_TYPE_UINT32:
                if (!json_object_is_type(v, json_type_int) || n < 0 || n > UINT32_MAX)
                        return -EINVAL;
                *(uint32_t *)slot = (uint32_t)n;
                return 0;
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_ENUM:
                if (!json_object_is_type(v, json_type_int) || n < INT32_MIN || n > INT32_MAX)
                        return -EINVAL;
                *(int32_t *)slot = (int32_t)n;
                return 0;
        case PROTOBUF_C_TYPE_BOOL:
                if (!json_object_is_type(v, json_type_boolean))
                        return -EINVAL;
                *(protobuf_c_boolean *)slot = json_object_get_boolean(v);
                return 0;
        case PROTOBUF_C_TYPE_MESSAGE: {
                if (!json_object_is_type(v, json_type_object))
                        return -EINVAL;
                ProtobufCMessage *sub = conv_new(cv, fd->descriptor);
                if (!sub)
                        return -ENOMEM;
                *(ProtobufCMessage **)slot = sub;
                return fill_message(cv, fd->descriptor, sub, v);
        }
        default:
                return -EINVAL; /* no other type appears in these events */
        }
}

static int fill_message(struct conv *cv, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                        struct json_object *o)
{
        for (unsigned i = 0; i < d->n_fields; i++) {
                int r = fill_field(cv, &d->fields[i], m, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Every task event names its container; containerd names an init process by the container id
 * (ferry's controllers write "" for it in TaskExit). */
static int finish_event(const ProtobufCMessageDescriptor *d, ProtobufCMessage *m)
{
        const char *cid = *(const char **)((char *)m + d->fields[0].offset);
        if (strcmp(d->fields[0].name, "container_id") != 0 || !cid || !*cid)
                return -EINVAL;
        if (d == &containerd__events__task_exit__descriptor) {
                Containerd__Events__TaskExit *e = (void *)m;
                if (!e->id || !*e->id)
                        e->id = (char *)cid;
        }
        return 0;
}

int shim_forward_encode(const char *topic, const char *json, const char **ret_type_url,
                        uint8_t **ret_buf, size_t *ret_len)
{
        const struct topic_map *t = topic ? topic_find(topic) : NULL;
        if (!t)
                return -ENOENT;
        if (!json)
                return -EINVAL;
        struct json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        struct json_object *o = json_tokener_parse_ex(tok, json, -1);
        /* the whole string must be one object: trailing bytes or a cut-off body are refused */
        bool whole = o && json_tokener_get_error(tok) == json_tokener_success &&
                     json_tokener_get_parse_end(tok) == strlen(json);
        json_tokener_free(tok);
        if (!whole || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EINVAL;
        }
        struct conv cv = {0};
        ProtobufCMessage *m = conv_new(&cv, t->desc);
        int r = m ? fill_message(&cv, t->desc, m, o) : -ENOMEM;
        if (r == 0)
                r = finish_event(t->desc, m);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (r == 0) {
                len = protobuf_c_message_get_packed_size(m);
                buf = malloc(len ? len : 1);
                if (buf)
                        protobuf_c_message_pack(m, buf);
                else
                        r = -ENOMEM;
        }
        conv_free(&cv);
        json_object_put(o);
        if (r < 0)
                return r;
        *ret_type_url = t->desc->name;
        *ret_buf = buf;
        *ret_len = len;
        return 0;
}

/* -- the queue and the connection -- */

/* One converted event, waiting or in flight (the head). */
struct item {
        struct item *next;
        const char *topic;    /* static, from topics[] */
        const char *type_url; /* static */
        int64_t ts_sec;       /* publication time */
        int32_t ts_nanos;
        uint32_t attempts; /* error answers so far */
        size_t len;
        uint8_t data[]; /* the packed event */
};

struct shim_forward {
        uv_loop_t *loop;
        struct shim_events *ev;
        int sub_id;
        char address[sizeof(((struct sockaddr_un *)0)->sun_path)];
        char ns[TTRPC_ID_MAX + 1];
        struct shim_forward_options o; /* defaults filled in; strings not kept */
        struct ttrpc_client *client;
        bool stale;    /* client's connection is gone: closed before the next connect */
        bool inflight; /* the head is being forwarded */
        uint32_t backoff_ms;
        struct item *head, *tail;
        uint32_t n_items;
        uv_timer_t timer; /* reconnect or retry */
        uv_timer_t grace; /* close: the end of the flush */
        int open_handles;
        bool closing, finishing;
        shim_forward_closed_fn done;
        void *done_ud;
        struct shim_forward_stats st;
};

static void pump(struct shim_forward *f);

static void item_pop(struct shim_forward *f)
{
        struct item *it = f->head;
        f->head = it->next;
        if (!f->head)
                f->tail = NULL;
        f->n_items--;
        free(it);
}

static void on_timer(uv_timer_t *t)
{
        struct shim_forward *f = t->data;
        if (f->stale) {
                /* closed here, outside the client's own callbacks */
                ttrpc_client_close(TAKE_PTR(f->client));
                f->stale = false;
        }
        pump(f);
}

/* containerd is not there or went away: try again later, later each time. */
static void lost(struct shim_forward *f)
{
        f->st.connected = false;
        if (f->client)
                f->stale = true;
        uv_timer_start(&f->timer, on_timer, f->backoff_ms, 0);
        f->backoff_ms =
            f->backoff_ms >= f->o.reconnect_max_ms / 2 ? f->o.reconnect_max_ms : f->backoff_ms * 2;
}

static void on_forwarded(enum ferry_code code, const char *message, ProtobufCMessage *resp,
                         void *userdata);

static int send_head(struct shim_forward *f)
{
        const struct item *it = f->head;
        Containerd__Task__V2__Timestamp ts = CONTAINERD__TASK__V2__TIMESTAMP__INIT;
        Containerd__Task__V2__Any any = CONTAINERD__TASK__V2__ANY__INIT;
        Containerd__Services__Events__Ttrpc__V1__Envelope env =
            CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
        Containerd__Services__Events__Ttrpc__V1__ForwardRequest req =
            CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
        ts.seconds = it->ts_sec;
        ts.nanos = it->ts_nanos;
        any.type_url = (char *)it->type_url;
        any.value.data = (uint8_t *)it->data;
        any.value.len = it->len;
        env.timestamp = &ts;
        env.namespace_ = f->ns;
        env.topic = (char *)it->topic;
        env.event = &any;
        req.envelope = &env;
        struct ttrpc_kv md = {.key = SHIM_FORWARD_NS_KEY, .value = f->ns};
        struct ttrpc_call_opts opts = {
            .timeout_ns = (int64_t)f->o.timeout_ms * 1000000,
            .metadata = &md,
            .n_metadata = 1,
        };
        return ttrpc_client_call(f->client, SHIM_FORWARD_SERVICE, SHIM_FORWARD_METHOD, &req.base,
                                 &containerd__task__v2__empty__descriptor, &opts, on_forwarded, f);
}

/* Sends the head when nothing is in flight or waiting on the timer; connects first if need
 * be. Events that can never be sent (too large) are given up here. */
static void pump(struct shim_forward *f)
{
        while (!f->finishing && !f->inflight && f->head &&
               !uv_is_active((uv_handle_t *)&f->timer)) {
                if (!f->client) {
                        int r = ttrpc_client_connect(f->loop, f->address, NULL, &f->client);
                        if (r < 0) {
                                f->client = NULL;
                                f->st.connect_failures++;
                                lost(f);
                                return;
                        }
                        f->st.connects++;
                        f->st.connected = true;
                }
                int r = send_head(f);
                if (r == 0) {
                        f->inflight = true;
                        return;
                }
                if (r == -EMSGSIZE || r == -EINVAL || r == -E2BIG) {
                        f->st.rejected++;
                        item_pop(f);
                        continue;
                }
                lost(f); /* -ENOTCONN, -ENOBUFS, -ENOMEM: a fresh connection, later */
        }
}

static void on_grace(uv_timer_t *t);

static void on_forwarded(enum ferry_code code, const char *message, ProtobufCMessage *resp,
                         void *userdata)
{
        struct shim_forward *f = userdata;
        if (resp)
                protobuf_c_message_free_unpacked(resp, NULL);
        f->inflight = false;
        if (f->finishing)
                return; /* the close gave the queue up; the head is already freed */
        if (code == FERRY_CODE_OK) {
                f->st.forwarded++;
                f->backoff_ms = f->o.reconnect_ms;
                item_pop(f);
        } else if (code == FERRY_CODE_UNAVAILABLE) {
                /* the connection is gone: the head waits for the next one, uncounted */
                lost(f);
        } else if (++f->head->attempts > f->o.max_retries) {
                f->st.rejected++;
                item_pop(f);
        } else {
                f->st.retries++;
                unsigned doublings = f->head->attempts - 1;
                uint64_t ms = (uint64_t)f->o.retry_ms << (doublings < 16 ? doublings : 16);
                uv_timer_start(&f->timer, on_timer, ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS, 0);
        }
        /* flushed while closing: end now, but outside this callback */
        if (f->closing && !f->head)
                uv_timer_start(&f->grace, on_grace, 0, 0);
        else
                pump(f);
}

static void on_event(uint64_t seq, const char *topic, const char *json, void *userdata)
{
        struct shim_forward *f = userdata;
        const char *type_url;
        uint8_t *buf;
        size_t len;
        int r = shim_forward_encode(topic, json, &type_url, &buf, &len);
        if (r == -ENOENT) {
                f->st.skipped++;
                return;
        }
        if (r < 0) {
                f->st.bad++;
                return;
        }
        if (f->n_items >= f->o.max_queue) {
                f->st.dropped++;
                free(buf);
                return;
        }
        struct item *it = malloc(sizeof(*it) + len);
        if (!it) {
                f->st.dropped++;
                free(buf);
                return;
        }
        uint64_t now = ferry_wall_ns();
        *it = (struct item){.topic = topic_find(topic)->topic,
                            .type_url = type_url,
                            .ts_sec = (int64_t)(now / 1000000000ull),
                            .ts_nanos = (int32_t)(now % 1000000000ull),
                            .len = len};
        memcpy(it->data, buf, len);
        free(buf);
        if (f->tail)
                f->tail->next = it;
        else
                f->head = it;
        f->tail = it;
        f->n_items++;
        pump(f);
}

static void opt_default(uint32_t *v, uint32_t def)
{
        if (*v == 0)
                *v = def;
}

int shim_forward_new(uv_loop_t *loop, struct shim_events *ev,
                     const struct shim_forward_options *opts, struct shim_forward **ret)
{
        if (!loop || !ev || !opts || !opts->address)
                return -EINVAL;
        const char *addr = opts->address;
        if (!strncmp(addr, "unix://", 7))
                addr += 7;
        const char *ns = opts->ns && *opts->ns ? opts->ns : "default";
        if (!*addr || ttrpc_valid_id(ns, strlen(ns)) < 0)
                return -EINVAL;
        _cleanup_free_ struct shim_forward *f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        if (ferry_strscpy(f->address, addr, sizeof(f->address)) < 0)
                return -ENAMETOOLONG;
        ferry_strscpy(f->ns, ns, sizeof(f->ns));
        f->o = *opts;
        f->o.address = f->o.ns = NULL;
        opt_default(&f->o.max_queue, 2048);
        opt_default(&f->o.max_retries, 5);
        opt_default(&f->o.retry_ms, 250);
        opt_default(&f->o.reconnect_ms, 50);
        opt_default(&f->o.reconnect_max_ms, 2000);
        opt_default(&f->o.timeout_ms, 5000);
        opt_default(&f->o.grace_ms, 1000);
        f->backoff_ms = f->o.reconnect_ms;
        f->loop = loop;
        f->ev = ev;
        f->sub_id = shim_events_subscribe(ev, on_event, f);
        if (f->sub_id < 0)
                return f->sub_id;
        uv_timer_init(loop, &f->timer);
        uv_timer_init(loop, &f->grace);
        f->timer.data = f->grace.data = f;
        f->open_handles = 2;
        *ret = TAKE_PTR(f);
        return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
        struct shim_forward *f = h->data;
        if (--f->open_handles > 0)
                return;
        if (f->done)
                f->done(&f->st, f->done_ud);
        free(f);
}

/* The end of the flush: what is left is abandoned, the connection and the timers close. */
static void on_grace(uv_timer_t *t)
{
        struct shim_forward *f = t->data;
        f->finishing = true;
        f->st.abandoned += f->n_items;
        while (f->head)
                item_pop(f);
        f->st.queued = 0;
        f->st.connected = false;
        ttrpc_client_close(TAKE_PTR(f->client)); /* a call in flight ends in on_forwarded */
        uv_close((uv_handle_t *)&f->timer, on_handle_closed);
        uv_close((uv_handle_t *)&f->grace, on_handle_closed);
}

void shim_forward_close(struct shim_forward *f, shim_forward_closed_fn done, void *userdata)
{
        if (!f || f->closing)
                return;
        f->closing = true;
        f->done = done;
        f->done_ud = userdata;
        shim_events_unsubscribe(f->ev, f->sub_id);
        f->ev = NULL;
        if (!f->head) {
                uv_timer_start(&f->grace, on_grace, 0, 0);
                return;
        }
        uv_timer_start(&f->grace, on_grace, f->o.grace_ms, 0);
        /* a reconnect backoff may be longer than the grace: one try now */
        if (!f->inflight && (!f->client || f->stale) && uv_is_active((uv_handle_t *)&f->timer)) {
                uv_timer_stop(&f->timer);
                on_timer(&f->timer);
        }
}

void shim_forward_get_stats(const struct shim_forward *f, struct shim_forward_stats *ret)
{
        *ret = f->st;
        ret->queued = f->n_items;
}
