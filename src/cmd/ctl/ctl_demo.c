/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <json-c/json.h>

#include "cmd/ctl/ctl_demo.h"
#include "cmd/ctl/ctl_migrate.h"
#include "cmd/ctl/ctl_proc.h"
#include "cmd/ctl/ctl_rpc.h"
#include "cmd/ctl/ctl_task.h"
#include "cmd/ctl/ctl_trace.h"
#include "util/util.h"

#include "migration.pb-c.h"
#include "task.pb-c.h"

#define SANDBOX_ID    "demo-pod"
#define MAX_SHIM_ARGS 16
#define STOP_GRACE_MS 3000
#define TASK_RUNNING  2 /* containerd.v1.types.Status RUNNING */
/* The busy workload: pages the sim guest dirties per second (~100 MB/s), a few pre-copy
 * passes over loopback. */
#define BUSY_DIRTY_PAGES_RATE "25000"

static const char *const demo_containers[2] = {"web", "worker"};
/* A short-lived task the pod runs before the migration: it holds what cannot migrate (a Plan9
 * share of a host directory and an assigned vPCI device, controllers.md §8.7, §9.5), so it
 * ends before the pod moves. */
#define JOB_ID "setup-job"
/* The pod's network namespace (the sandbox's OCI spec names it; the shim adds its NIC) and
 * the assigned device of the job (instance id / virtual function). */
#define DEMO_NETNS   "/var/run/netns/" SANDBOX_ID
#define DEMO_DEVICE  "PCI/VEN_1AF4&DEV_1041/1"
#define EXEC_ID      "probe"
#define CALL_RETRIES 3 /* an armed fault fails one call: the demo's teardown retries */

/* What the command line asked for. */
struct demo_opts {
        const char *shim;         /* ferry-shim binary; NULL = next to ferryctl */
        const char *source_fault; /* --source-fault NAME[:nth], passed to the source shim */
        const char *destination_fault;
        const char *shim_args[MAX_SHIM_ARGS];
        size_t n_shim_args;
        int64_t cancel_after_pass;        /* < 0 never; as struct ctl_migrate_opts */
        int64_t kill_destination_at_pass; /* SIGKILL the destination shim; < 0 never */
        uint32_t timeout_s;
        const char *memory_mb;
        const char *dirty_rate;    /* NULL: BUSY_DIRTY_PAGES_RATE when the shim supports it */
        uint64_t drop_after_bytes; /* > 0: ferryctl relays the transport and drops it */
        enum ctl_drop_side drop_side;
        bool keep, keep_on_failure, json;
};

/* Where the pod was found on one side after the migration, for --json's end_state line. */
struct end_side {
        bool checked;
        const char *status[2]; /* per demo_containers: "running", "stopped", ... or "gone" */
        uint32_t pid[2];
        char sandbox[32]; /* "gone" when the sandbox did not answer */
};

struct shim_proc {
        const char *name;
        char address[PATH_MAX];
        char log[PATH_MAX];
        char trace[PATH_MAX];
        pid_t pid;
};

struct demo {
        const struct demo_opts *o;
        char dir[PATH_MAX];
        char shim[PATH_MAX];
        bool shim_has_dirty_rate; /* ferry-shim takes --dirty-pages-rate */
        struct shim_proc src, dst;
        uint32_t pids[2]; /* the containers' init pids on the source, per demo_containers */
        bool dst_killed;
        struct end_side end_src, end_dst;
        uint64_t t0;
};

