// SPDX-License-Identifier: Apache-2.0

// Package store is fieldgated's durable state in one bbolt file: device
// records (installed version, known-good state, anti-rollback floor), jobs
// and their per-device phases, the report outbox with the latest retained
// message per topic, and the hash-chained audit log. Every write is one
// fsynced bbolt transaction, so the state on disk after a kill -9 is always
// one the daemon wrote on purpose. It is the only importer of bbolt.
//
// A Store is safe for concurrent use.
package store
