// SPDX-License-Identifier: Apache-2.0

package store

import (
	"os"
	"path/filepath"
	"testing"
)

// TestUsageCountsAuditRecordsAcrossPruning checks the audit count Usage
// derives from sequence numbers against the records VerifyAudit walks,
// before and after the log is pruned, and the file size against stat.
func TestUsageCountsAuditRecordsAcrossPruning(t *testing.T) {
	old := MaxAudit
	MaxAudit = 50
	defer func() { MaxAudit = old }()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.Usage()
	if err != nil || u.AuditRecords != 0 {
		t.Fatalf("Usage() of a new store = %+v, %v, want 0 audit records", u, err)
	}
	for _, n := range []int{7, 113} { // under MaxAudit, then pruned twice
		auditN(t, s, n)
		walked, err := s.VerifyAudit()
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.Usage()
		if err != nil {
			t.Fatal(err)
		}
		if u.AuditRecords != uint64(walked) {
			t.Errorf("after %d more records: Usage().AuditRecords = %d, want %d (VerifyAudit)", n, u.AuditRecords, walked)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if u.Bytes != fi.Size() || u.Bytes == 0 {
			t.Errorf("Usage().Bytes = %d, want the file's %d", u.Bytes, fi.Size())
		}
	}
}