static void step(struct demo *d, const char *fmt, ...) _printf_(2, 3);
static void step(struct demo *d, const char *fmt, ...)
{
        va_list ap;

        if (d->o->json)
                return;
        printf("[%7.3f] ", (double)(ferry_now_us() - d->t0) / 1e6);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static int find_shim(struct demo *d)
{
        const char *env = getenv("FERRY_SHIM");
        int r;

        if (d->o->shim || env) {
                r = ferry_strscpy(d->shim, d->o->shim ? d->o->shim : env, sizeof(d->shim)) < 0
                        ? -ENAMETOOLONG
                        : 0;
                if (r == 0 && access(d->shim, X_OK) < 0)
                        r = -errno;
        } else {
                /* the build tree: build/src/cmd/ctl/ferryctl next to build/src/cmd/shim/ */
                r = ctl_sibling_path("../shim/ferry-shim", d->shim);
        }
        if (r < 0)
                fprintf(stderr,
                        "ferryctl: demo: MISSING: the ferry-shim binary (%s: %s); build it "
                        "(meson compile) or pass --shim PATH\n",
                        d->shim[0] ? d->shim : "<ferryctl dir>/../shim/ferry-shim", strerror(-r));
        return r;
}

/* Which options this ferry-shim has: the demo uses what is there and says what is not. */
static int probe_shim(struct demo *d)
{
        char *argv[] = {d->shim, (char *)"--help", NULL};
        char help[4096];
        int r = ctl_capture(argv, help, sizeof(help));

        if (r < 0)
                return r;
        d->shim_has_dirty_rate = strstr(help, "--dirty-pages-rate") != NULL;
        if (!d->shim_has_dirty_rate && d->o->dirty_rate) {
                fprintf(stderr, "ferryctl: demo: MISSING: ferry-shim has no --dirty-pages-rate\n");
                return -EOPNOTSUPP;
        }
        if (!d->shim_has_dirty_rate)
                step(d, "note: ferry-shim has no --dirty-pages-rate option: the guest workload "
                        "is idle (no page is dirtied during the transfer)");
        if ((d->o->source_fault || d->o->destination_fault) && !strstr(help, "--fault")) {
                fprintf(stderr, "ferryctl: demo: MISSING: ferry-shim has no --fault option\n");
                return -EOPNOTSUPP;
        }
        return 0;
}

static int start_shim(struct demo *d, struct shim_proc *p, const char *fault)
{
        char *argv[12 + 2 * MAX_SHIM_ARGS];
        size_t n = 0;
        int r;

        if (ferry_bprintf(p->address, sizeof(p->address), "%s/%s.sock", d->dir, p->name) < 0 ||
            ferry_bprintf(p->log, sizeof(p->log), "%s/%s.log", d->dir, p->name) < 0 ||
            ferry_bprintf(p->trace, sizeof(p->trace), "%s/%s.trace", d->dir, p->name) < 0)
                return -ENAMETOOLONG;
        argv[n++] = d->shim;
        argv[n++] = (char *)"serve";
        argv[n++] = (char *)"--address";
        argv[n++] = p->address;
        argv[n++] = (char *)"--trace";
        argv[n++] = p->trace;
        argv[n++] = (char *)"--memory-mb";
        argv[n++] = (char *)(d->o->memory_mb ? d->o->memory_mb : "256");
        if (d->shim_has_dirty_rate) {
                argv[n++] = (char *)"--dirty-pages-rate";
                argv[n++] = (char *)(d->o->dirty_rate ? d->o->dirty_rate : BUSY_DIRTY_PAGES_RATE);
        }
        if (fault) {
                argv[n++] = (char *)"--fault";
                argv[n++] = (char *)fault;
        }
        for (size_t i = 0; i < d->o->n_shim_args; i++)
                argv[n++] = (char *)d->o->shim_args[i];
        argv[n] = NULL;
        r = ctl_spawn(argv, p->log, &p->pid);
        if (r < 0)
                fprintf(stderr, "ferryctl: demo: start %s shim: %s\n", p->name, strerror(-r));
        else
                step(d, "%s shim pid %d on %s", p->name, (int)p->pid, p->address);
        return r;
}

/* Prints the tail of a shim's log: what it said before it failed or was stopped. */
static void show_log(const struct shim_proc *p)
{
        char line[512];
        FILE *f = fopen(p->log, "re");
        long size;

        if (!f)
                return;
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fseek(f, size > 4096 ? size - 4096 : 0, SEEK_SET);
        fprintf(stderr, "---- %s shim log (%s), last lines ----\n", p->name, p->log);
        while (fgets(line, sizeof(line), f))
                fputs(line, stderr);
        fclose(f);
}

struct pod_conn {
        uv_loop_t loop;
        struct ctl_conn conn;
        struct ctl_error err;
};

static int pod_connect(struct pod_conn *pc, const struct shim_proc *p)
{
        uint64_t deadline = ferry_now_us() + 10 * 1000 * 1000ULL;
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000L};

        if (uv_loop_init(&pc->loop) < 0)
                return -ENOMEM;
        /* a freshly started shim binds its socket within milliseconds; allow a slow machine,
         * but not a shim that already exited */
        while (access(p->address, F_OK) < 0 && ferry_now_us() < deadline && !ctl_interrupted &&
               ctl_child_alive(p->pid, NULL))
                nanosleep(&ts, NULL);
        return ctl_connect(&pc->loop, p->address, 100, &pc->conn, &pc->err);
}

static void pod_disconnect(struct pod_conn *pc)
{
        ctl_disconnect(&pc->conn);
        uv_run(&pc->loop, UV_RUN_NOWAIT);
        (void)uv_loop_close(&pc->loop);
}

/* The OCI spec's extra members per task: the sandbox names its network namespace, the job
 * bind-mounts a host directory (a Plan9 share) and is assigned a device (vPCI). */
static int bundle_extra(struct demo *d, const char *id, char *buf, size_t size)
{
        char shared[PATH_MAX];

        if (strcmp(id, SANDBOX_ID) == 0)
                return ferry_bprintf(buf, size,
                                     ",\"linux\":{\"namespaces\":[{\"type\":\"network\","
                                     "\"path\":\"%s\"}]}",
                                     DEMO_NETNS) < 0
                           ? -ENAMETOOLONG
                           : 0;
        buf[0] = '\0';
        if (strcmp(id, JOB_ID) != 0)
                return 0;
        if (ferry_bprintf(shared, sizeof(shared), "%s/shared", d->dir) < 0)
                return -ENAMETOOLONG;
        if (mkdir(shared, 0700) < 0 && errno != EEXIST)
                return -errno;
        return ferry_bprintf(buf, size,
                             ",\"mounts\":[{\"type\":\"bind\",\"source\":\"%s\","
                             "\"destination\":\"/shared\",\"options\":[\"rbind\",\"ro\"]}],"
                             "\"windows\":{\"devices\":[{\"id\":\"%s\","
                             "\"idType\":\"vpci-instance-id\"}]}",
                             shared, DEMO_DEVICE) < 0
                   ? -ENAMETOOLONG
                   : 0;
}

