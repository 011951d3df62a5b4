/* SPDX-License-Identifier: MIT */
/* The guest bridge for the sim backend. The guest service runs inside the sim VM
 * (hcs/sim/sim_guest.c); its calls are quick and non-blocking, so they run on the loop thread
 * and complete on a later turn of the loop, which keeps the interface asynchronous like a real
 * bridge's. Process exits arrive from whichever thread ended the process and are handed to the
 * loop through a uv_async. */
#include "guest/guest.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hcs/fault.h"
#include "hcs/sim/sim_guest.h"
#include "util/util.h"

struct completion {
        guest_done_fn done;
        guest_exit_fn exit_done;
        int result;
        uint64_t value;
        uint32_t pid;
        int code;
        void *userdata;
};

struct waiter {
        uint32_t pid;
        guest_exit_fn done;
        void *userdata;
};

struct exit_event {
        uint32_t pid;
        int code;
};

struct guest_conn {
        uv_loop_t *loop;
        struct hcs_system *sys;
        struct sim_vm *vm;
        uint32_t protocol;
        uv_async_t async;
        bool closing;

        /* Loop thread only. */
        struct completion *done;
        size_t n_done, cap_done;
        struct waiter *waiters;
        size_t n_waiters, cap_waiters;

        /* Filled by the exit hook on any thread. */
        pthread_mutex_t lock;
        struct exit_event *exits;
        size_t n_exits, cap_exits;
};

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
        if (need <= *cap)
                return 0;
        size_t n = *cap ? *cap * 2 : 8;
        while (n < need)
                n *= 2;
        void *p = realloc(*arr, n * elem);
        if (!p)
                return -ENOMEM;
        *arr = p;
        *cap = n;
        return 0;
}

static void exit_hook(uint32_t pid, int code, void *userdata)
{
        struct guest_conn *c = userdata;
        pthread_mutex_lock(&c->lock);
        /* On allocation failure the exit is still visible through the process table: a later
         * wait completes from there. */
        if (grow((void **)&c->exits, &c->cap_exits, c->n_exits + 1, sizeof(*c->exits)) == 0)
                c->exits[c->n_exits++] = (struct exit_event){.pid = pid, .code = code};
        pthread_mutex_unlock(&c->lock);
        uv_async_send(&c->async);
}

static void conn_free_cb(uv_handle_t *h)
{
        struct guest_conn *c = h->data;
        pthread_mutex_destroy(&c->lock);
        free(c->done);
        free(c->waiters);
        free(c->exits);
        free(c);
}

static void conn_async_cb(uv_async_t *h)
{
        struct guest_conn *c = h->data;

        /* Exits first, so a wait that was registered before an exit sees it now. */
        pthread_mutex_lock(&c->lock);
        struct exit_event *ex = c->exits;
        size_t n_ex = c->n_exits;
        c->exits = NULL;
        c->n_exits = c->cap_exits = 0;
        pthread_mutex_unlock(&c->lock);
        for (size_t i = 0; i < n_ex; i++) {
                size_t o = 0;
                for (size_t k = 0; k < c->n_waiters; k++) {
                        struct waiter w = c->waiters[k];
                        if (w.pid == ex[i].pid && grow((void **)&c->done, &c->cap_done,
                                                       c->n_done + 1, sizeof(*c->done)) == 0)
                                c->done[c->n_done++] = (struct completion){
                                    .exit_done = w.done,
                                    .pid = w.pid,
                                    .code = ex[i].code,
                                    .userdata = w.userdata,
                                };
                        else
                                c->waiters[o++] = w;
                }
                c->n_waiters = o;
        }
        free(ex);

        while (c->n_done > 0) {
                struct completion *list = c->done;
                size_t n = c->n_done;
                c->done = NULL;
                c->n_done = c->cap_done = 0;
                for (size_t i = 0; i < n; i++) {
                        struct completion *d = &list[i];
                        if (d->exit_done)
                                d->exit_done(d->result, d->pid, d->code, d->userdata);
                        else
                                d->done(d->result, d->value, d->userdata);
                }
                free(list);
        }
        if (c->closing && !uv_is_closing((uv_handle_t *)&c->async))
                uv_close((uv_handle_t *)&c->async, conn_free_cb);
}

static int defer(struct guest_conn *c, const struct completion *d)
{
        int r = grow((void **)&c->done, &c->cap_done, c->n_done + 1, sizeof(*c->done));
        if (r < 0)
                return r;
        c->done[c->n_done++] = *d;
        uv_async_send(&c->async);
        return 0;
}

static int complete(struct guest_conn *c, guest_done_fn done, int result, uint64_t value,
                    void *userdata)
{
        return defer(c, &(struct completion){
                            .done = done, .result = result, .value = value, .userdata = userdata});
}

/* Ends every wait with -ECANCELED (the connection moved or closed). */
static void cancel_waiters(struct guest_conn *c)
{
        for (size_t i = 0; i < c->n_waiters; i++)
                defer(c, &(struct completion){.exit_done = c->waiters[i].done,
                                              .result = -ECANCELED,
                                              .pid = c->waiters[i].pid,
                                              .userdata = c->waiters[i].userdata});
        c->n_waiters = 0;
}

