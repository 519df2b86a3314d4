// SPDX-License-Identifier: Apache-2.0

package devicetest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// endTB records how a helper ends a test. Skip and Fatal stop the calling
// goroutine, as the real ones do.
type endTB struct {
	testing.TB
	skipped, failed string
}

func (e *endTB) Helper()           {}
func (e *endTB) Skip(args ...any)  { e.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (e *endTB) Fatal(args ...any) { e.failed = fmt.Sprint(args...); runtime.Goexit() }

// ending runs f on an endTB in its own goroutine and returns what f
// returned and how it ended the test.
func ending(f func(testing.TB) string) (got string, e *endTB) {
	e = &endTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = f(e)
	}()
	<-done
	return got, e
}

func TestNeedPeerAndMissing(t *testing.T) {
	bin := t.TempDir()
	peer := filepath.Join(bin, "fieldgate-fake-peer")
	if err := os.WriteFile(peer, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	needPeer := func(prog string) func(testing.TB) string {
		return func(tb testing.TB) string { return NeedPeer(tb, prog, "fake-deb") }
	}
	missing := func(tb testing.TB) string { Missing(tb, "needs fake-deb"); return "returned" }
	for _, tt := range []struct {
		name     string
		f        func(testing.TB) string
		ci       string
		want     string // what f returns; "" when it ends the test
		wantSkip bool
		wantFail bool
	}{
		{name: "NeedPeer found", f: needPeer("fieldgate-fake-peer"), want: peer},
		{name: "NeedPeer found with CI", f: needPeer("fieldgate-fake-peer"), ci: "true", want: peer},
		{name: "NeedPeer missing", f: needPeer("fieldgate-no-such-peer"), wantSkip: true},
		{name: "NeedPeer missing with CI", f: needPeer("fieldgate-no-such-peer"), ci: "true", wantFail: true},
		{name: "NeedPeer missing with CI=false", f: needPeer("fieldgate-no-such-peer"), ci: "false", wantSkip: true},
		{name: "Missing", f: missing, wantSkip: true},
		{name: "Missing with CI", f: missing, ci: "true", wantFail: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			got, e := ending(tt.f)
			if got != tt.want {
				t.Errorf("%s: returned %q, want %q", tt.name, got, tt.want)
			}
			if (e.skipped != "") != tt.wantSkip || (e.failed != "") != tt.wantFail {
				t.Errorf("%s with CI=%q: skipped %q, failed %q; want skipped %t, failed %t",
					tt.name, tt.ci, e.skipped, e.failed, tt.wantSkip, tt.wantFail)
			}
			if msg := e.skipped + e.failed; msg != "" && !strings.Contains(msg, "fake-deb") {
				t.Errorf("%s message = %q, want it to name fake-deb", tt.name, msg)
			}
		})
	}
}
