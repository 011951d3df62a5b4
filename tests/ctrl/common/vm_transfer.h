/* SPDX-License-Identifier: MIT */
/* The transfer step of a live migration between two VM controllers of one process. Needs the
 * loop of loop.h. */
#pragma once

#include "call.h"

#include "ctrl/vm/vm.h"

/* Runs vm_transfer on both started ends (both must take it) until both are done (30 s at most
 * each); their results in *ret_src and *ret_dst. */
static _unused_ void vm_transfer_both(struct vm *src, struct vm *dst, int *ret_src, int *ret_dst)
{
        struct res rs = {0}, rd = {0};
        assert_int_equal(vm_transfer(src, on_res, &rs), 0);
        assert_int_equal(vm_transfer(dst, on_res, &rd), 0);
        run_until(&rs.done, 30000);
        run_until(&rd.done, 30000);
        *ret_src = rs.r;
        *ret_dst = rd.r;
}
