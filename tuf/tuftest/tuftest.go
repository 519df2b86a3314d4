// SPDX-License-Identifier: Apache-2.0

// Package tuftest provides signed TUF repositories served by httptest, for
// tests of the tuf client and of everything built on it.
//
// A Repo is created in t.TempDir(), signed with fresh ed25519 keys, and
// served on a loopback httptest.Server that is closed by t.Cleanup. Its
// helpers publish targets with fieldgate metadata and build the broken
// repositories attack tests need: tampered targets, rolled-back or expired
// metadata, overridden HTTP responses. Helpers call t.Fatal on error.
//
// A Repo is safe for use by one test goroutine; its HTTP server may be hit
// concurrently.
package tuftest

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// Repo is a signed test repository and the server that serves it.
type Repo struct {
	MetadataURL string // base URL of the metadata, for tuf.Config.MetadataURL
	TargetsURL  string // base URL of the targets, for tuf.Config.TargetsURL
	RootPath    string // path of 1.root.json, for tuf.Config.TrustedRoot

	Dir    string        // repository directory (see package publish)
	Pub    *publish.Repo // the publisher; reopened after surgery
	Server *httptest.Server

	t     testing.TB
	mu    sync.Mutex
	now   time.Time // signing clock; zero = time.Now
	over  map[string]http.Handler
	reqs  []string
	inner http.Handler
}

// Option changes how New builds the repository.
type Option func(*publish.Options)

// WithOptions sets the publisher options (expiries, thresholds, hashes, key type).
func WithOptions(o publish.Options) Option {
	return func(p *publish.Options) { *p = o }
}

// New creates and serves an empty signed repository.
func New(t testing.TB, opts ...Option) *Repo {
	t.Helper()
	r := &Repo{t: t, Dir: filepath.Join(t.TempDir(), "repo"), over: map[string]http.Handler{}}
	var o publish.Options
	for _, opt := range opts {
		opt(&o)
	}
	o.Now = r.Now
	o.Keys = publish.KeyAccess{InsecurePlaintextKeys: true} // fixtures: no passphrases
	pub, err := publish.Init(r.Dir, o)
	if err != nil {
		t.Fatalf("tuftest: %v", err)
	}
	r.Pub = pub
	r.inner = pub.Handler()
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Server.Close)
	r.MetadataURL = r.Server.URL + "/metadata"
	r.TargetsURL = r.Server.URL + "/targets"
	r.RootPath = pub.RootPath()
	return r
}

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	entry := req.Method + " " + req.URL.Path
	if rg := req.Header.Get("Range"); rg != "" {
		entry += " Range:" + rg
	}
	r.reqs = append(r.reqs, entry)
	h, ok := r.over[req.URL.Path]
	r.mu.Unlock()
	if !ok {
		h = r.inner
	}
	h.ServeHTTP(w, req)
}

// Now is the repository's signing clock (time.Now unless set with SetNow).
func (r *Repo) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now.IsZero() {
		return time.Now()
	}
	return r.now
}

// SetNow sets the signing clock; the zero time restores time.Now.
func (r *Repo) SetNow(t time.Time) {
	r.mu.Lock()
	r.now = t
	r.mu.Unlock()
}

// Meta returns valid fieldgate metadata for one hardware id.
func Meta(hardware, version string, securityCounter uint64) tuf.Meta {
	return tuf.Meta{Hardware: []string{hardware}, Version: version, SecurityCounter: securityCounter, Protocol: "xmodem"}
}

// Add stages a target; Commit publishes it.
func (r *Repo) Add(name string, data []byte, meta tuf.Meta) {
	r.t.Helper()
	if err := r.Pub.AddTargetBytes(name, data, meta); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
}

// AddRaw stages a target whose custom field is exactly custom (which may be
// malformed), bypassing validation.
func (r *Repo) AddRaw(name string, data []byte, custom []byte) {
	r.t.Helper()
	if err := r.Pub.AddTargetBytes(name, data, Meta("placeholder", "0.0.1", 0)); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
	if err := r.Pub.SetCustom(name, custom); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
}

// Delegate stages a delegation from the top-level targets role to role,
// with fresh keys (see publish.Delegation); Commit publishes it.
func (r *Repo) Delegate(role string, d publish.Delegation) {
	r.t.Helper()
	if err := r.Pub.Delegate(role, d); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
}

// AddTo stages a target signed by role ("targets" or a delegated role).
func (r *Repo) AddTo(role, name string, data []byte, meta tuf.Meta) {
	r.t.Helper()
	if err := r.Pub.AddTargetBytesTo(role, name, data, meta); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
}

// Export writes an offline bundle with the named targets (all if none) to
// a new directory under t.TempDir() and returns its path.
func (r *Repo) Export(names ...string) string {
	r.t.Helper()
	out := filepath.Join(r.t.TempDir(), "bundle")
	if _, err := r.Pub.Export(out, names); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
	return out
}

// Remove stages the removal of a target.
func (r *Repo) Remove(name string) {
	r.t.Helper()
	if err := r.Pub.Remove(name); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
}

