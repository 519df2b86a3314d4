// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// sharedTestdata is the project's shared folder of real public documents,
// beside the repository (see ../shared/testdata/README.md).
const sharedTestdata = "../../../shared/testdata"

// advisoryCorpus returns the paths of the 344 CISA ICS advisories of 2024
// (each with its .sha512 beside it), and of the KEV catalog.
func advisoryCorpus(t *testing.T) (csafFiles []string, kev string) {
	t.Helper()
	dir := filepath.Join(sharedTestdata, "csaf", "cisa-ot-2024")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shared testdata missing under CI: %v", err)
		}
		t.Skipf("shared testdata (../shared/testdata beside the repository) not found: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) != 344 {
		t.Fatalf("%s: %d advisories (%v), want 344", dir, len(files), err)
	}
	return files, filepath.Join(sharedTestdata, "kev", "known_exploited_vulnerabilities.json")
}

func runErr(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// writeDoc writes data to dir/name and, unless sum is "-", name.sha512
// holding sum ("" = the correct one, as sha512sum prints it).
func writeDoc(t *testing.T, dir, name string, data []byte, sum string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if sum == "-" {
		return p
	}
	if sum == "" {
		h := sha512.Sum512(data)
		sum = hex.EncodeToString(h[:]) + "  " + name + "\n"
	}
	if err := os.WriteFile(p+".sha512", []byte(sum), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// editJSON decodes data, applies edit and encodes it again.
func editJSON(t *testing.T, data []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tracking(doc map[string]any) map[string]any {
	return doc["document"].(map[string]any)["tracking"].(map[string]any)
}

func serveClient(t *testing.T, repo string) (*tuf.Client, *httptest.Server) {
	t.Helper()
	r, err := publish.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	w := t.TempDir()
	c, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata",
		TargetsURL:  srv.URL + "/targets",
		MetadataDir: filepath.Join(w, "metadata"),
		BlobDir:     filepath.Join(w, "blobs"),
		TrustedRoot: filepath.Join(repo, "repository", "metadata", "1.root.json"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

// TestAdvisoryPublishCorpus publishes CISA's ICS advisories of 2024 (20 of
// them with -short, all 344 without) and the KEV catalog, checks that a
// gateway lists them as documents, none rejected, and fetches the exact
// bytes, then carries them in an offline bundle to a gateway with no uplink.
func TestAdvisoryPublishCorpus(t *testing.T) {
	files, kev := advisoryCorpus(t)
	if testing.Short() {
		files = files[:20]
	}
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	runCmd(t, "init", repo)
	runCmd(t, "add", repo, writeDoc(t, w, "fw.bin", []byte("firmware"), "-"), "--name", "plc/fw-1.0.bin",
		"--hardware", "plc", "--version", "1.0")
	start := time.Now()
	out := runCmd(t, append([]string{"advisory", "add", repo, kev}, files...)...)
	runCmd(t, "commit", repo)
	t.Logf("published %d advisories and the KEV catalog in %v", len(files), time.Since(start).Round(time.Millisecond))
	if n := strings.Count(out, "staged advisories/"); n != len(files)+1 {
		t.Errorf("advisory add staged %d documents, want %d:\n%s", n, len(files)+1, out)
	}

	c, srv := serveClient(t, repo)
	ctx := context.Background()
	snap, err := c.Refresh(ctx)
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if len(snap.Rejected) != 0 || len(snap.Targets) != 1 {
		t.Errorf("Refresh(): %d targets, rejected %v; want the firmware and nothing rejected", len(snap.Targets), snap.Rejected)
	}
	if len(snap.Documents) != len(files)+1 {
		t.Fatalf("Refresh(): %d documents, want %d", len(snap.Documents), len(files)+1)
	}
	want := map[string]string{kevTargetName: kev}
	for _, f := range files {
		want[csafTargetDir+filepath.Base(f)] = f
	}
	for _, d := range snap.Documents {
		src, ok := want[d.Name]
		if !ok {
			t.Fatalf("unexpected document %s", d.Name)
		}
		got, err := c.FetchDocument(ctx, d)
		if err != nil {
			t.Fatalf("FetchDocument(%s) = %v", d.Name, err)
		}
		if data, _ := os.ReadFile(src); !bytes.Equal(got, data) {
			t.Errorf("FetchDocument(%s) differs from %s", d.Name, src)
		}
		if d.Name == kevTargetName {
			if d.Meta.Kind != tuf.DocumentKEV || d.Meta.Revision != "2025.08.25" || len(d.Meta.CVEs) != 0 {
				t.Errorf("KEV document meta = %+v", d.Meta)
			}
			continue
		}
		var tr csafTracking
		if err := json.Unmarshal(got, &tr); err != nil {
			t.Fatal(err)
		}
		if d.Meta.Kind != tuf.DocumentCSAF || d.Meta.ID != tr.Document.Tracking.ID || d.Meta.Revision != tr.Document.Tracking.Version || len(d.Meta.CVEs) == 0 {
			t.Errorf("%s meta = %+v, want id %s revision %s and its CVEs", d.Name, d.Meta, tr.Document.Tracking.ID, tr.Document.Tracking.Version)
		}
	}

	// The same files again stage nothing.
	if out := runCmd(t, append([]string{"advisory", "add", repo}, files[:3]...)...); strings.Count(out, "unchanged ") != 3 {
		t.Errorf("advisory add of published files:\n%s\nwant 3 unchanged", out)
	}

	// An offline bundle carries them to a gateway with no uplink.
	bundle := filepath.Join(w, "bundle")
	runCmd(t, "export", repo, bundle)
	srv.Close()
	island, _ := serveClient(t, repo)
	imp, err := tuf.ImportBundle(ctx, island, bundle)
	if err != nil {
		t.Fatalf("ImportBundle() = %v", err)
	}
	if len(imp.Snapshot.Documents) != len(files)+1 || len(imp.Snapshot.Rejected) != 0 {
		t.Fatalf("ImportBundle(): %d documents, rejected %v; want %d", len(imp.Snapshot.Documents), imp.Snapshot.Rejected, len(files)+1)
	}
	for _, d := range imp.Snapshot.Documents {
		if _, err := island.FetchDocument(ctx, d); err != nil {
			t.Fatalf("FetchDocument(%s) after the import, offline = %v", d.Name, err)
		}
	}
}

// TestAdvisoryAddRefuses checks each refusal, that it names the file and the
// place in the document, and that one refused file stages nothing.
func TestAdvisoryAddRefuses(t *testing.T) {
	files, kev := advisoryCorpus(t)
	var v2 string // an advisory at revision 2
	for _, f := range files {
		if filepath.Base(f) == "icsa-24-016-01.json" {
			v2 = f
		}
	}
	orig, err := os.ReadFile(v2)
	if err != nil {
		t.Fatal(err)
	}
	kevData, err := os.ReadFile(kev)
	if err != nil {
		t.Fatal(err)
	}
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	runCmd(t, "init", repo)
	runCmd(t, "advisory", "add", repo, v2)
	runCmd(t, "commit", repo)
	name := filepath.Base(v2)

	older := editJSON(t, orig, func(doc map[string]any) {
		tr := tracking(doc)
		tr["version"] = "1"
		tr["current_release_date"] = tr["initial_release_date"]
		tr["revision_history"] = tr["revision_history"].([]any)[:1]
	})
	olderSameDate := editJSON(t, orig, func(doc map[string]any) { tracking(doc)["version"] = "1" })
	sameRevision := editJSON(t, orig, func(doc map[string]any) { doc["document"].(map[string]any)["title"] = "changed" })
	invalid := editJSON(t, orig, func(doc map[string]any) {
		delete(doc["document"].(map[string]any), "title")
		doc["document"].(map[string]any)["category"] = 7
	})
	draft := editJSON(t, orig, func(doc map[string]any) {
		tr := tracking(doc)
		tr["status"] = "draft"
		tr["version"] = "3"
	})
	kevCount := editJSON(t, kevData, func(doc map[string]any) { doc["count"] = 1 })
	kevCVE := editJSON(t, kevData, func(doc map[string]any) {
		doc["vulnerabilities"].([]any)[3].(map[string]any)["cveID"] = "CVE-25-1"
	})
	h := sha512.Sum512(orig)
	for _, tc := range []struct {
		name  string
		file  func(dir string) string
		wants []string
	}{
		{"wrong sha512", func(d string) string {
			return writeDoc(t, d, name, orig, strings.Repeat("ab", 64)+"  "+name+"\n")
		}, []string{name, "SHA-512 mismatch"}},
		{"sha512 of another file", func(d string) string {
			return writeDoc(t, d, name, orig, hex.EncodeToString(h[:])+"  other.json\n")
		}, []string{name + ".sha512", `"other.json"`}},
		{"no sha512", func(d string) string { return writeDoc(t, d, name, orig, "-") }, []string{name, "no checksum", "sha512sum"}},
		{"bare hex sha512, altered file", func(d string) string {
			return writeDoc(t, d, name, append(orig, ' '), hex.EncodeToString(h[:]))
		}, []string{"SHA-512 mismatch"}},
		{"schema", func(d string) string { return writeDoc(t, d, name, invalid, "") },
			[]string{name, "CSAF 2.0 JSON schema", "/document/category", "title"}},
		{"renamed", func(d string) string { return writeDoc(t, d, "ICSA-24-016-01.json", orig, "") },
			[]string{"ICSA-24-016-01.json", "icsa-24-016-01.json", "5.1"}},
		{"renamed other", func(d string) string { return writeDoc(t, d, "advisory.json", orig, "") },
			[]string{"advisory.json", "requires the file name icsa-24-016-01.json"}},
		{"older revision", func(d string) string { return writeDoc(t, d, name, older, "") },
			[]string{"released 2024-01-16T07:00:00Z", "revision 2", publish.ErrDocumentRollback.Error()}},
		{"older revision, same date", func(d string) string { return writeDoc(t, d, name, olderSameDate, "") },
			[]string{"revision 1, but revision 2", publish.ErrDocumentRollback.Error()}},
		{"same revision, other bytes", func(d string) string { return writeDoc(t, d, name, sameRevision, "") },
			[]string{"needs a new revision"}},
		{"draft", func(d string) string { return writeDoc(t, d, name, draft, "") }, []string{"draft"}},
		{"not json", func(d string) string { return writeDoc(t, d, name, []byte("<html>"), "") }, []string{"not a JSON object"}},
		{"kev count", func(d string) string { return writeDoc(t, d, "known_exploited_vulnerabilities.json", kevCount, "-") },
			[]string{"/count is 1, but /vulnerabilities has 1404 entries"}},
		{"kev cve", func(d string) string { return writeDoc(t, d, "known_exploited_vulnerabilities.json", kevCVE, "-") },
			[]string{`/vulnerabilities/3/cveID "CVE-25-1"`}},
		{"kev sha512", func(d string) string {
			return writeDoc(t, d, "known_exploited_vulnerabilities.json", kevData, strings.Repeat("00", 64))
		}, []string{"SHA-512 mismatch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			file := tc.file(d)
			// One good file with the bad one: nothing is staged.
			good := files[0]
			_, err := runErr("advisory", "add", repo, good, file)
			if err == nil {
				t.Fatalf("advisory add %s = nil, want a refusal", file)
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("advisory add %s = %v\nwant it to contain %q", file, err, want)
				}
			}
			r, err := publish.Open(repo)
			if err != nil {
				t.Fatal(err)
			}
			if r.Pending() {
				t.Errorf("a refused advisory add left changes staged: %+v", r.Status().Added)
			}
		})
	}

	// --force publishes the older revision (a deliberate rollback).
	f := writeDoc(t, t.TempDir(), name, older, "")
	out := runCmd(t, "advisory", "add", repo, f, "--force")
	if !strings.Contains(out, "replaces revision 2") {
		t.Errorf("advisory add --force = %q", out)
	}
	if _, err := runErr("advisory", "add", repo, f, "--kind", "kev"); err == nil {
		t.Errorf("advisory add --kind kev of a CSAF document = nil, want a refusal")
	}
	if _, err := runErr("advisory", "add", repo, f, "--kind", "vex"); err == nil || !strings.Contains(err.Error(), "--kind") {
		t.Errorf("advisory add --kind vex = %v", err)
	}
}
