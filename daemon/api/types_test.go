// SPDX-License-Identifier: Apache-2.0

package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The documents below are the wire format: MQTT subscribers and
// fieldgatectl decode them by these names. A rename, a retagged field or a
// lost omitempty shows here as a failure; if a change to the wire format is
// meant, change docs/mqtt.md with it.

var (
	t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 = t0.Add(time.Hour)
)

// fullStatus sets every field of every document in a Status, so that each
// JSON name appears in wantFull (TestFullSampleIsFull keeps it so).
func fullStatus() Status {
	return Status{
		Gateway: Gateway{
			Online:    true,
			ID:        "gw-1",
			Site:      "plant-a",
			Cohort:    42,
			Version:   "1.2.3",
			Time:      t0,
			TSMillis:  t0.UnixMilli(),
			Heartbeat: 3600,
			State:     "degraded",
			Healthy:   true,
			Health: []Condition{{
				Name: "device-unreachable", Severity: "error", Subject: "plc-1",
				Message: "no answer", Since: t0,
			}},
			MetadataExpires: &t1,
			LastRefresh:     &t0,
			BrokerConnected: true,
			OutboxDepth:     3,
			LEDs:            map[string]string{"status": "blink-fast"},
			Display:         "state",
		},
		Devices: []Device{{
			ID: "plc-1", Protocol: "tftp", Group: "line-1", HardwareID: "acme-plc-r2",
			Model: "PLC 200", Serial: "SN42", Version: "2.4.0", ImageSHA256: "aa11",
			KnownGood: "2.3.9", Floor: 7, State: "transfer", Job: "j-1",
			Recovery: "verify failed",
			Held: []Hold{{
				Target: "plc/2.4.1.bin", Version: "2.4.1", SHA256: "bb22", Job: "j-0",
				Reason: "rolled back", Since: t0,
			}},
			Rollout:   "plc/2.5.0.bin (2.5.0): rollout at 10 %, this gateway's cohort is 42",
			Progress:  &Progress{Done: 512, Total: 1024, Started: &t0, Rate: 128},
			LastError: "timeout",
			Updated:   t0,
			TSMillis:  t0.UnixMilli(),
		}},
		Jobs: []Job{{
			ID: "j-1", Target: "plc/2.4.1.bin", Version: "2.4.1", SHA256: "bb22",
			Length: 1024, Severity: "high", Group: "line-1", Window: "nightly",
			Policy: "dual",
			Approvals: []Approval{{
				Kind: "local", Actor: "console uid=1000", At: t0, Expires: t1,
			}},
			Phase: "running", Reason: "operator", Waiting: "window nightly",
			Created: t0, Updated: t1, TSMillis: t1.UnixMilli(),
			Steps: []Step{{
				Device: "plc-1", Phase: "transfer", Blocked: "interlock",
				Attempts: 1, From: "2.4.0",
				Progress:  &Progress{Done: 512, Total: 1024, Started: &t0, Rate: 128},
				SoakUntil: &t1,
				Error:     "retrying",
			}},
		}},
	}
}

const wantFull = `{
  "gateway": {
    "online": true,
    "gateway": "gw-1",
    "site": "plant-a",
    "cohort": 42,
    "version": "1.2.3",
    "time": "2030-01-02T03:04:05Z",
    "ts_ms": 1893553445000,
    "heartbeat": 3600,
    "state": "degraded",
    "healthy": true,
    "health": [
      {
        "name": "device-unreachable",
        "severity": "error",
        "subject": "plc-1",
        "message": "no answer",
        "since": "2030-01-02T03:04:05Z"
      }
    ],
    "metadata_expires": "2030-01-02T04:04:05Z",
    "last_refresh": "2030-01-02T03:04:05Z",
    "broker_connected": true,
    "outbox_depth": 3,
    "leds": {
      "status": "blink-fast"
    },
    "display": "state"
  },
  "devices": [
    {
      "id": "plc-1",
      "protocol": "tftp",
      "group": "line-1",
      "hardware_id": "acme-plc-r2",
      "model": "PLC 200",
      "serial": "SN42",
      "version": "2.4.0",
      "image_sha256": "aa11",
      "known_good": "2.3.9",
      "security_floor": 7,
      "state": "transfer",
      "job": "j-1",
      "recovery": "verify failed",
      "held": [
        {
          "target": "plc/2.4.1.bin",
          "version": "2.4.1",
          "sha256": "bb22",
          "job": "j-0",
          "reason": "rolled back",
          "since": "2030-01-02T03:04:05Z"
        }
      ],
      "rollout": "plc/2.5.0.bin (2.5.0): rollout at 10 %, this gateway's cohort is 42",
      "progress": {
        "done": 512,
        "total": 1024,
        "started": "2030-01-02T03:04:05Z",
        "rate": 128
      },
      "last_error": "timeout",
      "updated": "2030-01-02T03:04:05Z",
      "ts_ms": 1893553445000
    }
  ],
  "jobs": [
    {
      "id": "j-1",
      "target": "plc/2.4.1.bin",
      "version": "2.4.1",
      "sha256": "bb22",
      "length": 1024,
      "severity": "high",
      "group": "line-1",
      "window": "nightly",
      "approval_policy": "dual",
      "approvals": [
        {
          "kind": "local",
          "actor": "console uid=1000",
          "at": "2030-01-02T03:04:05Z",
          "expires": "2030-01-02T04:04:05Z"
        }
      ],
      "phase": "running",
      "reason": "operator",
      "waiting": "window nightly",
      "created": "2030-01-02T03:04:05Z",
      "updated": "2030-01-02T04:04:05Z",
      "ts_ms": 1893557045000,
      "devices": [
        {
          "device": "plc-1",
          "phase": "transfer",
          "blocked": "interlock",
          "attempts": 1,
          "from_version": "2.4.0",
          "progress": {
            "done": 512,
            "total": 1024,
            "started": "2030-01-02T03:04:05Z",
            "rate": 128
          },
          "soak_until": "2030-01-02T04:04:05Z",
          "error": "retrying"
        }
      ]
    }
  ]
}`

