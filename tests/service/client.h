/* SPDX-License-Identifier: MIT */
/* Shared by the service and command tests: a loop-driven synchronous ttrpc client call and
 * short constructors for Task and Sandbox requests. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "rpc/ttrpc.h"
#include "sandbox.pb-c.h"
#include "task.pb-c.h"
#include "util/util.h"

#include "../common/uvrun.h"

#define TASK_SVC    "containerd.task.v2.Task"
#define SANDBOX_SVC "containerd.runtime.sandbox.v1.Sandbox"

struct reply {
        bool done;
        enum ferry_code code;
        char message[256];
        ProtobufCMessage *resp;
};

static _unused_ void on_reply(enum ferry_code code, const char *message, ProtobufCMessage *resp,
                              void *ud)
{
        struct reply *r = ud;
        r->done = true;
        r->code = code;
        ferry_strscpy(r->message, message ? message : "", sizeof(r->message));
        r->resp = resp;
}

/* Starts a call whose reply lands in *r. */
static _unused_ void call_async(struct ttrpc_client *c, const char *svc, const char *method,
                                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                                struct reply *r)
{
        memset(r, 0, sizeof(*r));
        assert_int_equal(ttrpc_client_call(c, svc, method, req, rd, NULL, on_reply, r), 0);
}

/* One call to its end; returns the code, the response in *ret_resp (free it) or NULL. */
static _unused_ enum ferry_code call_sync(uv_loop_t *loop, struct ttrpc_client *c, const char *svc,
                                          const char *method, const ProtobufCMessage *req,
                                          const ProtobufCMessageDescriptor *rd,
                                          ProtobufCMessage **ret_resp)
{
        struct reply r;
        call_async(c, svc, method, req, rd, &r);
        assert_true(uvrun_until(loop, &r.done, 10000));
        if (ret_resp)
                *ret_resp = r.resp;
        else if (r.resp)
                protobuf_c_message_free_unpacked(r.resp, NULL);
        return r.code;
}

#define TASK_CALL(loop, c, method, req, resp_type, ret)                                            \
        call_sync(loop, c, TASK_SVC, method, &(req).base, &resp_type##__descriptor,                \
                  (ProtobufCMessage **)(ret))
#define SANDBOX_CALL(loop, c, method, req, resp_type, ret)                                         \
        call_sync(loop, c, SANDBOX_SVC, method, &(req).base, &resp_type##__descriptor,             \
                  (ProtobufCMessage **)(ret))

/* The Task calls a test uses most, each returning the code. */
static _unused_ enum ferry_code task_create(uv_loop_t *loop, struct ttrpc_client *c, const char *id,
                                            const char *bundle)
{
        Containerd__Task__V2__CreateTaskRequest req =
            CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
        req.id = (char *)id;
        req.bundle = (char *)(bundle ? bundle : "");
        return TASK_CALL(loop, c, "Create", req, containerd__task__v2__create_task_response, NULL);
}

static _unused_ enum ferry_code task_start(uv_loop_t *loop, struct ttrpc_client *c, const char *id,
                                           uint32_t *ret_pid)
{
        Containerd__Task__V2__StartRequest req = CONTAINERD__TASK__V2__START_REQUEST__INIT;
        Containerd__Task__V2__StartResponse *resp = NULL;
        req.id = (char *)id;
        enum ferry_code code =
            TASK_CALL(loop, c, "Start", req, containerd__task__v2__start_response, &resp);
        if (resp) {
                if (ret_pid)
                        *ret_pid = resp->pid;
                protobuf_c_message_free_unpacked(&resp->base, NULL);
        }
        return code;
}

static _unused_ enum ferry_code task_kill(uv_loop_t *loop, struct ttrpc_client *c, const char *id,
                                          uint32_t sig)
{
        Containerd__Task__V2__KillRequest req = CONTAINERD__TASK__V2__KILL_REQUEST__INIT;
        req.id = (char *)id;
        req.signal = sig;
        return TASK_CALL(loop, c, "Kill", req, containerd__task__v2__empty, NULL);
}

