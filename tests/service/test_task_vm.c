/* SPDX-License-Identifier: MIT */
/* The Task service's calls on the whole VM (src/service/task_vm.h) over a real unix socket:
 * Pause and Resume of the sandbox task freeze and thaw the VM, other tasks answer
 * UNIMPLEMENTED, Stats answers hcsshim's Statistics, host faults leave the VM where the spec
 * says, and a migration session refuses Pause/Resume (and Stats while the VM migrates). */
#include "task_fixture.h"

#include <sys/stat.h>
#include <unistd.h>

#include "ctrl/vm/vm.h"
#include "hcs/fault.h"
#include "hcs/sim/sim.h"
#include "migration.pb-c.h"
#include "service/task_vm.h"
#include "stats.pb-c.h"

#define MEMORY_MB 8

/* Keeps "topic body" lines of the pause and resume events. */
static void on_event(uint64_t seq, const char *topic, const char *json, void *ud)
{
        struct fixture *f = ud;
        size_t n = strlen(f->events);
        if (strstr(topic, "pause") || strstr(topic, "resume"))
                ferry_bprintf(f->events + n, sizeof(f->events) - n, "%s %s\n", topic, json);
}

static int setup(void **state)
{
        static const struct fixture_options o = {
            .name = "svcvm",
            .sandbox = {.memory_mb = MEMORY_MB, .dirty_pages_rate = 1000},
            .on_event = on_event,
        };
        return fixture_setup(state, &o);
}

static enum ferry_code pause_task(struct fixture *f, const char *id, struct reply *r)
{
        Containerd__Task__V2__PauseRequest req = CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
        req.id = (char *)id;
        call_async(f->c, TASK_SVC, "Pause", &req.base, &containerd__task__v2__empty__descriptor, r);
        assert_true(uvrun_until(L, &r->done, 10000));
        if (r->resp)
                protobuf_c_message_free_unpacked(r->resp, NULL);
        return r->code;
}

static enum ferry_code resume_task(struct fixture *f, const char *id, struct reply *r)
{
        Containerd__Task__V2__ResumeRequest req = CONTAINERD__TASK__V2__RESUME_REQUEST__INIT;
        req.id = (char *)id;
        call_async(f->c, TASK_SVC, "Resume", &req.base, &containerd__task__v2__empty__descriptor,
                   r);
        assert_true(uvrun_until(L, &r->done, 10000));
        if (r->resp)
                protobuf_c_message_free_unpacked(r->resp, NULL);
        return r->code;
}

/* Stats; on OK the unpacked Statistics in *ret (free it). */
static enum ferry_code stats_task(struct fixture *f, const char *id, struct reply *r,
                                  Containerd__Runhcs__Stats__V1__Statistics **ret)
{
        Containerd__Task__V2__StatsRequest req = CONTAINERD__TASK__V2__STATS_REQUEST__INIT;
        req.id = (char *)id;
        call_async(f->c, TASK_SVC, "Stats", &req.base,
                   &containerd__task__v2__stats_response__descriptor, r);
        assert_true(uvrun_until(L, &r->done, 10000));
        if (!r->resp)
                return r->code;
        const Containerd__Task__V2__StatsResponse *resp = (const void *)r->resp;
        assert_non_null(resp->stats);
        assert_string_equal(resp->stats->type_url, TASK_VM_STATS_TYPE_URL);
        *ret = containerd__runhcs__stats__v1__statistics__unpack(NULL, resp->stats->value.len,
                                                                 resp->stats->value.data);
        assert_non_null(*ret);
        protobuf_c_message_free_unpacked(r->resp, NULL);
        r->resp = NULL;
        return r->code;
}

static const char *vm_state(struct fixture *f)
{
        return vm_state_name(sandbox_vm(shim_sandbox(f->shim)));
}


/* "pod" is the sandbox's task (the first one boots the VM with its id); "app" is not. */
static void start_pod(struct fixture *f)
{
        assert_int_equal(task_create(L, f->c, "pod", NULL), FERRY_CODE_OK);
        assert_int_equal(task_start(L, f->c, "pod", NULL), FERRY_CODE_OK);
        assert_int_equal(task_create(L, f->c, "app", NULL), FERRY_CODE_OK);
        assert_int_equal(task_start(L, f->c, "app", NULL), FERRY_CODE_OK);
        assert_string_equal(sandbox_id(shim_sandbox(f->shim)), "pod");
}

