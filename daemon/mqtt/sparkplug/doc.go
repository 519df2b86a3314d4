// SPDX-License-Identifier: Apache-2.0

// Package sparkplug makes the gateway a Sparkplug B edge node beside its
// JSON topic tree: group = site (or area), edge node = gateway, device =
// field device. It encodes the births and data of the metrics listed in
// docs/mqtt.md from the daemon's documents (the Views it is handed), keeps
// bdSeq across restarts and seq over every message, assigns aliases in the
// births and sends only changed metrics by alias in DATA, holds births
// back until the primary host's STATE says online, rebirths on request,
// and decodes the NCMD and DCMD payloads hosts send (bounded: they are
// untrusted). A command written to Update Control/Command is handed to
// the daemon's command handler unchanged, so a Sparkplug host needs the
// same signed command documents as the JSON tree.
//
// The node has its own MQTT connection (its own client id) to the
// gateway's broker, because a connection has one will and the JSON tree's
// is its offline status; the connection itself is daemon/mqtt's Conn, so
// paho stays there. Payloads are hand-encoded with protowire, which
// fieldgated links already.
package sparkplug
