/* SPDX-License-Identifier: MIT */
#include "hcs/fault.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

/* Keep in step with docs/hcs.md; sweeps iterate this list. */
static const char *const fault_names[] = {
    "hcs.create",
    "hcs.start",
    "hcs.pause",
    "hcs.resume",
    "hcs.terminate",
    "hcs.modify",
    "hcs.properties",
    "hcs.lm_initialize",
    "hcs.lm_start_source",
    "hcs.lm_start_destination",
    "hcs.transfer",
    "hcs.finalize",
    "hcs.cancel",
    "transfer.source_drop_after_bytes",
    "transfer.destination_drop_after_bytes",
    "transfer.pass",
    "transfer.corrupt_checksum",
    "guest.connect",
    "guest.raise_floors",
    "guest.create_container",
    "guest.start_container",
    "guest.signal_container",
    "guest.delete_container",
    "guest.start_process",
    "guest.signal_process",
    "guest.wait_process",
    "guest.io_relay",
    "guest.scsi_mount",
    "guest.scsi_unmount",
    "guest.plan9_mount",
    "guest.plan9_unmount",
    "guest.vpci_ready",
    "guest.netns_add",
    "guest.nic_add",
    "guest.nic_remove",
};

#define N_FAULTS ARRAY_SIZE(fault_names)

struct fault_point {
        bool armed;
        struct hcs_fault_spec spec;
        uint64_t seen;  /* checks since armed */
        uint64_t calls; /* checks since reset */
};

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fault_cond = PTHREAD_COND_INITIALIZER;
static struct fault_point fault_points[N_FAULTS];
/* Holds (spec.hold): threads held at each point, and a release count a holder waits to change.
 * Kept apart from fault_points so that a reset, which zeroes those, releases rather than
 * forgets the holders. */
static unsigned fault_held[N_FAULTS];
static uint64_t fault_released[N_FAULTS];

static int fault_index(const char *name)
{
        for (size_t i = 0; i < N_FAULTS; i++)
                if (strcmp(fault_names[i], name) == 0)
                        return (int)i;
        return -ENOENT;
}

static void fault_sleep_ms(uint32_t ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int hcs_fault_arm(const char *name, const struct hcs_fault_spec *spec)
{
        int i = fault_index(name);
        if (i < 0)
                return i;
        if (!spec ||
            (spec->error == 0 && spec->stall_ms == 0 && spec->drop_after_bytes == 0 && !spec->hold))
                return -EINVAL;
        if (spec->error > 0)
                return -EINVAL;
        pthread_mutex_lock(&fault_lock);
        fault_points[i].armed = true;
        fault_points[i].spec = *spec;
        fault_points[i].seen = 0;
        pthread_mutex_unlock(&fault_lock);
        return 0;
}

int hcs_fault_disarm(const char *name)
{
        int i = fault_index(name);
        if (i < 0)
                return i;
        pthread_mutex_lock(&fault_lock);
        fault_points[i].armed = false;
        pthread_mutex_unlock(&fault_lock);
        return 0;
}

void hcs_fault_reset(void)
{
        pthread_mutex_lock(&fault_lock);
        memset(fault_points, 0, sizeof(fault_points));
        for (size_t i = 0; i < N_FAULTS; i++)
                fault_released[i]++;
        pthread_cond_broadcast(&fault_cond);
        pthread_mutex_unlock(&fault_lock);
}

bool hcs_fault_held(const char *name)
{
        int i = fault_index(name);
        if (i < 0)
                return false;
        pthread_mutex_lock(&fault_lock);
        bool held = fault_held[i] > 0;
        pthread_mutex_unlock(&fault_lock);
        return held;
}

int hcs_fault_release(const char *name)
{
        int i = fault_index(name);
        if (i < 0)
                return i;
        pthread_mutex_lock(&fault_lock);
        fault_released[i]++;
        pthread_cond_broadcast(&fault_cond);
        pthread_mutex_unlock(&fault_lock);
        return 0;
}

/* Blocks the calling thread at point i until the point is released. */
static void fault_hold(int i)
{
        pthread_mutex_lock(&fault_lock);
        uint64_t released = fault_released[i];
        fault_held[i]++;
        while (fault_released[i] == released)
                pthread_cond_wait(&fault_cond, &fault_lock);
        fault_held[i]--;
        pthread_mutex_unlock(&fault_lock);
}

/* Counts a check; returns true and the spec if it triggers. */
static bool fault_trigger(const char *name, struct hcs_fault_spec *ret_spec)
{
        int i = fault_index(name);
        assert(i >= 0);
        if (i < 0)
                return false;
        bool hit = false;
        pthread_mutex_lock(&fault_lock);
        struct fault_point *p = &fault_points[i];
        p->calls++;
        if (p->armed) {
                p->seen++;
                if (p->spec.nth == 0 || p->seen == p->spec.nth) {
                        hit = true;
                        *ret_spec = p->spec;
                        if (p->spec.nth != 0)
                                p->armed = false;
                }
        }
        pthread_mutex_unlock(&fault_lock);
        if (hit && ret_spec->stall_ms)
                fault_sleep_ms(ret_spec->stall_ms);
        if (hit && ret_spec->hold)
                fault_hold(i);
        return hit;
}

int hcs_fault_check(const char *name)
{
        struct hcs_fault_spec s;
        if (!fault_trigger(name, &s))
                return 0;
        return s.error;
}

bool hcs_fault_take_drop(const char *name, uint64_t *ret_bytes)
{
        struct hcs_fault_spec s;
        if (!fault_trigger(name, &s) || s.drop_after_bytes == 0)
                return false;
        *ret_bytes = s.drop_after_bytes;
        return true;
}

uint64_t hcs_fault_calls(const char *name)
{
        int i = fault_index(name);
        if (i < 0)
                return 0;
        pthread_mutex_lock(&fault_lock);
        uint64_t n = fault_points[i].calls;
        pthread_mutex_unlock(&fault_lock);
        return n;
}

size_t hcs_fault_count(void)
{
        return N_FAULTS;
}

const char *hcs_fault_name(size_t i)
{
        return i < N_FAULTS ? fault_names[i] : NULL;
}
