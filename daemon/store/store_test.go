// SPDX-License-Identifier: Apache-2.0

package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOutboxOrderAckAndRetained(t *testing.T) {
	s := openTest(t)
	wait := s.Wait()
	for i, topic := range []string{"a", "b", "a", "events"} {
		err := s.Update(func(tx *Tx) error {
			_, err := tx.Enqueue(topic, map[string]int{"n": i}, topic != "events")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-wait:
	default:
		t.Error("Wait() channel not closed after Enqueue")
	}
	msgs, err := s.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 || msgs[0].Seq != 1 || msgs[3].Seq != 4 {
		t.Fatalf("Pending(0,10) = %+v, want seq 1..4", msgs)
	}
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	msgs, _ = s.Pending(0, 10)
	if len(msgs) != 2 || msgs[0].Seq != 3 {
		t.Fatalf("Pending after Ack(2) = %+v, want seq 3,4", msgs)
	}
	if n, _ := s.Depth(); n != 2 {
		t.Errorf("Depth() = %d, want 2", n)
	}
	ret, _ := s.Retained()
	if len(ret) != 2 {
		t.Fatalf("Retained() = %d topics, want 2 (a, b)", len(ret))
	}
	for _, m := range ret {
		if m.Topic == "a" && !bytes.Contains(m.Payload, []byte(`"n":2`)) {
			t.Errorf("Retained a = %s, want the latest (n=2)", m.Payload)
		}
	}
}

func TestOutboxSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		s.Update(func(tx *Tx) error { _, err := tx.Enqueue("t", i, false); return err })
	}
	s.Ack(1)
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs, _ := s.Pending(0, 10)
	if len(msgs) != 2 || msgs[0].Seq != 2 {
		t.Errorf("Pending after reopen = %+v, want seq 2,3", msgs)
	}
	if a, _ := s.Acked(); a != 1 {
		t.Errorf("Acked() = %d, want 1", a)
	}
}