/* State: returns the code; *ret_status / *ret_exit when OK. */
static _unused_ enum ferry_code task_state(uv_loop_t *loop, struct ttrpc_client *c, const char *id,
                                           Containerd__Task__V2__Status *ret_status,
                                           uint32_t *ret_exit)
{
        Containerd__Task__V2__StateRequest req = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
        Containerd__Task__V2__StateResponse *resp = NULL;
        req.id = (char *)id;
        enum ferry_code code =
            TASK_CALL(loop, c, "State", req, containerd__task__v2__state_response, &resp);
        if (resp) {
                assert_string_equal(resp->id, id);
                if (ret_status)
                        *ret_status = resp->status;
                if (ret_exit)
                        *ret_exit = resp->exit_status;
                protobuf_c_message_free_unpacked(&resp->base, NULL);
        }
        return code;
}

static _unused_ enum ferry_code task_delete(uv_loop_t *loop, struct ttrpc_client *c, const char *id,
                                            uint32_t *ret_exit)
{
        Containerd__Task__V2__DeleteRequest req = CONTAINERD__TASK__V2__DELETE_REQUEST__INIT;
        Containerd__Task__V2__DeleteResponse *resp = NULL;
        req.id = (char *)id;
        enum ferry_code code =
            TASK_CALL(loop, c, "Delete", req, containerd__task__v2__delete_response, &resp);
        if (resp) {
                if (ret_exit)
                        *ret_exit = resp->exit_status;
                assert_non_null(resp->exited_at);
                assert_true(resp->exited_at->seconds > 1600000000);
                protobuf_c_message_free_unpacked(&resp->base, NULL);
        }
        return code;
}

/* StartSandbox of sandbox id: the code; the reply in *ret_resp when ret_resp (free it). */
static _unused_ enum ferry_code
sandbox_start_call(uv_loop_t *loop, struct ttrpc_client *c, const char *id,
                   Containerd__Runtime__Sandbox__V1__StartSandboxResponse **ret_resp)
{
        Containerd__Runtime__Sandbox__V1__StartSandboxRequest req =
            CONTAINERD__RUNTIME__SANDBOX__V1__START_SANDBOX_REQUEST__INIT;
        req.sandbox_id = (char *)id;
        return SANDBOX_CALL(loop, c, "StartSandbox", req,
                            containerd__runtime__sandbox__v1__start_sandbox_response, ret_resp);
}

static _unused_ enum ferry_code sandbox_stop_call(uv_loop_t *loop, struct ttrpc_client *c,
                                                  const char *id)
{
        Containerd__Runtime__Sandbox__V1__StopSandboxRequest req =
            CONTAINERD__RUNTIME__SANDBOX__V1__STOP_SANDBOX_REQUEST__INIT;
        req.sandbox_id = (char *)id;
        return SANDBOX_CALL(loop, c, "StopSandbox", req,
                            containerd__runtime__sandbox__v1__stop_sandbox_response, NULL);
}

static _unused_ void wait_async(struct ttrpc_client *c, const char *id, struct reply *r)
{
        Containerd__Task__V2__WaitRequest req = CONTAINERD__TASK__V2__WAIT_REQUEST__INIT;
        req.id = (char *)id;
        call_async(c, TASK_SVC, "Wait", &req.base, &containerd__task__v2__wait_response__descriptor,
                   r);
}

static _unused_ uint32_t wait_exit_status(const struct reply *r)
{
        assert_true(r->done);
        assert_int_equal(r->code, FERRY_CODE_OK);
        assert_non_null(r->resp);
        const Containerd__Task__V2__WaitResponse *w = (const void *)r->resp;
        assert_non_null(w->exited_at);
        return w->exit_status;
}

/* Wait to its end (5 s at most) on a task that has exited or is about to: its exit status. */
static _unused_ uint32_t task_wait_exit(uv_loop_t *loop, struct ttrpc_client *c, const char *id)
{
        struct reply w;
        wait_async(c, id, &w);
        assert_true(uvrun_until(loop, &w.done, 5000));
        uint32_t status = wait_exit_status(&w);
        protobuf_c_message_free_unpacked(w.resp, NULL);
        return status;
}
