/* SPDX-License-Identifier: MIT */
/* The guest compute service inside a sim VM: containers, processes and their exit codes,
 * mounts, devices seen by the guest, network namespaces, and the bridge counters. It is part
 * of the VM, so it is serialized into the transfer stream and rebuilt on the destination. */
#include "hcs/sim/sim_guest.h"

#include <signal.h>
#include <string.h>

#include "util/util.h"

#define FIRST_PID  100
#define FIRST_PORT 0x40000001u /* above the bridge's well-known port */

void sim_guest_init(struct sim_guest *g)
{
        memset(g, 0, sizeof(*g));
        g->protocol_max = SIM_GUEST_PROTOCOL_MAX;
        g->next_request_id = 1;
        g->next_port = FIRST_PORT;
        g->next_pid = FIRST_PID;
}

void sim_guest_set_exit_hook(struct sim_vm *vm, sim_exit_hook_fn fn, void *userdata)
{
        pthread_mutex_lock(&vm->hook_lock);
        vm->exit_hook = fn;
        vm->exit_hook_userdata = userdata;
        pthread_mutex_unlock(&vm->hook_lock);
}

void sim_report_exits(struct sim_vm *vm, const uint32_t *pids, const int *codes, size_t n)
{
        if (n == 0)
                return;
        pthread_mutex_lock(&vm->hook_lock);
        for (size_t i = 0; vm->exit_hook && i < n; i++)
                vm->exit_hook(pids[i], codes[i], vm->exit_hook_userdata);
        pthread_mutex_unlock(&vm->hook_lock);
}

/* Takes the lock if the guest can take calls: running and not frozen by a blackout. */
static int guest_lock(struct sim_vm *vm)
{
        pthread_mutex_lock(&vm->lock);
        if (vm->state != SIM_RUNNING || atomic_load(&vm->wl_pause_req)) {
                pthread_mutex_unlock(&vm->lock);
                return -ENOTCONN;
        }
        return 0;
}

/* For a call whose arguments are valid (args_ok): takes the lock if the guest can take calls. */
static int guest_call_lock(struct sim_vm *vm, bool args_ok)
{
        return args_ok ? guest_lock(vm) : -EINVAL;
}

static bool name_ok(const char *s)
{
        return s && *s && strlen(s) < SIM_NAME_MAX;
}

static bool path_ok(const char *s)
{
        return s && *s == '/' && strlen(s) < SIM_PATH_MAX;
}

static struct sim_container *find_container(struct sim_guest *g, const char *id)
{
        for (size_t i = 0; i < g->n_containers; i++)
                if (strcmp(g->containers[i].id, id) == 0)
                        return &g->containers[i];
        return NULL;
}

static struct sim_process *find_process(struct sim_guest *g, uint32_t pid)
{
        for (size_t i = 0; i < g->n_processes; i++)
                if (g->processes[i].pid == pid)
                        return &g->processes[i];
        return NULL;
}

/* Ends a process (lock held) and reports it after unlocking via the caller's list. */
struct exits {
        size_t n;
        uint32_t pid[SIM_GUEST_MAX_PROCESSES];
        int code[SIM_GUEST_MAX_PROCESSES];
};

static void end_process(struct sim_process *p, int code, struct exits *e)
{
        if (p->exited)
                return;
        p->exited = true;
        p->exit_code = code;
        e->pid[e->n] = p->pid;
        e->code[e->n] = code;
        e->n++;
}

static void unlock_and_report(struct sim_vm *vm, const struct exits *e)
{
        pthread_mutex_unlock(&vm->lock);
        sim_report_exits(vm, e->pid, e->code, e->n);
}

size_t sim_guest_kill_all_locked(struct sim_guest *g, int exit_code, uint32_t *pids, int *codes)
{
        size_t n = 0;
        for (size_t i = 0; i < g->n_processes; i++) {
                struct sim_process *p = &g->processes[i];
                if (p->exited)
                        continue;
                p->exited = true;
                p->exit_code = exit_code;
                pids[n] = p->pid;
                codes[n] = exit_code;
                n++;
        }
        for (size_t i = 0; i < g->n_containers; i++)
                if (g->containers[i].state == SIM_CT_RUNNING)
                        g->containers[i].state = SIM_CT_STOPPED;
        return n;
}

