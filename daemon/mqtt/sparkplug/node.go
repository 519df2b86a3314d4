// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Node is the gateway as a Sparkplug B edge node: it publishes births and
// data from the Views the daemon hands it, and hands the commands hosts
// write to the daemon's command handler. Create it with New and call Run
// once; Update and CommandResult are safe for concurrent use and never
// block.
type Node struct {
	cfg     Config
	log     *slog.Logger
	command func(topic string, payload []byte)
	bdSeq   *bdSeqStore

	mu         sync.Mutex // guards view and lastResult
	view       *View
	lastResult string
	changed    chan struct{}

	aliases   map[string]uint64 // device + "\x00" + metric name -> alias ("" for the node); stable for the Node's life
	nextAlias uint64
}

// New returns a Node for cfg. command is the daemon's command handler (the
// one the JSON tree's session feeds): a command written to a node's or a
// device's Update Control/Command reaches it as a message on the JSON
// tree's command topic of the id the command document names, so it goes
// through the same verification, replay protection and audit. New does no
// I/O.
func New(cfg Config, log *slog.Logger, command func(topic string, payload []byte)) *Node {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Node{
		cfg: cfg, log: log.With("component", "sparkplug"), command: command,
		bdSeq:   newBdSeqStore(cfg.StateDir),
		changed: make(chan struct{}, 1),
		aliases: map[string]uint64{},
	}
}

// Update hands the node the daemon's current view; the node publishes what
// changed (or its births, if it has none out yet).
func (n *Node) Update(v View) {
	n.mu.Lock()
	n.view = &v
	n.mu.Unlock()
	n.poke()
}

// CommandResult hands the node a command result document (the JSON the
// daemon publishes on {prefix}/cmd/{id}/result); it becomes the node's
// Update Control/Last Result.
func (n *Node) CommandResult(doc []byte) {
	n.mu.Lock()
	n.lastResult = string(doc)
	n.mu.Unlock()
	n.poke()
}

func (n *Node) poke() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

func (n *Node) current() (*View, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.view, n.lastResult
}

// alias returns the alias of a device's (or, for device "", the node's)
// metric: assigned at its first birth, unique across the node and its
// devices, and kept across rebirths and reconnects.
func (n *Node) alias(device, name string) uint64 {
	k := device + "\x00" + name
	a, ok := n.aliases[k]
	if !ok {
		n.nextAlias++
		a = n.nextAlias
		n.aliases[k] = a
	}
	return a
}

// lookup resolves a metric written by a host to its name: by name, or by
// the alias a birth gave it.
func (n *Node) lookup(device string, m Metric) string {
	if m.Name != "" || !m.HasAlias {
		return m.Name
	}
	for k, a := range n.aliases {
		if a == m.Alias {
			if d, name, _ := strings.Cut(k, "\x00"); d == device {
				return name
			}
		}
	}
	return ""
}

// errHostOffline ends a session whose primary host went offline.
var errHostOffline = errors.New("primary host offline")

// session is the node's state on one connection. It is used by one
// goroutine.
type session struct {
	n      *Node
	pub    func(topic string, qos byte, payload []byte) error
	bdSeq  int64
	seq    uint64 // of the next message after NBIRTH
	hostOK bool   // births may go out (no primary host, or it is online)
	hostTS int64  // timestamp of the last STATE seen
	born   bool
	node   []value            // node values last published
	devs   map[string][]value // device values last published, by device id
}

func (n *Node) newSession(bdSeq int64, pub func(topic string, qos byte, payload []byte) error) *session {
	return &session{n: n, pub: pub, bdSeq: bdSeq, hostOK: n.cfg.PrimaryHostID == "", hostTS: -1}
}

// deathPayload is NDEATH: bdSeq only, no seq.
func (n *Node) deathPayload(bdSeq int64) []byte {
	ts := uint64(n.cfg.Now().UnixMilli())
	return Payload{Timestamp: ts, Metrics: []Metric{{Name: MetricBdSeq, Type: Int64, Int: bdSeq, Timestamp: ts}}}.Marshal()
}

func (s *session) nextSeq() uint64 {
	q := s.seq
	s.seq = (s.seq + 1) % 256
	return q
}

func (s *session) send(typ, device string, ts uint64, metrics []Metric) error {
	p := Payload{Timestamp: ts, Metrics: metrics, Seq: s.nextSeq(), HasSeq: true}
	return s.pub(s.n.cfg.Topic(typ, device), 0, p.Marshal())
}

func metric(d def, alias uint64, v value, ts uint64, birth bool) Metric {
	m := Metric{Alias: alias, HasAlias: true, Timestamp: ts, Type: d.typ, Null: v.null, Int: v.i, Bool: v.i != 0, Str: v.s}
	if birth {
		m.Name = d.name
	}
	return m
}

// refresh publishes what the current view changed: births if none are out
// yet and they may go out, else NDATA and DDATA with the changed metrics
// (and DBIRTH for a device seen for the first time).
func (s *session) refresh() error {
	v, result := s.n.current()
	if v == nil || !s.hostOK {
		return nil
	}
	if !s.born {
		return s.birth(v, result)
	}
	ts := uint64(s.n.cfg.Now().UnixMilli())
	vals := nodeValues(*v, s.bdSeq, result)
	if ms := s.diff("", nodeDefs, s.node, vals, ts); len(ms) > 0 {
		if err := s.send("NDATA", "", ts, ms); err != nil {
			return err
		}
		s.node = vals
	}
	for _, d := range v.Devices {
		vals := deviceValues(d, *v)
		last, ok := s.devs[d.ID]
		if !ok {
			if err := s.dbirth(d.ID, vals, ts); err != nil {
				return err
			}
			continue
		}
		if ms := s.diff(d.ID, deviceDefs, last, vals, ts); len(ms) > 0 {
			if err := s.send("DDATA", d.ID, ts, ms); err != nil {
				return err
			}
			s.devs[d.ID] = vals
		}
	}
	return nil
}

