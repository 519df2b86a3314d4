// SPDX-License-Identifier: Apache-2.0

// Package tuf is fieldgate's verified source of updates.
//
// It refreshes TUF metadata with go-tuf (root → timestamp → snapshot →
// targets, a fresh Updater per cycle, started from the cached root), lists the
// verified targets with their fieldgate custom metadata, selects the target a
// device should get, and streams a target into a content-addressed blob store
// while checking its exact length and every listed hash.
//
// go-tuf is used for metadata only: its DownloadTarget holds a whole target in
// memory, so targets go through Client.Fetch, which uses constant memory
// whatever the target size, resumes interrupted downloads with HTTP Range and
// never downloads a valid blob twice.
//
// # Delegations
//
// Delegated roles are found by one resolver (delegation.go), the search of
// TUF spec 5.6.7: pre-order, depth first, in the order each delegator lists
// its roles, following only delegations whose paths or path hash prefixes
// match, ending at a matching terminating delegation, at most 32 roles per
// lookup. A role is fetched only when the search reaches it, and verified by
// go-tuf's trusted metadata set (the keys and threshold of the delegator
// that led to it in this search, version and hashes from snapshot, expiry):
// a role delegated by two roles is verified against each. DownloadTargets
// looks names up with it. Refresh lists the targets of delegated roles too:
// target names do not tell which devices a target is for (the hardware ids
// are in its custom metadata), so it walks every role that can be trusted
// for some name, lazily and in the same order, skipping roles whose paths
// cannot match under their delegators' or that a terminating delegation
// before them covers, and takes each name from the role the search trusts
// for it. A role's claim outside its delegated paths, a role that fails
// verification and a role not fetched are listed in Snapshot.Rejected with
// the reason; a target whose trusted role failed is never taken from a
// lower-priority role.
//
// # Offline bundles
//
// An offline bundle (fieldgate-repo export) holds the repository's own
// published layout, so it is read through file:// URLs with exactly the
// checks of an online refresh: BundleURLs checks the layout, WithSource
// returns a Client sharing the cache, time floor and blob store, and
// ImportBundle refreshes from the bundle and stages the targets it carries.
//
// # Time
//
// TUF's freeze protection depends on the clock. The Client keeps a persisted
// time floor: the newest trusted time it has seen (the build time, the
// reference time of every successful refresh and, when configured, times
// derived from signed expiry dates). While the system clock is below the floor,
// Refresh refuses to run and returns ErrClockUnsynced; the reference time passed
// to go-tuf is the system time only once it is at or above the floor. Because a
// refresh succeeds only if every role is unexpired at the reference time, the
// floor never moves past the earliest expiry the repository signed, so a clock
// that briefly ran ahead cannot lock the gateway out for longer than that.
//
// # Custom metadata
//
// Each target carries, in its TUF "custom" field, an object under the key
// "fieldgate" (see Meta for the fields). Meta is parsed strictly: unknown keys,
// wrong types, out-of-range values and oversized fields make that one target
// unusable (Target.MetaErr says why) while the others keep working.
//
// # Rollouts
//
// A target's metadata may carry a staged rollout (Rollout: percent,
// not_before, sites, gateways). Each gateway computes its cohort from its
// site and id (Cohort, uniform over 0..99 and the same for every target) and
// takes the target only when Rollout.Admits: cohort below percent, site or
// id listed when lists are given, not_before passed. Widening is publishing
// the same target with a higher percent; percent 0 halts. Because Meta is
// parsed strictly, a gateway older than the "rollout" key refuses the whole
// target (unknown key): a staged rollout fails closed on old gateways, which
// never take it, not even at 100 %, until they are updated (or the target
// is published again without a rollout).
//
// # Concurrency
//
// A Client is safe for concurrent use: Refresh calls are serialized, and Fetch
// may run concurrently for different targets (Fetches of the same blob are
// serialized). Each Refresh builds its own go-tuf Updater, which is never
// shared.
package tuf
