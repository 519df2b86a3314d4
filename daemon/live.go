package daemon

import (
	"sync"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// live is what the workers and the scheduler know about each device that
// is not in the store: a transfer's progress and why a pending step waits.
// The reporter reads it to build documents; the loop publishes what
// changed on its tick, so a progress callback costs no store transaction.
// Safe for concurrent use.
type live struct {
	mu       sync.Mutex
	progress map[string]api.Progress // device -> bytes acknowledged, while a transfer runs
	blocked  map[string]block        // device -> why its step waits
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
)

func newLive() *live {
	return &live{progress: map[string]api.Progress{}, blocked: map[string]block{}}
}

func (l *live) setProgress(dev string, done, total int64) {
	l.mu.Lock()
	l.progress[dev] = api.Progress{Done: done, Total: total}
	l.mu.Unlock()
}

func (l *live) endProgress(dev string) {
	l.mu.Lock()
	delete(l.progress, dev)
	l.mu.Unlock()
}

// progressOf returns dev's transfer progress, or nil.
func (l *live) progressOf(dev string) *api.Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.progress[dev]
	if !ok {
		return nil
	}
	return &p
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