static int negotiate(struct guest_conn *c, uint32_t max_protocol, uint64_t *ret_version)
{
        uint32_t guest_max;
        int r = hcs_fault_check("guest.connect");
        if (r < 0)
                return r;
        r = sim_guest_hello(c->vm, &guest_max);
        if (r < 0)
                return r;
        uint32_t v = max_protocol < guest_max ? max_protocol : guest_max;
        if (v < GUEST_PROTOCOL_MIN)
                return -EPROTO;
        c->protocol = v;
        *ret_version = v;
        return 0;
}

static int bind_vm(struct guest_conn *c, struct hcs_system *sys)
{
        if (strcmp(hcs_system_backend(sys), "sim") != 0)
                return -EOPNOTSUPP;
        struct sim_vm *vm = hcs_system_backend_vm(sys);
        pthread_mutex_lock(&vm->hook_lock);
        bool taken = vm->exit_hook != NULL && vm->exit_hook_userdata != c;
        pthread_mutex_unlock(&vm->hook_lock);
        if (taken)
                return -EEXIST;
        if (c->vm && c->vm != vm)
                sim_guest_set_exit_hook(c->vm, NULL, NULL);
        sim_guest_set_exit_hook(vm, exit_hook, c);
        c->vm = vm;
        c->sys = sys;
        return 0;
}

int guest_connect(uv_loop_t *loop, struct hcs_system *sys, uint32_t max_protocol,
                  guest_done_fn done, void *userdata, struct guest_conn **ret)
{
        if (!loop || !sys || !done || !ret)
                return -EINVAL;
        struct guest_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->loop = loop;
        pthread_mutex_init(&c->lock, NULL);
        int r = bind_vm(c, sys);
        if (r < 0) {
                pthread_mutex_destroy(&c->lock);
                free(c);
                return r;
        }
        r = uv_async_init(loop, &c->async, conn_async_cb);
        if (r < 0) {
                sim_guest_set_exit_hook(c->vm, NULL, NULL);
                pthread_mutex_destroy(&c->lock);
                free(c);
                return r;
        }
        c->async.data = c;
        uint64_t version = 0;
        r = negotiate(c, max_protocol, &version);
        complete(c, done, r, r < 0 ? 0 : version, userdata);
        *ret = c;
        return 0;
}

int guest_reconnect(struct guest_conn *c, struct hcs_system *sys, uint32_t max_protocol,
                    guest_done_fn done, void *userdata)
{
        if (!c || !sys || !done || c->closing)
                return -EINVAL;
        int r = bind_vm(c, sys);
        if (r < 0)
                return r;
        cancel_waiters(c);
        c->protocol = 0;
        uint64_t version = 0;
        r = negotiate(c, max_protocol, &version);
        return complete(c, done, r, r < 0 ? 0 : version, userdata);
}

void guest_close(struct guest_conn *c)
{
        if (!c || c->closing)
                return;
        sim_guest_set_exit_hook(c->vm, NULL, NULL);
        cancel_waiters(c);
        c->closing = true;
        uv_async_send(&c->async);
}

uint32_t guest_protocol(const struct guest_conn *c)
{
        return c->protocol;
}

/* Every bridge call carries a request id taken from the guest's counter. */
static int begin(struct guest_conn *c, const char *fault)
{
        int r = hcs_fault_check(fault);
        if (r < 0)
                return r;
        if (c->protocol == 0)
                return -ENOTCONN;
        uint64_t id;
        return sim_guest_next_request_id(c->vm, &id);
}

#define CHECK_ARGS(c, done)                                                                        \
        do {                                                                                       \
                if (!(c) || !(done) || (c)->closing)                                               \
                        return -EINVAL;                                                            \
        } while (0)

int guest_raise_floors(struct guest_conn *c, uint64_t next_request_id, uint32_t next_port,
                       guest_done_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        int r = hcs_fault_check("guest.raise_floors");
        if (r == 0)
                r = c->protocol ? sim_guest_raise_floors(c->vm, next_request_id, next_port)
                                : -ENOTCONN;
        return complete(c, done, r, 0, userdata);
}

int guest_counters(struct guest_conn *c, uint64_t *ret_next_request_id, uint32_t *ret_next_port)
{
        if (!c || !ret_next_request_id || !ret_next_port)
                return -EINVAL;
        return sim_guest_counters(c->vm, ret_next_request_id, ret_next_port);
}

int guest_create_container(struct guest_conn *c, const char *id, guest_done_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.create_container");
        if (r == 0)
                r = sim_guest_create_container(c->vm, id);
        return complete(c, done, r, 0, userdata);
}

int guest_start_container(struct guest_conn *c, const char *id, guest_done_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        uint32_t pid = 0;
        int r = begin(c, "guest.start_container");
        if (r == 0)
                r = sim_guest_start_container(c->vm, id, &pid);
        return complete(c, done, r, pid, userdata);
}

