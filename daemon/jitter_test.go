// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestRefreshJitter: every refresh interval stays within ±10 % of the
// configured one and the first refresh within a tenth of it (at most
// maxStartSpread), and both use the whole range, with an injected source.
func TestRefreshJitter(t *testing.T) {
	const interval = 15 * time.Minute
	for _, tc := range []struct {
		u                float64
		wantNext, wantGo time.Duration
	}{
		{0, interval - 90*time.Second, 0},
		{0.5, interval, 5 * time.Second},
		{0.75, interval + 45*time.Second, 7500 * time.Millisecond},
	} {
		if got := jittered(interval, tc.u); got != tc.wantNext {
			t.Errorf("jittered(%v, %v) = %v, want %v", interval, tc.u, got, tc.wantNext)
		}
		if got := startDelay(interval, tc.u); got != tc.wantGo {
			t.Errorf("startDelay(%v, %v) = %v, want %v", interval, tc.u, got, tc.wantGo)
		}
	}
	if got := startDelay(10*time.Second, 0.5); got != 500*time.Millisecond {
		t.Errorf("startDelay(10s, 0.5) = %v, want 500ms (a tenth of a short interval)", got)
	}

	src := rand.New(rand.NewPCG(1, 2)).Float64
	lo, hi := interval, interval
	loStart, hiStart := maxStartSpread, time.Duration(0)
	for range 10000 {
		d := jittered(interval, src())
		if d < interval-interval/10 || d >= interval+interval/10 {
			t.Fatalf("jittered interval %v outside [%v, %v)", d, interval-interval/10, interval+interval/10)
		}
		lo, hi = min(lo, d), max(hi, d)
		s := startDelay(interval, src())
		if s < 0 || s >= maxStartSpread {
			t.Fatalf("first refresh after %v, outside [0, %v)", s, maxStartSpread)
		}
		loStart, hiStart = min(loStart, s), max(hiStart, s)
	}
	if lo > interval-interval/12 || hi < interval+interval/12 {
		t.Errorf("10000 jittered intervals span [%v, %v]; want nearly ±10 %% of %v", lo, hi, interval)
	}
	if loStart > time.Second || hiStart < maxStartSpread-time.Second {
		t.Errorf("10000 first delays span [%v, %v]; want nearly [0, %v)", loStart, hiStart, maxStartSpread)
	}
}

// TestRefreshRandInjected: New keeps the injected source and defaults to
// one when none is given.
func TestRefreshRandInjected(t *testing.T) {
	r := newRig(t, false, "plc-1")
	if r.d.rand == nil {
		t.Fatal("New left the random source nil")
	}
	calls := 0
	d, err := New(Deps{Config: r.d.cfg, Store: r.st, Source: r.src, Devices: r.d.devs, Log: r.d.log,
		Rand: func() float64 { calls++; return 0.25 }})
	if err != nil {
		t.Fatal(err)
	}
	if u := d.rand(); u != 0.25 || calls != 1 {
		t.Fatalf("daemon's source returned %v after %d calls, want the injected one", u, calls)
	}
}
