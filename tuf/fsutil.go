// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"os"

	"github.com/fieldgate/fieldgate/internal/atomicfile"
)

// writeFileAtomic writes data to path so that a power cut leaves the old or
// the new content (see atomicfile).
func writeFileAtomic(path string, data []byte) error { return atomicfile.Write(path, data, 0o644) }

// syncDir fsyncs a directory so that renames in it survive a power cut.
func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

// syncFile fsyncs an existing file.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