static void test_pause_resume(void **state)
{
        struct fixture *f = *state;
        struct reply r;
        start_pod(f);

        assert_int_equal(pause_task(f, "pod", &r), FERRY_CODE_OK);
        assert_string_equal(vm_state(f), "paused");
        assert_int_equal(fixture_sim(f)->state, SIM_PAUSED);
        /* Every task of the VM is paused with it, and containerd hears TaskPaused. */
        Containerd__Task__V2__Status s;
        assert_int_equal(task_state(L, f->c, "pod", &s, NULL), FERRY_CODE_OK);
        assert_int_equal(s, CONTAINERD__TASK__V2__STATUS__PAUSED);
        assert_int_equal(task_state(L, f->c, "app", &s, NULL), FERRY_CODE_OK);
        assert_int_equal(s, CONTAINERD__TASK__V2__STATUS__PAUSED);
        assert_string_equal(f->events, "/tasks/paused {\"container_id\":\"pod\"}\n");
        assert_int_equal(pause_task(f, "pod", &r), FERRY_CODE_OK); /* already paused */
        /* Stats needs a running VM; a paused one says so. */
        Containerd__Runhcs__Stats__V1__Statistics *st = NULL;
        assert_int_equal(stats_task(f, "pod", &r, &st), FERRY_CODE_FAILED_PRECONDITION);
        assert_non_null(strstr(r.message, "paused"));

        assert_int_equal(resume_task(f, "pod", &r), FERRY_CODE_OK);
        assert_string_equal(vm_state(f), "running");
        assert_int_equal(fixture_sim(f)->state, SIM_RUNNING);
        assert_int_equal(resume_task(f, "pod", &r), FERRY_CODE_OK); /* already running */
        assert_int_equal(task_state(L, f->c, "app", &s, NULL), FERRY_CODE_OK);
        assert_int_equal(s, CONTAINERD__TASK__V2__STATUS__RUNNING);
        assert_non_null(strstr(f->events, "/tasks/resumed {\"container_id\":\"pod\"}"));

        /* One container cannot be frozen alone. */
        assert_int_equal(pause_task(f, "app", &r), FERRY_CODE_UNIMPLEMENTED);
        assert_non_null(strstr(r.message, "single container"));
        assert_non_null(strstr(r.message, "pod"));
        assert_int_equal(resume_task(f, "app", &r), FERRY_CODE_UNIMPLEMENTED);
        assert_string_equal(vm_state(f), "running");
        /* Unknown and malformed ids. */
        assert_int_equal(pause_task(f, "nope", &r), FERRY_CODE_NOT_FOUND);
        assert_int_equal(pause_task(f, "bad/id", &r), FERRY_CODE_INVALID_ARGUMENT);
        assert_int_equal(resume_task(f, "", &r), FERRY_CODE_INVALID_ARGUMENT);
}

static void test_pause_faults(void **state)
{
        struct fixture *f = *state;
        struct reply r;
        start_pod(f);
        struct hcs_fault_spec fault = {.nth = 1, .error = -EIO};

        /* The host refuses the pause: the VM keeps running. */
        assert_int_equal(hcs_fault_arm("hcs.pause", &fault), 0);
        assert_int_equal(pause_task(f, "pod", &r), FERRY_CODE_UNKNOWN);
        assert_non_null(strstr(r.message, "pause vm"));
        assert_string_equal(f->events, ""); /* nothing paused: no event */
        assert_string_equal(vm_state(f), "running");
        assert_int_equal(fixture_sim(f)->state, SIM_RUNNING);

        /* The host refuses the resume: the VM stays paused, and a retry thaws it. */
        assert_int_equal(pause_task(f, "pod", &r), FERRY_CODE_OK);
        assert_int_equal(hcs_fault_arm("hcs.resume", &fault), 0);
        assert_int_equal(resume_task(f, "pod", &r), FERRY_CODE_UNKNOWN);
        assert_string_equal(vm_state(f), "paused");
        assert_int_equal(fixture_sim(f)->state, SIM_PAUSED);
        assert_int_equal(resume_task(f, "pod", &r), FERRY_CODE_OK);
        assert_int_equal(fixture_sim(f)->state, SIM_RUNNING);

        /* Stats carries the host's failure too. */
        assert_int_equal(hcs_fault_arm("hcs.properties", &fault), 0);
        Containerd__Runhcs__Stats__V1__Statistics *st = NULL;
        assert_int_equal(stats_task(f, "pod", &r, &st), FERRY_CODE_UNKNOWN);
        assert_null(st);
}

