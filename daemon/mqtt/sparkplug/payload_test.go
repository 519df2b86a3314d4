// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestMarshalWire pins the wire format against bytes worked out by hand
// from sparkplug_b.proto.
func TestMarshalWire(t *testing.T) {
	p := Payload{Timestamp: 1, Seq: 0, HasSeq: true, Metrics: []Metric{
		{Name: "a", Alias: 1, HasAlias: true, Type: Boolean, Bool: true},
		{Alias: 2, HasAlias: true, Type: DateTime, Null: true},
		{Alias: 3, HasAlias: true, Type: Int32, Int: -1},
	}}
	want := "0801" + // timestamp 1
		"1209" + "0a0161" + "1001" + "200b" + "7001" + // name "a", alias 1, Boolean, boolean_value true
		"1206" + "1002" + "200d" + "3801" + // alias 2, DateTime, is_null
		"120a" + "1003" + "2003" + "50ffffffff0f" + // alias 3, Int32, int_value (uint32) 0xffffffff
		"1800" // seq 0
	if got := hex.EncodeToString(p.Marshal()); got != want {
		t.Errorf("Marshal() = %s, want %s", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	p := Payload{Timestamp: 1700000000000, Seq: 255, HasSeq: true, Metrics: []Metric{
		{Name: MetricCommand, Alias: 8, HasAlias: true, Timestamp: 5, Type: String, Str: `{"id":"x"}`},
		{Name: MetricBdSeq, Type: Int64, Int: 255},
		{Alias: 9, HasAlias: true, Type: DateTime, Int: 1700000000000},
		{Alias: 10, HasAlias: true, Type: Int32, Int: 100},
	}}
	got, err := Unmarshal(p.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("Unmarshal(Marshal(p)) (-want +got):\n%s", diff)
	}
}

// TestUnmarshalSkipsAndBounds: fields fieldgate does not use are skipped
// (a Tahu host sends properties and metadata); oversized, overlong and
// malformed payloads are errors.
func TestUnmarshalSkipsAndBounds(t *testing.T) {
	m := Metric{Name: MetricRebirth, Type: Boolean, Bool: true}.append(nil)
	m = protowire.AppendTag(m, 9, protowire.BytesType) // properties
	m = protowire.AppendBytes(m, []byte{0x0a, 0x01, 'k'})
	m = protowire.AppendTag(m, 13, protowire.Fixed64Type) // double_value
	m = protowire.AppendFixed64(m, 0)
	b := protowire.AppendTag(nil, fPayloadMetrics, protowire.BytesType)
	b = protowire.AppendBytes(b, m)
	b = protowire.AppendTag(b, 4, protowire.BytesType) // uuid
	b = protowire.AppendString(b, "u")
	p, err := Unmarshal(b)
	if err != nil || len(p.Metrics) != 1 || p.Metrics[0].Name != MetricRebirth || !p.Metrics[0].Bool {
		t.Fatalf("Unmarshal = %+v, %v; want the Rebirth metric", p, err)
	}

	many := Payload{}
	for range MaxMetrics + 1 {
		many.Metrics = append(many.Metrics, Metric{Type: Boolean})
	}
	for name, b := range map[string][]byte{
		"too large":        make([]byte, MaxPayloadSize+1),
		"too many metrics": many.Marshal(),
		"truncated":        Payload{Metrics: []Metric{{Name: "x", Type: String, Str: "abc"}}}.Marshal()[:8],
		"bad wire type":    {0x0a, 0x00}, // field 1 (timestamp) as bytes
		"bad metric type":  {0x12, 0x02, 0x0d, 0x00},
		"zero field":       {0x00},
	} {
		if _, err := Unmarshal(b); !errors.Is(err, ErrPayload) {
			t.Errorf("Unmarshal(%s) = %v, want ErrPayload", name, err)
		}
	}
}

// FuzzUnmarshal: the decoder never panics, and what it accepts encodes to
// bytes it decodes again to the same payload.
func FuzzUnmarshal(f *testing.F) {
	f.Add(Payload{Timestamp: 1, Metrics: []Metric{{Name: MetricRebirth, Type: Boolean, Bool: true}}}.Marshal())
	f.Add(Payload{Timestamp: 1, Seq: 3, HasSeq: true, Metrics: []Metric{{Alias: 8, HasAlias: true, Type: String, Str: `{"id":"c"}`}}}.Marshal())
	f.Add([]byte{0x12, 0x04, 0x4a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Unmarshal(b)
		if err != nil {
			return
		}
		if len(p.Metrics) > MaxMetrics {
			t.Fatalf("%d metrics accepted", len(p.Metrics))
		}
		enc := p.Marshal()
		if len(enc) > MaxPayloadSize {
			return // the encoding names every metric's type: it may be a little longer
		}
		q, err := Unmarshal(enc)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(%+v)): %v", p, err)
		}
		if !bytes.Equal(q.Marshal(), enc) {
			t.Fatalf("encoding not stable: %x then %x", enc, q.Marshal())
		}
	})
}

// TestUnmarshalTahu decodes NCMD payloads that Eclipse Tahu's
// sparkplug-payload 1.0.3 encoded (testdata/fuzz/FuzzUnmarshal/tahu-*,
// written by its encodePayload): a rebirth request, and a command with a
// property set, a Double and a null Int64 beside it.
func TestUnmarshalTahu(t *testing.T) {
	read := func(name string) []byte {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzUnmarshal", name))
		if err != nil {
			t.Fatal(err)
		}
		lit := strings.TrimSuffix(strings.TrimPrefix(strings.Split(string(raw), "\n")[1], "[]byte("), ")")
		b, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return []byte(b)
	}
	p, err := Unmarshal(read("tahu-rebirth"))
	if err != nil || len(p.Metrics) != 1 || p.Metrics[0].Name != MetricRebirth || p.Metrics[0].Type != Boolean || !p.Metrics[0].Bool || p.Timestamp != 1700000000000 {
		t.Errorf("tahu-rebirth = %+v, %v; want Rebirth = true at 1700000000000", p, err)
	}
	p, err = Unmarshal(read("tahu-command-properties"))
	if err != nil || len(p.Metrics) != 3 || !p.HasSeq || p.Seq != 4 {
		t.Fatalf("tahu-command-properties = %+v, %v; want 3 metrics and seq 4", p, err)
	}
	if m := p.Metrics[0]; m.Name != MetricCommand || m.Alias != 8 || m.Type != String || m.Str != `{"id":"c-1"}` {
		t.Errorf("command metric = %+v", m)
	}
	if m := p.Metrics[2]; m.Name != "n" || m.Type != Int64 || !m.Null {
		t.Errorf("null metric = %+v, want n Int64 null", m)
	}
}
