/* SPDX-License-Identifier: MIT */
/* The sim backend: an in-process hypervisor. Each VM has a real memory image (mmap), a
 * workload thread that dirties pages at a set rate, device bookkeeping that fails like a host
 * does, and the in-VM guest compute service. Calls here run on worker threads. */
#include "hcs/sim/sim.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "hcs/fault.h"
#include "util/base64.h"
#include "util/util.h"

#define DEFAULT_MEMORY_MB       256
#define MAX_MEMORY_MB           (64 * 1024)
#define DEFAULT_PROCESSORS      2
#define DEFAULT_MAX_PASSES      10
#define DEFAULT_DIRTY_THRESHOLD 256 /* pages: 1 MiB left dirty is worth a blackout */
#define WORKLOAD_TICK_US        1000

/* ---- small helpers ---------------------------------------------------------------------- */

static struct json_object *jget(struct json_object *o, const char *key)
{
        struct json_object *v = NULL;
        if (!o || !json_object_is_type(o, json_type_object))
                return NULL;
        return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static struct json_object *jpath(struct json_object *o, const char *a, const char *b, const char *c)
{
        o = jget(o, a);
        if (b)
                o = jget(o, b);
        if (c)
                o = jget(o, c);
        return o;
}

/* Reads an optional unsigned integer; -EINVAL if present but not a non-negative integer. */
static int jget_u64(struct json_object *o, uint64_t def, uint64_t *ret)
{
        if (!o) {
                *ret = def;
                return 0;
        }
        if (!json_object_is_type(o, json_type_int))
                return -EINVAL;
        int64_t v = json_object_get_int64(o);
        if (v < 0)
                return -EINVAL;
        *ret = (uint64_t)v;
        return 0;
}

static int copy_name(char *dst, size_t size, const char *src)
{
        if (!src || !*src)
                return -EINVAL;
        return ferry_strscpy(dst, src, size) < 0 ? -EINVAL : 0;
}

/* Parses a decimal index < limit; -EINVAL if malformed, -ERANGE if too large. */
static int parse_index(const char *s, size_t len, uint32_t limit, uint32_t *ret)
{
        if (len == 0 || len > 9)
                return -EINVAL;
        uint32_t v = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint32_t)(s[i] - '0');
        }
        if (v >= limit)
                return -ERANGE;
        *ret = v;
        return 0;
}

void sim_emit(struct sim_vm *vm, enum hcs_event ev, enum hcs_origin origin)
{
        struct hcs_notification n = {.event = ev, .origin = origin};
        hcs_system_emit(vm->sys, &n);
}

void sim_emit_failed(struct sim_vm *vm, enum hcs_origin origin, enum hcs_result result, int error,
                     const char *reason)
{
        struct hcs_notification n = {
            .event = HCS_EVENT_MIGRATION_FAILED,
            .origin = origin,
            .result = result,
            .error = error,
        };
        ferry_strscpy(n.reason, reason ? reason : "", sizeof(n.reason));
        hcs_system_emit(vm->sys, &n);
}

size_t sim_compat_blob(const struct sim_vm *vm, uint8_t *buf)
{
        ssize_t n =
            ferry_bprintf((char *)buf, SIM_COMPAT_MAX, "ferry-sim/1;page=%u;mem=%" PRIu64 ";cpu=%u",
                          SIM_PAGE_SIZE, vm->mem_size, vm->processors);
        return n < 0 ? 0 : (size_t)n;
}

/* ---- workload --------------------------------------------------------------------------- */

static void sleep_until_us(uint64_t t)
{
        uint64_t now = ferry_now_us();
        if (t <= now)
                return;
        uint64_t d = t - now;
        struct timespec ts = {.tv_sec = (time_t)(d / 1000000),
                              .tv_nsec = (long)(d % 1000000) * 1000};
        nanosleep(&ts, NULL);
}

static void *workload_main(void *arg)
{
        struct sim_vm *vm = arg;
        uint64_t x = vm->wl_seed | 1;
        uint64_t next = ferry_now_us();
        uint64_t carry = 0;
        const uint64_t words_per_page = SIM_PAGE_SIZE / 8;

        while (!atomic_load(&vm->wl_stop)) {
                if (atomic_load(&vm->wl_pause_req)) {
                        pthread_mutex_lock(&vm->lock);
                        while (atomic_load(&vm->wl_pause_req) && !atomic_load(&vm->wl_stop)) {
                                vm->wl_paused = true;
                                pthread_cond_broadcast(&vm->cond);
                                pthread_cond_wait(&vm->cond, &vm->lock);
                        }
                        vm->wl_paused = false;
                        pthread_mutex_unlock(&vm->lock);
                        next = ferry_now_us();
                        continue;
                }
                if (vm->wl_rate == 0) {
                        /* An idle guest: sleep until paused or stopped, no ticking. */
                        pthread_mutex_lock(&vm->lock);
                        while (!atomic_load(&vm->wl_pause_req) && !atomic_load(&vm->wl_stop))
                                pthread_cond_wait(&vm->cond, &vm->lock);
                        pthread_mutex_unlock(&vm->lock);
                        continue;
                }
                carry += vm->wl_rate * WORKLOAD_TICK_US;
                uint64_t n = carry / 1000000;
                carry %= 1000000;
                for (uint64_t i = 0; i < n; i++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        uint64_t page = x % vm->npages;
                        uint64_t *w = (uint64_t *)(vm->mem + page * SIM_PAGE_SIZE);
                        w[(x >> 40) % words_per_page] = x;
                        /* Contents first, then the bit: a transfer that clears the bit before
                         * the write lands sees the bit set again and resends. */
                        atomic_fetch_or_explicit(&vm->dirty[page / 64], 1ULL << (page % 64),
                                                 memory_order_release);
                }
                if (n)
                        atomic_fetch_add_explicit(&vm->wl_writes, n, memory_order_relaxed);
                next += WORKLOAD_TICK_US;
                uint64_t now = ferry_now_us();
                if (now > next + 100000)
                        next = now; /* fell far behind (stalled host): do not burst */
                sleep_until_us(next);
        }
        return NULL;
}