// minimalStatus leaves every optional field empty: wantMinimal pins which
// fields are omitted and which are always present.
func minimalStatus() Status {
	return Status{
		Gateway: Gateway{ID: "gw-1", Time: t0, State: "running"},
		Devices: []Device{{ID: "plc-1", State: "idle", Updated: t0}},
		Jobs:    []Job{{ID: "j-1", Steps: []Step{{Device: "plc-1"}}}},
	}
}

const wantMinimal = `{
  "gateway": {
    "online": false,
    "gateway": "gw-1",
    "site": "",
    "cohort": 0,
    "version": "",
    "time": "2030-01-02T03:04:05Z",
    "ts_ms": 0,
    "state": "running",
    "healthy": false,
    "health": null,
    "broker_connected": false,
    "outbox_depth": 0
  },
  "devices": [
    {
      "id": "plc-1",
      "protocol": "",
      "group": "",
      "hardware_id": "",
      "version": "",
      "security_floor": 0,
      "state": "idle",
      "updated": "2030-01-02T03:04:05Z",
      "ts_ms": 0
    }
  ],
  "jobs": [
    {
      "id": "j-1",
      "target": "",
      "version": "",
      "sha256": "",
      "length": 0,
      "group": "",
      "window": "",
      "approval_policy": "",
      "phase": "",
      "created": "0001-01-01T00:00:00Z",
      "updated": "0001-01-01T00:00:00Z",
      "ts_ms": 0,
      "devices": [
        {
          "device": "plc-1",
          "phase": "",
          "attempts": 0
        }
      ]
    }
  ]
}`

func fullEvent() Event {
	return Event{
		Seq: 9, Time: t0, TSMillis: t0.UnixMilli(), Type: "step-committed", Job: "j-1", Device: "plc-1",
		Actor: "remote ops", Detail: map[string]any{"attempts": 1.0, "to": "2.4.1"},
		Hash: "cc33",
	}
}

const wantEvent = `{
  "seq": 9,
  "time": "2030-01-02T03:04:05Z",
  "ts_ms": 1893553445000,
  "type": "step-committed",
  "job": "j-1",
  "device": "plc-1",
  "actor": "remote ops",
  "detail": {
    "attempts": 1,
    "to": "2.4.1"
  },
  "hash": "cc33"
}`

func fullCommandResult() CommandResult {
	return CommandResult{ID: "c-1", Action: "approve", Status: "rejected", Reason: "expired: too late",
		Actor: "key ops-1", Time: t0, TSMillis: t0.UnixMilli()}
}

const wantCommandResult = `{"id":"c-1","action":"approve","status":"rejected","reason":"expired: too late",` +
	`"actor":"key ops-1","time":"2030-01-02T03:04:05Z","ts_ms":1893553445000}`

func fullCommandRequest() CommandRequest {
	return CommandRequest{ID: "c-1", Action: "approve", Gateway: "fieldgate/v1/demo/gw1", Expires: "2030-01-02T04:04:05Z",
		Args: CommandArgs{Job: "j-1", SHA256: "bb22", Devices: []string{"plc-1"}, Window: "2030-01-02T03:04:05Z/2030-01-02T04:04:05Z",
			Device: "plc-1", Advisory: "ICSA-24-011-01", CVE: "CVE-2024-0001", Verdict: "mitigated", Justification: "component_not_present",
			Until: "2030-06-30", Control: "port 502 closed", Note: "n"},
		Key: "ops-1", Sig: "c2ln"}
}

const wantCommandRequest = `{"id":"c-1","action":"approve","gateway":"fieldgate/v1/demo/gw1","expires":"2030-01-02T04:04:05Z",` +
	`"args":{"job":"j-1","sha256":"bb22","devices":["plc-1"],"window":"2030-01-02T03:04:05Z/2030-01-02T04:04:05Z",` +
	`"device":"plc-1","advisory":"ICSA-24-011-01","cve":"CVE-2024-0001","verdict":"mitigated","justification":"component_not_present",` +
	`"until":"2030-06-30","control":"port 502 closed","note":"n"},` +
	`"key":"ops-1","sig":"c2ln"}`

