// SPDX-License-Identifier: Apache-2.0

// Package api is fieldgate's wire schema: the JSON documents the daemon
// publishes over MQTT (gateway status, devices, jobs, events; see
// docs/mqtt.md) and serves on the local control socket (the same
// documents, gathered in Status, and the windows). Central dashboards and
// fieldgatectl read them, so a field's JSON name and its omitempty are
// part of the contract: types_test.go pins them.
//
// The package holds data only: no I/O, no behaviour. The control socket
// that serves these documents is package daemon/control.
package api
