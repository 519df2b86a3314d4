// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// CountersFile is the file under Spec.StateDir in which every simulated
// device kind keeps its Counters, as JSON.
const CountersFile = "counters.json"

// Counters is a simulated device's own account of what was written to its
// flash and how often it booted: the device's truth, independent of what
// the gateway believes it did. Tests read it with ReadCounters (or
// `fieldgate-sim counters`) to count the transfers a device really got.
//
// A write is one image received into the device's flash or update slot:
// an XMODEM/YMODEM transfer of the console, a WRQ (or a pull) of the TFTP
// kinds, an upload of the SMP kinds, the file-record writes that begin at
// offset 0 of the Modbus update store. A resumed upload continues its
// write. A write that ends before the whole image arrived (an aborted
// transfer, a reset or power cut in the middle, an image the device
// rejects on arrival) is also counted as partial.
type Counters struct {
	Writes        int   `json:"writes"`         // image writes begun, complete or partial
	PartialWrites int   `json:"partial_writes"` // of Writes, those that ended before the whole image
	BytesWritten  int64 `json:"bytes_written"`  // bytes received into flash, partial writes included
	Boots         int   `json:"boots"`          // power-ons and resets, failed boots included
	// Writing is true while a write is in progress; a device that starts
	// with it set was cut off in the middle and counts that write partial.
	Writing bool `json:"writing,omitempty"`
}

// ReadCounters reads the counters of the device whose Spec.StateDir is
// dir. A device that has not started yet has zero counters.
func ReadCounters(dir string) (Counters, error) {
	var c Counters
	b, err := os.ReadFile(filepath.Join(dir, CountersFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read counters: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read counters %s: %w", filepath.Join(dir, CountersFile), err)
	}
	return c, nil
}

// counterFile keeps a device's Counters and persists them atomically at
// every change of a write or a boot; bytes are persisted with the next such
// change. Safe for concurrent use; a failure to persist is logged, not
// returned, since the device itself goes on working.
type counterFile struct {
	mu   sync.Mutex
	path string
	log  *slog.Logger
	c    Counters
}

// openCounters loads the counters kept under dir (creating dir), closing a
// write that a restart cut off as partial.
func openCounters(dir string, log *slog.Logger) (*counterFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := ReadCounters(dir)
	if err != nil {
		return nil, err
	}
	f := &counterFile{path: filepath.Join(dir, CountersFile), log: log, c: c}
	if f.c.Writing {
		f.c.Writing = false
		f.c.PartialWrites++
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saveLocked()
	return f, nil
}

func (f *counterFile) saveLocked() {
	b, _ := json.MarshalIndent(f.c, "", "  ")
	if err := replaceFile(f.path, append(b, '\n')); err != nil {
		f.log.Error("save counters", "err", err)
	}
}

// Counters returns a copy of the counters.
func (f *counterFile) Counters() Counters {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c
}

// begin starts a write; one still in progress ends partial.
func (f *counterFile) begin() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c.Writing {
		f.c.PartialWrites++
	}
	f.c.Writes++
	f.c.Writing = true
	f.saveLocked()
}

// add counts n bytes of the write in progress.
func (f *counterFile) add(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c.BytesWritten += int64(n)
}

// end ends the write in progress, if any: complete, or partial.
func (f *counterFile) end(complete bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.c.Writing {
		return
	}
	f.c.Writing = false
	if !complete {
		f.c.PartialWrites++
	}
	f.saveLocked()
}

// wrote counts one whole write of n bytes at once.
func (f *counterFile) wrote(n int, complete bool) {
	f.begin()
	f.add(n)
	f.end(complete)
}

// booted counts a boot (a failed one too).
func (f *counterFile) booted() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c.Boots++
	f.saveLocked()
}