bool sim_guest_scsi_in_use_locked(const struct sim_guest *g, uint32_t controller, uint32_t lun)
{
        for (size_t i = 0; i < g->n_mounts; i++)
                if (g->mounts[i].kind == SIM_MOUNT_SCSI && g->mounts[i].controller == controller &&
                    g->mounts[i].lun == lun)
                        return true;
        return false;
}

int sim_guest_hello(struct sim_vm *vm, uint32_t *ret_protocol_max)
{
        int r = guest_lock(vm);
        if (r < 0)
                return r;
        *ret_protocol_max = vm->guest.protocol_max;
        pthread_mutex_unlock(&vm->lock);
        return 0;
}

int sim_guest_raise_floors(struct sim_vm *vm, uint64_t request_id, uint32_t port)
{
        int r = guest_lock(vm);
        if (r < 0)
                return r;
        if (request_id > vm->guest.next_request_id)
                vm->guest.next_request_id = request_id;
        if (port > vm->guest.next_port)
                vm->guest.next_port = port;
        pthread_mutex_unlock(&vm->lock);
        return 0;
}

int sim_guest_next_request_id(struct sim_vm *vm, uint64_t *ret)
{
        int r = guest_lock(vm);
        if (r < 0)
                return r;
        *ret = vm->guest.next_request_id++;
        pthread_mutex_unlock(&vm->lock);
        return 0;
}

static int alloc_port_locked(struct sim_guest *g, uint32_t *ret)
{
        if (g->next_port == UINT32_MAX)
                return -ENOSPC;
        *ret = g->next_port++;
        return 0;
}

int sim_guest_alloc_port(struct sim_vm *vm, uint32_t *ret)
{
        int r = guest_lock(vm);
        if (r < 0)
                return r;
        r = alloc_port_locked(&vm->guest, ret);
        pthread_mutex_unlock(&vm->lock);
        return r;
}

int sim_guest_counters(struct sim_vm *vm, uint64_t *ret_request_id, uint32_t *ret_port)
{
        pthread_mutex_lock(&vm->lock);
        *ret_request_id = vm->guest.next_request_id;
        *ret_port = vm->guest.next_port;
        pthread_mutex_unlock(&vm->lock);
        return 0;
}

