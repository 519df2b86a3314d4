// SPDX-License-Identifier: Apache-2.0

package mqtttest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how NeedPeer ends a test. Skip and Fatal stop the calling
// goroutine, as the real ones do.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Fatal(args ...any) { f.failed = fmt.Sprint(args...); runtime.Goexit() }

func TestNeedPeer(t *testing.T) {
	const missing = "fieldgate-no-such-peer"
	for _, tt := range []struct {
		name, prog, ci         string
		wantPath               bool
		wantSkipped, wantFatal bool
	}{
		{name: "found", prog: "sh", wantPath: true},
		{name: "found with CI", prog: "sh", ci: "true", wantPath: true},
		{name: "missing", prog: missing, wantSkipped: true},
		{name: "missing with CI", prog: missing, ci: "true", wantFatal: true},
		{name: "missing with CI=false", prog: missing, ci: "false", wantSkipped: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			f := &fakeTB{}
			var path string
			done := make(chan struct{})
			go func() {
				defer close(done)
				path = NeedPeer(f, tt.prog, "some-deb")
			}()
			<-done
			if (path != "") != tt.wantPath {
				t.Errorf("NeedPeer(%q) = %q, want a path: %t", tt.prog, path, tt.wantPath)
			}
			if (f.skipped != "") != tt.wantSkipped || (f.failed != "") != tt.wantFatal {
				t.Errorf("NeedPeer(%q) with CI=%q: skipped %q, failed %q; want skipped %t, failed %t",
					tt.prog, tt.ci, f.skipped, f.failed, tt.wantSkipped, tt.wantFatal)
			}
			if msg := f.skipped + f.failed; msg != "" && !strings.Contains(msg, "install the Debian package some-deb") {
				t.Errorf("NeedPeer(%q) message = %q, want it to name the Debian package some-deb", tt.prog, msg)
			}
		})
	}
}
