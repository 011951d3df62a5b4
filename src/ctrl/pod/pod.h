/* SPDX-License-Identifier: MIT */
/* The pod controller: one pod inside the utility VM. It owns its network controller and its
 * container controllers and moves them through a migration together. Its lifecycle is
 * spec/pod.yaml (generated/pod.*); the handlers in pod.c only do the work.
 *
 * Calling convention (src/ctrl/common/ctrl.h): a call with done returns a negative errno when
 * the spec rejects it (state unchanged, done never called) or 0, and then done(result, ud) runs
 * exactly once on the loop thread. Calls without done are synchronous. Rejections:
 *   -EBUSY     failed_precondition: wrong state (e.g. new_container while migrating, resume
 *              before the VM resumed or before every imported container was patched);
 *   -ENOTCONN  unavailable: a resume, patch, rollback or teardown is in flight;
 *   -EEXIST    already_exists (new_container with a known id); -ENOENT not_found.
 * A call from inside one of the pod's own transitions (e.g. from a child's event publisher)
 * is refused with -ENOTCONN; done callbacks run outside them, so calls may be chained.
 *
 * The pod's children borrow its ctrl_env; the pod refreshes the env's system and guest from the
 * VM whenever it binds (create, new_container, resume).
 *
 * Threading: loop thread only. Strings passed in are copied. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"
#include "ctrl/container/container.h"
#include "ctrl/network/network.h"

struct pod;
struct vm;

#define POD_SCHEMA_VERSION 1u
#define POD_ID_MAX         64
/* Bounds on what a payload may carry (a peer controls it). */
#define POD_CONTAINERS_MAX 256

struct pod_options {
        const char *pod_id;       /* containerd's pod id; also the id the guest knows */
        const char *namespace_id; /* host network namespace; NULL or "": the pod has no network */
        bool policy_based_routing;
        network_lookup_fn lookup; /* required with a namespace */
        void *lookup_userdata;
        ctrl_publish_fn publish; /* task events of the pod's containers; may be NULL */
        void *publish_userdata;
        const struct container_devices *devices; /* hooks handed to every container; may be NULL */
};

/* A new pod in not_created over vm (borrowed; must outlive the pod), on vm's loop. name names
 * the instance in traces. Errors: -EINVAL, -ENOMEM. */
int pod_new(struct vm *vm, const char *name, struct pod **ret);
/* Frees the pod, its network and its containers. Accepts NULL; returns NULL. Refused (returns
 * p itself) while an operation is in flight. */
struct pod *pod_free(struct pod *p);

/* not_created → active: binds the network controller for opts->namespace_id (opts and its
 * strings are copied). Errors: the spec's rejection, -EINVAL, -ENOMEM. */
int pod_create(struct pod *p, const struct pod_options *opts);
/* not_created → destination_migrating from env (borrowed); opts supplies the host-local
 * pieces (lookup, publish, devices); opts->pod_id and namespace_id are ignored (the payload's
 * are used until patch). Atomic: on any error nothing is kept. Errors: -EINVAL (envelope
 * checks, duplicate container ids, bounds), -EBADMSG, a child's import error, -ENOMEM. */
int pod_import(struct pod *p, const struct pod_options *opts, const ctrl_envelope *env);

/* Registers a new container controller id (borrowed, copied) in not_created and returns it in
 * *ret (owned by the pod; drive it with container_create etc.). */
int pod_new_container(struct pod *p, const char *id, struct container **ret);
/* Drops container id (the caller tore it down) and frees its controller. */
int pod_delete_container(struct pod *p, const char *id);
int pod_setup_network(struct pod *p, ctrl_done_fn done, void *ud);
int pod_teardown_network(struct pod *p, ctrl_done_fn done, void *ud);

/* Source: saves every container (sorted by id), then the network, and freezes the pod. On
 * success *ret (free with ctrl_envelope_free) is written and done(0) is called before the call
 * returns. If a child fails after others froze, those are resumed first and done(error) comes
 * once they run again: a failed save leaves nothing frozen. Repeatable while frozen. */
int pod_save(struct pod *p, ctrl_envelope **ret, ctrl_done_fn done, void *ud);

/* Destination: patches the container whose (source) id is source_id with opts (borrowed).
 * The sandbox container (source_id == the pod's id) also brings the new pod id (opts->id) and
 * netns, the destination network namespace (required for it, -EINVAL otherwise, checked before
 * anything changes). -EEXIST if opts->id names another container, -ENOENT unknown source_id.
 * Order between containers does not matter. */
int pod_patch_container(struct pod *p, const char *source_id,
                        const struct container_patch_opts *opts, const char *netns,
                        ctrl_done_fn done, void *ud);
/* Source rollback or destination bind: requires the VM running (resumed) and, on the
 * destination, every container patched. Resumes the network, every container, and on the
 * destination resets the NICs to the patched namespace. Idempotent when active. */
int pod_resume(struct pod *p, ctrl_done_fn done, void *ud);
/* Removes the pod: an active pod tears its network down; a frozen pod (imported and never
 * resumed, or a source after a stop) releases its children without guest calls and publishes
 * an exit for each task not yet reported. */
int pod_teardown(struct pod *p, ctrl_done_fn done, void *ud);

/* Queries. */
const char *pod_id(const struct pod *p);
const char *pod_state_name(const struct pod *p);
bool pod_is_migrating(const struct pod *p);
size_t pod_container_count(const struct pod *p);
/* By containerd id (current, i.e. after patch the destination id); NULL if unknown. */
struct container *pod_container(const struct pod *p, const char *id);
/* The i-th container in id order, NULL past the end. */
struct container *pod_container_at(const struct pod *p, size_t i);
struct network *pod_network(const struct pod *p);
/* false for a container imported on a destination and not patched yet (or not in the pod);
 * true for every other container of the pod. */
bool pod_container_patched(const struct pod *p, const struct container *c);
