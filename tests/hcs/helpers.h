/* SPDX-License-Identifier: MIT */
/* Shared by the hcs and guest tests: the loop of loop.h, result recorders, compute documents,
 * and a notification recorder. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <fcntl.h>
#include <cmocka.h>
#include <uv.h>

#include "hcs/fault.h"
#include "hcs/hash.h"
#include "hcs/hcs.h"
#include "hcs/sim/sim.h"
#include "util/util.h"

#include "loop.h"

struct result {
        bool done;
        int r;
        uint64_t value;
        struct json_object *json;
        uint8_t blob[512];
        size_t blob_size;
};

static void on_done(int r, void *ud)
{
        struct result *x = ud;
        x->done = true;
        x->r = r;
}

static void on_json(int r, struct json_object *doc, void *ud)
{
        struct result *x = ud;
        x->done = true;
        x->r = r;
        x->json = doc ? json_object_get(doc) : NULL;
}

static void on_blob(int r, const void *blob, size_t size, void *ud)
{
        struct result *x = ud;
        x->done = true;
        x->r = r;
        if (r == 0 && size <= sizeof(x->blob)) {
                memcpy(x->blob, blob, size);
                x->blob_size = size;
        }
}

/* Issues an hcs call taking (…, hcs_done_fn, void *) and waits for its result. */
#define SYNC(fn, ...)                                                                              \
        ({                                                                                         \
                struct result _x = {0};                                                            \
                assert_int_equal(fn(__VA_ARGS__, on_done, &_x), 0);                                \
                run_until(&_x.done, 30000);                                                        \
                _x.r;                                                                              \
        })

/* Notification recorder. */
struct notes {
        unsigned count[HCS_EVENT_MIGRATION_FAILED + 1];
        uint32_t max_pass;
        uint64_t bytes;
        uint64_t blackout_us;
        enum hcs_result fail_result;
        enum hcs_origin fail_origin;
        int fail_error;
        char fail_reason[128];
};

static void on_note(struct hcs_system *sys, const struct hcs_notification *n, void *ud)
{
        struct notes *x = ud;
        if ((unsigned)n->event <= HCS_EVENT_MIGRATION_FAILED)
                x->count[n->event]++;
        if (n->event == HCS_EVENT_TRANSFER_IN_PROGRESS) {
                if (n->pass > x->max_pass)
                        x->max_pass = n->pass;
                x->bytes = n->bytes;
        } else if (n->event == HCS_EVENT_BLACKOUT_EXITED) {
                x->blackout_us = n->blackout_us;
        } else if (n->event == HCS_EVENT_MIGRATION_FAILED) {
                x->fail_result = n->result;
                x->fail_origin = n->origin;
                x->fail_error = n->error;
                ferry_strscpy(x->fail_reason, n->reason, sizeof(x->fail_reason));
        }
}

/* Notifications reach the loop through their own queue, possibly after the call's completion:
 * run the loop until n has seen want events of kind ev (5 s at most), then once more so
 * anything emitted with them has landed too. */
static _unused_ void wait_note(struct notes *n, enum hcs_event ev, unsigned want)
{
        for (int ms = 0; ms < 5000 && n->count[ev] < want; ms++)
                run_for_ms(1);
        run_for_ms(1);
}

/* A compute document: mb of memory, rate dirty pages/s, SCSI controller 0 with the rootfs at
 * LUN 0, one Plan9 share, one NIC; migration_data (base64, may be "") makes it a destination. */
static void make_doc(char *buf, size_t size, unsigned mb, unsigned cpus, uint64_t rate,
                     const char *migration_data)
{
        char mig[512] = "";
        if (migration_data)
                ferry_bprintf(mig, sizeof(mig),
                              ",\"MigrationOptions\":{\"Origin\":\"Destination\""
                              "%s%s%s}",
                              *migration_data ? ",\"CompatibilityData\":{\"Data\":\"" : "",
                              migration_data, *migration_data ? "\"}" : "");
        ssize_t r = ferry_bprintf(
            buf, size,
            "{\"VirtualMachine\":{\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":%u},"
            "\"Processor\":{\"Count\":%u}},"
            "\"Devices\":{\"Scsi\":{\"0\":{\"Attachments\":{\"0\":{\"Path\":\"/img/rootfs.vhdx\","
            "\"Type\":\"VirtualDisk\",\"ReadOnly\":true}}},\"1\":{}},"
            "\"Plan9\":{\"Shares\":[{\"Name\":\"share0\",\"Path\":\"/srv/share0\"}]},"
            "\"NetworkAdapters\":{\"nic0\":{}}},"
            "\"Sim\":{\"DirtyPagesPerSecond\":%llu}%s}}",
            mb, cpus, (unsigned long long)rate, mig);
        assert_true(r > 0);
}

static struct hcs_system *new_system(const char *id, unsigned mb, uint64_t rate,
                                     const char *migration_data, struct notes *notes)
{
        char doc[2048];
        struct hcs_system *sys = NULL;
        make_doc(doc, sizeof(doc), mb, 2, rate, migration_data);
        assert_int_equal(hcs_system_new(backend, id, doc, on_note, notes, &sys), 0);
        return sys;
}

static struct hcs_system *running_system(const char *id, unsigned mb, uint64_t rate,
                                         struct notes *notes)
{
        struct hcs_system *sys = new_system(id, mb, rate, NULL, notes);
        assert_int_equal(SYNC(hcs_create, sys), 0);
        assert_int_equal(SYNC(hcs_start, sys), 0);
        return sys;
}

static struct json_object *properties(struct hcs_system *sys)
{
        struct result x = {0};
        assert_int_equal(hcs_properties(sys, on_json, &x), 0);
        run_until(&x.done, 10000);
        assert_int_equal(x.r, 0);
        return x.json;
}

