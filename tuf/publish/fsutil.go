// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"os"
	"path/filepath"

	"github.com/fieldgate/fieldgate/internal/atomicfile"
)

// writeFileAtomic creates path's directory and writes data to path so that
// a power cut leaves the old or the new content.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, mode)
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