func auditN(t *testing.T, s *Store, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		err := s.Update(func(tx *Tx) error {
			_, err := tx.Audit(Event{Type: "test", Detail: map[string]any{"i": strings.Repeat("x", i)}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	tamper := map[string]func(b *bolt.Bucket, meta *bolt.Bucket){
		"edit": func(b, _ *bolt.Bucket) {
			var e Event
			json.Unmarshal(b.Get(u64(2)), &e)
			e.Actor = "mallory"
			raw, _ := json.Marshal(e)
			b.Put(u64(2), raw)
		},
		"delete-middle": func(b, _ *bolt.Bucket) { b.Delete(u64(2)) },
		"delete-last":   func(b, _ *bolt.Bucket) { b.Delete(u64(3)) },
		"reorder": func(b, _ *bolt.Bucket) {
			one, two := append([]byte(nil), b.Get(u64(1))...), append([]byte(nil), b.Get(u64(2))...)
			b.Put(u64(1), two)
			b.Put(u64(2), one)
		},
	}
	for name, fn := range tamper {
		t.Run(name, func(t *testing.T) {
			s := openTest(t)
			auditN(t, s, 3)
			if n, err := s.VerifyAudit(); err != nil || n != 3 {
				t.Fatalf("VerifyAudit() before tampering = %d, %v; want 3, nil", n, err)
			}
			s.db.Update(func(tx *bolt.Tx) error {
				fn(tx.Bucket(bucketAudit), tx.Bucket(bucketMeta))
				return nil
			})
			if _, err := s.VerifyAudit(); err == nil {
				t.Errorf("VerifyAudit() after %s = nil, want an error", name)
			}
		})
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	s := openTest(t)
	err := s.Update(func(tx *Tx) error {
		tx.PutJob(Job{ID: "j1", Phase: "staged"})
		tx.Enqueue("x", 1, true)
		return bytes.ErrTooLarge // any error rolls everything back
	})
	if err == nil {
		t.Fatal("Update returned nil for a failing fn")
	}
	if _, err := s.Job("j1"); err != ErrNotFound {
		t.Errorf("Job(j1) after rolled-back Update = %v, want ErrNotFound", err)
	}
	if n, _ := s.Depth(); n != 0 {
		t.Errorf("Depth() after rolled-back Update = %d, want 0", n)
	}
}

func TestOutboxCompactsWithACountedSummary(t *testing.T) {
	s := openTest(t)
	total := MaxOutbox + 500
	// Batches keep the test quick: one transaction per 1000 messages.
	for i := 0; i < total; i += 1000 {
		err := s.Update(func(tx *Tx) error {
			for j := i; j < i+1000 && j < total; j++ {
				if _, err := tx.Enqueue("gw/events", map[string]int{"n": j}, false); err != nil {
					return err
				}
				if j%100 == 0 {
					if _, err := tx.Enqueue("gw/status", map[string]int{"n": j}, true); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	depth, _ := s.Depth()
	if depth > MaxOutbox {
		t.Fatalf("Depth() = %d, want at most %d", depth, MaxOutbox)
	}
	msgs, _ := s.Pending(0, MaxOutbox+1000)
	if len(msgs) != depth {
		t.Errorf("Pending returned %d messages, Depth() says %d", len(msgs), depth)
	}
	var dropped float64
	events := 0
	for _, m := range msgs {
		var p map[string]any
		json.Unmarshal(m.Payload, &p)
		if p["type"] == "outbox-compacted" {
			dropped += p["dropped"].(float64)
		} else if m.Topic == "gw/events" {
			events++
		}
	}
	if int(dropped)+events != total {
		t.Errorf("events delivered %d + counted as dropped %d = %d, want %d: nothing may vanish silently", events, int(dropped), events+int(dropped), total)
	}
	ret, _ := s.Retained()
	if len(ret) != 1 || !bytes.Contains(ret[0].Payload, []byte(`"n":20400`)) {
		t.Errorf("Retained() = %v, want the newest status kept", ret)
	}
}

func TestAuditIsBoundedAndStillVerifies(t *testing.T) {
	old := MaxAudit
	MaxAudit = 50
	defer func() { MaxAudit = old }()
	s := openTest(t)
	auditN(t, s, 120)
	n, err := s.VerifyAudit()
	if err != nil {
		t.Fatalf("VerifyAudit after pruning = %v", err)
	}
	if n > 60 || n < 40 {
		t.Errorf("VerifyAudit counted %d records, want about MaxAudit (50)", n)
	}
	var buf bytes.Buffer
	s.ExportAudit(&buf)
	if !strings.Contains(buf.String(), `"audit-pruned"`) {
		t.Error("pruning left no audit-pruned record")
	}
	// Tampering with a kept record is still caught.
	s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		k, v := c.Last()
		var e Event
		json.Unmarshal(v, &e)
		e.Type = "edited"
		raw, _ := json.Marshal(e)
		return tx.Bucket(bucketAudit).Put(k, raw)
	})
	if _, err := s.VerifyAudit(); err == nil {
		t.Error("VerifyAudit after editing a kept record = nil, want an error")
	}
}

func TestPruneJobsKeepsOpenAndNewest(t *testing.T) {
	s := openTest(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 6; i++ {
		phase := Phase("succeeded")
		if i == 0 {
			phase = "running" // the oldest job is still open
		}
		s.Update(func(tx *Tx) error {
			return tx.PutJob(Job{ID: fmt.Sprintf("j%d", i), Phase: phase, Created: base.Add(time.Duration(i) * time.Hour)})
		})
	}
	n, err := s.PruneJobs(2, func(p Phase) bool { return p == "succeeded" })
	if err != nil || n != 3 {
		t.Fatalf("PruneJobs(2) = %d, %v; want 3 deleted", n, err)
	}
	jobs, _ := s.Jobs()
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	if got := strings.Join(ids, ","); got != "j0,j4,j5" {
		t.Errorf("jobs after PruneJobs(2) = %s, want j0,j4,j5 (the open one and the two newest finished)", got)
	}
}
