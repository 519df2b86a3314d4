// SPDX-License-Identifier: Apache-2.0

// Package proctest reads what Linux says about a process under /proc, for
// tests and benchmarks that measure real processes from outside (the
// footprint test, the fleet harness, the bridge test).
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100
// on Linux whatever the kernel's own tick).
const userHZ = 100

// CPUTime returns the CPU time, user and system, that process pid has used
// so far, from /proc/PID/stat.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces, start with the state; utime is the 12th, stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields: %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// KB returns a "kB" field (VmRSS, VmHWM, Private_Dirty, …) of a /proc file
// such as /proc/PID/status or /proc/PID/smaps_rollup, in KiB.
func KB(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s %s: %v", path, field, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s has no %s", path, field)
}

// StatusKB returns a "kB" field of /proc/PID/status.
func StatusKB(pid int, field string) (int64, error) {
	return KB(fmt.Sprintf("/proc/%d/status", pid), field)
}
