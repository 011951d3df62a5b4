/* SPDX-License-Identifier: MIT */
/* The vPCI controller's data and the action handlers of spec/vpci.yaml (one machine per tracked
 * device). The spec owns each device's lifecycle; the controller only finds devices by GUID or
 * by (instance id, VF), and frees a device once its machine has ended. */
#include "ctrl/vpci/vpci.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctrl/common/guid.h"
#include "guest/guest.h"
#include "hcs/hcs.h"
#include "save_vpci.pb-c.h"
#include "util/util.h"
#include "vpci_fsm.h"

#define VPCI_SCHEMA_VERSION 1
#define VPCI_PATH           "VirtualMachine/Devices/VirtualPci/"

struct vpci_device {
        struct fsm fsm;
        struct vpci *v;
        size_t slot; /* index in v->devs while tracked */
        char guid[VPCI_GUID_LEN];
        char instance_id[VPCI_INSTANCE_MAX];
        uint32_t vf_index;
        uint32_t refcount;
        struct ctrl_pending pending;
        int op_err;
};

struct vpci {
        const struct ctrl_env *env;
        struct vpci_device *devs[VPCI_MAX_DEVICES];
};

/* One call's caller, handed to the actions as the dispatch argument. */
struct vpci_call {
        ctrl_done_fn done; /* taken by an action that goes pending */
        void *userdata;
};

static struct vpci_device *find_guid(const struct vpci *v, const char *guid)
{
        for (size_t i = 0; guid && i < VPCI_MAX_DEVICES; i++)
                if (v->devs[i] && strcmp(v->devs[i]->guid, guid) == 0)
                        return v->devs[i];
        return NULL;
}

static struct vpci_device *find_device(const struct vpci *v, const char *instance_id, uint32_t vf)
{
        for (size_t i = 0; i < VPCI_MAX_DEVICES; i++)
                if (v->devs[i] && v->devs[i]->vf_index == vf &&
                    strcmp(v->devs[i]->instance_id, instance_id) == 0)
                        return v->devs[i];
        return NULL;
}

/* Frees d once its machine has ended (untrack already unlinked it). */
static void reap(struct vpci_device *d)
{
        if (fsm_is_terminal(&d->fsm))
                free(d);
}

static void take_call(struct vpci_device *d, void *arg)
{
        struct vpci_call *c = arg;
        d->pending.done = c->done;
        d->pending.userdata = c->userdata;
        c->done = NULL;
}

/* Ends the operation in flight with completion ev; its action replies. */
static void complete(struct vpci_device *d, enum vpci_event ev, int err)
{
        d->op_err = err;
        vpci_dispatch(&d->fsm, ev, NULL);
        reap(d);
}

/* Add or Remove of the device's VirtualPci entry. */
static int host_device(struct vpci_device *d, const char *type, hcs_done_fn done)
{
        char path[sizeof(VPCI_PATH) + VPCI_GUID_LEN];
        if (!d->v->env->sys)
                return -ENXIO;
        ferry_bprintf(path, sizeof(path), VPCI_PATH "%s", d->guid);
        struct json_object *req = json_object_new_object();
        if (!req)
                return -ENOMEM;
        json_object_object_add(req, "ResourcePath", json_object_new_string(path));
        json_object_object_add(req, "RequestType", json_object_new_string(type));
        if (strcmp(type, "Add") == 0) {
                struct json_object *set = json_object_new_object(), *fns = json_object_new_array();
                struct json_object *fn = json_object_new_object();
                json_object_object_add(fn, "DeviceInstancePath",
                                       json_object_new_string(d->instance_id));
                json_object_object_add(fn, "VirtualFunction", json_object_new_int64(d->vf_index));
                json_object_array_add(fns, fn);
                json_object_object_add(set, "Functions", fns);
                json_object_object_add(set, "PropagateNumaAffinity", json_object_new_boolean(1));
                json_object_object_add(req, "Settings", set);
        }
        int r = hcs_modify(d->v->env->sys, json_object_to_json_string(req), done, d);
        json_object_put(req);
        return r;
}

/* ---- actions ------------------------------------------------------------------------------ */

static void on_host_added(int r, void *ud)
{
        struct vpci_device *d = ud;
        complete(d, r < 0 ? VPCI_E_HOST_ADD_FAILED : VPCI_E_HOST_ADD_DONE, r);
}