// diff returns the metrics whose values changed, by alias only. bdSeq
// (index 0 of the node's) goes in NBIRTH only.
func (s *session) diff(device string, defs []def, last, now []value, ts uint64) []Metric {
	var ms []Metric
	for i, d := range defs {
		if d.name == MetricBdSeq || last[i] == now[i] {
			continue
		}
		ms = append(ms, metric(d, s.n.alias(device, d.name), now[i], ts, false))
	}
	return ms
}

// birth publishes NBIRTH (seq 0) and every device's DBIRTH.
func (s *session) birth(v *View, result string) error {
	ts := uint64(s.n.cfg.Now().UnixMilli())
	vals := nodeValues(*v, s.bdSeq, result)
	ms := make([]Metric, len(nodeDefs))
	for i, d := range nodeDefs {
		ms[i] = metric(d, s.n.alias("", d.name), vals[i], ts, true)
	}
	s.seq = 0
	if err := s.send("NBIRTH", "", ts, ms); err != nil {
		return err
	}
	s.born, s.node, s.devs = true, vals, map[string][]value{}
	for _, d := range v.Devices {
		if err := s.dbirth(d.ID, deviceValues(d, *v), ts); err != nil {
			return err
		}
	}
	s.n.log.Info("sparkplug births published", "bdseq", s.bdSeq, "devices", len(v.Devices))
	return nil
}

func (s *session) dbirth(device string, vals []value, ts uint64) error {
	ms := make([]Metric, len(deviceDefs))
	for i, d := range deviceDefs {
		ms[i] = metric(d, s.n.alias(device, d.name), vals[i], ts, true)
	}
	if err := s.send("DBIRTH", device, ts, ms); err != nil {
		return err
	}
	s.devs[device] = vals
	return nil
}

// MaxStateSize bounds a STATE payload ({"online":…,"timestamp":…}).
const MaxStateSize = 1 << 10

// handle acts on one message from the broker: the primary host's STATE, or
// an NCMD or DCMD of this node. Malformed messages change nothing.
func (s *session) handle(topic string, payload []byte) error {
	n := s.n
	if n.cfg.PrimaryHostID != "" && topic == n.cfg.StateTopic() {
		return s.hostState(payload)
	}
	device, isCmd := "", topic == n.cfg.Topic("NCMD", "")
	if rest, ok := strings.CutPrefix(topic, n.cfg.Topic("DCMD", "")+"/"); ok {
		device, isCmd = rest, true
	}
	if !isCmd {
		return nil
	}
	p, err := Unmarshal(payload)
	if _, known := s.devs[device]; device != "" && !known {
		err = errors.New("unknown device")
	}
	rebirth := false
	for _, m := range p.Metrics {
		if err != nil {
			break
		}
		switch name := n.lookup(device, m); {
		case device == "" && name == MetricRebirth && m.Type == Boolean:
			rebirth = rebirth || (m.Bool && !m.Null)
		case name == MetricCommand && (m.Type == String || m.Type == Text) && !m.Null:
			n.route(m.Str)
		default:
			err = fmt.Errorf("metric %q (alias %d) is not writable, or not with type %d", name, m.Alias, m.Type)
		}
	}
	if err != nil {
		n.log.Warn("sparkplug command ignored", "topic", topic, "err", err)
	}
	if rebirth && s.born {
		n.log.Info("sparkplug rebirth requested")
		v, result := n.current()
		return s.birth(v, result)
	}
	return nil
}

// hostState acts on the primary host's STATE: births once it is online;
// when it goes offline, errHostOffline ends the session (the caller
// publishes NDEATH and disconnects, and the next session waits for the
// host again). A STATE older than the last one seen is ignored.
func (s *session) hostState(payload []byte) error {
	var st struct {
		Online    *bool  `json:"online"`
		Timestamp *int64 `json:"timestamp"`
	}
	if len(payload) > MaxStateSize || json.Unmarshal(payload, &st) != nil || st.Online == nil {
		s.n.log.Warn("sparkplug host STATE malformed; ignored", "topic", s.n.cfg.StateTopic())
		return nil
	}
	ts := int64(0)
	if st.Timestamp != nil {
		ts = *st.Timestamp
	}
	if ts < s.hostTS {
		return nil
	}
	s.hostTS = ts
	if !*st.Online {
		s.hostOK = false
		if s.born {
			return errHostOffline
		}
		return nil
	}
	if !s.hostOK {
		s.n.log.Info("sparkplug primary host online", "host", s.n.cfg.PrimaryHostID)
	}
	s.hostOK = true
	return s.refresh()
}

// route hands a command document written to Update Control/Command to the
// daemon as if it had arrived on the JSON tree's topic of its id. A
// document without a usable id goes to the topic of id "-", which no
// command can have: the daemon rejects and audits it like any malformed
// command.
func (n *Node) route(doc string) {
	var peek struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(doc), &peek)
	id := peek.ID
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/+#\x00") {
		id = "-"
	}
	n.command(n.cfg.MQTT.CommandTopic(id), []byte(doc))
}