int guest_signal_container(struct guest_conn *c, const char *id, int sig, guest_done_fn done,
                           void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.signal_container");
        if (r == 0)
                r = sim_guest_signal_container(c->vm, id, sig);
        return complete(c, done, r, 0, userdata);
}

int guest_delete_container(struct guest_conn *c, const char *id, guest_done_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.delete_container");
        if (r == 0)
                r = sim_guest_delete_container(c->vm, id);
        return complete(c, done, r, 0, userdata);
}

int guest_start_process(struct guest_conn *c, const char *container, guest_done_fn done,
                        void *userdata)
{
        CHECK_ARGS(c, done);
        uint32_t pid = 0;
        int r = begin(c, "guest.start_process");
        if (r == 0)
                r = sim_guest_start_process(c->vm, container, &pid);
        return complete(c, done, r, pid, userdata);
}

int guest_signal_process(struct guest_conn *c, uint32_t pid, int sig, guest_done_fn done,
                         void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.signal_process");
        if (r == 0)
                r = sim_guest_signal_process(c->vm, pid, sig);
        return complete(c, done, r, 0, userdata);
}

int guest_wait_process(struct guest_conn *c, uint32_t pid, guest_exit_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        bool exited = false;
        int code = 0;
        int r = begin(c, "guest.wait_process");
        if (r == 0)
                r = sim_guest_process_status(c->vm, pid, &exited, &code);
        if (r < 0 || exited)
                return defer(c, &(struct completion){.exit_done = done,
                                                     .result = r,
                                                     .pid = pid,
                                                     .code = code,
                                                     .userdata = userdata});
        /* Not exited yet: an exit from now on is queued by the hook and drained on the loop
         * after this waiter is in place, so it is seen exactly once. */
        r = grow((void **)&c->waiters, &c->cap_waiters, c->n_waiters + 1, sizeof(*c->waiters));
        if (r < 0)
                return r;
        c->waiters[c->n_waiters++] =
            (struct waiter){.pid = pid, .done = done, .userdata = userdata};
        return 0;
}

int guest_io_relay(struct guest_conn *c, uint32_t pid, guest_done_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        uint32_t ports[3] = {0};
        int r = begin(c, "guest.io_relay");
        if (r == 0)
                r = sim_guest_io_relay(c->vm, pid, ports);
        return complete(c, done, r, ports[0], userdata);
}

int guest_scsi_mount(struct guest_conn *c, uint32_t controller, uint32_t lun,
                     const char *guest_path, guest_done_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.scsi_mount");
        if (r == 0)
                r = sim_guest_scsi_mount(c->vm, controller, lun, guest_path);
        return complete(c, done, r, 0, userdata);
}

int guest_scsi_unmount(struct guest_conn *c, const char *guest_path, guest_done_fn done,
                       void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.scsi_unmount");
        if (r == 0)
                r = sim_guest_scsi_unmount(c->vm, guest_path);
        return complete(c, done, r, 0, userdata);
}

int guest_plan9_mount(struct guest_conn *c, const char *share, const char *guest_path,
                      guest_done_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.plan9_mount");
        if (r == 0)
                r = sim_guest_plan9_mount(c->vm, share, guest_path);
        return complete(c, done, r, 0, userdata);
}

int guest_plan9_unmount(struct guest_conn *c, const char *guest_path, guest_done_fn done,
                        void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.plan9_unmount");
        if (r == 0)
                r = sim_guest_plan9_unmount(c->vm, guest_path);
        return complete(c, done, r, 0, userdata);
}

int guest_vpci_ready(struct guest_conn *c, const char *device_id, guest_done_fn done,
                     void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.vpci_ready");
        if (r == 0)
                r = sim_guest_vpci_ready(c->vm, device_id);
        return complete(c, done, r, 0, userdata);
}

int guest_netns_add(struct guest_conn *c, const char *ns, guest_done_fn done, void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.netns_add");
        if (r == 0)
                r = sim_guest_netns_add(c->vm, ns);
        return complete(c, done, r, 0, userdata);
}

int guest_nic_add(struct guest_conn *c, const char *ns, const char *nic_id, guest_done_fn done,
                  void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.nic_add");
        if (r == 0)
                r = sim_guest_nic_add(c->vm, ns, nic_id);
        return complete(c, done, r, 0, userdata);
}

int guest_nic_remove(struct guest_conn *c, const char *ns, const char *nic_id, guest_done_fn done,
                     void *userdata)
{
        CHECK_ARGS(c, done);
        int r = begin(c, "guest.nic_remove");
        if (r == 0)
                r = sim_guest_nic_remove(c->vm, ns, nic_id);
        return complete(c, done, r, 0, userdata);
}

int guest_sim_exit_process(struct guest_conn *c, uint32_t pid, int code)
{
        if (!c || c->closing)
                return -EINVAL;
        return sim_guest_exit_process(c->vm, pid, code);
}
