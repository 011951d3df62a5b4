/* SPDX-License-Identifier: MIT */
/* What a host compute backend implements. Backends see blocking calls on worker threads; the
 * generic layer (hcs.c) makes them asynchronous and delivers results on the loop. */
#pragma once

#include "hcs/hcs.h"

struct hcs_backend_ops {
        const char *name;
        /* opts borrowed (may be NULL). */
        int (*open)(struct json_object *opts, void **ret_state);
        void (*close)(void *state);
        /* Allocates backend state for sys; doc borrowed (the backend takes its own reference).
         * Called on the loop thread; must not block. */
        int (*vm_new)(void *state, struct hcs_system *sys, const char *id, struct json_object *doc,
                      void **ret_vm);
        /* Frees vm, stopping anything still running; called on a worker thread. */
        void (*vm_free)(void *vm);
        /* The rest run on worker threads and may block. */
        int (*create)(void *vm);
        int (*start)(void *vm);
        int (*pause)(void *vm);
        int (*resume)(void *vm);
        int (*terminate)(void *vm);
        int (*modify)(void *vm, struct json_object *req);
        /* query borrowed: NULL for every property, else {"Queries":{"<Name>":null,…}}. */
        int (*properties)(void *vm, struct json_object *query, struct json_object **ret_props);
        int (*lm_initialize)(void *vm, struct json_object *opts, void **ret_blob, size_t *ret_size);
        int (*lm_start_source)(void *vm, int fd, uint32_t session_id);
        int (*lm_start_destination)(void *vm, int fd, uint32_t session_id);
        int (*lm_transfer)(void *vm);
        int (*lm_finalize)(void *vm, bool resume);
        int (*lm_cancel)(void *vm);
};

extern const struct hcs_backend_ops hcs_sim_ops;

/* Thread-safe; queues n for delivery on the loop thread. */
void hcs_system_emit(struct hcs_system *sys, const struct hcs_notification *n);
/* Thread-safe; records that the system stopped with status (0 or -errno) and wakes waiters. */
void hcs_system_exited(struct hcs_system *sys, int status);
