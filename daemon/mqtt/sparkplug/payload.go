// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is a metric's Sparkplug B data type (DataType in
// sparkplug_b.proto). Only the types this node sends are named.
type DataType uint32

// The data types of fieldgate's metrics.
const (
	Int32    DataType = 3
	Int64    DataType = 4
	UInt32   DataType = 7
	UInt64   DataType = 8
	Boolean  DataType = 11
	String   DataType = 12
	DateTime DataType = 13 // milliseconds since the Unix epoch, UTC
	Text     DataType = 14
)

// Metric is one metric of a payload: a name (births), an alias (births
// and, instead of the name, data), a type and a value. Int holds every
// integer type and DateTime; Bool and Str the others.
type Metric struct {
	Name      string
	Alias     uint64
	HasAlias  bool
	Timestamp uint64 // ms since the epoch; 0: none
	Type      DataType
	Null      bool
	Int       int64
	Bool      bool
	Str       string
	_         [0]func() // not comparable: no equality code in the binary
}

// Payload is a Sparkplug B payload (Payload in sparkplug_b.proto), limited
// to the fields fieldgate uses: timestamp, metrics and seq. NDEATH carries
// no seq.
type Payload struct {
	Timestamp uint64
	Metrics   []Metric
	Seq       uint64
	HasSeq    bool
}

// Field numbers of sparkplug_b.proto.
const (
	fPayloadTimestamp = 1
	fPayloadMetrics   = 2
	fPayloadSeq       = 3

	fMetricName      = 1
	fMetricAlias     = 2
	fMetricTimestamp = 3
	fMetricDatatype  = 4
	fMetricIsNull    = 7
	fMetricInt       = 10 // uint32
	fMetricLong      = 11 // uint64
	fMetricBool      = 14
	fMetricString    = 15
)

// Marshal encodes p in the protobuf wire format.
func (p Payload) Marshal() []byte {
	b := protowire.AppendTag(nil, fPayloadTimestamp, protowire.VarintType)
	b = protowire.AppendVarint(b, p.Timestamp)
	var mb []byte
	for _, m := range p.Metrics {
		mb = m.append(mb[:0])
		b = protowire.AppendTag(b, fPayloadMetrics, protowire.BytesType)
		b = protowire.AppendBytes(b, mb)
	}
	if p.HasSeq {
		b = protowire.AppendTag(b, fPayloadSeq, protowire.VarintType)
		b = protowire.AppendVarint(b, p.Seq)
	}
	return b
}

func (m Metric) append(b []byte) []byte {
	if m.Name != "" {
		b = protowire.AppendTag(b, fMetricName, protowire.BytesType)
		b = protowire.AppendString(b, m.Name)
	}
	if m.HasAlias {
		b = protowire.AppendTag(b, fMetricAlias, protowire.VarintType)
		b = protowire.AppendVarint(b, m.Alias)
	}
	if m.Timestamp != 0 {
		b = protowire.AppendTag(b, fMetricTimestamp, protowire.VarintType)
		b = protowire.AppendVarint(b, m.Timestamp)
	}
	b = protowire.AppendTag(b, fMetricDatatype, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(m.Type))
	if m.Null {
		b = protowire.AppendTag(b, fMetricIsNull, protowire.VarintType)
		return protowire.AppendVarint(b, 1)
	}
	switch m.Type {
	case Boolean:
		b = protowire.AppendTag(b, fMetricBool, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(m.Bool))
	case String, Text:
		b = protowire.AppendTag(b, fMetricString, protowire.BytesType)
		b = protowire.AppendString(b, m.Str)
	case Int32:
		b = protowire.AppendTag(b, fMetricInt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(uint32(m.Int)))
	default: // Int64, UInt64, DateTime
		b = protowire.AppendTag(b, fMetricLong, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.Int))
	}
	return b
}

// Limits on the payloads Unmarshal accepts: a command is a few kilobytes
// (mqtt.MaxCommandSize) and names a handful of metrics.
const (
	MaxPayloadSize = 32 << 10
	MaxMetrics     = 32
)

// ErrPayload is wrapped by every Unmarshal error.
var ErrPayload = errors.New("sparkplug payload")

// malformed returns the error for a bad field num; n is the protowire
// error code, or 0 for a field with the wrong wire type.
func malformed(num protowire.Number, n int) error {
	if n < 0 {
		return fmt.Errorf("%w: field %d: %w", ErrPayload, num, protowire.ParseError(n))
	}
	return fmt.Errorf("%w: field %d has the wrong wire type", ErrPayload, num)
}

// Unmarshal decodes an untrusted payload (NCMD, DCMD). It reads the
// fields of Payload and Metric that fieldgate uses, skips the others
// (properties, metadata, datasets, templates), and rejects a payload
// larger than MaxPayloadSize, with more than MaxMetrics metrics, or
// malformed.
func Unmarshal(b []byte) (Payload, error) {
	var p Payload
	if len(b) > MaxPayloadSize {
		return p, fmt.Errorf("%w: %d bytes, more than %d", ErrPayload, len(b), MaxPayloadSize)
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return p, malformed(0, n)
		}
		b = b[n:]
		switch {
		case num == fPayloadTimestamp && typ == protowire.VarintType:
			p.Timestamp, n = protowire.ConsumeVarint(b)
		case num == fPayloadSeq && typ == protowire.VarintType:
			p.Seq, n = protowire.ConsumeVarint(b)
			p.HasSeq = true
		case num == fPayloadMetrics && typ == protowire.BytesType:
			var raw []byte
			if raw, n = protowire.ConsumeBytes(b); n < 0 {
				break
			}
			if len(p.Metrics) == MaxMetrics {
				return p, fmt.Errorf("%w: more than %d metrics", ErrPayload, MaxMetrics)
			}
			m, err := unmarshalMetric(raw)
			if err != nil {
				return p, err
			}
			p.Metrics = append(p.Metrics, m)
		case num == fPayloadTimestamp || num == fPayloadSeq || num == fPayloadMetrics:
			return p, malformed(num, 0)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return p, malformed(num, n)
		}
		b = b[n:]
	}
	return p, nil
}

func unmarshalMetric(b []byte) (Metric, error) {
	var m Metric
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, malformed(0, n)
		}
		b = b[n:]
		var v uint64
		if typ == protowire.VarintType {
			if v, n = protowire.ConsumeVarint(b); n < 0 {
				return m, malformed(num, n)
			}
		}
		want := protowire.VarintType
		switch num {
		case fMetricName, fMetricString:
			want = protowire.BytesType
			var s string
			if s, n = protowire.ConsumeString(b); n >= 0 {
				if num == fMetricName {
					m.Name = s
				} else {
					m.Str = s
				}
			}
		case fMetricAlias:
			m.Alias, m.HasAlias = v, true
		case fMetricTimestamp:
			m.Timestamp = v
		case fMetricDatatype:
			m.Type = DataType(v)
		case fMetricIsNull:
			m.Null = v != 0
		case fMetricInt:
			m.Int = int64(uint32(v))
		case fMetricLong:
			m.Int = int64(v)
		case fMetricBool:
			m.Bool = v != 0
		default:
			want = typ
			if typ != protowire.VarintType {
				n = protowire.ConsumeFieldValue(num, typ, b)
			}
		}
		if typ != want {
			return m, malformed(num, 0)
		}
		if n < 0 {
			return m, malformed(num, n)
		}
		b = b[n:]
	}
	return m, nil
}