int vpci_action_begin_host_add(struct vpci_device *d, void *arg)
{
        int r = host_device(d, "Add", on_host_added);
        if (r < 0)
                return r;
        take_call(d, arg);
        return FSM_PENDING;
}

static void on_guest_ready(int r, uint64_t value, void *ud)
{
        struct vpci_device *d = ud;
        complete(d, r < 0 ? VPCI_E_GUEST_ADD_FAILED : VPCI_E_GUEST_ADD_DONE, r);
}

int vpci_action_begin_guest_add(struct vpci_device *d, void *arg)
{
        int r = d->v->env->guest ? guest_vpci_ready(d->v->env->guest, d->guid, on_guest_ready, d)
                                 : -ENOTCONN;
        if (r < 0)
                ctrl_reply(&d->pending, r); /* the caller of add still waits */
        return r < 0 ? r : FSM_PENDING;
}

int vpci_action_take_first_reference(struct vpci_device *d, void *arg)
{
        d->refcount = 1;
        ctrl_reply(&d->pending, 0);
        return 0;
}

int vpci_action_add_reference(struct vpci_device *d, void *arg)
{
        d->refcount++;
        return 0;
}

int vpci_action_drop_reference(struct vpci_device *d, void *arg)
{
        d->refcount--;
        return 0;
}

int vpci_action_reply_error(struct vpci_device *d, void *arg)
{
        ctrl_reply(&d->pending, d->op_err ? d->op_err : -EIO);
        return 0;
}

int vpci_action_untrack(struct vpci_device *d, void *arg)
{
        /* unlinked now, so the reply's callback may reserve the device again and get a fresh
         * GUID; the memory goes once the dispatch is over (reap) */
        d->v->devs[d->slot] = NULL;
        d->refcount = 0;
        ctrl_reply(&d->pending, 0);
        return 0;
}

static void on_host_removed(int r, void *ud)
{
        struct vpci_device *d = ud;
        complete(d, r < 0 ? VPCI_E_HOST_REMOVE_FAILED : VPCI_E_HOST_REMOVE_DONE, r);
}

int vpci_action_begin_host_remove(struct vpci_device *d, void *arg)
{
        d->refcount = 0;
        int r = host_device(d, "Remove", on_host_removed);
        if (r < 0)
                return r;
        take_call(d, arg);
        return FSM_PENDING;
}

bool vpci_guard_last_reference(struct vpci_device *d, void *arg)
{
        return d->refcount == 1;
}

/* ---- public calls ------------------------------------------------------------------------ */

/* Dispatches a call event to d: negative errno when rejected or failed at once; otherwise 0 and
 * done runs now unless an action took it. d may be freed on return. */
static int call(struct vpci_device *d, enum vpci_event ev, ctrl_done_fn done, void *userdata)
{
        struct vpci_call c = {.done = done, .userdata = userdata};
        int r = vpci_dispatch(&d->fsm, ev, &c);
        reap(d);
        if (r == FSM_PENDING)
                return 0;
        if (r < 0)
                return r;
        if (c.done)
                c.done(0, c.userdata);
        return 0;
}

int vpci_new(const struct ctrl_env *env, struct vpci **ret)
{
        if (!env || !ret)
                return -EINVAL;
        struct vpci *v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        v->env = env;
        *ret = v;
        return 0;
}

struct vpci *vpci_free(struct vpci *v)
{
        if (!v)
                return NULL;
        for (size_t i = 0; i < VPCI_MAX_DEVICES; i++) {
                struct vpci_device *d = v->devs[i];
                if (!d)
                        continue;
                assert(!(d->fsm.machine->state_flags[fsm_state(&d->fsm)] & FSM_STATE_INFLIGHT));
                free(d);
        }
        free(v);
        return NULL;
}

