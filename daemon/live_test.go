// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/store"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func TestLiveRate(t *testing.T) {
	clk := newFakeClock()
	l := newLive(clk.now)
	start := clk.t
	if p := l.progressOf("plc-1"); p != nil {
		t.Fatalf("progressOf(no transfer) = %+v, want nil", p)
	}

	// 1000 bytes per second, reported every 100 ms in 100-byte blocks.
	var done int64
	step := func(n int, bytesPerTick int64) {
		for range n {
			clk.add(100 * time.Millisecond)
			done += bytesPerTick
			l.setProgress("plc-1", done, 100_000)
		}
	}
	step(5, 100)
	if p := l.progressOf("plc-1"); p.Rate != 0 || p.Done != 500 || p.Total != 100_000 {
		t.Errorf("after 0.5 s: progressOf = done %d total %d rate %d, want 500, 100000 and no rate yet (under a second of samples)", p.Done, p.Total, p.Rate)
	}
	step(25, 100) // 3 s in
	p := l.progressOf("plc-1")
	if p.Rate < 950 || p.Rate > 1050 {
		t.Errorf("after 3 s at 1000 B/s: rate %d, want about 1000", p.Rate)
	}
	if p.Started == nil || !p.Started.Equal(start.Add(100*time.Millisecond)) {
		t.Errorf("Started = %v, want the first report's time %v", p.Started, start.Add(100*time.Millisecond))
	}

	// The link speeds up to 4000 B/s: after a whole window the rate is the
	// new speed, not the average since the start.
	step(120, 400) // 12 s more
	if p := l.progressOf("plc-1"); p.Rate < 3900 || p.Rate > 4100 {
		t.Errorf("after 12 s at 4000 B/s: rate %d, want about 4000 (the last %v)", p.Rate, rateWindow)
	}
	if tr := l.progress["plc-1"]; len(tr.samples) > int(rateWindow/sampleEvery)+2 {
		t.Errorf("%d samples kept, want at most one per %v over %v", len(tr.samples), sampleEvery, rateWindow)
	}

	// A stall: the rate falls as the samples age, to 0 after a window.
	clk.add(5 * time.Second)
	if p := l.progressOf("plc-1"); p.Rate <= 0 || p.Rate >= 3900 {
		t.Errorf("5 s into a stall: rate %d, want below the 4000 B/s before it and above 0", p.Rate)
	}
	clk.add(rateWindow)
	if p := l.progressOf("plc-1"); p.Rate != 0 {
		t.Errorf("a window into a stall: rate %d, want 0", p.Rate)
	}

	// The transfer ends; a retry is a new transfer with its own start.
	l.endProgress("plc-1")
	if p := l.progressOf("plc-1"); p != nil {
		t.Fatalf("progressOf after endProgress = %+v, want nil", p)
	}
	clk.add(time.Minute)
	l.setProgress("plc-1", 0, 100_000)
	if p := l.progressOf("plc-1"); p.Started == nil || !p.Started.Equal(clk.t) || p.Rate != 0 {
		t.Errorf("retry: Started %v rate %d, want %v and no rate", p.Started, p.Rate, clk.t)
	}
}

func TestJobDocSoakUntil(t *testing.T) {
	clk := newFakeClock()
	r := newReporter("p", nil, clk.now, newLive(clk.now))
	until := clk.t.Add(10 * time.Minute)
	j := store.Job{ID: "j", Phase: jobRunning, Devices: []store.Step{
		{Device: "a", Phase: stepSoak, SoakUntil: until},
		{Device: "b", Phase: stepCommitted, SoakUntil: until}, // soaked before: no longer says so
	}}
	doc := r.jobDoc(j, "")
	if got := doc.Steps[0].SoakUntil; got == nil || !got.Equal(until) {
		t.Errorf("jobDoc: step in soak has SoakUntil %v, want %v", got, until)
	}
	if got := doc.Steps[1].SoakUntil; got != nil {
		t.Errorf("jobDoc: committed step has SoakUntil %v, want none", got)
	}
}
