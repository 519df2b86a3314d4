// SPDX-License-Identifier: Apache-2.0

// Package mqtttest provides test helpers for the MQTT session and for code
// that talks MQTT: Outbox, an in-memory mqtt.Outbox, and Mosquitto, a real
// mosquitto broker that a test starts on loopback and stops by PID, for the
// TestInterop... tests.
package mqtttest
