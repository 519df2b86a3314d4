// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// live is what the workers and the scheduler know about each device that
// is not in the store: a transfer's progress and why a pending step waits.
// The reporter reads it to build documents; the loop publishes what
// changed on its tick, so a progress callback costs no store transaction.
// Safe for concurrent use.
type live struct {
	now      func() time.Time
	mu       sync.Mutex
	progress map[string]*transfer // device -> its transfer, while one runs
	blocked  map[string]block     // device -> why its step waits
	rollout  map[string]string    // device -> the newer target its rollout keeps back, and why
	logged   map[string]string    // target -> the rollout reason last logged for it
}

// transfer is one running transfer: bytes acknowledged, and samples of
// them for the rate.
type transfer struct {
	done, total int64
	started     time.Time
	samples     []sample // oldest first, at least sampleEvery apart, pruned to rateWindow
}

type sample struct {
	at   time.Time
	done int64
}

// The rate is measured over the last rateWindow, from samples taken at
// most every sampleEvery (a driver may report every 128-byte block; a
// window of them would cost more than it says).
const (
	rateWindow  = 10 * time.Second
	sampleEvery = 250 * time.Millisecond
)

// add records done at now.
func (t *transfer) add(now time.Time, done, total int64) {
	t.done, t.total = done, total
	if n := len(t.samples); n == 0 || now.Sub(t.samples[n-1].at) >= sampleEvery {
		t.samples = append(t.samples, sample{now, done})
	}
	// Keep one sample at or before the window's start, so that the rate
	// always spans the whole window once the transfer is that old.
	cut := 0
	for cut+1 < len(t.samples) && !t.samples[cut+1].at.After(now.Add(-rateWindow)) {
		cut++
	}
	t.samples = t.samples[cut:]
}

// rate returns the bytes per second from the oldest sample within the
// last rateWindow up to now: a stalled transfer's rate falls to 0 as its
// samples age. It is 0 while the samples span less than a second.
func (t *transfer) rate(now time.Time) int64 {
	from := now.Add(-rateWindow)
	for _, s := range t.samples {
		if s.at.Before(from) {
			continue
		}
		span := now.Sub(s.at)
		if span < time.Second {
			return 0
		}
		return int64(float64(t.done-s.done) / span.Seconds())
	}
	return 0
}

// block says why a device's step waits, with a kind a reader can branch on.
type block struct {
	kind blockKind
	why  string // for a person: "window nightly: next opening …"
}

type blockKind string

const (
	blockWaiting   blockKind = "waiting"   // window, approval, limits, stop: see why
	blockCanary    blockKind = "canary"    // the canary has not committed yet
	blockInterlock blockKind = "interlock" // the device's process runs (or its interlock is unreadable)
	blockRollout   blockKind = "rollout"   // the rollout of the job's target no longer admits this gateway
)

// newLive returns an empty live view whose transfer times and rates come
// from now.
func newLive(now func() time.Time) *live {
	return &live{now: now, progress: map[string]*transfer{}, blocked: map[string]block{},
		rollout: map[string]string{}, logged: map[string]string{}}
}

// setProgress records that dev's running transfer has done of total bytes;
// the first call of a transfer starts it.
func (l *live) setProgress(dev string, done, total int64) {
	now := l.now()
	l.mu.Lock()
	t := l.progress[dev]
	if t == nil {
		t = &transfer{started: now.UTC()}
		l.progress[dev] = t
	}
	t.add(now, done, total)
	l.mu.Unlock()
}

func (l *live) endProgress(dev string) {
	l.mu.Lock()
	delete(l.progress, dev)
	l.mu.Unlock()
}

// progressOf returns dev's transfer progress with its start and current
// rate, or nil.
func (l *live) progressOf(dev string) *api.Progress {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.progress[dev]
	if !ok {
		return nil
	}
	started := t.started
	return &api.Progress{Done: t.done, Total: t.total, Started: &started, Rate: t.rate(now)}
}

func (l *live) block(dev string, b block) {
	l.mu.Lock()
	l.blocked[dev] = b
	l.mu.Unlock()
}

func (l *live) unblock(dev string) {
	l.mu.Lock()
	delete(l.blocked, dev)
	l.mu.Unlock()
}

// blockOf returns why dev's step waits, if it does.
func (l *live) blockOf(dev string) (block, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.blocked[dev]
	return b, ok
}

// setRollout records which newer target a rollout keeps back from dev, and
// why; "" clears it.
func (l *live) setRollout(dev, note string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if note == "" {
		delete(l.rollout, dev)
		return
	}
	l.rollout[dev] = note
}

// rolloutOf says why a rollout keeps an update from dev: a newer target it
// does not admit yet, or the halted rollout of the job dev waits in.
func (l *live) rolloutOf(dev string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.blocked[dev]; ok && b.kind == blockRollout {
		return b.why
	}
	return l.rollout[dev]
}

// newRolloutReason records reason as the last one about target's rollout
// and reports whether it differs from the one before, so that a decision
// is logged once per change and not on every refresh.
func (l *live) newRolloutReason(target, reason string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.logged[target] == reason {
		return false
	}
	l.logged[target] = reason
	return true
}
