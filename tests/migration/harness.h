/* SPDX-License-Identifier: MIT */
/* Shared by the migration tests: a loop run until a flag, two sim sandboxes (a running source
 * and an empty destination) each driven by its own session, and a notification recorder. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <uv.h>

#include "hcs/fault.h"
#include "hcs/hash.h"
#include "hcs/hcs.h"
#include "hcs/sim/sim.h"
#include "migration/notify.h"
#include "migration/session.h"
#include "migration/sim_ops.h"
#include "migration_fsm.h"
#include "util/util.h"

#include "../common/uvrun.h"

#define SESS "sess-1"
#define MB   16

struct res {
        bool done;
        int r;
};

static _unused_ void res_cb(int r, void *ud)
{
        struct res *x = ud;
        x->done = true;
        x->r = r;
}

/* Runs loop until *flag, failing the test after timeout_ms. */
static _unused_ void run_until_at(uv_loop_t *loop, const bool *flag, uint64_t timeout_ms,
                                  const char *file, int line)
{
        _assert_true(uvrun_until(loop, flag, timeout_ms), "callback within the timeout", file,
                     line);
}

/* A compute document: mb of memory and a workload dirtying rate pages/s. */
static _unused_ void make_doc(char *buf, size_t size, unsigned mb, uint64_t rate)
{
        ssize_t r = ferry_bprintf(
            buf, size,
            "{\"VirtualMachine\":{\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":%u},"
            "\"Processor\":{\"Count\":2}},"
            "\"Devices\":{\"Scsi\":{\"0\":{\"Attachments\":{\"0\":{\"Path\":\"/img/rootfs.vhdx\","
            "\"Type\":\"VirtualDisk\",\"ReadOnly\":true}}}},\"NetworkAdapters\":{\"nic0\":{}}},"
            "\"Sim\":{\"DirtyPagesPerSecond\":%llu}}}",
            mb, (unsigned long long)rate);
        assert_true(r > 0);
}

/* Notification recorder. */
struct notes {
        unsigned n;
        unsigned phase[16];       /* count per Phase */
        unsigned failed_state[8]; /* PHASE_FAILED count per PhaseState */
        uint32_t last_id;
        bool ids_increase;
        bool blackout_details;
        uint64_t blackout_ms;
        uint64_t bytes;
        uint32_t max_pass;
        bool ended;
        int refuse; /* on_note returns this (a slow subscriber) */
};

static _unused_ int notes_on(const struct mig_notification *n, uint64_t dropped, void *ud)
{
        struct notes *x = ud;
        if (x->refuse)
                return x->refuse;
        if (x->n == 0)
                x->ids_increase = true;
        else if (n->message_id <= x->last_id)
                x->ids_increase = false;
        x->last_id = n->message_id;
        x->n++;
        if (n->phase >= 0 && n->phase < 16)
                x->phase[n->phase]++;
        if (n->phase == MIG_PHASE_FAILED && n->state >= 0 && n->state < 8)
                x->failed_state[n->state]++;
        if (n->has_blackout) {
                x->blackout_details = true;
                x->blackout_ms = n->blackout_ms;
        }
        if (n->bytes > x->bytes)
                x->bytes = n->bytes;
        if (n->pass > x->max_pass)
                x->max_pass = n->pass;
        return 0;
}

static _unused_ void notes_end(void *ud)
{
        ((struct notes *)ud)->ended = true;
}

static _unused_ const struct mig_subscriber_ops notes_ops = {
    .on_note = notes_on,
    .on_end = notes_end,
};

/* The VM's properties: State and Migration, and whether its workload still dirties pages. */
struct props_res {
        bool done;
        int r;
        char state[32];
        char migration[32];
        int64_t dirtied;
};

static _unused_ void props_cb(int r, struct json_object *doc, void *ud)
{
        struct props_res *x = ud;
        struct json_object *v = NULL, *st = NULL;
        x->done = true;
        x->r = r;
        if (r < 0)
                return;
        if (json_object_object_get_ex(doc, "State", &v))
                ferry_strscpy(x->state, json_object_get_string(v), sizeof(x->state));
        if (json_object_object_get_ex(doc, "Migration", &v))
                ferry_strscpy(x->migration, json_object_get_string(v), sizeof(x->migration));
        if (json_object_object_get_ex(doc, "Statistics", &st) &&
            json_object_object_get_ex(st, "PagesDirtied", &v))
                x->dirtied = json_object_get_int64(v);
}

static _unused_ struct props_res vm_props(uv_loop_t *loop, struct hcs_system *sys)
{
        struct props_res x = {0};
        assert_int_equal(hcs_properties(sys, props_cb, &x), 0);
        run_until_at(loop, &x.done, 5000, __FILE__, __LINE__);
        assert_int_equal(x.r, 0);
        return x;
}

/* sys runs normally, not migrating, and its workload is still dirtying pages. */
static _unused_ void assert_vm_runs_at(uv_loop_t *loop, struct hcs_system *sys, const char *file,
                                       int line)
{
        struct props_res a = vm_props(loop, sys);
        _assert_true(!strcmp(a.state, "Running"), a.state, file, line);
        _assert_true(!strcmp(a.migration, "None"), a.migration, file, line);
        uvrun_for_ms(loop, 30);
        struct props_res b = vm_props(loop, sys);
        _assert_true(b.dirtied > a.dirtied, "the workload still runs", file, line);
}
#define assert_vm_runs(loop, sys) assert_vm_runs_at(loop, sys, __FILE__, __LINE__)

static _unused_ uint64_t image_hash(struct hcs_system *sys)
{
        struct sim_vm *vm = hcs_system_backend_vm(sys);
        return hcs_hash64(vm->mem, vm->mem_size, 1);
}
