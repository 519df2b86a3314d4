// SPDX-License-Identifier: Apache-2.0

package proctest

import (
	"os"
	"testing"
	"time"
)

// TestCPUTimeGrows: the test process's own CPU time grows while it spins,
// and a process that does not exist is an error.
func TestCPUTimeGrows(t *testing.T) {
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time %v after spinning, %v before: want more", after, before)
	}
	if _, err := CPUTime(1 << 30); err == nil {
		t.Error("CPUTime of a process that does not exist: no error")
	}
}

// TestStatusKB: the test process has a resident set, and a field that
// /proc/PID/status does not have is an error.
func TestStatusKB(t *testing.T) {
	rss, err := StatusKB(os.Getpid(), "VmRSS")
	if err != nil || rss <= 0 {
		t.Errorf("VmRSS = %d, %v; want a positive size", rss, err)
	}
	if _, err := StatusKB(os.Getpid(), "NoSuchField"); err == nil {
		t.Error("a missing field: no error")
	}
}