// Commit signs and publishes new targets (if changed), snapshot and timestamp.
func (r *Repo) Commit() {
	r.t.Helper()
	if err := r.Pub.Commit(); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
}

// Publish adds a target and commits.
func (r *Repo) Publish(name string, data []byte, meta tuf.Meta) {
	r.t.Helper()
	r.Add(name, data, meta)
	r.Commit()
}

// Timestamp re-signs the timestamp only.
func (r *Repo) Timestamp() {
	r.t.Helper()
	if err := r.Pub.Timestamp(); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
}

// Tamper replaces the bytes of a published target (under every hash prefix)
// after signing, as a compromised mirror would.
func (r *Repo) Tamper(name string, data []byte) {
	r.t.Helper()
	files := r.TargetFiles(name)
	if len(files) == 0 {
		r.t.Fatalf("tuftest: tamper %s: no stored file", name)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil { // break hard links
			r.t.Fatalf("tuftest: %v", err)
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			r.t.Fatalf("tuftest: %v", err)
		}
	}
}

// TargetFiles returns the paths a published target is stored under.
func (r *Repo) TargetFiles(name string) []string {
	tm := r.Pub.TargetsMetadata()
	tf, ok := tm.Signed.Targets[name]
	if !ok {
		return nil
	}
	var out []string
	for _, h := range tf.Hashes {
		out = append(out, filepath.Join(r.Pub.TargetsDir(), filepath.FromSlash(path.Dir(name)), h.String()+"."+path.Base(name)))
	}
	return out
}

// TargetURLPaths returns the URL paths a published target is served at.
func (r *Repo) TargetURLPaths(name string) []string {
	var out []string
	for _, f := range r.TargetFiles(name) {
		rel, _ := filepath.Rel(r.Pub.TargetsDir(), f)
		out = append(out, "/targets/"+filepath.ToSlash(rel))
	}
	return out
}

// Handle overrides the response for one URL path ("/metadata/timestamp.json",
// "/targets/…"); a nil handler removes the override.
func (r *Repo) Handle(urlPath string, h http.Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h == nil {
		delete(r.over, urlPath)
		return
	}
	r.over[urlPath] = h
}

// Requests returns the log of requests served: "GET /path[ Range:…]".
func (r *Repo) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// CountRequests returns how many logged requests start with prefix.
func (r *Repo) CountRequests(prefix string) int {
	n := 0
	for _, q := range r.Requests() {
		if strings.HasPrefix(q, prefix) {
			n++
		}
	}
	return n
}

// ReadMetadata returns a published metadata file ("timestamp.json", "2.snapshot.json").
func (r *Repo) ReadMetadata(file string) []byte {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.Pub.MetadataDir(), file))
	if err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
	return data
}

// WriteMetadata replaces a published metadata file with data and reopens
// the publisher from disk.
func (r *Repo) WriteMetadata(file string, data []byte) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.Pub.MetadataDir(), file), data, 0o644); err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
}

// Reopen reloads the publisher from disk after metadata surgery.
func (r *Repo) Reopen() {
	r.t.Helper()
	pub, err := publish.OpenWith(r.Dir, publish.Options{Now: r.Now, Keys: publish.KeyAccess{InsecurePlaintextKeys: true}})
	if err != nil {
		r.t.Fatalf("tuftest: %v", err)
	}
	r.Pub = pub
}

// Expire re-signs role so that it expired an hour ago (by signing it with the
// clock moved back by the role's validity), keeping the rest valid: for
// targets and snapshot, a fresh timestamp follows; for root a new root
// version is published.
func (r *Repo) Expire(role string, validity time.Duration) {
	r.t.Helper()
	r.SetNow(time.Now().Add(-validity - time.Hour))
	var err error
	switch role {
	case "timestamp":
		err = r.Pub.Timestamp()
	case "snapshot":
		err = r.Pub.Commit()
	case "targets":
		r.Pub.ResignTargets()
		err = r.Pub.Commit()
	case "root":
		err = r.Pub.ResignRoot()
	default:
		r.t.Fatalf("tuftest: expire %s: unknown role", role)
	}
	r.SetNow(time.Time{})
	if err != nil {
		r.t.Fatalf("tuftest: expire %s: %v", role, err)
	}
	switch role {
	case "snapshot":
		r.Timestamp()
	case "targets":
		if err := r.Pub.Snapshot(); err != nil {
			r.t.Fatalf("tuftest: expire %s: %v", role, err)
		}
	}
}

// Client returns a tuf.Client for this repository with its own temporary
// metadata and blob directories. edit, if not nil, adjusts the config.
func (r *Repo) Client(t testing.TB, edit func(*tuf.Config)) *tuf.Client {
	t.Helper()
	dir := t.TempDir()
	cfg := tuf.Config{
		MetadataURL: r.MetadataURL,
		TargetsURL:  r.TargetsURL,
		MetadataDir: filepath.Join(dir, "metadata"),
		BlobDir:     filepath.Join(dir, "blobs"),
		TrustedRoot: r.RootPath,
		HTTPTimeout: 10 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := tuf.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("tuftest: %v", err)
	}
	return c
}