static int workload_start_locked(struct sim_vm *vm)
{
        if (vm->wl_started)
                return 0;
        atomic_store(&vm->wl_stop, false);
        atomic_store(&vm->wl_pause_req, false);
        vm->wl_paused = false;
        int r = pthread_create(&vm->wl_thread, NULL, workload_main, vm);
        if (r != 0)
                return -r;
        vm->wl_started = true;
        return 0;
}

/* Called with the lock held; drops it while joining. */
static void workload_stop_locked(struct sim_vm *vm)
{
        if (!vm->wl_started)
                return;
        atomic_store(&vm->wl_stop, true);
        pthread_cond_broadcast(&vm->cond);
        pthread_mutex_unlock(&vm->lock);
        pthread_join(vm->wl_thread, NULL);
        pthread_mutex_lock(&vm->lock);
        vm->wl_started = false;
        vm->wl_paused = false;
        atomic_store(&vm->wl_pause_req, false);
}

void sim_workload_pause_locked(struct sim_vm *vm)
{
        atomic_store(&vm->wl_pause_req, true);
        pthread_cond_broadcast(&vm->cond);
        while (vm->wl_started && !vm->wl_paused)
                pthread_cond_wait(&vm->cond, &vm->lock);
}

void sim_workload_resume_locked(struct sim_vm *vm)
{
        atomic_store(&vm->wl_pause_req, false);
        pthread_cond_broadcast(&vm->cond);
}

/* ---- document parsing ------------------------------------------------------------------- */

static int parse_scsi(struct sim_vm *vm, struct json_object *scsi)
{
        if (!scsi)
                return 0;
        if (!json_object_is_type(scsi, json_type_object))
                return -EINVAL;
        json_object_object_foreach(scsi, ckey, ctrl)
        {
                uint32_t c;
                int r = parse_index(ckey, strlen(ckey), SIM_SCSI_CONTROLLERS, &c);
                if (r < 0)
                        return -EINVAL;
                vm->scsi_present[c] = true;
                struct json_object *att = jget(ctrl, "Attachments");
                if (!att)
                        continue;
                if (!json_object_is_type(att, json_type_object))
                        return -EINVAL;
                json_object_object_foreach(att, lkey, a)
                {
                        uint32_t lun;
                        r = parse_index(lkey, strlen(lkey), SIM_SCSI_LUNS, &lun);
                        if (r < 0)
                                return -EINVAL;
                        struct sim_scsi_slot *s = &vm->scsi[c][lun];
                        const char *path = json_object_get_string(jget(a, "Path"));
                        const char *type = json_object_get_string(jget(a, "Type"));
                        if (copy_name(s->path, sizeof(s->path), path) < 0)
                                return -EINVAL;
                        if (copy_name(s->type, sizeof(s->type), type ? type : "VirtualDisk") < 0)
                                return -EINVAL;
                        s->read_only = json_object_get_boolean(jget(a, "ReadOnly"));
                        s->used = true;
                }
        }
        return 0;
}

static int named_add(struct sim_named *tab, size_t cap, const char *name, const char *path,
                     bool read_only)
{
        struct sim_named *free_slot = NULL;
        if (!name || !*name || strlen(name) >= SIM_NAME_MAX)
                return -EINVAL;
        for (size_t i = 0; i < cap; i++) {
                if (tab[i].used && strcmp(tab[i].name, name) == 0)
                        return -EEXIST;
                if (!tab[i].used && !free_slot)
                        free_slot = &tab[i];
        }
        if (!free_slot)
                return -ENOSPC;
        memset(free_slot, 0, sizeof(*free_slot));
        ferry_strscpy(free_slot->name, name, sizeof(free_slot->name));
        if (path && ferry_strscpy(free_slot->path, path, sizeof(free_slot->path)) < 0)
                return -EINVAL;
        free_slot->read_only = read_only;
        free_slot->used = true;
        return 0;
}

static struct sim_named *named_find(struct sim_named *tab, size_t cap, const char *name)
{
        for (size_t i = 0; i < cap; i++)
                if (tab[i].used && strcmp(tab[i].name, name) == 0)
                        return &tab[i];
        return NULL;
}

static int parse_named_map(struct sim_named *tab, size_t cap, struct json_object *map)
{
        if (!map)
                return 0;
        if (!json_object_is_type(map, json_type_object))
                return -EINVAL;
        json_object_object_foreach(map, key, v)
        {
                int r = named_add(tab, cap, key, json_object_get_string(jget(v, "Path")),
                                  json_object_get_boolean(jget(v, "ReadOnly")));
                if (r < 0)
                        return r == -EEXIST ? -EINVAL : r;
        }
        return 0;
}