int vpci_reserve(struct vpci *v, const char *instance_id, uint32_t vf_index,
                 char ret_guid[VPCI_GUID_LEN])
{
        if (!instance_id || !*instance_id || strlen(instance_id) >= VPCI_INSTANCE_MAX)
                return -EINVAL;
        struct vpci_device *d = find_device(v, instance_id, vf_index);
        if (d) {
                char guid[VPCI_GUID_LEN];
                memcpy(guid, d->guid, sizeof(guid));
                int r = call(d, VPCI_E_RESERVE, NULL, NULL);
                if (r < 0)
                        return r;
                memcpy(ret_guid, guid, VPCI_GUID_LEN);
                return 0;
        }
        size_t slot = 0;
        while (slot < VPCI_MAX_DEVICES && v->devs[slot])
                slot++;
        if (slot == VPCI_MAX_DEVICES)
                return -ENOSPC;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        int r;
        do /* a collision is next to impossible, but GUIDs must stay unique */
                r = ctrl_new_guid(d->guid);
        while (r == 0 && find_guid(v, d->guid));
        if (r < 0) {
                free(d);
                return r;
        }
        d->v = v;
        d->slot = slot;
        d->vf_index = vf_index;
        ferry_strscpy(d->instance_id, instance_id, sizeof(d->instance_id));
        fsm_init(&d->fsm, &vpci_machine, d, d->guid);
        v->devs[slot] = d;
        memcpy(ret_guid, d->guid, VPCI_GUID_LEN);
        return 0;
}

int vpci_assign(struct vpci *v, const char *guid, ctrl_done_fn done, void *userdata)
{
        struct vpci_device *d = find_guid(v, guid);
        return d ? call(d, VPCI_E_ADD, done, userdata) : -ENOENT;
}

int vpci_remove(struct vpci *v, const char *guid, ctrl_done_fn done, void *userdata)
{
        struct vpci_device *d = find_guid(v, guid);
        return d ? call(d, VPCI_E_REMOVE, done, userdata) : -ENOENT;
}

int vpci_save(struct vpci *v, ctrl_envelope **ret)
{
        /* every tracked device answers for itself: the spec refuses save in each state */
        for (size_t i = 0; i < VPCI_MAX_DEVICES; i++) {
                if (!v->devs[i])
                        continue;
                int r = call(v->devs[i], VPCI_E_SAVE, NULL, NULL);
                if (r < 0)
                        return r;
        }
        Ferry__Vpci__Save__V1__Payload p = FERRY__VPCI__SAVE__V1__PAYLOAD__INIT;
        p.schema_version = VPCI_SCHEMA_VERSION;
        return ctrl_envelope_pack("vpci", VPCI_SCHEMA_VERSION, &p.base, ret);
}

int vpci_import(struct vpci *v, const ctrl_envelope *env_in)
{
        ProtobufCMessage *m = NULL;
        int r = ctrl_envelope_unpack(env_in, "vpci", VPCI_SCHEMA_VERSION,
                                     &ferry__vpci__save__v1__payload__descriptor, &m, NULL, NULL);
        if (r < 0)
                return r;
        const Ferry__Vpci__Save__V1__Payload *p = (const void *)m;
        if (p->schema_version != env_in->schema_version)
                r = -EINVAL;
        else if (vpci_device_count(v) > 0)
                r = -EBUSY;
        protobuf_c_message_free_unpacked(m, NULL);
        return r; /* an empty payload: nothing to commit */
}

int vpci_patch(struct vpci *v, const char *from_instance_id, const char *to_instance_id)
{
        if (!from_instance_id || !*from_instance_id || !to_instance_id || !*to_instance_id)
                return -EINVAL;
        return -ENOENT;
}

int vpci_resume(struct vpci *v)
{
        return vpci_device_count(v) > 0 ? -EBUSY : 0;
}

size_t vpci_device_count(const struct vpci *v)
{
        size_t n = 0;
        for (size_t i = 0; i < VPCI_MAX_DEVICES; i++)
                n += v->devs[i] != NULL;
        return n;
}

const char *vpci_state_name(const struct vpci *v, const char *guid)
{
        const struct vpci_device *d = find_guid(v, guid);
        return d ? fsm_state_name(&d->fsm) : NULL;
}

uint32_t vpci_refcount(const struct vpci *v, const char *guid)
{
        const struct vpci_device *d = find_guid(v, guid);
        return d ? d->refcount : 0;
}

const struct fsm *vpci_device_fsm(const struct vpci *v, const char *guid)
{
        const struct vpci_device *d = find_guid(v, guid);
        return d ? &d->fsm : NULL;
}