int sim_guest_create_container(struct sim_vm *vm, const char *id)
{
        int r = guest_call_lock(vm, name_ok(id));
        if (r < 0)
                return r;
        struct sim_guest *g = &vm->guest;
        if (find_container(g, id))
                r = -EEXIST;
        else if (g->n_containers == SIM_GUEST_MAX_CONTAINERS)
                r = -ENOSPC;
        else {
                struct sim_container *c = &g->containers[g->n_containers++];
                memset(c, 0, sizeof(*c));
                ferry_strscpy(c->id, id, sizeof(c->id));
                c->state = SIM_CT_CREATED;
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

static int new_process_locked(struct sim_guest *g, const char *container, uint32_t *ret_pid)
{
        if (g->n_processes == SIM_GUEST_MAX_PROCESSES) {
                /* Reap exited processes to make room; their exits were already reported. */
                size_t o = 0;
                for (size_t i = 0; i < g->n_processes; i++)
                        if (!g->processes[i].exited)
                                g->processes[o++] = g->processes[i];
                g->n_processes = o;
                if (o == SIM_GUEST_MAX_PROCESSES)
                        return -ENOSPC;
        }
        struct sim_process *p = &g->processes[g->n_processes++];
        memset(p, 0, sizeof(*p));
        p->pid = g->next_pid++;
        ferry_strscpy(p->container, container, sizeof(p->container));
        *ret_pid = p->pid;
        return 0;
}

/* Starts a process in container id, which must be in state want: a created container's first
 * process is its init, and starting it makes the container run. */
static int start_in_container(struct sim_vm *vm, const char *id, enum sim_container_state want,
                              uint32_t *ret_pid)
{
        int r = guest_call_lock(vm, name_ok(id));
        if (r < 0)
                return r;
        struct sim_container *c = find_container(&vm->guest, id);
        uint32_t pid = 0;
        if (!c)
                r = -ENOENT;
        else if (c->state != want)
                r = -EBUSY;
        else if ((r = new_process_locked(&vm->guest, id, &pid)) == 0 && want == SIM_CT_CREATED) {
                c->state = SIM_CT_RUNNING;
                c->init_pid = pid;
        }
        pthread_mutex_unlock(&vm->lock);
        if (r == 0)
                *ret_pid = pid;
        return r;
}

int sim_guest_start_container(struct sim_vm *vm, const char *id, uint32_t *ret_init_pid)
{
        return start_in_container(vm, id, SIM_CT_CREATED, ret_init_pid);
}

static bool fatal_signal(int sig)
{
        return sig == SIGKILL || sig == SIGTERM || sig == SIGINT;
}

/* When a container's init exits, the container stops and its other processes die. */
static void init_exited_locked(struct sim_guest *g, const char *container, struct exits *e)
{
        struct sim_container *c = find_container(g, container);
        if (!c)
                return;
        c->state = SIM_CT_STOPPED;
        for (size_t i = 0; i < g->n_processes; i++)
                if (strcmp(g->processes[i].container, container) == 0)
                        end_process(&g->processes[i], 128 + SIGKILL, e);
}

int sim_guest_signal_container(struct sim_vm *vm, const char *id, int sig)
{
        if (!name_ok(id) || sig <= 0 || sig >= 65)
                return -EINVAL;
        int r = guest_lock(vm);
        if (r < 0)
                return r;
        struct exits e = {0};
        struct sim_container *c = find_container(&vm->guest, id);
        if (!c)
                r = -ENOENT;
        else if (c->state != SIM_CT_RUNNING)
                r = -EBUSY;
        else if (fatal_signal(sig)) {
                struct sim_process *init = find_process(&vm->guest, c->init_pid);
                if (init)
                        end_process(init, 128 + sig, &e);
                init_exited_locked(&vm->guest, id, &e);
        }
        unlock_and_report(vm, &e);
        return r;
}

int sim_guest_delete_container(struct sim_vm *vm, const char *id)
{
        int r = guest_call_lock(vm, name_ok(id));
        if (r < 0)
                return r;
        struct sim_guest *g = &vm->guest;
        struct sim_container *c = find_container(g, id);
        if (!c) {
                r = -ENOENT;
        } else if (c->state == SIM_CT_RUNNING) {
                r = -EBUSY;
        } else {
                size_t o = 0;
                for (size_t i = 0; i < g->n_processes; i++)
                        if (strcmp(g->processes[i].container, id) != 0)
                                g->processes[o++] = g->processes[i];
                g->n_processes = o;
                *c = g->containers[--g->n_containers];
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

int sim_guest_start_process(struct sim_vm *vm, const char *container, uint32_t *ret_pid)
{
        return start_in_container(vm, container, SIM_CT_RUNNING, ret_pid);
}

static int process_exit(struct sim_vm *vm, uint32_t pid, int code, bool signal)
{
        int r = guest_lock(vm);
        if (r < 0)
                return r;
        struct exits e = {0};
        struct sim_process *p = find_process(&vm->guest, pid);
        if (!p) {
                r = -ENOENT;
        } else if (p->exited) {
                r = -EALREADY;
        } else if (!signal || fatal_signal(code)) {
                int status = signal ? 128 + code : code;
                end_process(p, status, &e);
                struct sim_container *c = find_container(&vm->guest, p->container);
                if (c && c->init_pid == pid)
                        init_exited_locked(&vm->guest, c->id, &e);
        }
        unlock_and_report(vm, &e);
        return r;
}

int sim_guest_signal_process(struct sim_vm *vm, uint32_t pid, int sig)
{
        if (sig <= 0 || sig >= 65)
                return -EINVAL;
        return process_exit(vm, pid, sig, true);
}

int sim_guest_exit_process(struct sim_vm *vm, uint32_t pid, int code)
{
        if (code < 0 || code > 255)
                return -EINVAL;
        return process_exit(vm, pid, code, false);
}

int sim_guest_process_status(struct sim_vm *vm, uint32_t pid, bool *ret_exited, int *ret_code)
{
        pthread_mutex_lock(&vm->lock);
        struct sim_process *p = find_process(&vm->guest, pid);
        int r = p ? 0 : -ENOENT;
        if (p) {
                *ret_exited = p->exited;
                *ret_code = p->exit_code;
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

int sim_guest_io_relay(struct sim_vm *vm, uint32_t pid, uint32_t ret_ports[3])
{
        int r = guest_lock(vm);
        if (r < 0)
                return r;
        struct sim_process *p = find_process(&vm->guest, pid);
        uint32_t ports[3];
        if (!p)
                r = -ENOENT;
        else if (p->exited)
                r = -EBUSY;
        else
                for (int i = 0; i < 3 && r == 0; i++)
                        r = alloc_port_locked(&vm->guest, &ports[i]);
        if (r == 0)
                memcpy(p->stdio_port, ports, sizeof(ports));
        pthread_mutex_unlock(&vm->lock);
        if (r == 0)
                memcpy(ret_ports, ports, sizeof(ports));
        return r;
}

static bool guest_path_taken(const struct sim_guest *g, const char *path)
{
        for (size_t i = 0; i < g->n_mounts; i++)
                if (strcmp(g->mounts[i].guest_path, path) == 0)
                        return true;
        return false;
}

/* Takes a new mount of kind at guest_path (lock held); the caller fills in its source. */
static int add_mount_locked(struct sim_guest *g, enum sim_mount_kind kind, const char *guest_path,
                            struct sim_mount **ret)
{
        if (guest_path_taken(g, guest_path))
                return -EEXIST;
        if (g->n_mounts == SIM_GUEST_MAX_MOUNTS)
                return -ENOSPC;
        struct sim_mount *m = &g->mounts[g->n_mounts++];
        memset(m, 0, sizeof(*m));
        m->kind = kind;
        ferry_strscpy(m->guest_path, guest_path, sizeof(m->guest_path));
        *ret = m;
        return 0;
}

int sim_guest_scsi_mount(struct sim_vm *vm, uint32_t controller, uint32_t lun,
                         const char *guest_path)
{
        if (!path_ok(guest_path))
                return -EINVAL;
        if (controller >= SIM_SCSI_CONTROLLERS || lun >= SIM_SCSI_LUNS)
                return -ERANGE;
        int r = guest_lock(vm);
        if (r < 0)
                return r;
        struct sim_mount *m;
        if (!vm->scsi[controller][lun].used)
                r = -ENOENT;
        else if ((r = add_mount_locked(&vm->guest, SIM_MOUNT_SCSI, guest_path, &m)) == 0) {
                m->controller = controller;
                m->lun = lun;
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

static int sim_guest_unmount(struct sim_vm *vm, enum sim_mount_kind kind, const char *guest_path)
{
        int r = guest_call_lock(vm, path_ok(guest_path));
        if (r < 0)
                return r;
        struct sim_guest *g = &vm->guest;
        r = -ENOENT;
        for (size_t i = 0; i < g->n_mounts; i++) {
                if (g->mounts[i].kind == kind &&
                    strcmp(g->mounts[i].guest_path, guest_path) == 0) {
                        g->mounts[i] = g->mounts[--g->n_mounts];
                        r = 0;
                        break;
                }
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

int sim_guest_scsi_unmount(struct sim_vm *vm, const char *guest_path)
{
        return sim_guest_unmount(vm, SIM_MOUNT_SCSI, guest_path);
}

int sim_guest_plan9_unmount(struct sim_vm *vm, const char *guest_path)
{
        return sim_guest_unmount(vm, SIM_MOUNT_PLAN9, guest_path);
}

static bool host_has(const struct sim_named *tab, size_t cap, const char *name)
{
        for (size_t i = 0; i < cap; i++)
                if (tab[i].used && strcmp(tab[i].name, name) == 0)
                        return true;
        return false;
}

int sim_guest_plan9_mount(struct sim_vm *vm, const char *share, const char *guest_path)
{
        int r = guest_call_lock(vm, name_ok(share) && path_ok(guest_path));
        if (r < 0)
                return r;
        struct sim_mount *m;
        if (!host_has(vm->shares, SIM_MAX_SHARES, share))
                r = -ENOENT;
        else if ((r = add_mount_locked(&vm->guest, SIM_MOUNT_PLAN9, guest_path, &m)) == 0)
                ferry_strscpy(m->share, share, sizeof(m->share));
        pthread_mutex_unlock(&vm->lock);
        return r;
}

static bool list_has(char (*list)[SIM_NAME_MAX], size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], s) == 0)
                        return true;
        return false;
}

/* Appends s to a list of at most cap names (lock held). */
static int list_add(char (*list)[SIM_NAME_MAX], size_t *n, size_t cap, const char *s)
{
        if (list_has(list, *n, s))
                return -EEXIST;
        if (*n == cap)
                return -ENOSPC;
        ferry_strscpy(list[(*n)++], s, SIM_NAME_MAX);
        return 0;
}

int sim_guest_vpci_ready(struct sim_vm *vm, const char *device_id)
{
        int r = guest_call_lock(vm, name_ok(device_id));
        if (r < 0)
                return r;
        struct sim_guest *g = &vm->guest;
        if (!host_has(vm->vpci, SIM_MAX_VPCI, device_id))
                r = -ENOENT;
        else
                r = list_add(g->vpci_ready, &g->n_vpci_ready, SIM_MAX_VPCI, device_id);
        pthread_mutex_unlock(&vm->lock);
        return r;
}

int sim_guest_netns_add(struct sim_vm *vm, const char *ns)
{
        int r = guest_call_lock(vm, name_ok(ns));
        if (r < 0)
                return r;
        struct sim_guest *g = &vm->guest;
        r = list_add(g->netns, &g->n_netns, SIM_GUEST_MAX_NICS, ns);
        pthread_mutex_unlock(&vm->lock);
        return r;
}

int sim_guest_nic_add(struct sim_vm *vm, const char *ns, const char *nic_id)
{
        int r = guest_call_lock(vm, name_ok(ns) && name_ok(nic_id));
        if (r < 0)
                return r;
        struct sim_guest *g = &vm->guest;
        bool dup = false;
        for (size_t i = 0; i < g->n_nics; i++)
                dup |= strcmp(g->nics[i].id, nic_id) == 0;
        if (!list_has(g->netns, g->n_netns, ns) || !host_has(vm->nics, SIM_MAX_NICS, nic_id))
                r = -ENOENT;
        else if (dup)
                r = -EEXIST;
        else if (g->n_nics == SIM_GUEST_MAX_NICS)
                r = -ENOSPC;
        else {
                ferry_strscpy(g->nics[g->n_nics].ns, ns, SIM_NAME_MAX);
                ferry_strscpy(g->nics[g->n_nics].id, nic_id, SIM_NAME_MAX);
                g->n_nics++;
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

int sim_guest_nic_remove(struct sim_vm *vm, const char *ns, const char *nic_id)
{
        int r = guest_call_lock(vm, name_ok(ns) && name_ok(nic_id));
        if (r < 0)
                return r;
        struct sim_guest *g = &vm->guest;
        r = -ENOENT;
        for (size_t i = 0; i < g->n_nics; i++) {
                if (strcmp(g->nics[i].id, nic_id) == 0 && strcmp(g->nics[i].ns, ns) == 0) {
                        g->nics[i] = g->nics[--g->n_nics];
                        r = 0;
                        break;
                }
        }
        pthread_mutex_unlock(&vm->lock);
        return r;
}

size_t sim_guest_container_count(struct sim_vm *vm)
{
        pthread_mutex_lock(&vm->lock);
        size_t n = vm->guest.n_containers;
        pthread_mutex_unlock(&vm->lock);
        return n;
}

/* ---- serialization ---------------------------------------------------------------------- */

static struct json_object *str_list(char (*list)[SIM_NAME_MAX], size_t n)
{
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_string(list[i]));
        return a;
}

struct json_object *sim_guest_to_json_locked(const struct sim_guest *gc)
{
        struct sim_guest *g = (struct sim_guest *)gc;
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "ProtocolMax", json_object_new_int64(g->protocol_max));
        json_object_object_add(o, "NextRequestId",
                               json_object_new_int64((int64_t)g->next_request_id));
        json_object_object_add(o, "NextPort", json_object_new_int64(g->next_port));
        json_object_object_add(o, "NextPid", json_object_new_int64(g->next_pid));
        struct json_object *cs = json_object_new_array();
        for (size_t i = 0; i < g->n_containers; i++) {
                struct json_object *c = json_object_new_object();
                json_object_object_add(c, "Id", json_object_new_string(g->containers[i].id));
                json_object_object_add(c, "State", json_object_new_int(g->containers[i].state));
                json_object_object_add(c, "InitPid",
                                       json_object_new_int64(g->containers[i].init_pid));
                json_object_array_add(cs, c);
        }
        json_object_object_add(o, "Containers", cs);
        struct json_object *ps = json_object_new_array();
        for (size_t i = 0; i < g->n_processes; i++) {
                const struct sim_process *p = &g->processes[i];
                struct json_object *j = json_object_new_object();
                json_object_object_add(j, "Pid", json_object_new_int64(p->pid));
                json_object_object_add(j, "Container", json_object_new_string(p->container));
                json_object_object_add(j, "Exited", json_object_new_boolean(p->exited));
                json_object_object_add(j, "ExitCode", json_object_new_int(p->exit_code));
                struct json_object *io = json_object_new_array();
                for (int k = 0; k < 3; k++)
                        json_object_array_add(io, json_object_new_int64(p->stdio_port[k]));
                json_object_object_add(j, "Stdio", io);
                json_object_array_add(ps, j);
        }
        json_object_object_add(o, "Processes", ps);
        struct json_object *ms = json_object_new_array();
        for (size_t i = 0; i < g->n_mounts; i++) {
                const struct sim_mount *m = &g->mounts[i];
                struct json_object *j = json_object_new_object();
                json_object_object_add(j, "Kind", json_object_new_int(m->kind));
                json_object_object_add(j, "Controller", json_object_new_int64(m->controller));
                json_object_object_add(j, "Lun", json_object_new_int64(m->lun));
                json_object_object_add(j, "Share", json_object_new_string(m->share));
                json_object_object_add(j, "GuestPath", json_object_new_string(m->guest_path));
                json_object_array_add(ms, j);
        }
        json_object_object_add(o, "Mounts", ms);
        json_object_object_add(o, "VpciReady", str_list(g->vpci_ready, g->n_vpci_ready));
        json_object_object_add(o, "NetNs", str_list(g->netns, g->n_netns));
        struct json_object *ns = json_object_new_array();
        for (size_t i = 0; i < g->n_nics; i++) {
                struct json_object *j = json_object_new_object();
                json_object_object_add(j, "Ns", json_object_new_string(g->nics[i].ns));
                json_object_object_add(j, "Id", json_object_new_string(g->nics[i].id));
                json_object_array_add(ns, j);
        }
        json_object_object_add(o, "Nics", ns);
        return o;
}

static struct json_object *get(struct json_object *o, const char *k)
{
        struct json_object *v = NULL;
        return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static int get_u64(struct json_object *o, const char *k, uint64_t max, uint64_t *ret)
{
        struct json_object *v = get(o, k);
        if (!v || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        int64_t x = json_object_get_int64(v);
        if (x < 0 || (uint64_t)x > max)
                return -EBADMSG;
        *ret = (uint64_t)x;
        return 0;
}

static int get_str(struct json_object *o, const char *k, char *dst, size_t size, bool empty_ok)
{
        struct json_object *v = get(o, k);
        if (!v || !json_object_is_type(v, json_type_string))
                return -EBADMSG;
        const char *s = json_object_get_string(v);
        if ((!empty_ok && !*s) || ferry_strscpy(dst, s, size) < 0)
                return -EBADMSG;
        return 0;
}

static struct json_object *get_array(struct json_object *o, const char *k, size_t max)
{
        struct json_object *v = get(o, k);
        if (!v || !json_object_is_type(v, json_type_array) || json_object_array_length(v) > max)
                return NULL;
        return v;
}

static int str_list_from(struct json_object *a, char (*list)[SIM_NAME_MAX], size_t *n)
{
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                struct json_object *s = json_object_array_get_idx(a, i);
                if (!json_object_is_type(s, json_type_string) ||
                    ferry_strscpy(list[i], json_object_get_string(s), SIM_NAME_MAX) < 0)
                        return -EBADMSG;
        }
        *n = json_object_array_length(a);
        return 0;
}

/* Peer-controlled input: every field is type- and range-checked before it lands. */
int sim_guest_from_json_locked(struct sim_guest *out, struct json_object *o)
{
        _cleanup_free_ struct sim_guest *g = calloc(1, sizeof(*g));
        uint64_t v;
        if (!g)
                return -ENOMEM;
        if (get_u64(o, "ProtocolMax", 1000, &v) < 0 || v == 0)
                return -EBADMSG;
        g->protocol_max = (uint32_t)v;
        if (get_u64(o, "NextRequestId", INT64_MAX, &g->next_request_id) < 0)
                return -EBADMSG;
        if (get_u64(o, "NextPort", UINT32_MAX, &v) < 0)
                return -EBADMSG;
        g->next_port = (uint32_t)v;
        if (get_u64(o, "NextPid", UINT32_MAX, &v) < 0)
                return -EBADMSG;
        g->next_pid = (uint32_t)v;

        struct json_object *a = get_array(o, "Containers", SIM_GUEST_MAX_CONTAINERS);
        if (!a)
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                struct json_object *c = json_object_array_get_idx(a, i);
                struct sim_container *d = &g->containers[i];
                if (get_str(c, "Id", d->id, sizeof(d->id), false) < 0 ||
                    get_u64(c, "State", SIM_CT_STOPPED, &v) < 0 || v < SIM_CT_CREATED)
                        return -EBADMSG;
                d->state = (enum sim_container_state)v;
                if (get_u64(c, "InitPid", UINT32_MAX, &v) < 0)
                        return -EBADMSG;
                d->init_pid = (uint32_t)v;
        }
        g->n_containers = json_object_array_length(a);

        a = get_array(o, "Processes", SIM_GUEST_MAX_PROCESSES);
        if (!a)
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                struct json_object *p = json_object_array_get_idx(a, i);
                struct sim_process *d = &g->processes[i];
                if (get_u64(p, "Pid", UINT32_MAX, &v) < 0)
                        return -EBADMSG;
                d->pid = (uint32_t)v;
                if (get_str(p, "Container", d->container, sizeof(d->container), false) < 0)
                        return -EBADMSG;
                struct json_object *ex = get(p, "Exited");
                if (!ex || !json_object_is_type(ex, json_type_boolean))
                        return -EBADMSG;
                d->exited = json_object_get_boolean(ex);
                if (get_u64(p, "ExitCode", 255 + 128, &v) < 0)
                        return -EBADMSG;
                d->exit_code = (int)v;
                struct json_object *io = get_array(p, "Stdio", 3);
                if (!io || json_object_array_length(io) != 3)
                        return -EBADMSG;
                for (int k = 0; k < 3; k++) {
                        int64_t port =
                            json_object_get_int64(json_object_array_get_idx(io, (size_t)k));
                        if (port < 0 || port > UINT32_MAX)
                                return -EBADMSG;
                        d->stdio_port[k] = (uint32_t)port;
                }
        }
        g->n_processes = json_object_array_length(a);

        a = get_array(o, "Mounts", SIM_GUEST_MAX_MOUNTS);
        if (!a)
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                struct json_object *m = json_object_array_get_idx(a, i);
                struct sim_mount *d = &g->mounts[i];
                if (get_u64(m, "Kind", SIM_MOUNT_PLAN9, &v) < 0 || v < SIM_MOUNT_SCSI)
                        return -EBADMSG;
                d->kind = (enum sim_mount_kind)v;
                if (get_u64(m, "Controller", SIM_SCSI_CONTROLLERS - 1, &v) < 0)
                        return -EBADMSG;
                d->controller = (uint32_t)v;
                if (get_u64(m, "Lun", SIM_SCSI_LUNS - 1, &v) < 0)
                        return -EBADMSG;
                d->lun = (uint32_t)v;
                if (get_str(m, "Share", d->share, sizeof(d->share), true) < 0 ||
                    get_str(m, "GuestPath", d->guest_path, sizeof(d->guest_path), false) < 0)
                        return -EBADMSG;
        }
        g->n_mounts = json_object_array_length(a);

        if (!(a = get_array(o, "VpciReady", SIM_MAX_VPCI)) ||
            str_list_from(a, g->vpci_ready, &g->n_vpci_ready) < 0)
                return -EBADMSG;
        if (!(a = get_array(o, "NetNs", SIM_GUEST_MAX_NICS)) ||
            str_list_from(a, g->netns, &g->n_netns) < 0)
                return -EBADMSG;
        a = get_array(o, "Nics", SIM_GUEST_MAX_NICS);
        if (!a)
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                struct json_object *n = json_object_array_get_idx(a, i);
                if (get_str(n, "Ns", g->nics[i].ns, SIM_NAME_MAX, false) < 0 ||
                    get_str(n, "Id", g->nics[i].id, SIM_NAME_MAX, false) < 0)
                        return -EBADMSG;
        }
        g->n_nics = json_object_array_length(a);
        *out = *g;
        return 0;
}
