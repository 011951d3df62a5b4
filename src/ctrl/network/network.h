/* SPDX-License-Identifier: MIT */
/* The network controller of one pod: the endpoints of a host network namespace, each hot-added
 * to the utility VM as a NIC (hcs_modify on VirtualMachine/Devices/NetworkAdapters/<nic>) and
 * configured in the guest namespace (guest_netns_add, guest_nic_add). Its lifecycle is
 * spec/network.yaml; this API dispatches the spec's call events (see ctrl/common/ctrl.h for the
 * calling convention: a negative errno when the spec rejects the call, else 0 and done called
 * exactly once on the loop thread).
 *
 * Errors returned by every call below when the spec rejects it: -EBUSY (failed_precondition:
 * wrong state, migrating), -ESTALE (aborted: an operation is in flight). Calls on a frozen
 * network (saved on the source, imported on the destination) other than save, teardown and
 * resume (and patch on the destination) are rejected with -EBUSY and change nothing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrl/common/ctrl.h"
#include "ctrl/common/envelope.h"

struct network;
struct fsm;

/* Longest namespace, NIC and endpoint id or name, with its NUL. */
#define NETWORK_ID_MAX 64
/* Longest MAC address text ("00-15-5d-…" or "00:15:5d:…"), with its NUL. */
#define NETWORK_MAC_MAX 18
/* Most endpoints one namespace (and so one network) may hold. */
#define NETWORK_MAX_ENDPOINTS 16

/* One endpoint of a host namespace (the HCN endpoint of the reference). */
struct network_endpoint {
        char id[NETWORK_ID_MAX];
        char mac[NETWORK_MAC_MAX];
        char name[NETWORK_ID_MAX]; /* an endpoint whose name ends in "eth0" is added first */
};

/* Looks up the endpoints of host namespace ns_id (borrowed): writes up to max of them into
 * ret_eps and returns how many, or -ENOENT for an unknown namespace (any negative errno is
 * passed through as the failure of setup or reset). Called on the loop thread. */
typedef int (*network_lookup_fn)(const char *ns_id, struct network_endpoint *ret_eps, size_t max,
                                 void *userdata);

struct network_options {
        const char *namespace_id;  /* host namespace of the pod (copied); also the guest's */
        bool policy_based_routing; /* passed to the guest with every NIC */
        network_lookup_fn lookup;  /* required */
        void *lookup_userdata;
};

/* A new network in not_configured, acting in env (borrowed: must outlive the network; its sys
 * and guest are read when a call runs, so they may be filled in later). Ids are copied.
 * Returns 0, -EINVAL (NULL env or lookup, over-long namespace id), -ENOMEM. */
int network_new(const struct ctrl_env *env, const struct network_options *opts,
                struct network **ret);

/* Frees n; accepts NULL; returns NULL. n must not have an operation in flight (asserted):
 * tear it down (or wait for the completion) first. Nothing is removed from the VM here. */
struct network *network_free(struct network *n);

/* setup: looks the namespace up, adds the guest namespace, then for every endpoint (eth0 first)
 * a new NIC id, the host NIC add, and the guest NIC add when the guest supports namespaces
 * (guest protocol >= NETWORK_GUEST_NS_PROTOCOL, read here and kept across a migration).
 * done(0) once every endpoint is configured; done(<0) when one failed (state invalid: teardown
 * then removes the NICs whose host leg succeeded). Synchronous failures (empty namespace id:
 * -EINVAL; lookup error) return the errno and leave the network invalid. */
#define NETWORK_GUEST_NS_PROTOCOL 2
int network_setup(struct network *n, ctrl_done_fn done, void *userdata);

/* teardown: removes every tracked NIC (guest then host; -ENOTCONN from the guest and -ENOENT
 * from the host count as already gone) and ends torn_down; done(<0) leaves the NICs that
 * failed tracked and the network invalid, so teardown can be retried. From a migrating state it
 * only drops the bindings (no host or guest call). Idempotent in not_configured and torn_down. */
int network_teardown(struct network *n, ctrl_done_fn done, void *userdata);

/* Source: serializes the network into a new envelope (*ret, free with ctrl_envelope_free) and
 * freezes it (source_migrating); again from source_migrating re-serializes. Synchronous.
 * Errors: -EBUSY not configured, -ESTALE in flight, -ENOMEM. *ret is written only on success. */
int network_save(struct network *n, ctrl_envelope **ret);

/* Destination: rehydrates a not_configured network from env_in (borrowed) into
 * destination_migrating. Checks in order (ctrl_envelope_unpack), then every NIC binding; nothing
 * is committed unless all pass. Errors: -EINVAL (no envelope, foreign type URL, unsupported
 * schema version, empty NIC id or endpoint, over-long fields), -EBADMSG (payload does not
 * decode), -EBUSY (not in not_configured), -ENOMEM. */
int network_import(struct network *n, const ctrl_envelope *env_in);

/* Destination: records the destination host namespace ns_id (copied) that network_reset will
 * swap in. Errors: -EINVAL empty or over-long id (state unchanged), -EBUSY not imported. */
int network_patch(struct network *n, const char *ns_id);

/* Binds the live VM and guest of the network's env (rollback on the source, first bind on the
 * destination) and ends configured; the saved namespace capability is kept. Idempotent in
 * configured. Errors: -EBUSY in not_configured, invalid or torn_down. Synchronous. */
int network_resume(struct network *n);

/* Destination, after resume: removes every source NIC guest-side, then adds each endpoint of the
 * patched namespace as a new NIC in the unchanged guest namespace. A no-op (done(0) at once)
 * when no namespace was patched or the swap is done. done(<0) keeps the progress and the
 * patched namespace, so reset again retries (removing its own earlier NICs on both legs). */
int network_reset(struct network *n, ctrl_done_fn done, void *userdata);

/* Inspection (tests, ferryctl): the state's spec name, the machine instance, the namespace ids,
 * the number of tracked NICs and the i-th tracked NIC's id and endpoint (NULL past the end). */
const char *network_state_name(const struct network *n);
const struct fsm *network_fsm(const struct network *n);
const char *network_namespace_id(const struct network *n);
const char *network_patched_namespace_id(const struct network *n);
size_t network_nic_count(const struct network *n);
const char *network_nic_id(const struct network *n, size_t i,
                           const struct network_endpoint **ret_ep);
