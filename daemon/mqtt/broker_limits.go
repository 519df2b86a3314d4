// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// limitHook keeps the embedded broker's retained store within its count
// and byte limits, and logs the refusals mochi makes on its own (a packet
// over the maximum size). The packet size, inflight and client limits are
// mochi capabilities, set in Start.
type limitHook struct {
	mochi.HookBase
	srv                           *mochi.Server
	maxRetained, maxRetainedBytes int
	log                           *slog.Logger

	mu                    sync.Mutex // serializes retained checks
	warnRetain, warnLarge limiter
}

func (*limitHook) ID() string { return "fieldgate-limits" }

func (*limitHook) Provides(b byte) bool {
	return b == mochi.OnPublish || b == mochi.OnDisconnect
}

// OnPublish delivers a retained message that would take the retained store
// over its limits to the current subscribers, but does not keep it: the
// retain flag is cleared rather than the publish refused, so that a QoS 1
// publisher (the gateway's own session among them) still gets its PUBACK
// and does not resend forever. A message already retained on the topic
// stays. Concurrent publishers may overshoot the byte limit by at most one
// maximum-size packet each.
func (h *limitHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain || len(pk.Payload) == 0 { // an empty payload deletes
		return pk, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	count, size := 1, len(pk.Payload)
	for topic, r := range h.srv.Topics.Retained.GetAll() {
		if topic != pk.TopicName && !isSys(topic) {
			count++
			size += len(r.Payload)
		}
	}
	if count <= h.maxRetained && size <= h.maxRetainedBytes {
		return pk, nil
	}
	pk.FixedHeader.Retain = false
	h.warnRetain.do(time.Now(), func(suppressed int) {
		h.log.Warn("embedded broker retained store full: message delivered but not kept",
			"client", cl.ID, "topic", pk.TopicName, "bytes", len(pk.Payload),
			"max_retained", h.maxRetained, "max_retained_bytes", h.maxRetainedBytes, "suppressed", suppressed)
	})
	return pk, nil
}

// OnDisconnect logs a client cut off for a packet over the maximum size
// (mochi reads only its fixed header, then closes the connection).
func (h *limitHook) OnDisconnect(cl *mochi.Client, err error, _ bool) {
	if !errors.Is(err, packets.ErrPacketTooLarge) {
		return
	}
	h.warnLarge.do(time.Now(), func(suppressed int) {
		h.log.Warn("embedded broker disconnected a client: packet over the maximum size",
			"client", cl.ID, "remote", cl.Net.Remote, "suppressed", suppressed)
	})
}

// limiter rate-limits a repeated warning to one a minute, counting the
// ones it suppressed in between. It is safe for concurrent use.
type limiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *limiter) do(now time.Time, log func(suppressed int)) {
	l.mu.Lock()
	if !l.last.IsZero() && now.Sub(l.last) < time.Minute {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	log(n)
}

// isSys reports whether topic is one of the broker's own $SYS statistics
// (retained, a fixed set, and closed to clients' publishes), which the
// retained limits do not count.
func isSys(topic string) bool {
	return len(topic) >= len(mochi.SysPrefix) && strings.EqualFold(topic[:len(mochi.SysPrefix)], mochi.SysPrefix)
}