static int make_bundle(struct demo *d, const char *side, const char *id, char *ret)
{
        char path[PATH_MAX], extra[2 * PATH_MAX];
        FILE *f;
        int r = bundle_extra(d, id, extra, sizeof(extra));

        if (r < 0)
                return r;

        if (ferry_bprintf(ret, PATH_MAX, "%s/bundles-%s", d->dir, side) < 0)
                return -ENAMETOOLONG;
        if (mkdir(ret, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (ferry_bprintf(ret, PATH_MAX, "%s/bundles-%s/%s", d->dir, side, id) < 0 ||
            ferry_bprintf(path, sizeof(path), "%s/config.json", ret) < 0)
                return -ENAMETOOLONG;
        if (mkdir(ret, 0700) < 0 && errno != EEXIST)
                return -errno;
        f = fopen(path, "we");
        if (!f)
                return -errno;
        fprintf(f,
                "{\"ociVersion\":\"1.1.0\",\"process\":{\"args\":[\"/bin/%s\"]},"
                "\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"%s\"}%s}\n",
                id, SANDBOX_ID, extra);
        return fclose(f) == 0 ? 0 : -EIO;
}

/* Creates task id on a rootfs: a read-only layer <dir>/layers/<base>/layer.vhd and a scratch
 * <dir>/layers/<id>/sandbox.vhdx, which the shim attaches over SCSI. */
static int create_task(struct demo *d, struct pod_conn *pc, const char *id, const char *bundle,
                       const char *base, uint32_t *ret_pid)
{
        char source[PATH_MAX], parents[PATH_MAX + 8];

        if (ferry_bprintf(source, sizeof(source), "%s/layers/%s", d->dir, id) < 0 ||
            ferry_bprintf(parents, sizeof(parents), "[\"%s/layers/%s\"]", d->dir, base) < 0) {
                ctl_error_set(&pc->err, -ENAMETOOLONG, "layer paths too long");
                return -ENAMETOOLONG;
        }
        return ctl_task_create_rootfs(&pc->conn, id, bundle, source, parents, ret_pid, &pc->err);
}

/* Retries a call an armed fault may fail once; NOT_FOUND (already done) ends the retries. */
#define RETRY(pc, call)                                                                            \
        ({                                                                                         \
                int _r = -EIO;                                                                     \
                for (int _i = 0; _i < CALL_RETRIES && _r < 0; _i++) {                              \
                        _r = (call);                                                               \
                        if (_r < 0 && (pc)->err.code == FERRY_CODE_NOT_FOUND)                      \
                                break;                                                             \
                }                                                                                  \
                _r;                                                                                \
        })

/* Kills (if running), waits for and deletes task id: the guest signals and deletes the
 * container and the shim releases its devices. */
static int end_task(struct demo *d, struct pod_conn *pc, const char *side, const char *id,
                    uint32_t sig)
{
        uint32_t status = 0;
        int st = 0, r = ctl_task_state(&pc->conn, id, &st, NULL, &pc->err);

        if (r == 0 && st == TASK_RUNNING) {
                r = RETRY(pc, ctl_proc_kill(&pc->conn, id, NULL, sig, &pc->err));
                if (r < 0 && pc->err.code == FERRY_CODE_NOT_FOUND)
                        r = 0; /* it finished meanwhile */
                if (r == 0)
                        r = ctl_proc_wait(&pc->conn, id, NULL, &status, &pc->err);
                if (r == 0)
                        step(d, "teardown: %s container %s killed (signal %u), exit status %u",
                             side, id, sig, status);
        }
        if (r == 0)
                r = RETRY(pc, ctl_proc_delete(&pc->conn, id, NULL, &status, &pc->err));
        if (r == 0)
                step(d, "teardown: %s container %s deleted, its devices released", side, id);
        return r;
}

/* The job: a task with a Plan9 bind mount and an assigned vPCI device besides its layers;
 * it runs, is stopped and deleted (its share and device leave the VM) before the migration. */
static int run_job(struct demo *d, struct pod_conn *pc)
{
        char bundle[PATH_MAX];
        uint32_t pid = 0;
        int r = make_bundle(d, "source", JOB_ID, bundle);

        if (r < 0) {
                ctl_error_set(&pc->err, r, "bundle %s: %s", JOB_ID, strerror(-r));
        } else {
                r = create_task(d, pc, JOB_ID, bundle, "job-base", &pid);
                if (r == 0)
                        r = ctl_task_start(&pc->conn, JOB_ID, &pid, &pc->err);
        }
        if (r == 0)
                step(d,
                     "source task %s running (pid %u) with a Plan9 share of %s/shared and "
                     "vPCI device %s",
                     JOB_ID, pid, d->dir, DEMO_DEVICE);
        if (r == 0)
                r = end_task(d, pc, "source", JOB_ID, SIGTERM);
        if (r < 0)
                ctl_error_print(&pc->err, "demo: " JOB_ID);
        return r;
}

/* The pod on the source: a sandbox VM and its containers, all running. */
static int create_pod(struct demo *d, struct pod_conn *pc)
{
        char bundle[PATH_MAX];
        uint32_t pid = 0;
        int r;

        r = make_bundle(d, "source", SANDBOX_ID, bundle);
        if (r == 0)
                r = ctl_sandbox_create(&pc->conn, SANDBOX_ID, bundle, &pc->err);
        if (r == 0)
                r = ctl_sandbox_start(&pc->conn, SANDBOX_ID, &pid, &pc->err);
        if (r < 0) {
                ctl_error_print(&pc->err, "demo: source sandbox");
                return r;
        }
        step(d, "source sandbox %s running; network namespace %s with its NIC in the guest",
             SANDBOX_ID, DEMO_NETNS);
        for (size_t i = 0; i < ARRAY_SIZE(demo_containers) && r == 0; i++) {
                const char *id = demo_containers[i];

                r = make_bundle(d, "source", id, bundle);
                if (r < 0) {
                        ctl_error_set(&pc->err, r, "bundle %s: %s", id, strerror(-r));
                        break;
                }
                r = create_task(d, pc, id, bundle, "base", &pid);
                if (r == 0)
                        r = ctl_task_start(&pc->conn, id, &pid, &pc->err);
                if (r == 0)
                        step(d, "source container %s running (pid %u)", id, pid);
                d->pids[i] = pid;
        }
        if (r < 0)
                ctl_error_print(&pc->err, "demo: source containers");
        if (r == 0)
                r = run_job(d, pc);
        return r;
}

static bool faulted(const struct demo *d);

/* Task Pause or Resume of the sandbox task: the whole VM. */
static int vm_pause_call(struct pod_conn *pc, const char *method)
{
        Containerd__Task__V2__PauseRequest pause = CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
        Containerd__Task__V2__ResumeRequest resume = CONTAINERD__TASK__V2__RESUME_REQUEST__INIT;
        bool p = strcmp(method, "Pause") == 0;

        pause.id = resume.id = (char *)SANDBOX_ID;
        return ctl_call(&pc->conn, "containerd.task.v2.Task", method,
                        p ? &pause.base : &resume.base, &containerd__task__v2__empty__descriptor,
                        NULL, &pc->err);
}

/* While paused, a migration must be refused before it starts (the VM's spec), and leave the
 * session idle: the real migration later opens one. */
static int check_export_refused(struct pod_conn *pc)
{
        PrepareAndExportSandboxRequest req = PREPARE_AND_EXPORT_SANDBOX_REQUEST__INIT;
        PrepareAndExportSandboxResponse *resp = NULL;
        InitializeOptions init = INITIALIZE_OPTIONS__INIT;
        int r;

        init.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        req.session_id = (char *)"demo-pause-check";
        req.init_options = &init;
        r = ctl_call(&pc->conn, "Migration", "PrepareAndExportSandbox", &req.base,
                     &prepare_and_export_sandbox_response__descriptor, (ProtobufCMessage **)&resp,
                     &pc->err);
        if (r == 0) {
                protobuf_c_message_free_unpacked(&resp->base, NULL);
                ctl_error_set(&pc->err, -EBADE, "a paused VM exported a snapshot");
                return -EBADE;
        }
        /* refused for the pause, not for anything else */
        return pc->err.code == FERRY_CODE_FAILED_PRECONDITION && strstr(pc->err.message, "paused")
                   ? 0
                   : r;
}

/*
 * Before the pod moves: Task Pause of the sandbox task freezes the whole VM (the sandbox then
 * reads paused and a migration is refused), Task Resume thaws it. A fault armed in the source
 * shim (the sweep) may refuse either call: a refused pause skips the check, a refused resume
 * is retried; any other failure fails the demo.
 */
static int pause_check(struct demo *d, struct pod_conn *pc)
{
        char state[32];
        int r;

        r = vm_pause_call(pc, "Pause");
        if (r < 0 && faulted(d)) {
                step(d, "pause check skipped: pause refused (%s)", pc->err.message);
                return 0;
        }
        if (r == 0)
                r = ctl_sandbox_state(&pc->conn, SANDBOX_ID, state, &pc->err);
        if (r == 0 && strcmp(state, "paused") != 0) {
                ctl_error_set(&pc->err, -EBADE, "paused, the sandbox reads %s", state);
                r = -EBADE;
        }
        if (r == 0)
                r = check_export_refused(pc);
        if (r < 0) {
                ctl_error_print(&pc->err, "demo: pause check");
                (void)vm_pause_call(pc, "Resume");
                return r;
        }
        int tries = 0;
        do
                r = vm_pause_call(pc, "Resume");
        while (r < 0 && faulted(d) && ++tries < CALL_RETRIES);
        if (r < 0) {
                ctl_error_print(&pc->err, "demo: resume");
                return r;
        }
        step(d, "pause check: the VM paused (a migration is refused meanwhile) and resumed%s",
             tries ? " on a retry" : "");
        return 0;
}

static int check_tasks(struct demo *d, const struct shim_proc *p, bool want_running)
{
        struct end_side *e = p == &d->src ? &d->end_src : &d->end_dst;
        struct pod_conn pc;
        int status = 0, r, bad = 0;
        char state[32] = "";

        e->checked = true;

        r = pod_connect(&pc, p);
        if (r < 0) {
                ctl_error_print(&pc.err, p->name);
                pod_disconnect(&pc);
                return r;
        }
        for (size_t i = 0; i < ARRAY_SIZE(demo_containers); i++) {
                const char *id = demo_containers[i];

                uint32_t pid = 0;

                r = ctl_task_state(&pc.conn, id, &status, &pid, &pc.err);
                bool running = r == 0 && status == TASK_RUNNING;

                e->status[i] = r == 0 ? ctl_task_status_name(status) : "gone";
                e->pid[i] = pid;

                step(d, "check: %s container %s is %s (pid %u)", p->name, id,
                     r == 0 ? ctl_task_status_name(status) : "gone", pid);
                if (running != want_running)
                        bad++;
                /* the guest state travelled in the VM image: the same processes run on */
                if (running && pid != d->pids[i]) {
                        step(d, "check: %s container %s has pid %u, the source's was %u", p->name,
                             id, pid, d->pids[i]);
                        bad++;
                }
        }
        r = ctl_sandbox_state(&pc.conn, SANDBOX_ID, state, &pc.err);
        (void)ferry_strscpy(e->sandbox, r == 0 ? state : "gone", sizeof(e->sandbox));
        step(d, "check: %s sandbox is %s", p->name, r == 0 ? state : "gone");
        if (want_running && (r < 0 || strcmp(state, "ready") != 0))
                bad++;
        if (!want_running && r == 0 && strcmp(state, "ready") == 0)
                bad++;
        pod_disconnect(&pc);
        return bad ? -EBADE : 0;
}

static int stop_shims(struct demo *d)
{
        int bad = 0;
        struct shim_proc *ps[] = {&d->src, &d->dst};

        for (size_t i = 0; i < ARRAY_SIZE(ps); i++) {
                int st;

                if (ps[i]->pid <= 0)
                        continue;
                st = ctl_stop_child(ps[i]->pid, STOP_GRACE_MS);
                /* a shim killed on purpose is expected to have died of it */
                bool expected = ps[i] == &d->dst && d->dst_killed;

                if (st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM && !expected) {
                        fprintf(stderr, "ferryctl: demo: %s shim died of signal %d\n", ps[i]->name,
                                WTERMSIG(st));
                        bad++;
                }
                ps[i]->pid = 0;
        }
        return bad ? -ECHILD : 0;
}

/* Both shims recorded their transitions: each trace must conform to the specs. */
static int replay_traces(struct demo *d)
{
        const struct shim_proc *ps[] = {&d->src, &d->dst};
        int bad = 0;

        for (size_t i = 0; i < ARRAY_SIZE(ps); i++) {
                struct stat st;
                int s;

                if (stat(ps[i]->trace, &st) < 0 || st.st_size == 0) {
                        step(d, "trace: %s shim recorded no transitions", ps[i]->name);
                        continue;
                }
                s = ctl_trace_replay_file(ps[i]->trace, d->o->json ? stderr : stdout);
                if (s != 0)
                        bad++;
        }
        return bad ? -EBADMSG : 0;
}

static void on_pass(uint32_t pass, void *userdata)
{
        struct demo *d = userdata;

        if (d->o->kill_destination_at_pass < 0 || d->dst_killed ||
            pass < d->o->kill_destination_at_pass)
                return;
        step(d, "killing the destination shim (SIGKILL) at pass %u as asked", pass);
        kill(d->dst.pid, SIGKILL);
        d->dst_killed = true;
}

static void setup_migration(struct demo *d, struct ctl_migrate_opts *mo, char *bundles)
{
        *mo = (struct ctl_migrate_opts){
            .source = d->src.address,
            .destination = d->dst.address,
            .sandbox_id = SANDBOX_ID,
            .bundle_dir = bundles,
            .timeout_s = d->o->timeout_s,
            .cancel_after_pass = d->o->cancel_after_pass,
            .drop_after_bytes = d->o->drop_after_bytes,
            .drop_side = d->o->drop_side,
            .json = d->o->json,
            .t0_us = d->t0,
            .on_pass = on_pass,
            .userdata = d,
        };
        for (size_t i = 0; i < ARRAY_SIZE(demo_containers); i++)
                mo->containers[mo->n_containers++] =
                    (struct ctl_container_map){.source_id = demo_containers[i]};
}

enum demo_status {
        DEMO_OK = 0,
        DEMO_FAILED = 1,
        DEMO_SETUP_FAULTED = 3, /* an injected fault stopped the pod's creation: nothing to check */
};

static bool faulted(const struct demo *d)
{
        return d->o->source_fault || d->o->destination_fault || d->o->drop_after_bytes;
}

/* The migrated containers answer on the destination: a signal reaches the guest process that
 * came over in the image, and its exit comes back (128 + SIGKILL). */
static int check_control(struct demo *d)
{
        const char *id = demo_containers[1];
        struct pod_conn pc;
        uint32_t status = 0;
        int r;

        r = pod_connect(&pc, &d->dst);
        if (r == 0) {
                r = ctl_task_kill(&pc.conn, id, SIGKILL, &pc.err);
                /* one retry: a fault armed on the signal path (the sweep) fails one call */
                if (r < 0 && pc.err.code != FERRY_CODE_NOT_FOUND)
                        r = ctl_task_kill(&pc.conn, id, SIGKILL, &pc.err);
        }
        if (r == 0)
                r = ctl_task_wait(&pc.conn, id, &status, &pc.err);
        if (r < 0)
                ctl_error_print(&pc.err, "demo: destination kill/wait");
        else
                step(d, "check: destination container %s killed, exit status %u", id, status);
        pod_disconnect(&pc);
        if (r == 0 && status != 128 + SIGKILL)
                r = -EBADE;
        return r;
}

static json_object *end_side_json(const struct demo *d, const struct end_side *e)
{
        json_object *o;

        if (!e->checked)
                return NULL;
        o = json_object_new_object();
        for (size_t i = 0; i < ARRAY_SIZE(demo_containers); i++) {
                json_object *t = json_object_new_object();

                json_object_object_add(t, "status", json_object_new_string(e->status[i]));
                json_object_object_add(t, "pid", json_object_new_int64(e->pid[i]));
                json_object_object_add(t, "source_pid", json_object_new_int64(d->pids[i]));
                json_object_object_add(o, demo_containers[i], t);
        }
        json_object_object_add(o, "sandbox", json_object_new_string(e->sandbox));
        return o;
}

/* --json: one line with where the pod was found on each side, so a test (the fault sweep)
 * can assert the end state itself rather than trust the exit status alone. */
static void print_end_state(const struct demo *d, bool migrated, bool passed)
{
        json_object *o = json_object_new_object(), *e = json_object_new_object();

        json_object_object_add(e, "expect",
                               json_object_new_string(migrated ? "destination" : "source"));
        json_object_object_add(e, "source", end_side_json(d, &d->end_src));
        json_object_object_add(e, "destination", end_side_json(d, &d->end_dst));
        json_object_object_add(e, "destination_killed", json_object_new_boolean(d->dst_killed));
        json_object_object_add(e, "checks_passed", json_object_new_boolean(passed));
        json_object_object_add(o, "end_state", e);
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        fflush(stdout);
        json_object_put(o);
}

/* Which side must run after the migration, and whether it does. */
static int check_outcome(struct demo *d, const struct ctl_migrate_result *res)
{
        /* the pod moved once the destination resumed, even if a later step failed */
        bool migrated = res->succeeded || res->resumed_on_destination;
        bool unexpected = !migrated && !res->cancelled && !faulted(d) && !d->dst_killed;
        int r;

        /* an unasked-for failure fails the demo, but where the pod ended up is still checked
         * and reported: the source must have kept it */
        if (unexpected)
                fprintf(stderr, "ferryctl: demo: the migration failed: %s\n", res->failure);
        if (migrated && d->o->cancel_after_pass >= 0 && !res->cancelled)
                step(d, "note: the transfer finished before the cancel landed");
        step(d, "expect: %s",
             migrated ? "destination runs, source stopped"
                      : "source still runs, destination holds nothing");
        /* a killed destination has nothing left to ask */
        r = d->dst_killed ? 0 : check_tasks(d, &d->dst, migrated);
        if (check_tasks(d, &d->src, !migrated) < 0)
                r = -EBADE;
        if (d->o->json)
                print_end_state(d, migrated, r == 0);
        if (r < 0) {
                fprintf(stderr, "ferryctl: demo: CHECK FAILED: the pod is not where it must be\n");
                return -EBADE;
        }
        if (unexpected)
                return -EIO;
        if (migrated && check_control(d) < 0) {
                fprintf(stderr, "ferryctl: demo: CHECK FAILED: the destination does not control "
                                "the migrated container\n");
                return -EBADE;
        }
        return 0;
}

/* Starts exec id in container cid of pc's shim; a start that failed (an armed fault) leaves
 * a stopped exec, which is deleted before the next attempt under a new id. */
static int start_exec(struct pod_conn *pc, const char *cid, char *id, size_t size,
                      uint32_t *ret_pid)
{
        static const char *const args[] = {"/bin/sh", "-c", "hostname", NULL};
        int r = -EIO;

        for (int i = 0; i < CALL_RETRIES && r < 0; i++) {
                ferry_bprintf(id, size, i ? EXEC_ID "-%d" : EXEC_ID, i + 1);
                r = ctl_task_exec(&pc->conn, cid, id, args, &pc->err);
                if (r == 0) {
                        r = ctl_proc_start(&pc->conn, cid, id, ret_pid, &pc->err);
                        if (r < 0)
                                (void)ctl_proc_delete(&pc->conn, cid, id, NULL, &pc->err);
                }
        }
        return r;
}

/* The migrated pod takes new work on the destination: a process exec'd into a migrated
 * container runs there, is killed and deleted. */
static int check_exec(struct demo *d)
{
        const char *cid = demo_containers[0];
        char id[32];
        struct pod_conn pc;
        uint32_t pid = 0, status = 0;
        int r = pod_connect(&pc, &d->dst);

        if (r == 0)
                r = start_exec(&pc, cid, id, sizeof(id), &pid);
        if (r == 0) {
                step(d, "check: exec %s runs in destination container %s (pid %u)", id, cid, pid);
                r = RETRY(&pc, ctl_proc_kill(&pc.conn, cid, id, SIGKILL, &pc.err));
        }
        if (r == 0)
                r = ctl_proc_wait(&pc.conn, cid, id, &status, &pc.err);
        if (r == 0 && status != 128 + SIGKILL)
                ctl_error_set(&pc.err, r = -EBADE, "exec %s ended with %u, not %u", id, status,
                              128 + SIGKILL);
        if (r == 0)
                r = RETRY(&pc, ctl_proc_delete(&pc.conn, cid, id, NULL, &pc.err));
        if (r == 0)
                step(d, "check: exec %s killed (exit status %u) and deleted", id, status);
        else
                ctl_error_print(&pc.err, "demo: destination exec");
        pod_disconnect(&pc);
        return r;
}

/* The end of the pod on side p: every task is stopped and deleted (the guest deletes its
 * containers, the shim releases their layers) and the sandbox stops (its NIC leaves the
 * guest). On a side whose VM already went, the deletes only drop the ended tasks. */
static int teardown(struct demo *d, struct shim_proc *p)
{
        struct pod_conn pc;
        int r = pod_connect(&pc, p), bad = 0;

        for (size_t i = 0; r == 0 && i < ARRAY_SIZE(demo_containers); i++) {
                if (end_task(d, &pc, p->name, demo_containers[i], SIGTERM) < 0) {
                        ctl_error_print(&pc.err, "demo: teardown");
                        bad++;
                }
        }
        if (r == 0)
                r = RETRY(&pc, ctl_sandbox_stop(&pc.conn, SANDBOX_ID, &pc.err));
        if (r == 0)
                step(d, "teardown: %s sandbox stopped", p->name);
        else
                ctl_error_print(&pc.err, "demo: teardown");
        pod_disconnect(&pc);
        return r < 0 || bad ? -EBADE : 0;
}

/* After the outcome was checked: the pod takes an exec where it runs, then ends there (and
 * the other side's ended tasks are deleted). A fault the sweep armed may leave a step failed;
 * only an unfaulted run fails for it. */
static int finish_pod(struct demo *d, const struct ctl_migrate_result *res)
{
        bool migrated = res->succeeded || res->resumed_on_destination;
        int r = migrated ? check_exec(d) : 0;

        if (r < 0)
                fprintf(stderr, "ferryctl: demo: %s: the exec on the destination failed\n",
                        faulted(d) ? "note" : "CHECK FAILED");
        if (teardown(d, migrated ? &d->dst : &d->src) < 0) {
                fprintf(stderr, "ferryctl: demo: %s: the teardown did not finish\n",
                        faulted(d) ? "note" : "CHECK FAILED");
                r = -EBADE;
        }
        if (migrated && teardown(d, &d->src) < 0)
                r = -EBADE;
        return faulted(d) ? 0 : r;
}

static int run_demo(struct demo *d, struct ctl_migrate_result *res)
{
        char bundles[PATH_MAX];
        struct ctl_migrate_opts mo;
        struct pod_conn pc;
        int r;

        r = find_shim(d);
        if (r == 0)
                r = probe_shim(d);
        if (r < 0)
                return DEMO_FAILED;
        r = ctl_mkdtemp("ferry-demo", d->dir);
        if (r < 0) {
                fprintf(stderr, "ferryctl: demo: scratch directory: %s\n", strerror(-r));
                return DEMO_FAILED;
        }
        step(d, "scratch directory %s", d->dir);
        d->src.name = "source";
        d->dst.name = "destination";
        if (start_shim(d, &d->src, d->o->source_fault) < 0 ||
            start_shim(d, &d->dst, d->o->destination_fault) < 0)
                return DEMO_FAILED;
        r = pod_connect(&pc, &d->src);
        if (r < 0)
                ctl_error_print(&pc.err, "demo: source shim");
        if (r == 0)
                r = create_pod(d, &pc);
        if (r == 0)
                r = pause_check(d, &pc);
        pod_disconnect(&pc);
        if (r < 0)
                /* an injected fault may stop the setup; a shim that died may not */
                return faulted(d) && !ctl_interrupted && ctl_child_alive(d->src.pid, NULL) &&
                               ctl_child_alive(d->dst.pid, NULL)
                           ? DEMO_SETUP_FAULTED
                           : DEMO_FAILED;
        if (ferry_bprintf(bundles, sizeof(bundles), "%s/bundles-destination", d->dir) < 0 ||
            (mkdir(bundles, 0700) < 0 && errno != EEXIST))
                return DEMO_FAILED;
        step(d, "migrating %s live: %s -> %s", SANDBOX_ID, d->src.name, d->dst.name);
        setup_migration(d, &mo, bundles);
        r = ctl_migrate(&mo, res);
        ctl_migrate_print_summary(res, d->o->json);
        if (ctl_interrupted) {
                fprintf(stderr, "ferryctl: demo: interrupted\n");
                return DEMO_FAILED;
        }
        if (!ctl_child_alive(d->src.pid, NULL) ||
            (!d->dst_killed && !ctl_child_alive(d->dst.pid, NULL))) {
                fprintf(stderr, "ferryctl: demo: a shim exited during the migration\n");
                return DEMO_FAILED;
        }
        if (check_outcome(d, res) < 0 || finish_pod(d, res) < 0)
                return DEMO_FAILED;
        if (replay_traces(d) < 0) {
                fprintf(stderr, "ferryctl: demo: a shim's trace diverges from its spec (a spec "
                                "hash mismatch means ferry-shim and ferryctl were built from "
                                "different specs: rebuild both)\n");
                return DEMO_FAILED;
        }
        (void)r;
        return DEMO_OK;
}

static void demo_usage(FILE *f)
{
        fprintf(f, "usage: ferryctl demo [--shim PATH] [--memory-mb N] [--dirty-pages-rate N]\n"
                   "         [--timeout S] [--json]\n"
                   "         [--cancel-after-pass N] [--kill-destination-at-pass N]\n"
                   "         [--source-fault NAME[:NTH]]\n"
                   "         [--destination-fault NAME[:NTH]]\n"
                   "         [--drop-transport-after N[k|m][:source|:destination|:both]]\n"
                   "         [--shim-arg ARG]... [--keep]\n"
                   "         [--keep-on-failure]\n");
}

static int parse_demo(int argc, char **argv, struct demo_opts *o)
{
        static const struct option longopts[] = {
            {"shim", required_argument, NULL, 's'},
            {"memory-mb", required_argument, NULL, 'm'},
            {"timeout", required_argument, NULL, 'T'},
            {"cancel-after-pass", required_argument, NULL, 'C'},
            {"kill-destination-at-pass", required_argument, NULL, 'K'},
            {"source-fault", required_argument, NULL, 'f'},
            {"destination-fault", required_argument, NULL, 'F'},
            {"drop-transport-after", required_argument, NULL, 'D'},
            {"dirty-pages-rate", required_argument, NULL, 'r'},
            {"shim-arg", required_argument, NULL, 'a'},
            {"keep", no_argument, NULL, 'k'},
            {"keep-on-failure", no_argument, NULL, 'K' + 256},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        char *end;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 's':
                        o->shim = optarg;
                        break;
                case 'm':
                        o->memory_mb = optarg;
                        break;
                case 'r':
                        o->dirty_rate = optarg;
                        break;
                case 'T':
                case 'K':
                case 'C': {
                        unsigned long v = strtoul(optarg, &end, 10);

                        if (*end || end == optarg || v > 100000)
                                return -EINVAL;
                        if (c == 'T')
                                o->timeout_s = (uint32_t)v;
                        else if (c == 'K')
                                o->kill_destination_at_pass = (int64_t)v;
                        else
                                o->cancel_after_pass = (int64_t)v;
                        break;
                }
                case 'f':
                        o->source_fault = optarg;
                        break;
                case 'F':
                        o->destination_fault = optarg;
                        break;
                case 'D':
                        if (ctl_relay_parse(optarg, &o->drop_after_bytes, &o->drop_side) < 0)
                                return -EINVAL;
                        break;
                case 'a':
                        if (o->n_shim_args >= MAX_SHIM_ARGS)
                                return -E2BIG;
                        o->shim_args[o->n_shim_args++] = optarg;
                        break;
                case 'k':
                        o->keep = true;
                        break;
                case 'K' + 256:
                        o->keep_on_failure = true;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 'h':
                        demo_usage(stdout);
                        exit(0);
                default:
                        return -EINVAL;
                }
        }
        return optind == argc ? 0 : -EINVAL;
}

int ctl_demo_main(int argc, char **argv)
{
        struct demo_opts o = {.cancel_after_pass = -1, .kill_destination_at_pass = -1};
        struct ctl_migrate_result res = {0};
        struct demo d = {.o = &o, .t0 = ferry_now_us()};
        int status;

        if (parse_demo(argc, argv, &o) < 0) {
                demo_usage(stderr);
                return 2;
        }
        ctl_proc_install_signals();
        status = run_demo(&d, &res);
        if (stop_shims(&d) < 0)
                status = DEMO_FAILED;
        if (status == DEMO_FAILED && d.dir[0]) {
                show_log(&d.src);
                show_log(&d.dst);
        }
        /* a failed run's logs and traces are the evidence: kept when asked (the sweep) */
        if (status == DEMO_FAILED && o.keep_on_failure)
                o.keep = true;
        if (d.dir[0] && !o.keep && ctl_rm_rf(d.dir) < 0)
                fprintf(stderr, "ferryctl: demo: could not remove %s\n", d.dir);
        else if (d.dir[0] && o.keep)
                fprintf(o.json ? stderr : stdout, "kept %s (shim logs, traces, bundles)\n", d.dir);
        if (status == DEMO_OK && !o.json) {
                printf("\ndemo: PASS in %.1f s; diagrams of every machine: generated/*.svg, "
                       "matrices: generated/*.md\n",
                       (double)(ferry_now_us() - d.t0) / 1e6);
        } else if (status == DEMO_SETUP_FAULTED) {
                printf("demo: the injected fault stopped the pod's creation; no migration ran\n");
        } else if (status != DEMO_OK) {
                printf("demo: FAIL\n");
        }
        return status;
}