static int parse_document(struct sim_vm *vm, struct json_object *doc)
{
        struct json_object *vmo = jget(doc, "VirtualMachine");
        if (!vmo || !json_object_is_type(vmo, json_type_object))
                return -EINVAL;
        uint64_t mb, cpus, rate, seed;
        if (jget_u64(jpath(vmo, "ComputeTopology", "Memory", "SizeInMB"), DEFAULT_MEMORY_MB, &mb) <
                0 ||
            jget_u64(jpath(vmo, "ComputeTopology", "Processor", "Count"), DEFAULT_PROCESSORS,
                     &cpus) < 0 ||
            jget_u64(jpath(vmo, "Sim", "DirtyPagesPerSecond", NULL), 0, &rate) < 0 ||
            jget_u64(jpath(vmo, "Sim", "Seed", NULL), 0x5eed, &seed) < 0)
                return -EINVAL;
        if (mb == 0 || mb > MAX_MEMORY_MB || cpus == 0 || cpus > 256)
                return -EINVAL;
        vm->mem_size = mb << 20;
        vm->npages = vm->mem_size / SIM_PAGE_SIZE;
        vm->processors = (uint32_t)cpus;
        vm->wl_rate = rate;
        vm->wl_seed = seed;

        struct json_object *dev = jget(vmo, "Devices");
        int r = parse_scsi(vm, jget(dev, "Scsi"));
        if (r < 0)
                return r;
        struct json_object *shares = jpath(dev, "Plan9", "Shares", NULL);
        if (shares) {
                if (!json_object_is_type(shares, json_type_array))
                        return -EINVAL;
                for (size_t i = 0; i < json_object_array_length(shares); i++) {
                        struct json_object *s = json_object_array_get_idx(shares, i);
                        r = named_add(vm->shares, SIM_MAX_SHARES,
                                      json_object_get_string(jget(s, "Name")),
                                      json_object_get_string(jget(s, "Path")),
                                      json_object_get_boolean(jget(s, "ReadOnly")));
                        if (r < 0)
                                return -EINVAL;
                }
        }
        r = parse_named_map(vm->vpci, SIM_MAX_VPCI, jget(dev, "VirtualPci"));
        if (r < 0)
                return r;
        r = parse_named_map(vm->nics, SIM_MAX_NICS, jget(dev, "NetworkAdapters"));
        if (r < 0)
                return r;

        struct json_object *mo = jget(vmo, "MigrationOptions");
        if (mo) {
                vm->incoming = true;
                const char *data =
                    json_object_get_string(jpath(mo, "CompatibilityData", "Data", NULL));
                if (data) {
                        ssize_t n =
                            ferry_base64_decode(data, vm->expect_compat, sizeof(vm->expect_compat));
                        if (n < 0)
                                return -EINVAL;
                        vm->expect_compat_len = (size_t)n;
                }
        }
        return 0;
}

/* ---- backend ops ------------------------------------------------------------------------ */

static int sim_open(struct json_object *opts, void **ret_state)
{
        if (opts && json_object_object_length(opts) != 0)
                return -EINVAL;
        *ret_state = NULL;
        return 0;
}

static void sim_close(void *state)
{
}

static int sim_vm_new(void *state, struct hcs_system *sys, const char *id, struct json_object *doc,
                      void **ret_vm)
{
        struct sim_vm *vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        vm->sys = sys;
        vm->fd = -1;
        ferry_strscpy(vm->id, id, sizeof(vm->id));
        vm->max_passes = DEFAULT_MAX_PASSES;
        vm->dirty_threshold = DEFAULT_DIRTY_THRESHOLD;
        sim_guest_init(&vm->guest);
        int r = parse_document(vm, doc);
        if (r < 0) {
                free(vm);
                return r;
        }
        vm->doc = json_object_get(doc);
        pthread_mutex_init(&vm->lock, NULL);
        pthread_mutex_init(&vm->hook_lock, NULL);
        pthread_cond_init(&vm->cond, NULL);
        *ret_vm = vm;
        return 0;
}

static void close_fd_locked(struct sim_vm *vm)
{
        if (vm->fd >= 0) {
                close(vm->fd);
                vm->fd = -1;
        }
}

/* Stops the VM: workload joined, every guest process ends, exit reported. Lock held. */
static void stop_locked(struct sim_vm *vm, int status)
{
        uint32_t pids[SIM_GUEST_MAX_PROCESSES];
        int codes[SIM_GUEST_MAX_PROCESSES];

        workload_stop_locked(vm);
        close_fd_locked(vm);
        vm->state = SIM_STOPPED;
        vm->lm = SIM_LM_NONE;
        size_t n = sim_guest_kill_all_locked(&vm->guest, 128 + SIGKILL, pids, codes);
        pthread_cond_broadcast(&vm->cond);
        pthread_mutex_unlock(&vm->lock);
        sim_report_exits(vm, pids, codes, n);
        hcs_system_exited(vm->sys, status);
        pthread_mutex_lock(&vm->lock);
}

/* Interrupts a transfer in flight and waits for it to unwind. Lock held. */
static void abort_transfer_locked(struct sim_vm *vm)
{
        if (vm->lm != SIM_LM_TRANSFERRING)
                return;
        atomic_store(&vm->cancel, true);
        if (vm->fd >= 0)
                shutdown(vm->fd, SHUT_RDWR);
        while (vm->lm == SIM_LM_TRANSFERRING)
                pthread_cond_wait(&vm->cond, &vm->lock);
}

static void sim_vm_free(void *p)
{
        struct sim_vm *vm = p;
        pthread_mutex_lock(&vm->lock);
        abort_transfer_locked(vm);
        if (vm->state != SIM_NOT_CREATED && vm->state != SIM_STOPPED)
                stop_locked(vm, -ECANCELED);
        workload_stop_locked(vm);
        close_fd_locked(vm);
        pthread_mutex_unlock(&vm->lock);
        if (vm->mem)
                munmap(vm->mem, vm->mem_size);
        free((void *)vm->dirty);
        json_object_put(vm->doc);
        pthread_cond_destroy(&vm->cond);
        pthread_mutex_destroy(&vm->lock);
        pthread_mutex_destroy(&vm->hook_lock);
        free(vm);
}

static void fill_image(struct sim_vm *vm)
{
        uint64_t *w = (uint64_t *)vm->mem;
        uint64_t n = vm->mem_size / 8;
        uint64_t s = vm->wl_seed * 0x9e3779b97f4a7c15ULL;
        for (uint64_t i = 0; i < n; i++)
                w[i] = (i + s) * 0xbf58476d1ce4e5b9ULL;
}

