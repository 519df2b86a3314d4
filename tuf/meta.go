// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CustomKey is the key of fieldgate's object inside a target's TUF custom field.
const CustomKey = "fieldgate"

// Limits of the custom metadata. They bound what a (possibly compromised)
// delegated signer can make the gateway store, log and publish over MQTT.
const (
	maxCustomBytes  = 64 << 10
	maxHardwareIDs  = 64
	maxAdvisories   = 256
	maxIDLen        = 128
	maxNotesLen     = 4096
	maxProtocolLen  = 64
	maxVersionLen   = 64
	maxVersionParts = 8
)

// Severities lists the accepted values of Meta.Severity ("" means unspecified).
var Severities = []string{"none", "low", "medium", "high", "critical"}

// Meta is fieldgate's custom metadata of a target, signed with the targets
// (or a delegated) role. In JSON it is the object under the "fieldgate" key of
// the TUF custom field:
//
//	{"fieldgate": {
//	  "hardware": ["acme-io16-rev3"],      // required: hardware ids the image is built for
//	  "version": "2.4.1",                  // required: see CompareVersions
//	  "security_counter": 7,               // anti-rollback counter; a device refuses lower ones
//	  "protocol": "xmodem",                // transfer protocol family (optional)
//	  "severity": "high",                  // none|low|medium|high|critical (optional)
//	  "advisories": ["CVE-2026-1234"],     // advisories fixed (optional)
//	  "requires_reboot": true,             // activation reboots the device (optional)
//	  "notes": "Fixes Modbus stack overflow",
//	  "rollout": {"percent": 10}           // staged rollout (optional): see Rollout
//	}}
//
// Unknown keys are an error: a new field that older gateways must not ignore
// needs a new key next to "fieldgate", not a silent addition. ("rollout" is
// such an addition on purpose: a gateway that predates it refuses the whole
// target, so a staged rollout fails closed on old gateways.)
type Meta struct {
	Hardware        []string `json:"hardware"`
	Version         string   `json:"version"`
	SecurityCounter uint64   `json:"security_counter"`
	Protocol        string   `json:"protocol,omitempty"`
	Severity        string   `json:"severity,omitempty"`
	Advisories      []string `json:"advisories,omitempty"`
	RequiresReboot  bool     `json:"requires_reboot,omitempty"`
	Notes           string   `json:"notes,omitempty"`
	Rollout         *Rollout `json:"rollout,omitempty"`
}

// ParseCustom parses a target's TUF custom field and returns the validated
// fieldgate metadata. Other keys next to "fieldgate" are ignored.
func ParseCustom(custom []byte) (Meta, error) {
	if len(bytes.TrimSpace(custom)) == 0 {
		return Meta{}, errors.New("no custom metadata (want a \"fieldgate\" object)")
	}
	if len(custom) > maxCustomBytes {
		return Meta{}, fmt.Errorf("custom metadata is %d bytes, limit %d", len(custom), maxCustomBytes)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(custom, &outer); err != nil {
		return Meta{}, fmt.Errorf("custom metadata: %w", err)
	}
	raw, ok := outer[CustomKey]
	if !ok {
		return Meta{}, fmt.Errorf("custom metadata has no %q object", CustomKey)
	}
	if err := checkDuplicateKeys(raw); err != nil {
		return Meta{}, fmt.Errorf("custom metadata %q: %w", CustomKey, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Meta
	if err := dec.Decode(&m); err != nil {
		return Meta{}, fmt.Errorf("custom metadata %q: %w", CustomKey, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Meta{}, fmt.Errorf("custom metadata %q: trailing data", CustomKey)
	}
	if err := m.Validate(); err != nil {
		return Meta{}, fmt.Errorf("custom metadata %q: %w", CustomKey, err)
	}
	return m, nil
}

// checkDuplicateKeys rejects an object that names a key twice: encoding/json
// keeps the last one, other parsers the first, so a signer could show a
// reviewer one value and the gateway another.
func checkDuplicateKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// MarshalCustom returns the TUF custom field for m: {"fieldgate": m}. It
// validates m first.
func MarshalCustom(m Meta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]Meta{CustomKey: m})
}

// Validate reports the first problem of m: missing hardware ids or version,
// values out of range, control characters, oversized fields.
func (m Meta) Validate() error {
	if len(m.Hardware) == 0 {
		return errors.New("hardware: at least one hardware id is required")
	}
	if len(m.Hardware) > maxHardwareIDs {
		return fmt.Errorf("hardware: %d ids, limit %d", len(m.Hardware), maxHardwareIDs)
	}
	for i, h := range m.Hardware {
		if err := checkID(h); err != nil {
			return fmt.Errorf("hardware[%d]: %w", i, err)
		}
	}
	if err := ValidVersion(m.Version); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if len(m.Protocol) > maxProtocolLen {
		return fmt.Errorf("protocol: %d bytes, limit %d", len(m.Protocol), maxProtocolLen)
	}
	for _, r := range m.Protocol {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("protocol %q: only a-z, 0-9, '-' and '_' are allowed", m.Protocol)
		}
	}
	if m.Severity != "" && !contains(Severities, m.Severity) {
		return fmt.Errorf("severity %q: want one of %s", m.Severity, strings.Join(Severities, ", "))
	}
	if len(m.Advisories) > maxAdvisories {
		return fmt.Errorf("advisories: %d entries, limit %d", len(m.Advisories), maxAdvisories)
	}
	for i, a := range m.Advisories {
		if err := checkID(a); err != nil {
			return fmt.Errorf("advisories[%d]: %w", i, err)
		}
	}
	if len(m.Notes) > maxNotesLen {
		return fmt.Errorf("notes: %d bytes, limit %d", len(m.Notes), maxNotesLen)
	}
	if !utf8.ValidString(m.Notes) {
		return errors.New("notes: not valid UTF-8")
	}
	for _, r := range m.Notes {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return fmt.Errorf("notes: control character %U", r)
		}
	}
	if m.Rollout != nil {
		if err := m.Rollout.Validate(); err != nil {
			return fmt.Errorf("rollout: %w", err)
		}
	}
	return nil
}

// checkID accepts a short printable identifier without spaces.
func checkID(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > maxIDLen {
		return fmt.Errorf("%d bytes, limit %d", len(s), maxIDLen)
	}
	for _, r := range s {
		if r <= ' ' || r > '~' || r == '"' || r == '\\' {
			return fmt.Errorf("%q: only printable ASCII without spaces, quotes or backslashes is allowed", s)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