static void test_stats(void **state)
{
        struct fixture *f = *state;
        struct reply r;
        start_pod(f);
        Containerd__Runhcs__Stats__V1__Statistics *st = NULL;
        assert_int_equal(stats_task(f, "pod", &r, &st), FERRY_CODE_OK);
        assert_non_null(st->vm);
        assert_non_null(st->vm->processor);
        assert_non_null(st->vm->memory);
        assert_non_null(st->vm->memory->vm_memory);
        /* the whole image is committed: MEMORY_MB MiB in 4 KiB pages */
        assert_int_equal(st->vm->memory->working_set_bytes, (uint64_t)MEMORY_MB << 20);
        assert_int_equal(st->vm->memory->vm_memory->assigned_memory, (uint64_t)MEMORY_MB << 8);
        assert_int_equal(st->vm->memory->vm_memory->available_memory, MEMORY_MB);
        assert_int_equal(st->vm->memory->virtual_node_count, 1);
        uint64_t first = st->vm->processor->total_runtime_ns;
        protobuf_c_message_free_unpacked(&st->base, NULL);

        /* the workload dirties pages: the VM's processor time grows */
        bool never = false;
        uvrun_until(L, &never, 100);
        assert_int_equal(stats_task(f, "pod", &r, &st), FERRY_CODE_OK);
        assert_true(st->vm->processor->total_runtime_ns > 0);
        assert_true(st->vm->processor->total_runtime_ns >= first);
        protobuf_c_message_free_unpacked(&st->base, NULL);

        st = NULL;
        assert_int_equal(stats_task(f, "app", &r, &st), FERRY_CODE_UNIMPLEMENTED);
        assert_non_null(strstr(r.message, "sandbox task pod"));
        assert_int_equal(stats_task(f, "nope", &r, &st), FERRY_CODE_NOT_FOUND);
        assert_null(st);
}

static enum ferry_code mig_call(struct fixture *f, const char *method, const void *req,
                                const ProtobufCMessageDescriptor *rd)
{
        return call_sync(L, f->c, "Migration", method, req, rd, NULL);
}

static enum ferry_code prepare_and_export(struct fixture *f)
{
        InitializeOptions io = INITIALIZE_OPTIONS__INIT;
        io.memory_transport = MEMORY_TRANSPORT__MEMORY_TRANSPORT_TCP;
        PrepareAndExportSandboxRequest pe = PREPARE_AND_EXPORT_SANDBOX_REQUEST__INIT;
        pe.session_id = "sess-1";
        pe.init_options = &io;
        return mig_call(f, "PrepareAndExportSandbox", &pe,
                        &prepare_and_export_sandbox_response__descriptor);
}

/* Back to idle after a source session that never transferred. */
static void roll_back(struct fixture *f)
{
        CleanupRequest req = CLEANUP_REQUEST__INIT; /* Cancel shares the layout */
        req.session_id = "sess-1";
        mig_call(f, "Cancel", &req, &cancel_response__descriptor);
        FinalizeSandboxRequest fr = FINALIZE_SANDBOX_REQUEST__INIT;
        fr.session_id = "sess-1";
        fr.action = FINALIZE_ACTION__FINALIZE_ACTION_RESUME;
        mig_call(f, "FinalizeSandbox", &fr, &finalize_sandbox_response__descriptor);
        assert_int_equal(mig_call(f, "Cleanup", &req, &cleanup_response__descriptor),
                         FERRY_CODE_OK);
        assert_string_equal(vm_state(f), "running");
}

/* While a session runs, Pause/Resume are refused; Stats follows the VM (ensureVMRunning). */
/* A pod made through the Sandbox API has no task named after it: Pause, Resume and Stats of
 * the sandbox id still reach its VM, and SandboxStatus reads paused meanwhile. */
