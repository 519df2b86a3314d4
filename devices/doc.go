// SPDX-License-Identifier: Apache-2.0

// Package devices is the contract between the daemon and the field devices
// behind the gateway: what a device can do (Capabilities), what it says about
// itself (Identity), and the steps of an update (Backup, Transfer, Activate,
// Health, Commit, Revert). It does no I/O itself; one package per protocol
// family below it implements the contract, and the daemon adapts its plan to
// each device's capabilities.
//
// The daemon, not the driver, decides what happens: a driver performs one
// step when asked and reports errors classified as transient (worth a retry)
// or permanent (see Error).
package devices
