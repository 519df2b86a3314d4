// SPDX-License-Identifier: Apache-2.0

// Package daemon is fieldgated's update cycle: it keeps the inventory of
// field devices, refreshes the verified list of targets, turns a newer
// target for a device into a job, and drives each job through one explicit
// state machine (job.go) inside the device's maintenance window, writing
// every transition ahead of its side effects into the store together with
// its audit record and its reports.
//
// It declares the small interfaces it consumes (Source, Indicator) and
// builds nothing itself: cmd/fieldgated wires the concrete parts.
package daemon