static void test_sandbox_api_pod(void **state)
{
        struct fixture *f = *state;
        struct reply r;
        Containerd__Runtime__Sandbox__V1__CreateSandboxRequest cr =
            CONTAINERD__RUNTIME__SANDBOX__V1__CREATE_SANDBOX_REQUEST__INIT;
        cr.sandbox_id = "pod-1";
        cr.bundle_path = "/run/pods/pod-1";
        /* before the sandbox exists there is nothing to pause */
        assert_int_equal(pause_task(f, "pod-1", &r), FERRY_CODE_NOT_FOUND);
        assert_int_equal(SANDBOX_CALL(L, f->c, "CreateSandbox", cr,
                                      containerd__runtime__sandbox__v1__create_sandbox_response,
                                      NULL),
                         FERRY_CODE_OK);
        assert_int_equal(sandbox_start_call(L, f->c, "pod-1", NULL), FERRY_CODE_OK);
        Containerd__Task__V2__Status s;
        assert_int_equal(task_state(L, f->c, "pod-1", &s, NULL), FERRY_CODE_NOT_FOUND);

        assert_int_equal(pause_task(f, "pod-1", &r), FERRY_CODE_OK);
        assert_string_equal(vm_state(f), "paused");
        Containerd__Runtime__Sandbox__V1__SandboxStatusRequest ss =
            CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_REQUEST__INIT;
        Containerd__Runtime__Sandbox__V1__SandboxStatusResponse *status = NULL;
        ss.sandbox_id = "pod-1";
        assert_int_equal(SANDBOX_CALL(L, f->c, "SandboxStatus", ss,
                                      containerd__runtime__sandbox__v1__sandbox_status_response,
                                      (ProtobufCMessage **)&status),
                         FERRY_CODE_OK);
        assert_string_equal(status->state, "paused");
        protobuf_c_message_free_unpacked(&status->base, NULL);
        assert_int_equal(resume_task(f, "pod-1", &r), FERRY_CODE_OK);
        assert_string_equal(vm_state(f), "running");
        Containerd__Runhcs__Stats__V1__Statistics *st = NULL;
        assert_int_equal(stats_task(f, "pod-1", &r, &st), FERRY_CODE_OK);
        assert_non_null(st->vm);
        containerd__runhcs__stats__v1__statistics__free_unpacked(st, NULL);
        /* another id is still not the pod */
        assert_int_equal(pause_task(f, "pod-2", &r), FERRY_CODE_NOT_FOUND);
}

static void test_session_gates(void **state)
{
        struct fixture *f = *state;
        struct reply r;
        start_pod(f);
        assert_int_equal(prepare_and_export(f), FERRY_CODE_OK);
        assert_string_equal(vm_state(f), "source_migration_initialized");
        assert_int_equal(pause_task(f, "pod", &r), FERRY_CODE_FAILED_PRECONDITION);
        assert_non_null(strstr(r.message, "migration session is in progress"));
        assert_int_equal(resume_task(f, "pod", &r), FERRY_CODE_FAILED_PRECONDITION);
        Containerd__Runhcs__Stats__V1__Statistics *st = NULL;
        assert_int_equal(stats_task(f, "pod", &r, &st), FERRY_CODE_FAILED_PRECONDITION);
        assert_non_null(strstr(r.message, "vm is not running"));
        assert_string_equal(vm_state(f), "source_migration_initialized");
        roll_back(f);
        assert_int_equal(pause_task(f, "pod", &r), FERRY_CODE_OK);
        /* A paused VM is not migrated: the session's prepare fails and the VM stays paused. */
        assert_int_equal(prepare_and_export(f), FERRY_CODE_FAILED_PRECONDITION);
        assert_string_equal(vm_state(f), "paused");
        assert_int_equal(fixture_sim(f)->state, SIM_PAUSED);
}

/* The compatibility blob comes from the host's properties: without it the export fails, the
 * session fails and the source keeps running its pod. */
static void test_export_without_compat_blob(void **state)
{
        struct fixture *f = *state;
        struct reply r;
        start_pod(f);
        uint64_t before = hcs_fault_calls("hcs.properties");
        struct hcs_fault_spec fault = {.nth = 1, .error = -EIO};
        assert_int_equal(hcs_fault_arm("hcs.properties", &fault), 0);
        assert_int_not_equal(prepare_and_export(f), FERRY_CODE_OK);
        assert_int_equal(hcs_fault_calls("hcs.properties"), before + 1);
        roll_back(f);
        assert_int_equal(fixture_sim(f)->state, SIM_RUNNING);
        Containerd__Task__V2__Status s;
        assert_int_equal(task_state(L, f->c, "app", &s, NULL), FERRY_CODE_OK);
        assert_int_equal(s, CONTAINERD__TASK__V2__STATUS__RUNNING);
        Containerd__Runhcs__Stats__V1__Statistics *st = NULL;
        assert_int_equal(stats_task(f, "pod", &r, &st), FERRY_CODE_OK);
        protobuf_c_message_free_unpacked(&st->base, NULL);
        /* and the next session exports */
        assert_int_equal(prepare_and_export(f), FERRY_CODE_OK);
        roll_back(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            FIXTURE_TEST(test_pause_resume),
            FIXTURE_TEST(test_pause_faults),
            FIXTURE_TEST(test_stats),
            FIXTURE_TEST(test_session_gates),
            FIXTURE_TEST(test_sandbox_api_pod),
            FIXTURE_TEST(test_export_without_compat_blob),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