func fullCompacted() OutboxCompacted {
	return OutboxCompacted{Type: EventOutboxCompacted, Dropped: 3, FirstSeq: 7, LastSeq: 9, Reason: "outbox full"}
}

const wantCompacted = `{"type":"outbox-compacted","dropped":3,"first_seq":7,"last_seq":9,"reason":"outbox full"}`

func fullWindow() WindowInfo {
	return WindowInfo{
		Group: "line-1", Window: "nightly", TimeZone: "Europe/Berlin", Open: true,
		Closes: &t1, Next: []time.Time{t0},
	}
}

const wantWindow = `{
  "group": "line-1",
  "window": "nightly",
  "timezone": "Europe/Berlin",
  "open": true,
  "closes": "2030-01-02T04:04:05Z",
  "next": [
    "2030-01-02T03:04:05Z"
  ]
}`

// TestWireFormat pins the JSON bytes of the documents as json.Marshal
// writes them (the daemon publishes and serves exactly that); the wanted
// documents are written indented and compacted for the comparison.
func TestWireFormat(t *testing.T) {
	tests := []struct {
		name string
		doc  any
		want string
	}{
		{"full status", fullStatus(), wantFull},
		{"minimal status", minimalStatus(), wantMinimal},
		{"zero status", Status{}, `{"gateway":{"online":false,"gateway":"","site":"","cohort":0,"version":"","time":"0001-01-01T00:00:00Z","ts_ms":0,"state":"","healthy":false,"health":null,"broker_connected":false,"outbox_depth":0},"devices":null,"jobs":null}`},
		{"event", fullEvent(), wantEvent},
		{"minimal event", Event{Seq: 1, Time: t0, Type: "started", Hash: "dd44"}, `{"seq":1,"time":"2030-01-02T03:04:05Z","ts_ms":0,"type":"started","hash":"dd44"}`},
		{"window", fullWindow(), wantWindow},
		{"command result", fullCommandResult(), wantCommandResult},
		{"minimal command result", CommandResult{ID: "c-1", Status: "rejected", Time: t0}, `{"id":"c-1","status":"rejected","time":"2030-01-02T03:04:05Z","ts_ms":0}`},
		{"command request", fullCommandRequest(), wantCommandRequest},
		{"minimal command request", CommandRequest{ID: "c-1", Action: "refresh"}, `{"id":"c-1","action":"refresh","gateway":"","expires":"","args":{},"key":"","sig":""}`},
		{"outbox compacted", fullCompacted(), wantCompacted},
		{"outbox compacted without seqs", OutboxCompacted{Type: EventOutboxCompacted, Dropped: 1, Reason: "r"}, `{"type":"outbox-compacted","dropped":1,"reason":"r"}`},
		{"progress just begun", Progress{Total: 1024}, `{"done":0,"total":1024}`},
		{"closed window", WindowInfo{Group: "line-1", Window: "nightly", TimeZone: "UTC"}, `{"group":"line-1","window":"nightly","timezone":"UTC","open":false,"next":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			if err := json.Compact(&want, []byte(tt.want)); err != nil {
				t.Fatalf("want is not JSON: %v", err)
			}
			got, err := json.Marshal(tt.doc)
			if err != nil {
				t.Fatalf("json.Marshal(%s) = %v", tt.name, err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				var indented bytes.Buffer
				json.Indent(&indented, got, "", "  ")
				t.Errorf("json.Marshal(%s) =\n%s\nwant\n%s", tt.name, indented.String(), tt.want)
			}
		})
	}
}

// TestFullSampleIsFull: every field reachable from the full samples is set,
// so a field added to a document without adding it to the pinned JSON fails
// here.
func TestFullSampleIsFull(t *testing.T) {
	for name, v := range map[string]any{"Status": fullStatus(), "Event": fullEvent(), "WindowInfo": fullWindow(),
		"CommandResult": fullCommandResult(), "CommandRequest": fullCommandRequest(), "OutboxCompacted": fullCompacted()} {
		for _, path := range zeroFields(reflect.ValueOf(v), name) {
			t.Errorf("%s is zero in the full sample: set it, so that its JSON name is pinned", path)
		}
	}
}

// zeroFields lists the zero-valued struct fields below v, and empty slices
// and maps, by their Go path.
func zeroFields(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return []string{path}
		}
		return zeroFields(v.Elem(), path)
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			return []string{path}
		}
		if v.Kind() == reflect.Map {
			return nil
		}
		var out []string
		for i := range v.Len() {
			out = append(out, zeroFields(v.Index(i), path+"[]")...)
		}
		return out
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			if v.IsZero() {
				return []string{path}
			}
			return nil
		}
		var out []string
		for i := range v.NumField() {
			out = append(out, zeroFields(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	default:
		if v.IsZero() {
			return []string{path}
		}
		return nil
	}
}
