/* SPDX-License-Identifier: MIT */
#include "task_fixture.h"

#include <ftw.h>
#include <stdio.h>
#include <unistd.h>

#include "ctrl/vm/vm.h"
#include "hcs/fault.h"
#include "hcs/sim/sim.h"

static void on_shim_exit(void *ud)
{
        struct fixture *f = ud;
        f->exited = true;
}

int fixture_setup(void **state, const struct fixture_options *o)
{
        struct fixture *f = calloc(1, sizeof(*f));

        hcs_fault_reset();
        assert_non_null(f);
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_true(ferry_bprintf(f->dir, sizeof(f->dir), "/tmp/ferry-%s-XXXXXX", o->name) > 0);
        assert_non_null(mkdtemp(f->dir));
        ferry_bprintf(f->sock, sizeof(f->sock), "%s/shim.sock", f->dir);
        if (o->event_log)
                ferry_bprintf(f->log, sizeof(f->log), "%s/events.log", f->dir);
        struct shim_options so = {
            .event_log = o->event_log ? f->log : NULL,
            .sandbox = o->sandbox,
            .on_exit = on_shim_exit,
            .on_exit_userdata = f,
        };
        assert_int_equal(shim_new(&f->loop, &so, &f->shim), 0);
        if (o->on_event)
                assert_true(shim_events_subscribe(shim_get_events(f->shim), o->on_event, f) > 0);
        assert_int_equal(shim_listen(f->shim, f->sock), 0);
        assert_int_equal(ttrpc_client_connect(&f->loop, f->sock, NULL, &f->c), 0);
        *state = f;
        return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        return remove(path);
}

int fixture_teardown(void **state)
{
        struct fixture *f = *state;

        hcs_fault_reset();
        ttrpc_client_close(f->c);
        shim_shutdown(f->shim);
        assert_true(uvrun_until(&f->loop, &f->exited, 10000));
        shim_free(f->shim);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        /* depth first, so each directory is empty when its turn comes */
        assert_int_equal(nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
        free(f);
        return 0;
}

struct sim_vm *fixture_sim(struct fixture *f)
{
        return hcs_system_backend_vm(vm_system(sandbox_vm(shim_sandbox(f->shim))));
}
