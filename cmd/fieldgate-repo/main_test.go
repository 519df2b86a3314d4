package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

func runCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("fieldgate-repo %s = %v (stderr %s)", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// TestDemoFlow runs the exact commands of the demo and checks that a client
// refreshes and fetches the target with the advertised URLs and root.
func TestDemoFlow(t *testing.T) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	fw := filepath.Join(w, "fw.bin")
	data := bytes.Repeat([]byte("FGSIM1 firmware "), 4096)
	if err := os.WriteFile(fw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "init", repo)
	runCmd(t, "add", repo, fw, "--name", "acme-io16/fw-2.4.1.bin", "--hardware", "acme-io16-rev3",
		"--version", "2.4.1", "--security-counter", "3", "--protocol", "xmodem",
		"--severity", "high", "--advisory", "CVE-2026-1234", "--notes", "Fixes Modbus stack overflow")
	runCmd(t, "commit", repo)
	if out := runCmd(t, "status", repo); !strings.Contains(out, "acme-io16/fw-2.4.1.bin") {
		t.Errorf("status output lacks the target:\n%s", out)
	}
	r, err := publish.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	c, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata",
		TargetsURL:  srv.URL + "/targets",
		MetadataDir: filepath.Join(w, "client", "metadata"),
		BlobDir:     filepath.Join(w, "client", "blobs"),
		TrustedRoot: filepath.Join(repo, "repository", "metadata", "1.root.json"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	tg, ok, reason := tuf.Select(snap.Targets, "acme-io16-rev3", "2.3.0", 0)
	if !ok {
		t.Fatalf("Select() = not ok: %s", reason)
	}
	want := tuf.Meta{Hardware: []string{"acme-io16-rev3"}, Version: "2.4.1", SecurityCounter: 3, Protocol: "xmodem",
		Severity: "high", Advisories: []string{"CVE-2026-1234"}, Notes: "Fixes Modbus stack overflow"}
	if tg.Meta.Version != want.Version || tg.Meta.SecurityCounter != 3 || tg.Meta.Notes != want.Notes || tg.Meta.Advisories[0] != "CVE-2026-1234" {
		t.Errorf("target meta = %+v, want %+v", tg.Meta, want)
	}
	path, err := c.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Errorf("fetched blob differs from fw.bin")
	}
}

func TestServeShutsDownOnCancel(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, "127.0.0.1:0", publish.Handler(dir), pw, slog.New(slog.DiscardHandler))
		pw.Close()
	}()
	buf := make([]byte, 256)
	n, _ := pr.Read(buf)
	line := strings.Fields(string(buf[:n]))
	if len(line) < 3 {
		t.Fatalf("serve printed %q, want the address", buf[:n])
	}
	base := line[2]
	for _, tc := range []struct {
		path string
		code int
	}{{"/x.json", 200}, {"/missing.json", 404}, {"/", 404}, {"/../etc/passwd", 404}} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve() after cancel = %v, want nil", err)
	}
}

func TestVersionFlag(t *testing.T) {
	if out := runCmd(t, "--version"); !strings.Contains(out, version) {
		t.Errorf("--version printed %q, want it to contain %q", out, version)
	}
}

func TestAddRejectsBadMetadata(t *testing.T) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	runCmd(t, "init", repo)
	fw := filepath.Join(w, "fw.bin")
	os.WriteFile(fw, []byte("x"), 0o644)
	cmd := newRootCmd(io.Discard, io.Discard)
	cmd.SetArgs([]string{"add", repo, fw, "--name", "a.bin", "--version", "1.0"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "hardware") {
		t.Errorf("add without --hardware = %v, want an error about hardware", err)
	}
}