static int sim_create(void *p)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.create");
        if (r < 0)
                return r;
        pthread_mutex_lock(&vm->lock);
        if (vm->state != SIM_NOT_CREATED) {
                r = -EEXIST;
                goto out;
        }
        /* Guest memory is committed at create, as a hypervisor backs a VM's RAM up front; the
         * transfer then never pays first-touch faults on the destination. */
        vm->mem = mmap(NULL, vm->mem_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (vm->mem == MAP_FAILED) {
                vm->mem = NULL;
                r = -ENOMEM;
                goto out;
        }
        vm->dirty_words = (vm->npages + 63) / 64;
        vm->dirty = calloc(vm->dirty_words, sizeof(uint64_t));
        if (!vm->dirty) {
                munmap(vm->mem, vm->mem_size);
                vm->mem = NULL;
                r = -ENOMEM;
                goto out;
        }
        /* A destination's image arrives over the wire; a fresh VM boots with content. */
        if (!vm->incoming)
                fill_image(vm);
        vm->state = SIM_CREATED;
out:
        pthread_mutex_unlock(&vm->lock);
        return r;
}

static int sim_start(void *p)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.start");
        if (r < 0)
                return r;
        pthread_mutex_lock(&vm->lock);
        if (vm->state != SIM_CREATED || vm->incoming)
                r = -EBUSY;
        else if ((r = workload_start_locked(vm)) == 0)
                vm->state = SIM_RUNNING;
        pthread_mutex_unlock(&vm->lock);
        return r;
}

