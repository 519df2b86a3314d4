// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

var released = time.Date(2024, 1, 4, 0, 0, 0, 0, time.UTC)

func csafMeta(id, rev string, cves ...string) tuf.DocumentMeta {
	return tuf.DocumentMeta{Kind: tuf.DocumentCSAF, ID: id, Revision: rev, Released: released, CVEs: cves}
}

func TestParseDocumentMeta(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // substring of the error; "" = accepted
	}{
		{"csaf", `{"fieldgate-document":{"kind":"csaf","id":"ICSA-24-004-01","revision":"2","released":"2024-01-04T00:00:00Z","cves":["CVE-2023-1234"]}}`, ""},
		{"kev", `{"fieldgate-document":{"kind":"kev","id":"kev","revision":"2025.08.25","released":"2025-08-25T17:04:19.9796Z"}}`, ""},
		{"test report", `{"fieldgate-document":{"kind":"test-report","id":"staging-gw.2.4.1-ab12ab12-io.io-1","revision":"1767484800","released":"2026-01-04T00:00:00Z"}}`, ""},
		{"test report cves", `{"fieldgate-document":{"kind":"test-report","id":"r","revision":"1","released":"2026-01-04T00:00:00Z","cves":["CVE-2024-1234"]}}`, "cves"},
		{"other keys ignored", `{"fieldgate-document":{"kind":"csaf","id":"X","revision":"1.0.0","released":"2024-01-04T00:00:00Z"},"vendor":{}}`, ""},
		{"unknown key", `{"fieldgate-document":{"kind":"csaf","id":"X","revision":"1","released":"2024-01-04T00:00:00Z","severity":"high"}}`, "unknown field"},
		{"duplicate key", `{"fieldgate-document":{"kind":"csaf","id":"X","id":"Y","revision":"1","released":"2024-01-04T00:00:00Z"}}`, "twice"},
		{"duplicate outer key", `{"fieldgate-document":{},"fieldgate-document":{"kind":"csaf","id":"X","revision":"1","released":"2024-01-04T00:00:00Z"}}`, "twice"},
		{"both objects", `{"fieldgate":{"hardware":["a"],"version":"1"},"fieldgate-document":{"kind":"csaf","id":"X","revision":"1","released":"2024-01-04T00:00:00Z"}}`, "both"},
		{"missing", `{"fieldgate":{}}`, "no \"fieldgate-document\""},
		{"kind", `{"fieldgate-document":{"kind":"vex","id":"X","revision":"1","released":"2024-01-04T00:00:00Z"}}`, "kind"},
		{"kev id", `{"fieldgate-document":{"kind":"kev","id":"other","revision":"1","released":"2024-01-04T00:00:00Z"}}`, "id"},
		{"kev cves", `{"fieldgate-document":{"kind":"kev","id":"kev","revision":"1","released":"2024-01-04T00:00:00Z","cves":["CVE-2024-1234"]}}`, "cves"},
		{"no revision", `{"fieldgate-document":{"kind":"csaf","id":"X","released":"2024-01-04T00:00:00Z"}}`, "revision"},
		{"bad revision", `{"fieldgate-document":{"kind":"csaf","id":"X","revision":"1 beta","released":"2024-01-04T00:00:00Z"}}`, "revision"},
		{"no release", `{"fieldgate-document":{"kind":"csaf","id":"X","revision":"1"}}`, "released"},
		{"bad release", `{"fieldgate-document":{"kind":"csaf","id":"X","revision":"1","released":"4 Jan 2024"}}`, "released"},
		{"bad cve", `{"fieldgate-document":{"kind":"csaf","id":"X","revision":"1","released":"2024-01-04T00:00:00Z","cves":["CVE-24-1"]}}`, "cves[0]"},
		{"control in id", `{"fieldgate-document":{"kind":"csaf","id":"X\u0007","revision":"1","released":"2024-01-04T00:00:00Z"}}`, "id"},
		{"space around id", `{"fieldgate-document":{"kind":"csaf","id":" X","revision":"1","released":"2024-01-04T00:00:00Z"}}`, "id"},
		{"trailing", `{"fieldgate-document":{"kind":"csaf","id":"X","revision":"1","released":"2024-01-04T00:00:00Z"} x}`, "invalid"},
		{"not an object", `{"fieldgate-document":[]}`, "object"},
		{"huge", `{"fieldgate-document":"` + strings.Repeat("x", 70000) + `"}`, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tuf.ParseDocumentMeta([]byte(tc.in))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ParseDocumentMeta(%s) = %v, want nil", tc.in, err)
			case tc.want != "" && err == nil:
				t.Fatalf("ParseDocumentMeta(%s) = %+v, nil; want an error containing %q", tc.in, m, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("ParseDocumentMeta(%s) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
	tooMany := csafMeta("X", "1")
	for i := range tuf.MaxDocumentCVEs + 1 {
		tooMany.CVEs = append(tooMany.CVEs, "CVE-2024-"+strings.Repeat("1", 4)+string(rune('0'+i%10)))
	}
	if _, err := tuf.MarshalDocumentMeta(tooMany); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("MarshalDocumentMeta(%d CVEs) = %v, want the limit", len(tooMany.CVEs), err)
	}
}

func TestCompareDocuments(t *testing.T) {
	later := released.Add(24 * time.Hour)
	for _, tc := range []struct {
		a, b tuf.DocumentMeta
		want int
	}{
		{csafMeta("X", "1"), csafMeta("X", "2"), -1},
		{csafMeta("X", "10"), csafMeta("X", "9"), 1},
		{csafMeta("X", "1.0.0"), csafMeta("X", "1.0.0"), 0},
		{csafMeta("X", "1.0.1"), csafMeta("X", "1.0.0"), 1},
		{csafMeta("X", "1.1"), csafMeta("X", "1.1.0"), -1},
		{tuf.DocumentMeta{Revision: "2025.08.25", Released: later}, tuf.DocumentMeta{Revision: "2025.08.24", Released: released}, 1},
		{tuf.DocumentMeta{Revision: "2025.09.01", Released: released}, tuf.DocumentMeta{Revision: "2025.10.01", Released: released}, -1},
		// Release time first: an older release is older whatever its revision says.
		{tuf.DocumentMeta{Revision: "9", Released: released}, tuf.DocumentMeta{Revision: "1", Released: later}, -1},
		{csafMeta("X", "bad revision"), csafMeta("X", "1"), -1},
	} {
		if got := tuf.CompareDocuments(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareDocuments(%s@%s, %s@%s) = %d, want %d", tc.a.Revision, tc.a.Released, tc.b.Revision, tc.b.Released, got, tc.want)
		}
		if got := tuf.CompareDocuments(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareDocuments(%s, %s) = %d, want %d", tc.b.Revision, tc.a.Revision, got, -tc.want)
		}
	}
}

// FuzzParseDocumentMeta checks that the parser never panics, that what it
// accepts validates and survives a round trip, and that a field it accepts
// is never also taken for firmware.
func FuzzParseDocumentMeta(f *testing.F) {
	for _, s := range []string{
		`{"fieldgate-document":{"kind":"csaf","id":"ICSA-24-004-01","revision":"2","released":"2024-01-04T00:00:00Z","cves":["CVE-2023-1234"]}}`,
		`{"fieldgate-document":{"kind":"kev","id":"kev","revision":"2025.08.25","released":"2025-08-25T17:04:19.9796Z"}}`,
		`{"fieldgate-document":{"kind":"csaf","id":"X","id":"Y","revision":"1","released":"2024-01-04T00:00:00Z"}}`,
		`{"fieldgate-document":null}`, `{"fieldgate":{},"fieldgate-document":{}}`,
		`[]`, `null`, ``, `{"fieldgate-document":{"released":"0000-01-01T00:00:00Z"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := tuf.ParseDocumentMeta(data)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("ParseDocumentMeta accepted invalid meta %+v: %v", m, err)
		}
		if _, err := tuf.ParseCustom(data); err == nil {
			t.Fatalf("%s parses both as a document and as firmware", data)
		}
		b, err := tuf.MarshalDocumentMeta(m)
		if err != nil {
			t.Fatalf("MarshalDocumentMeta(%+v) = %v", m, err)
		}
		back, err := tuf.ParseDocumentMeta(b)
		if err != nil {
			t.Fatalf("round trip of %+v: %v", m, err)
		}
		if tuf.CompareDocuments(m, back) != 0 || back.ID != m.ID || back.Kind != m.Kind || len(back.CVEs) != len(m.CVEs) {
			t.Fatalf("round trip of %+v = %+v", m, back)
		}
	})
}

// documentRepo publishes firmware, two advisories and the KEV catalog.
func documentRepo(t *testing.T) (*tuftest.Repo, map[string][]byte) {
	t.Helper()
	repo := tuftest.New(t)
	repo.Add("plc/fw-1.0.bin", []byte("plc image"), tuftest.Meta("plc", "1.0", 1))
	docs := map[string][]byte{
		"advisories/csaf/icsa-24-004-01.json":                 []byte(`{"document":{"tracking":{"id":"ICSA-24-004-01"}}}`),
		"advisories/csaf/icsa-24-005-02.json":                 bytes.Repeat([]byte("advisory "), 5000),
		"advisories/kev/known_exploited_vulnerabilities.json": []byte(`{"catalogVersion":"2025.08.25"}`),
	}
	metas := map[string]tuf.DocumentMeta{
		"advisories/csaf/icsa-24-004-01.json":                 csafMeta("ICSA-24-004-01", "1", "CVE-2023-1234"),
		"advisories/csaf/icsa-24-005-02.json":                 csafMeta("ICSA-24-005-02", "2"),
		"advisories/kev/known_exploited_vulnerabilities.json": {Kind: tuf.DocumentKEV, ID: "kev", Revision: "2025.08.25", Released: released},
	}
	for name, data := range docs {
		mustAddDocument(t, repo, name, data, metas[name])
	}
	repo.Commit()
	return repo, docs
}

func addDocument(t *testing.T, repo *tuftest.Repo, name string, data []byte, m tuf.DocumentMeta, force bool) error {
	t.Helper()
	src := filepath.Join(t.TempDir(), "doc")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := repo.Pub.AddDocument(name, src, m, publish.DocumentOptions{Force: force})
	return err
}

func mustAddDocument(t *testing.T, repo *tuftest.Repo, name string, data []byte, m tuf.DocumentMeta) {
	t.Helper()
	if err := addDocument(t, repo, name, data, m, false); err != nil {
		t.Fatalf("AddDocument(%s) = %v", name, err)
	}
}

func TestRefreshListsDocuments(t *testing.T) {
	repo, docs := documentRepo(t)
	c := repo.Client(t, nil)
	ctx := context.Background()
	snap, err := c.Refresh(ctx)
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if len(snap.Targets) != 1 || snap.Targets[0].Name != "plc/fw-1.0.bin" || snap.Targets[0].MetaErr != nil {
		t.Errorf("Refresh() targets = %+v, want only the firmware", snap.Targets)
	}
	if len(snap.Rejected) != 0 {
		t.Errorf("Refresh() rejected %v, want none", snap.Rejected)
	}
	if len(snap.Documents) != len(docs) {
		t.Fatalf("Refresh() documents = %+v, want %d", snap.Documents, len(docs))
	}
	for i, d := range snap.Documents {
		if i > 0 && snap.Documents[i-1].Name >= d.Name {
			t.Errorf("documents not sorted: %s before %s", snap.Documents[i-1].Name, d.Name)
		}
		want, ok := docs[d.Name]
		if !ok {
			t.Errorf("unexpected document %s", d.Name)
			continue
		}
		if d.Role != "targets" || d.Length != int64(len(want)) || d.Hashes["sha256"] == "" {
			t.Errorf("document %s = %+v", d.Name, d)
		}
		got, err := c.FetchDocument(ctx, d)
		if err != nil {
			t.Fatalf("FetchDocument(%s) = %v", d.Name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("FetchDocument(%s) = %q, want %q", d.Name, got, want)
		}
	}
	if d := snap.Documents[0]; d.Meta.ID != "ICSA-24-004-01" || d.Meta.Revision != "1" || len(d.Meta.CVEs) != 1 || !d.Meta.Released.Equal(released) {
		t.Errorf("document meta = %+v", d.Meta)
	}

	// A newer revision replaces the document; an older one is refused at
	// publish time, and published only with force.
	name := "advisories/csaf/icsa-24-004-01.json"
	mustAddDocument(t, repo, name, []byte("revision 2"), csafMeta("ICSA-24-004-01", "2", "CVE-2023-1234"))
	if err := addDocument(t, repo, name, []byte("revision 1 again"), csafMeta("ICSA-24-004-01", "1"), false); !errors.Is(err, publish.ErrDocumentRollback) {
		t.Errorf("AddDocument(older revision) = %v, want ErrDocumentRollback", err)
	}
	if err := addDocument(t, repo, name, []byte("other bytes"), csafMeta("ICSA-24-004-01", "2"), false); err == nil || !strings.Contains(err.Error(), "new revision") {
		t.Errorf("AddDocument(same revision, other bytes) = %v, want a refusal", err)
	}
	if err := addDocument(t, repo, name, []byte("revision 1 forced"), csafMeta("ICSA-24-004-01", "1"), true); err != nil {
		t.Errorf("AddDocument(older revision, force) = %v", err)
	}
	mustAddDocument(t, repo, name, []byte("revision 2"), csafMeta("ICSA-24-004-01", "2", "CVE-2023-1234"))
	repo.Commit()
	snap, err = c.Refresh(ctx)
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if d := snap.Documents[0]; d.Name != name || d.Meta.Revision != "2" {
		t.Errorf("after a new revision: %+v", d)
	} else if got, err := c.FetchDocument(ctx, d); err != nil || string(got) != "revision 2" {
		t.Errorf("FetchDocument(revision 2) = %q, %v", got, err)
	}
}

func TestFetchDocumentRefusesTampering(t *testing.T) {
	repo, _ := documentRepo(t)
	name := "advisories/csaf/icsa-24-005-02.json"
	repo.Tamper(name, bytes.Repeat([]byte("forgery! "), 5000))
	c := repo.Client(t, nil)
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	for _, d := range snap.Documents {
		if d.Name != name {
			continue
		}
		got, err := c.FetchDocument(context.Background(), d)
		if !errors.Is(err, tuf.ErrTargetMismatch) {
			t.Fatalf("FetchDocument(tampered) = %q, %v; want ErrTargetMismatch", got, err)
		}
		return
	}
	t.Fatalf("document %s not listed: %+v", name, snap.Documents)
}

func TestDocumentWithBadMetadataIsRejected(t *testing.T) {
	repo := tuftest.New(t)
	repo.AddRaw("advisories/csaf/x.json", []byte("{}"), []byte(`{"fieldgate-document":{"kind":"csaf","id":"X","revision":"1"}}`))
	repo.Commit()
	snap, err := repo.Client(t, nil).Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if len(snap.Documents) != 0 {
		t.Errorf("documents = %+v, want none", snap.Documents)
	}
	if len(snap.Targets) != 1 || snap.Targets[0].MetaErr == nil || !strings.Contains(snap.Targets[0].MetaErr.Error(), "released") {
		t.Errorf("targets = %+v, want the document refused for its metadata", snap.Targets)
	}
}

func TestFetchDocumentSizeLimit(t *testing.T) {
	repo := tuftest.New(t)
	c := repo.Client(t, nil)
	d := tuf.Document{Name: "advisories/csaf/big.json", Length: tuf.MaxDocumentBytes + 1,
		Hashes: map[string]string{"sha256": strings.Repeat("00", 32)}, Meta: csafMeta("BIG", "1")}
	if _, err := c.FetchDocument(context.Background(), d); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("FetchDocument(%d bytes) = %v, want the size limit", d.Length, err)
	}
	if n := repo.CountRequests("GET /targets/"); n != 0 {
		t.Errorf("%d target requests, want none", n)
	}
}

// TestImportBundleDocuments: a bundle carries documents, and a gateway with
// no uplink reads them after the import.
func TestImportBundleDocuments(t *testing.T) {
	repo, docs := documentRepo(t)
	dir := repo.Export()
	repo.Server.Close() // an island: nothing but the bundle

	c := repo.Client(t, nil)
	imp, err := tuf.ImportBundle(context.Background(), c, dir)
	if err != nil {
		t.Fatalf("ImportBundle() = %v", err)
	}
	if len(imp.Snapshot.Documents) != len(docs) || len(imp.Snapshot.Rejected) != 0 {
		t.Fatalf("ImportBundle() documents %+v, rejected %v; want %d documents", imp.Snapshot.Documents, imp.Snapshot.Rejected, len(docs))
	}
	for _, d := range imp.Snapshot.Documents {
		got, err := c.FetchDocument(context.Background(), d)
		if err != nil {
			t.Fatalf("FetchDocument(%s) after import, offline = %v", d.Name, err)
		}
		if !bytes.Equal(got, docs[d.Name]) {
			t.Errorf("FetchDocument(%s) = %q", d.Name, got)
		}
	}
}

func TestImportBundleRefusesTamperedDocument(t *testing.T) {
	repo, _ := documentRepo(t)
	dir := repo.Export()
	name := "advisories/csaf/icsa-24-004-01.json"
	files, _ := filepath.Glob(filepath.Join(dir, "targets", "advisories", "csaf", "*.icsa-24-004-01.json"))
	if len(files) == 0 {
		t.Fatalf("bundle lacks %s", name)
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte(`{"document":{"tracking":{"id":"ICSA-24-004-0X"}}}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := tuf.ImportBundle(context.Background(), repo.Client(t, nil), dir)
	if !errors.Is(err, tuf.ErrTargetMismatch) || !strings.Contains(err.Error(), name) {
		t.Fatalf("ImportBundle(tampered document) = %v, want ErrTargetMismatch naming %s", err, name)
	}
}

// TestDocumentsInDelegatedRole: advisories signed by a delegated role of
// their own (paths advisories/*/*: "*" stays within a segment), whose key is not the firmware key, are
// listed with that role; the role cannot sign firmware names.
func TestDocumentsInDelegatedRole(t *testing.T) {
	repo := tuftest.New(t)
	repo.Delegate("advisories", publish.Delegation{Paths: []string{"advisories/*/*"}})
	src := filepath.Join(t.TempDir(), "doc")
	if err := os.WriteFile(src, []byte(`{"document":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m := csafMeta("ICSA-24-004-01", "1")
	if _, err := repo.Pub.AddDocument("advisories/csaf/icsa-24-004-01.json", src, m, publish.DocumentOptions{Role: "advisories"}); err != nil {
		t.Fatalf("AddDocument(role advisories) = %v", err)
	}
	if _, err := repo.Pub.AddDocument("plc/fw-1.0.bin", src, m, publish.DocumentOptions{Role: "advisories"}); err == nil {
		t.Errorf("AddDocument(plc/fw-1.0.bin, role advisories) = nil, want a refusal (outside its paths)")
	}
	repo.Commit()
	snap, err := repo.Client(t, nil).Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if len(snap.Documents) != 1 || snap.Documents[0].Role != "advisories" || len(snap.Rejected) != 0 {
		t.Errorf("Refresh(): documents %+v, rejected %v; want one from role advisories", snap.Documents, snap.Rejected)
	}
}
