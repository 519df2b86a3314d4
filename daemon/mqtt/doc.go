// SPDX-License-Identifier: Apache-2.0

// Package mqtt is fieldgate's link to the central broker: the MQTT session that
// drains the durable outbox, the topic tree, signed command intake, an
// embedded broker for stand-alone sites and the demo, and small client helpers
// (Watch, Publish) for tools and tests.
//
// It is the only package that imports github.com/eclipse/paho.mqtt.golang and
// github.com/mochi-mqtt/server/v2, so every quirk of those libraries stays here.
//
// Delivery model: the daemon never publishes directly. It appends reports to an
// Outbox (its store); a Session connects with backoff and jitter, publishes an
// online status over the last will, republishes the retained state, then drains
// the outbox in sequence order with QoS 1 and acknowledges a message to the
// Outbox only after the broker's PUBACK. Every new connection restarts from the
// first unacknowledged message, so delivery is at least once and in order;
// consumers drop duplicates by sequence number. A broker outage therefore
// never loses a report and never blocks the daemon.
//
// The topic tree and every payload are documented in docs/mqtt.md.
package mqtt