static int sim_pause(void *p)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.pause");
        if (r < 0)
                return r;
        pthread_mutex_lock(&vm->lock);
        if (vm->state != SIM_RUNNING || vm->lm != SIM_LM_NONE) {
                r = -EBUSY;
        } else {
                sim_workload_pause_locked(vm);
                vm->state = SIM_PAUSED;
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

static int sim_resume(void *p)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.resume");
        if (r < 0)
                return r;
        pthread_mutex_lock(&vm->lock);
        if (vm->state != SIM_PAUSED || vm->lm != SIM_LM_NONE) {
                r = -EBUSY;
        } else {
                sim_workload_resume_locked(vm);
                vm->state = SIM_RUNNING;
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

static int sim_terminate(void *p)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.terminate");
        if (r < 0)
                return r;
        pthread_mutex_lock(&vm->lock);
        if (vm->state == SIM_NOT_CREATED) {
                r = -EBUSY;
        } else if (vm->state == SIM_STOPPED) {
                r = -EALREADY;
        } else {
                abort_transfer_locked(vm);
                if (vm->state != SIM_STOPPED)
                        stop_locked(vm, 0);
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

/* ---- modify ----------------------------------------------------------------------------- */

enum modify_kind {
        MOD_ADD,
        MOD_REMOVE,
};

static int modify_scsi_locked(struct sim_vm *vm, enum modify_kind kind, const char *rest,
                              struct json_object *settings)
{
        /* rest: "<c>/Attachments/<lun>" */
        const char *slash = strchr(rest, '/');
        uint32_t c, lun;
        if (!slash)
                return -EINVAL;
        int r = parse_index(rest, (size_t)(slash - rest), SIM_SCSI_CONTROLLERS, &c);
        if (r < 0)
                return r;
        const char *att = "/Attachments/";
        if (strncmp(slash, att, strlen(att)) != 0)
                return -EINVAL;
        const char *l = slash + strlen(att);
        r = parse_index(l, strlen(l), SIM_SCSI_LUNS, &lun);
        if (r < 0)
                return r;
        if (!vm->scsi_present[c])
                return -ENOENT;
        struct sim_scsi_slot *s = &vm->scsi[c][lun];
        if (kind == MOD_ADD) {
                if (s->used)
                        return -EEXIST;
                struct sim_scsi_slot n = {.used = true};
                const char *path = json_object_get_string(jget(settings, "Path"));
                const char *type = json_object_get_string(jget(settings, "Type"));
                if (copy_name(n.path, sizeof(n.path), path) < 0 ||
                    copy_name(n.type, sizeof(n.type), type ? type : "VirtualDisk") < 0)
                        return -EINVAL;
                n.read_only = json_object_get_boolean(jget(settings, "ReadOnly"));
                *s = n;
                return 0;
        }
        if (!s->used)
                return -ENOENT;
        if (sim_guest_scsi_in_use_locked(&vm->guest, c, lun))
                return -EBUSY;
        memset(s, 0, sizeof(*s));
        return 0;
}

static int modify_named_locked(struct sim_named *tab, size_t cap, enum modify_kind kind,
                               const char *name, struct json_object *settings)
{
        if (!*name || strchr(name, '/'))
                return -EINVAL;
        if (kind == MOD_ADD)
                return named_add(tab, cap, name, json_object_get_string(jget(settings, "Path")),
                                 json_object_get_boolean(jget(settings, "ReadOnly")));
        struct sim_named *n = named_find(tab, cap, name);
        if (!n)
                return -ENOENT;
        memset(n, 0, sizeof(*n));
        return 0;
}

static bool guest_uses_share_locked(const struct sim_guest *g, const char *share)
{
        for (size_t i = 0; i < g->n_mounts; i++)
                if (g->mounts[i].kind == SIM_MOUNT_PLAN9 && strcmp(g->mounts[i].share, share) == 0)
                        return true;
        return false;
}

static bool guest_uses_nic_locked(const struct sim_guest *g, const char *nic)
{
        for (size_t i = 0; i < g->n_nics; i++)
                if (strcmp(g->nics[i].id, nic) == 0)
                        return true;
        return false;
}

static int sim_modify(void *p, struct json_object *req)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.modify");
        if (r < 0)
                return r;
        const char *path = json_object_get_string(jget(req, "ResourcePath"));
        const char *type = json_object_get_string(jget(req, "RequestType"));
        struct json_object *settings = jget(req, "Settings");
        enum modify_kind kind;
        if (!path || !type)
                return -EINVAL;
        if (strcmp(type, "Add") == 0)
                kind = MOD_ADD;
        else if (strcmp(type, "Remove") == 0)
                kind = MOD_REMOVE;
        else
                return -EINVAL;

        static const char p_scsi[] = "VirtualMachine/Devices/Scsi/";
        static const char p_plan9[] = "VirtualMachine/Devices/Plan9/Shares/";
        static const char p_vpci[] = "VirtualMachine/Devices/VirtualPci/";
        static const char p_nic[] = "VirtualMachine/Devices/NetworkAdapters/";

        pthread_mutex_lock(&vm->lock);
        if ((vm->state != SIM_CREATED && vm->state != SIM_RUNNING && vm->state != SIM_PAUSED) ||
            vm->lm != SIM_LM_NONE || vm->incoming) {
                r = -EBUSY;
        } else if (strncmp(path, p_scsi, strlen(p_scsi)) == 0) {
                r = modify_scsi_locked(vm, kind, path + strlen(p_scsi), settings);
        } else if (strncmp(path, p_plan9, strlen(p_plan9)) == 0) {
                const char *name = path + strlen(p_plan9);
                if (kind == MOD_REMOVE && guest_uses_share_locked(&vm->guest, name))
                        r = -EBUSY;
                else
                        r = modify_named_locked(vm->shares, SIM_MAX_SHARES, kind, name, settings);
        } else if (strncmp(path, p_vpci, strlen(p_vpci)) == 0) {
                r = modify_named_locked(vm->vpci, SIM_MAX_VPCI, kind, path + strlen(p_vpci),
                                        settings);
        } else if (strncmp(path, p_nic, strlen(p_nic)) == 0) {
                const char *name = path + strlen(p_nic);
                if (kind == MOD_REMOVE && guest_uses_nic_locked(&vm->guest, name))
                        r = -EBUSY;
                else
                        r = modify_named_locked(vm->nics, SIM_MAX_NICS, kind, name, settings);
        } else {
                r = -EINVAL;
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

/* ---- properties ------------------------------------------------------------------------- */

static const char *state_name(enum sim_state s)
{
        static const char *const names[] = {
            [SIM_NOT_CREATED] = "NotCreated", [SIM_CREATED] = "Created", [SIM_RUNNING] = "Running",
            [SIM_PAUSED] = "Paused",          [SIM_STOPPED] = "Stopped",
        };
        return names[s];
}

static const char *lm_name(enum sim_lm s)
{
        static const char *const names[] = {
            [SIM_LM_NONE] = "None",
            [SIM_LM_SRC_INITIALIZED] = "SourceInitialized",
            [SIM_LM_SRC_STARTED] = "SourceStarted",
            [SIM_LM_DST_STARTED] = "DestinationStarted",
            [SIM_LM_TRANSFERRING] = "Transferring",
            [SIM_LM_TRANSFERRED] = "Transferred",
            [SIM_LM_DST_FAILED] = "DestinationFailed",
        };
        return names[s];
}

static void add_named(struct json_object *o, const char *key, const struct sim_named *tab,
                      size_t cap)
{
        struct json_object *m = json_object_new_object();
        for (size_t i = 0; i < cap; i++) {
                if (!tab[i].used)
                        continue;
                struct json_object *e = json_object_new_object();
                json_object_object_add(e, "Path", json_object_new_string(tab[i].path));
                json_object_object_add(e, "ReadOnly", json_object_new_boolean(tab[i].read_only));
                json_object_object_add(m, tab[i].name, e);
        }
        json_object_object_add(o, key, m);
}

struct json_object *sim_device_state_locked(const struct sim_vm *vm)
{
        struct json_object *d = json_object_new_object();
        struct json_object *scsi = json_object_new_object();
        for (uint32_t c = 0; c < SIM_SCSI_CONTROLLERS; c++) {
                if (!vm->scsi_present[c])
                        continue;
                struct json_object *att = json_object_new_object();
                for (uint32_t l = 0; l < SIM_SCSI_LUNS; l++) {
                        const struct sim_scsi_slot *s = &vm->scsi[c][l];
                        if (!s->used)
                                continue;
                        char key[16];
                        ferry_bprintf(key, sizeof(key), "%u", l);
                        struct json_object *e = json_object_new_object();
                        json_object_object_add(e, "Path", json_object_new_string(s->path));
                        json_object_object_add(e, "Type", json_object_new_string(s->type));
                        json_object_object_add(e, "ReadOnly",
                                               json_object_new_boolean(s->read_only));
                        json_object_object_add(att, key, e);
                }
                char key[16];
                ferry_bprintf(key, sizeof(key), "%u", c);
                struct json_object *ctrl = json_object_new_object();
                json_object_object_add(ctrl, "Attachments", att);
                json_object_object_add(scsi, key, ctrl);
        }
        json_object_object_add(d, "Scsi", scsi);
        add_named(d, "Plan9Shares", vm->shares, SIM_MAX_SHARES);
        add_named(d, "VirtualPci", vm->vpci, SIM_MAX_VPCI);
        add_named(d, "NetworkAdapters", vm->nics, SIM_MAX_NICS);
        json_object_object_add(d, "Processors", json_object_new_int64(vm->processors));
        return d;
}

/* The destination was built from the source's document with host paths patched, so the guest-
 * visible layout (SCSI slots, share names, device ids, processors) must match; paths may not. */
int sim_device_state_check_locked(const struct sim_vm *vm, struct json_object *state)
{
        uint64_t cpus;
        if (jget_u64(jget(state, "Processors"), 0, &cpus) < 0 || cpus != vm->processors)
                return -EINVAL;
        struct json_object *scsi = jget(state, "Scsi");
        size_t seen = 0, mine = 0;
        for (uint32_t c = 0; c < SIM_SCSI_CONTROLLERS; c++)
                for (uint32_t l = 0; l < SIM_SCSI_LUNS; l++)
                        mine += vm->scsi[c][l].used;
        if (scsi && json_object_is_type(scsi, json_type_object)) {
                json_object_object_foreach(scsi, ckey, ctrl)
                {
                        uint32_t c;
                        if (parse_index(ckey, strlen(ckey), SIM_SCSI_CONTROLLERS, &c) < 0)
                                return -EINVAL;
                        struct json_object *att = jget(ctrl, "Attachments");
                        if (!att || !json_object_is_type(att, json_type_object))
                                continue;
                        json_object_object_foreach(att, lkey, a)
                        {
                                uint32_t l;
                                (void)a;
                                if (parse_index(lkey, strlen(lkey), SIM_SCSI_LUNS, &l) < 0 ||
                                    !vm->scsi[c][l].used)
                                        return -EINVAL;
                                seen++;
                        }
                }
        }
        return seen == mine ? 0 : -EINVAL;
}

/* CPU time the workload (the VM's virtual processors) consumed, in 100 ns units; lock held. */
static int64_t sim_runtime_100ns_locked(const struct sim_vm *vm)
{
        clockid_t cid;
        struct timespec ts;
        if (!vm->wl_started || pthread_getcpuclockid(vm->wl_thread, &cid) != 0 ||
            clock_gettime(cid, &ts) < 0)
                return 0;
        return (int64_t)ts.tv_sec * 10000000 + ts.tv_nsec / 100;
}

static struct json_object *sim_statistics_locked(const struct sim_vm *vm)
{
        struct json_object *st = json_object_new_object();
        struct json_object *cpu = json_object_new_object();
        json_object_object_add(cpu, "TotalRuntime100ns",
                               json_object_new_int64(sim_runtime_100ns_locked(vm)));
        json_object_object_add(st, "Processor", cpu);
        json_object_object_add(st, "PagesDirtied",
                               json_object_new_int64((int64_t)atomic_load(&vm->wl_writes)));
        json_object_object_add(st, "WorkloadRunning",
                               json_object_new_boolean(vm->wl_started && !vm->wl_paused &&
                                                       !atomic_load(&vm->wl_pause_req)));
        json_object_object_add(st, "Containers",
                               json_object_new_int64((int64_t)vm->guest.n_containers));
        json_object_object_add(st, "LastPasses", json_object_new_int64(vm->last_passes));
        json_object_object_add(st, "LastBytes", json_object_new_int64((int64_t)vm->last_bytes));
        json_object_object_add(st, "LastBlackoutUs",
                               json_object_new_int64((int64_t)vm->last_blackout_us));
        json_object_object_add(st, "LastChecksumUs",
                               json_object_new_int64((int64_t)vm->last_checksum_us));
        json_object_object_add(st, "LastHashUs", json_object_new_int64((int64_t)vm->last_hash_us));
        return st;
}

/* The reference's Memory property: the image is committed at create, so every page is
 * assigned (4 KiB pages) and the guest sees all of it available; no balancing. */
static struct json_object *sim_memory_locked(const struct sim_vm *vm)
{
        struct json_object *m = json_object_new_object();
        struct json_object *vmm = json_object_new_object();
        json_object_object_add(vmm, "AvailableMemory",
                               json_object_new_int64((int64_t)(vm->mem_size >> 20)));
        json_object_object_add(vmm, "AvailableMemoryBuffer", json_object_new_int64(0));
        json_object_object_add(vmm, "ReservedMemory", json_object_new_int64(0));
        json_object_object_add(vmm, "AssignedMemory",
                               json_object_new_int64((int64_t)(vm->mem_size / SIM_PAGE_SIZE)));
        json_object_object_add(vmm, "SlpActive", json_object_new_boolean(false));
        json_object_object_add(vmm, "BalancingEnabled", json_object_new_boolean(false));
        json_object_object_add(vmm, "DmOperationInProgress", json_object_new_boolean(false));
        json_object_object_add(m, "VirtualNodeCount", json_object_new_int64(1));
        json_object_object_add(m, "VirtualMachineMemory", vmm);
        return m;
}

/* {"Data": base64 blob} while Running or migrating on the source, else NULL. */
static struct json_object *sim_compat_locked(const struct sim_vm *vm)
{
        if (vm->state != SIM_RUNNING && vm->lm != SIM_LM_SRC_INITIALIZED &&
            vm->lm != SIM_LM_SRC_STARTED)
                return NULL;
        uint8_t blob[SIM_COMPAT_MAX];
        char b64[4 * (SIM_COMPAT_MAX + 2) / 3 + 4];
        size_t n = sim_compat_blob(vm, blob);
        ferry_base64_encode(blob, n, b64);
        struct json_object *ci = json_object_new_object();
        json_object_object_add(ci, "Data", json_object_new_string(b64));
        return ci;
}

/* One named property for a Queries request; *ret NULL when it has no answer now. */
static int sim_property_locked(const struct sim_vm *vm, const char *name, struct json_object **ret)
{
        if (strcmp(name, "Statistics") == 0)
                *ret = sim_statistics_locked(vm);
        else if (strcmp(name, "Memory") == 0)
                *ret = sim_memory_locked(vm);
        else if (strcmp(name, "CompatibilityInfo") == 0)
                *ret = sim_compat_locked(vm);
        else
                return -EINVAL;
        return 0;
}

/* {"PropertyResponses":{…}} for query {"Queries":{"<Name>":null,…}}; lock held. */
static int sim_query_locked(const struct sim_vm *vm, struct json_object *query,
                            struct json_object *out)
{
        struct json_object *q = jget(query, "Queries");
        if (!q || !json_object_is_type(q, json_type_object))
                return -EINVAL;
        struct json_object *resp = json_object_new_object();
        json_object_object_add(out, "PropertyResponses", resp);
        json_object_object_foreach(q, name, v)
        {
                (void)v;
                struct json_object *one = NULL;
                int r = sim_property_locked(vm, name, &one);
                if (r < 0)
                        return r;
                if (one)
                        json_object_object_add(resp, name, one);
        }
        return 0;
}

static void sim_all_properties_locked(const struct sim_vm *vm, struct json_object *o)
{
        json_object_object_add(o, "Id", json_object_new_string(vm->id));
        json_object_object_add(o, "State", json_object_new_string(state_name(vm->state)));
        json_object_object_add(o, "Migration", json_object_new_string(lm_name(vm->lm)));
        json_object_object_add(o, "MemorySizeInMB",
                               json_object_new_int64((int64_t)(vm->mem_size >> 20)));
        json_object_object_add(o, "ProcessorCount", json_object_new_int64(vm->processors));
        json_object_object_add(o, "Devices", sim_device_state_locked(vm));
        json_object_object_add(o, "Statistics", sim_statistics_locked(vm));
        json_object_object_add(o, "Memory", sim_memory_locked(vm));
        struct json_object *ci = sim_compat_locked(vm);
        if (ci)
                json_object_object_add(o, "CompatibilityInfo", ci);
}

static int sim_properties(void *p, struct json_object *query, struct json_object **ret_props)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.properties");
        if (r < 0)
                return r;
        struct json_object *o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        pthread_mutex_lock(&vm->lock);
        if (query)
                r = sim_query_locked(vm, query, o);
        else
                sim_all_properties_locked(vm, o);
        pthread_mutex_unlock(&vm->lock);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret_props = o;
        return 0;
}

/* ---- live migration --------------------------------------------------------------------- */

static int sim_lm_initialize(void *p, struct json_object *opts, void **ret_blob, size_t *ret_size)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.lm_initialize");
        if (r < 0)
                return r;
        uint64_t passes, threshold;
        if (jget_u64(jpath(opts, "MemoryTransferThrottleParams",
                           "MaximumNumberOfBrownoutTransferPasses", NULL),
                     DEFAULT_MAX_PASSES, &passes) < 0 ||
            jget_u64(jpath(opts, "Sim", "DirtyPageThreshold", NULL), DEFAULT_DIRTY_THRESHOLD,
                     &threshold) < 0 ||
            passes == 0 || passes > 1000)
                return -EINVAL;
        bool verify = true;
        struct json_object *cv = jget(opts, "ChecksumVerification");
        if (cv) {
                if (!json_object_is_type(cv, json_type_boolean))
                        return -EINVAL;
                verify = json_object_get_boolean(cv);
        }
        uint8_t *blob = malloc(SIM_COMPAT_MAX);
        if (!blob)
                return -ENOMEM;
        pthread_mutex_lock(&vm->lock);
        if (vm->state != SIM_RUNNING || vm->lm != SIM_LM_NONE || vm->incoming) {
                r = -EBUSY;
        } else {
                vm->max_passes = (uint32_t)passes;
                vm->dirty_threshold = threshold;
                vm->verify_checksum = verify;
                vm->lm = SIM_LM_SRC_INITIALIZED;
                *ret_size = sim_compat_blob(vm, blob);
        }
        pthread_mutex_unlock(&vm->lock);
        if (r < 0) {
                free(blob);
                return r;
        }
        *ret_blob = blob;
        return 0;
}

/* Checks fd is a connected stream socket and makes it blocking and close-on-exec. */
static int adopt_socket(int fd)
{
        int type;
        socklen_t len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return -errno;
        if (type != SOCK_STREAM)
                return -EINVAL;
        struct sockaddr_storage ss;
        len = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
                return -errno;
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                return -errno;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;
        /* Deep buffers let the sender run ahead while the receiver hashes and copies; the
         * kernel caps them at its own limits, so failure here is not an error. */
        int buf = SIM_SOCKET_BUFFER;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
        return 0;
}

static int lm_start(struct sim_vm *vm, int fd, uint32_t session_id, bool source)
{
        int r = hcs_fault_check(source ? "hcs.lm_start_source" : "hcs.lm_start_destination");
        if (r == 0)
                r = adopt_socket(fd);
        if (r < 0) {
                close(fd);
                return r;
        }
        pthread_mutex_lock(&vm->lock);
        bool ok = source ? (vm->lm == SIM_LM_SRC_INITIALIZED && vm->state == SIM_RUNNING)
                         : (vm->incoming && vm->state == SIM_CREATED && vm->lm == SIM_LM_NONE);
        if (!ok) {
                r = -EBUSY;
                close(fd);
        } else {
                vm->fd = fd;
                vm->session_id = session_id;
                vm->lm = source ? SIM_LM_SRC_STARTED : SIM_LM_DST_STARTED;
                atomic_store(&vm->cancel, false);
        }
        pthread_mutex_unlock(&vm->lock);
        if (r == 0)
                sim_emit(vm, HCS_EVENT_SETUP_DONE,
                         source ? HCS_ORIGIN_SOURCE : HCS_ORIGIN_DESTINATION);
        return r;
}

static int sim_lm_start_source(void *p, int fd, uint32_t session_id)
{
        return lm_start(p, fd, session_id, true);
}

static int sim_lm_start_destination(void *p, int fd, uint32_t session_id)
{
        return lm_start(p, fd, session_id, false);
}

/* Source rollback after a failed or cancelled transfer: the socket is spent, the migration is
 * over, and the workload runs again. Lock held. */
static void source_recover_locked(struct sim_vm *vm)
{
        close_fd_locked(vm);
        vm->lm = SIM_LM_NONE;
        if (vm->state == SIM_RUNNING)
                sim_workload_resume_locked(vm);
}

static int sim_lm_transfer(void *p)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.transfer");
        bool source;

        pthread_mutex_lock(&vm->lock);
        if (vm->lm == SIM_LM_SRC_STARTED) {
                source = true;
        } else if (vm->lm == SIM_LM_DST_STARTED) {
                source = false;
        } else {
                pthread_mutex_unlock(&vm->lock);
                return r < 0 ? r : -EBUSY;
        }
        if (r < 0) {
                /* An injected failure behaves like a transfer that failed at once. */
                if (source) {
                        source_recover_locked(vm);
                } else {
                        close_fd_locked(vm);
                        vm->lm = SIM_LM_DST_FAILED;
                }
                pthread_mutex_unlock(&vm->lock);
                enum hcs_origin o = source ? HCS_ORIGIN_SOURCE : HCS_ORIGIN_DESTINATION;
                sim_emit_failed(vm, o,
                                source ? HCS_RESULT_SOURCE_FAILED : HCS_RESULT_DESTINATION_FAILED,
                                r, "injected transfer failure");
                if (source)
                        sim_emit(vm, HCS_EVENT_RECOVERY_DONE, o);
                return r;
        }
        vm->lm = SIM_LM_TRANSFERRING;
        pthread_mutex_unlock(&vm->lock);

        r = source ? sim_xfer_source(vm) : sim_xfer_destination(vm);

        pthread_mutex_lock(&vm->lock);
        if (r == 0) {
                vm->lm = SIM_LM_TRANSFERRED;
        } else if (source) {
                source_recover_locked(vm);
        } else {
                close_fd_locked(vm);
                vm->lm = SIM_LM_DST_FAILED;
        }
        pthread_cond_broadcast(&vm->cond);
        pthread_mutex_unlock(&vm->lock);
        if (r < 0 && source)
                sim_emit(vm, HCS_EVENT_RECOVERY_DONE, HCS_ORIGIN_SOURCE);
        return r;
}

static int sim_lm_finalize(void *p, bool resume)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.finalize");
        if (r < 0)
                return r;
        pthread_mutex_lock(&vm->lock);
        if (vm->lm == SIM_LM_TRANSFERRING || vm->state == SIM_STOPPED ||
            vm->state == SIM_NOT_CREATED) {
                r = -EBUSY;
        } else if (!vm->incoming) {
                /* Source. */
                if (vm->lm == SIM_LM_NONE && vm->state == SIM_RUNNING && resume) {
                        r = 0; /* already rolled back */
                } else if (vm->lm == SIM_LM_NONE) {
                        r = -EBUSY;
                } else if (resume) {
                        bool after_transfer = vm->lm == SIM_LM_TRANSFERRED;
                        source_recover_locked(vm);
                        if (after_transfer) {
                                pthread_mutex_unlock(&vm->lock);
                                sim_emit(vm, HCS_EVENT_RECOVERY_DONE, HCS_ORIGIN_SOURCE);
                                pthread_mutex_lock(&vm->lock);
                        }
                } else {
                        stop_locked(vm, 0);
                }
        } else {
                /* Destination. */
                if (resume && vm->lm == SIM_LM_TRANSFERRED) {
                        r = workload_start_locked(vm);
                        if (r == 0) {
                                close_fd_locked(vm);
                                vm->state = SIM_RUNNING;
                                vm->lm = SIM_LM_NONE;
                                vm->incoming = false;
                                uint64_t d = ferry_now_us() - vm->blackout_start_us;
                                vm->last_blackout_us = d;
                                pthread_mutex_unlock(&vm->lock);
                                struct hcs_notification n = {
                                    .event = HCS_EVENT_BLACKOUT_EXITED,
                                    .origin = HCS_ORIGIN_DESTINATION,
                                    .blackout_us = d,
                                };
                                hcs_system_emit(vm->sys, &n);
                                sim_emit(vm, HCS_EVENT_MIGRATION_DONE, HCS_ORIGIN_DESTINATION);
                                pthread_mutex_lock(&vm->lock);
                        }
                } else if (resume) {
                        r = -EBUSY;
                } else {
                        stop_locked(vm, 0);
                }
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

static int sim_lm_cancel(void *p)
{
        struct sim_vm *vm = p;
        int r = hcs_fault_check("hcs.cancel");
        if (r < 0)
                return r;
        enum hcs_origin origin = HCS_ORIGIN_NONE;
        pthread_mutex_lock(&vm->lock);
        switch (vm->lm) {
        case SIM_LM_TRANSFERRING:
                /* The transfer notices, unwinds and reports the failure itself. */
                atomic_store(&vm->cancel, true);
                if (vm->fd >= 0)
                        shutdown(vm->fd, SHUT_RDWR);
                break;
        case SIM_LM_SRC_INITIALIZED:
        case SIM_LM_SRC_STARTED:
                source_recover_locked(vm);
                origin = HCS_ORIGIN_SOURCE;
                break;
        case SIM_LM_DST_STARTED:
                close_fd_locked(vm);
                vm->lm = SIM_LM_DST_FAILED;
                origin = HCS_ORIGIN_DESTINATION;
                break;
        default:
                r = -EALREADY;
                break;
        }
        pthread_mutex_unlock(&vm->lock);
        if (origin != HCS_ORIGIN_NONE) {
                sim_emit_failed(vm, origin, HCS_RESULT_CANCELLED, -ECANCELED, "cancelled");
                if (origin == HCS_ORIGIN_SOURCE)
                        sim_emit(vm, HCS_EVENT_RECOVERY_DONE, origin);
        }
        return r;
}

const struct hcs_backend_ops hcs_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .vm_new = sim_vm_new,
    .vm_free = sim_vm_free,
    .create = sim_create,
    .start = sim_start,
    .pause = sim_pause,
    .resume = sim_resume,
    .terminate = sim_terminate,
    .modify = sim_modify,
    .properties = sim_properties,
    .lm_initialize = sim_lm_initialize,
    .lm_start_source = sim_lm_start_source,
    .lm_start_destination = sim_lm_start_destination,
    .lm_transfer = sim_lm_transfer,
    .lm_finalize = sim_lm_finalize,
    .lm_cancel = sim_lm_cancel,
};