static const char *prop_str(struct json_object *p, const char *key)
{
        struct json_object *v = NULL;
        assert_true(json_object_object_get_ex(p, key, &v));
        return json_object_get_string(v);
}

static int64_t stat_i64(struct json_object *p, const char *key)
{
        struct json_object *st = NULL, *v = NULL;
        assert_true(json_object_object_get_ex(p, "Statistics", &st));
        assert_true(json_object_object_get_ex(st, key, &v));
        return json_object_get_int64(v);
}

/* The source (or any VM) is running normally: state Running, not migrating, and — when it has
 * a workload — still dirtying pages. */
static _unused_ void assert_runs(struct hcs_system *sys, bool has_workload)
{
        struct json_object *p = properties(sys);
        assert_string_equal(prop_str(p, "State"), "Running");
        assert_string_equal(prop_str(p, "Migration"), "None");
        int64_t before = stat_i64(p, "PagesDirtied");
        json_object_put(p);
        if (!has_workload)
                return;
        run_for_ms(30);
        p = properties(sys);
        assert_true(stat_i64(p, "PagesDirtied") > before);
        json_object_put(p);
}

static void close_system(struct hcs_system *sys)
{
        struct result x = {0};
        assert_int_equal(hcs_system_close(sys, on_done, &x), 0);
        run_until(&x.done, 10000);
}

static _unused_ void socket_pair(int fds[2])
{
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
}

/* A connected loopback TCP pair (127.0.0.1 only). */
static _unused_ void tcp_pair(int fds[2])
{
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(l >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(l, 1), 0);
        assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
        fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fds[0] >= 0);
        assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
        fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        assert_true(fds[1] >= 0);
        close(l);
        /* no TCP_NODELAY here: the sim sets it on what it adopts (test_migrate_tcp checks) */
}

static _unused_ struct sim_vm *vm_of(struct hcs_system *sys)
{
        return hcs_system_backend_vm(sys);
}

static _unused_ uint64_t image_hash(struct hcs_system *sys)
{
        struct sim_vm *vm = vm_of(sys);
        return hcs_hash64(vm->mem, vm->mem_size, 1);
}

/* The compatibility data as a destination document carries it (base64). */
static void compat_b64(struct hcs_system *src, char *out, size_t size)
{
        struct json_object *p = properties(src), *ci = NULL, *d = NULL;
        assert_true(json_object_object_get_ex(p, "CompatibilityInfo", &ci));
        assert_true(json_object_object_get_ex(ci, "Data", &d));
        assert_true(ferry_strscpy(out, json_object_get_string(d), size) > 0);
        json_object_put(p);
}

/* Initializes src's migration, starts both ends on a socketpair as session and runs the
 * transfer on both, waiting up to timeout_ms for each; their results in *ret_src, *ret_dst. */
static _unused_ void lm_transfer_pair(struct hcs_system *src, struct hcs_system *dst,
                                      uint32_t session, uint64_t timeout_ms, int *ret_src,
                                      int *ret_dst)
{
        struct result ri = {0};
        assert_int_equal(hcs_lm_initialize(src, NULL, on_blob, &ri), 0);
        run_until(&ri.done, 5000);
        int fds[2];
        socket_pair(fds);
        assert_int_equal(SYNC(hcs_lm_start_source, src, fds[0], session), 0);
        assert_int_equal(SYNC(hcs_lm_start_destination, dst, fds[1], session), 0);
        struct result rs = {0}, rd = {0};
        assert_int_equal(hcs_lm_transfer(src, on_done, &rs), 0);
        assert_int_equal(hcs_lm_transfer(dst, on_done, &rd), 0);
        run_until(&rs.done, timeout_ms);
        run_until(&rd.done, timeout_ms);
        *ret_src = rs.r;
        *ret_dst = rd.r;
}

/* A created destination "dst" (8 MB, notifications into nd) started on a socketpair as session
 * 5 and transferring into rd: the test plays its source on *ret_peer. */
static _unused_ struct hcs_system *peer_destination(struct notes *nd, struct result *rd,
                                                    int *ret_peer)
{
        struct hcs_system *dst = new_system("dst", 8, 0, "", nd);
        assert_int_equal(SYNC(hcs_create, dst), 0);
        int fds[2];
        socket_pair(fds);
        assert_int_equal(SYNC(hcs_lm_start_destination, dst, fds[1], 5), 0);
        assert_int_equal(hcs_lm_transfer(dst, on_done, rd), 0);
        *ret_peer = fds[0];
        return dst;
}

/* Sends dst (from peer_destination) the source's HELLO with flags and the compatibility blob
 * over peer; returns the status of dst's reply. */
static _unused_ int32_t send_hello(struct hcs_system *dst, int peer, uint16_t flags)
{
        struct sim_vm *v = vm_of(dst);
        uint8_t blob[SIM_COMPAT_MAX];
        uint32_t clen = (uint32_t)sim_compat_blob(v, blob);
        struct {
                char magic[8];
                uint16_t version, flags;
                uint32_t session;
                uint64_t image_size;
                uint32_t page_size, compat_len;
        } hello = {.version = 1,
                   .flags = flags,
                   .session = 5,
                   .image_size = v->mem_size,
                   .page_size = SIM_PAGE_SIZE,
                   .compat_len = clen};
        memcpy(hello.magic, "FERRYLM1", 8);
        assert_int_equal(write(peer, &hello, sizeof(hello)), sizeof(hello));
        assert_int_equal(write(peer, blob, clen), clen);
        int32_t reply[2];
        assert_int_equal(read(peer, reply, sizeof(reply)), sizeof(reply));
        return reply[1];
}
