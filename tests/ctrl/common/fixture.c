/* SPDX-License-Identifier: MIT */
/* The controller test fixture (fixture.h). helpers.h keeps its loop and backend in statics of
 * each translation unit, so this file points its own copies at the test's before using them. */
#include "fixture.h"

void fixture_guest_done(int r, uint64_t value, void *ud)
{
        struct result *x = ud;
        x->done = true;
        x->r = r;
        x->value = value;
}

void fixture_up(struct ctrl_fixture *f, uv_loop_t *l, struct hcs_backend *b, const char *id,
                uint64_t rate, ctrl_publish_fn publish)
{
        struct result x = {0};

        loop = l;
        backend = b;
        *f = (struct ctrl_fixture){0};
        f->vm = running_system(id, 8, rate, &f->notes);
        assert_int_equal(guest_connect(loop, f->vm, 4, fixture_guest_done, &x, &f->conn), 0);
        run_until(&x.done, 5000);
        assert_int_equal(x.r, 0);
        f->env =
            (struct ctrl_env){.loop = loop, .sys = f->vm, .guest = f->conn, .publish = publish};
}

void fixture_down(struct ctrl_fixture *f)
{
        guest_close(f->conn);
        f->conn = NULL;
        /* let the guest connection's handles close before the VM goes */
        run_for_ms(5);
        if (f->vm)
                close_system(f->vm);
        f->vm = NULL;
        loop = NULL;
        backend = NULL;
}

ctrl_envelope *fixture_through_bytes(const ctrl_envelope *e)
{
        uint8_t *bytes = NULL;
        size_t len = 0;
        ctrl_envelope *back = NULL;
        assert_int_equal(ctrl_envelope_to_bytes(e, &bytes, &len), 0);
        assert_int_equal(ctrl_envelope_from_bytes(bytes, len, &back), 0);
        free(bytes);
        return back;
}

void fixture_fault(const char *point, uint32_t nth, int error)
{
        struct hcs_fault_spec f = {.nth = nth, .error = error};
        assert_int_equal(hcs_fault_arm(point, &f), 0);
}

bool fixture_host_has(struct hcs_system *sys, const struct sim_named *tab, size_t cap,
                      const char *name)
{
        struct sim_vm *s = vm_of(sys);
        bool found = false;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < cap; i++)
                found |= tab[i].used && strcmp(tab[i].name, name) == 0;
        pthread_mutex_unlock(&s->lock);
        return found;
}
