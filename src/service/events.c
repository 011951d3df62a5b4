/* SPDX-License-Identifier: MIT */
#include "service/events.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/util.h"

struct subscriber {
        int id; /* 0 = free slot */
        shim_event_fn fn;
        void *userdata;
};

struct shim_events {
        int log_fd;
        uint64_t seq;
        uint64_t log_errors;
        int next_id;
        struct subscriber subs[SHIM_EVENTS_MAX_SUBSCRIBERS];
};

int shim_events_new(const char *log_path, struct shim_events **ret)
{
        _cleanup_free_ struct shim_events *ev = calloc(1, sizeof(*ev));
        if (!ev)
                return -ENOMEM;
        ev->log_fd = -1;
        ev->next_id = 1;
        if (log_path) {
                ev->log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (ev->log_fd < 0)
                        return -errno;
        }
        *ret = TAKE_PTR(ev);
        return 0;
}

struct shim_events *shim_events_free(struct shim_events *ev)
{
        if (!ev)
                return NULL;
        if (ev->log_fd >= 0)
                close(ev->log_fd);
        free(ev);
        return NULL;
}

/* One line: {"seq":N,"time_ns":T,"topic":"…","event":{…}}. The body is embedded as given: it
 * comes from this file or from a controller, both of which build it with json-c. */
static void log_event(struct shim_events *ev, const char *topic, const char *json)
{
        if (ev->log_fd < 0)
                return;
        _cleanup_free_ char *topic_q = NULL;
        struct json_object *t = json_object_new_string(topic);
        if (t)
                topic_q = strdup(json_object_to_json_string_ext(
                    t, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(t);
        _cleanup_free_ char *line = NULL;
        int n = topic_q ? asprintf(&line,
                                   "{\"seq\":%" PRIu64 ",\"time_ns\":%" PRIu64
                                   ",\"topic\":%s,\"event\":%s}\n",
                                   ev->seq, ferry_wall_ns(), topic_q, json)
                        : -1;
        if (n < 0) {
                line = NULL;
                ev->log_errors++;
                return;
        }
        /* O_APPEND writes of one line are atomic enough for a log; a short write is an error */
        ssize_t w = write(ev->log_fd, line, (size_t)n);
        if (w != n)
                ev->log_errors++;
}

void shim_events_publish(const char *topic, const char *json, void *userdata)
{
        struct shim_events *ev = userdata;
        if (!ev || !topic || !json)
                return;
        ev->seq++;
        log_event(ev, topic, json);
        for (size_t i = 0; i < ARRAY_SIZE(ev->subs); i++) {
                struct subscriber s = ev->subs[i]; /* copy: the callback may unsubscribe */
                if (s.id)
                        s.fn(ev->seq, topic, json, s.userdata);
        }
}

int shim_events_subscribe(struct shim_events *ev, shim_event_fn fn, void *userdata)
{
        if (!ev || !fn)
                return -EINVAL;
        for (size_t i = 0; i < ARRAY_SIZE(ev->subs); i++) {
                if (ev->subs[i].id)
                        continue;
                ev->subs[i] = (struct subscriber){ev->next_id++, fn, userdata};
                return ev->subs[i].id;
        }
        return -ENOSPC;
}

int shim_events_unsubscribe(struct shim_events *ev, int id)
{
        for (size_t i = 0; ev && id > 0 && i < ARRAY_SIZE(ev->subs); i++) {
                if (ev->subs[i].id == id) {
                        ev->subs[i] = (struct subscriber){0};
                        return 0;
                }
        }
        return -ENOENT;
}

uint64_t shim_events_count(const struct shim_events *ev)
{
        return ev ? ev->seq : 0;
}

uint64_t shim_events_log_errors(const struct shim_events *ev)
{
        return ev ? ev->log_errors : 0;
}

/* protojson writes Timestamps as RFC 3339 strings in UTC. */
static void add_timestamp(struct json_object *o, const char *key, uint64_t ns)
{
        time_t s = (time_t)(ns / 1000000000ull);
        struct tm tm;
        char buf[64], out[80];
        gmtime_r(&s, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        ferry_bprintf(out, sizeof(out), "%s.%09uZ", buf, (unsigned)(ns % 1000000000ull));
        json_object_object_add(o, key, json_object_new_string(out));
}

static int publish_obj(struct shim_events *ev, const char *topic, struct json_object *o)
{
        if (!o)
                return -ENOMEM;
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s) {
                json_object_put(o);
                return -ENOMEM;
        }
        shim_events_publish(topic, s, ev);
        json_object_put(o);
        return 0;
}

static struct json_object *task_obj(const char *container_id)
{
        struct json_object *o = json_object_new_object();
        if (o)
                json_object_object_add(o, "container_id", json_object_new_string(container_id));
        return o;
}

int shim_events_task_create(struct shim_events *ev, const char *container_id, const char *bundle,
                            uint32_t pid)
{
        struct json_object *o = task_obj(container_id);
        if (o) {
                json_object_object_add(o, "bundle", json_object_new_string(bundle ? bundle : ""));
                json_object_object_add(o, "pid", json_object_new_int64(pid));
        }
        return publish_obj(ev, "/tasks/create", o);
}

int shim_events_task_start(struct shim_events *ev, const char *container_id, uint32_t pid)
{
        struct json_object *o = task_obj(container_id);
        if (o)
                json_object_object_add(o, "pid", json_object_new_int64(pid));
        return publish_obj(ev, "/tasks/start", o);
}

int shim_events_task_exit(struct shim_events *ev, const char *container_id, const char *exec_id,
                          uint32_t pid, uint32_t exit_status, uint64_t exited_at_ns)
{
        struct json_object *o = task_obj(container_id);
        if (o) {
                /* containerd names the init process by the container id */
                json_object_object_add(
                    o, "id", json_object_new_string(exec_id && *exec_id ? exec_id : container_id));
                json_object_object_add(o, "pid", json_object_new_int64(pid));
                json_object_object_add(o, "exit_status", json_object_new_int64(exit_status));
                add_timestamp(o, "exited_at", exited_at_ns);
        }
        return publish_obj(ev, "/tasks/exit", o);
}

int shim_events_task_delete(struct shim_events *ev, const char *container_id, const char *exec_id,
                            uint32_t pid, uint32_t exit_status, uint64_t exited_at_ns)
{
        struct json_object *o = task_obj(container_id);
        if (o) {
                json_object_object_add(o, "pid", json_object_new_int64(pid));
                json_object_object_add(o, "exit_status", json_object_new_int64(exit_status));
                add_timestamp(o, "exited_at", exited_at_ns);
                json_object_object_add(o, "id", json_object_new_string(exec_id ? exec_id : ""));
        }
        return publish_obj(ev, "/tasks/delete", o);
}
