// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fieldgate/fieldgate/internal/atomicfile"
)

// bdSeqFile is the file in the state directory that holds the bdSeq of
// the last connect.
const bdSeqFile = "sparkplug-bdseq"

// bdSeqStore keeps the birth/death sequence number: one more (mod 256) at
// every connect, written before the CONNECT that carries it in its will,
// so that a restart never reuses the number of a will the broker may
// still hold.
type bdSeqStore struct {
	dir  string
	last int64 // -1: none yet
}

func newBdSeqStore(dir string) *bdSeqStore {
	s := &bdSeqStore{dir: dir, last: -1}
	if dir == "" {
		return s
	}
	raw, err := os.ReadFile(filepath.Join(dir, bdSeqFile))
	if err != nil {
		return s // none yet (or unreadable: start again at 0)
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64); err == nil && n >= 0 && n < 256 {
		s.last = n
	}
	return s
}

// next returns the bdSeq of the next connect and stores it. The number is
// used even if it cannot be stored (the error says so): the node's
// reports matter more than a host's view of a restart.
func (s *bdSeqStore) next() (int64, error) {
	s.last = (s.last + 1) % 256
	if s.dir == "" {
		return s.last, nil
	}
	f, err := atomicfile.Create(s.dir, 0o640)
	if err == nil {
		defer f.Abort()
		if _, err = f.Write(strconv.AppendInt(nil, s.last, 10)); err == nil {
			_, err = f.WriteString("\n")
		}
		if err == nil {
			err = f.Commit(bdSeqFile)
		}
	}
	return s.last, err
}
