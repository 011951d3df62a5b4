/* SPDX-License-Identifier: MIT */
/* For the tests that move a workload between two VM controllers of one process (pod,
 * roundtrip): the task events a side published, the endpoints of the source ("ns-src") and
 * destination ("ns-dst") namespaces, running VMs, and the VM migration itself. Include after
 * fixture.h. */
#pragma once

#include "call.h"
#include "fixture.h"
#include "vm_transfer.h"

#include "ctrl/network/network.h"
#include "ctrl/vm/vm.h"

/* Task events published by one side's containers. */
struct events {
        unsigned create, start, exit;
        char last_exit[256];
};

/* A ctrl_publish_fn counting into a struct events. */
static _unused_ void on_publish(const char *topic, const char *json, void *ud)
{
        struct events *e = ud;
        if (strcmp(topic, "/tasks/create") == 0)
                e->create++;
        else if (strcmp(topic, "/tasks/start") == 0)
                e->start++;
        else if (strcmp(topic, "/tasks/exit") == 0) {
                e->exit++;
                ferry_strscpy(e->last_exit, json, sizeof(e->last_exit));
        }
}

/* The endpoint lookup of both hosts: one NIC in "ns-src" (ep-a), one in "ns-dst" (ep-c). */
static _unused_ int lookup(const char *ns, struct network_endpoint *eps, size_t max, void *ud)
{
        static const struct network_endpoint src = {"ep-a", "00-15-5d-00-00-0a", "eth0"};
        static const struct network_endpoint dst = {"ep-c", "00-15-5d-00-00-0c", "eth0"};
        if (max < 1)
                return -ENOSPC;
        if (strcmp(ns, "ns-src") == 0)
                eps[0] = src;
        else if (strcmp(ns, "ns-dst") == 0)
                eps[0] = dst;
        else
                return -ENOENT;
        return 1;
}

/* A migratable 16 MB VM document with SCSI controller 0 empty. */
static _unused_ void vm_doc(char *buf, size_t size)
{
        ssize_t r = ferry_bprintf(
            buf, size,
            "{\"VirtualMachine\":{\"Chipset\":{\"LinuxKernelDirect\":{\"KernelCmdLine\":"
            "\"console=hvc0 %s\"}},"
            "\"ComputeTopology\":{\"Memory\":{\"SizeInMB\":16},\"Processor\":{\"Count\":2}},"
            "\"Devices\":{\"Scsi\":{\"0\":{}}},\"Sim\":{\"DirtyPagesPerSecond\":2000}}}",
            VM_LM_LOG_FORWARDER);
        assert_true(r > 0);
}

/* A VM controller id, created (vm_doc) and started on the test's backend. */
static _unused_ struct vm *running_vm(const char *id)
{
        char doc[1024];
        struct vm *vm = NULL;
        vm_doc(doc, sizeof(doc));
        assert_int_equal(vm_new(loop, backend, id, &vm), 0);
        assert_int_equal(CALL(vm_create, vm, id, doc), 0);
        assert_int_equal(CALL(vm_start, vm), 0);
        return vm;
}

/* Terminates vm and frees it once every callback has come back. */
static _unused_ void destroy_vm(struct vm *vm)
{
        assert_int_equal(CALL(vm_terminate, vm), 0);
        for (int i = 0; i < 1000 && vm_free(vm); i++)
                run_for_ms(2);
}

/* Migrates src to dst (dst imported, not created yet) over a socketpair as session, and
 * finalizes on dst (to_dst) or back on src; the other side's VM ends terminated. Neither VM is
 * resumed. */
static _unused_ void migrate_vm_pair(struct vm *src, struct vm *dst, uint32_t session, bool to_dst)
{
        assert_int_equal(CALL(vm_create_destination, dst, "dst", NULL), 0);
        assert_int_equal(CALL(vm_patch, dst), 0);
        int fds[2];
        socket_pair(fds);
        assert_int_equal(CALL(vm_start_destination, dst, fds[1], session), 0);
        assert_int_equal(CALL(vm_start_source, src, fds[0], session), 0);
        int rs, rd;
        vm_transfer_both(src, dst, &rs, &rd);
        assert_int_equal(rs, 0);
        assert_int_equal(rd, 0);
        struct vm *keep = to_dst ? dst : src;
        struct vm *drop = to_dst ? src : dst;
        assert_int_equal(CALL(vm_finalize, keep, true), 0);
        assert_int_equal(CALL(vm_finalize, drop, false), 0);
        assert_string_equal(vm_state_name(drop), "terminated");
}
