// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// graphEdge is one delegation of a graphRepo.
type graphEdge struct {
	delegator, role string
	paths           []string // nil: "*"
	terminating     bool
	unsigned        bool // the role is not signed with this delegation's key
}

// graphRepo is a repository with delegations of any depth and shape (the
// publisher makes one level only), each delegation with its own key, served
// by httptest with a log of the metadata requested.
type graphRepo struct {
	srv  *httptest.Server
	root string // path of 1.root.json

	mu   sync.Mutex
	reqs []string // delegated roles requested, in order
}

func newGraphRepo(t *testing.T, edges []graphEdge, targets map[string]string) *graphRepo {
	t.Helper()
	dir := t.TempDir()
	exp := time.Now().Add(24 * time.Hour)
	newKey := func() (*metadata.Key, signature.Signer) {
		pub, priv, _ := ed25519.GenerateKey(nil)
		k, err := metadata.KeyFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		s, err := signature.LoadED25519Signer(priv)
		if err != nil {
			t.Fatal(err)
		}
		return k, s
	}
	topKey, top := newKey()
	root := metadata.Root(exp)
	for _, role := range []string{metadata.ROOT, metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS} {
		if err := root.Signed.AddKey(topKey, role); err != nil {
			t.Fatal(err)
		}
	}
	roles := map[string]*metadata.Metadata[metadata.TargetsType]{metadata.TARGETS: metadata.Targets(exp)}
	signers := map[string][]signature.Signer{metadata.TARGETS: {top}}
	var order []string
	for _, e := range edges {
		if roles[e.role] == nil {
			roles[e.role] = metadata.Targets(exp)
			order = append(order, e.role)
		}
		d := roles[e.delegator]
		if d.Signed.Delegations == nil {
			d.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
		}
		k, s := newKey()
		id, err := k.ID()
		if err != nil {
			t.Fatal(err)
		}
		d.Signed.Delegations.Keys[id] = k
		paths := e.paths
		if paths == nil {
			paths = []string{"*"}
		}
		d.Signed.Delegations.Roles = append(d.Signed.Delegations.Roles, metadata.DelegatedRole{
			Name: e.role, KeyIDs: []string{id}, Threshold: 1, Terminating: e.terminating, Paths: paths})
		if !e.unsigned {
			signers[e.role] = append(signers[e.role], s)
		}
	}
	for name, role := range targets {
		tf, err := metadata.TargetFile().FromBytes(name, []byte(name), "sha256")
		if err != nil {
			t.Fatal(err)
		}
		roles[role].Signed.Targets[name] = tf
	}
	snap := metadata.Snapshot(exp)
	for _, role := range append(order, metadata.TARGETS) {
		snap.Signed.Meta[role+".json"] = metadata.MetaFile(1)
		for _, s := range signers[role] {
			if _, err := roles[role].Sign(s); err != nil {
				t.Fatal(err)
			}
		}
		if err := roles[role].ToFile(filepath.Join(dir, "1."+role+".json"), false); err != nil {
			t.Fatal(err)
		}
	}
	ts := metadata.Timestamp(exp)
	for file, md := range map[string]interface {
		Sign(signature.Signer) (*metadata.Signature, error)
		ToFile(string, bool) error
	}{"1.root.json": root, "1.snapshot.json": snap, "timestamp.json": ts} {
		if _, err := md.Sign(top); err != nil {
			t.Fatal(err)
		}
		if err := md.ToFile(filepath.Join(dir, file), false); err != nil {
			t.Fatal(err)
		}
	}
	g := &graphRepo{root: filepath.Join(dir, "1.root.json")}
	files := http.FileServer(http.Dir(dir))
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := filepath.Base(r.URL.Path)
		if _, role, ok := strings.Cut(strings.TrimSuffix(base, ".json"), "."); ok && !slices.Contains([]string{"root", "snapshot", "targets"}, role) {
			g.mu.Lock()
			g.reqs = append(g.reqs, role)
			g.mu.Unlock()
		}
		http.StripPrefix("/metadata", files).ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *graphRepo) requested() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reqs)
}

func (g *graphRepo) client(t *testing.T, dir string) *Client {
	t.Helper()
	c, err := New(Config{
		MetadataURL: g.srv.URL + "/metadata", TargetsURL: g.srv.URL + "/targets",
		MetadataDir: filepath.Join(dir, "md"), BlobDir: filepath.Join(dir, "blobs"), TrustedRoot: g.root,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRefreshWalk checks which delegated roles Refresh fetches, in which
// order, and which targets it trusts, for graphs of the TUF conformance
// suite's kind.
func TestRefreshWalk(t *testing.T) {
	for _, tc := range []struct {
		name      string
		edges     []graphEdge
		targets   map[string]string // name -> role listing it
		fetched   []string
		trusted   []string // "name from role"
		refusedBy string   // a role refused as delegated by this delegator
	}{{
		name: "pre-order depth first",
		edges: []graphEdge{{delegator: "targets", role: "A"}, {delegator: "targets", role: "B"},
			{delegator: "A", role: "C"}, {delegator: "C", role: "D"}},
		targets: map[string]string{"d.bin": "D", "b.bin": "B"},
		fetched: []string{"A", "C", "D", "B"},
		trusted: []string{"b.bin from B", "d.bin from D"},
	}, {
		name: "branch whose paths cannot match under its delegator",
		edges: []graphEdge{{delegator: "targets", role: "A", paths: []string{"a/*"}}, {delegator: "targets", role: "B"},
			{delegator: "A", role: "C", paths: []string{"b/*"}}, {delegator: "A", role: "E", paths: []string{"a/*.bin"}}},
		targets: map[string]string{"a/x.bin": "E"},
		fetched: []string{"A", "E", "B"},
		trusted: []string{"a/x.bin from E"},
	}, {
		name: "terminating delegation covers a later sibling",
		edges: []graphEdge{{delegator: "targets", role: "A", paths: []string{"fw/*"}, terminating: true},
			{delegator: "targets", role: "B", paths: []string{"fw/x.bin"}}, {delegator: "targets", role: "C", paths: []string{"fw/*", "docs/*"}}},
		targets: map[string]string{"fw/x.bin": "A", "docs/r.md": "C"},
		fetched: []string{"A", "C"},
		trusted: []string{"docs/r.md from C", "fw/x.bin from A"},
	}, {
		name: "cycle",
		edges: []graphEdge{{delegator: "targets", role: "A"}, {delegator: "A", role: "B"},
			{delegator: "B", role: "A"}},
		targets: map[string]string{"b.bin": "B"},
		fetched: []string{"A", "B"},
		trusted: []string{"b.bin from B"},
	}, {
		// The conformance suite's diamond: release is signed for parent-a
		// only; through parent-b it must not be trusted.
		name: "role delegated by two roles is verified against each",
		edges: []graphEdge{{delegator: "targets", role: "parent-a", paths: []string{"team-a/*"}},
			{delegator: "targets", role: "parent-b", paths: []string{"team-b/*"}},
			{delegator: "parent-a", role: "release", paths: []string{"team-a/*"}},
			{delegator: "parent-b", role: "release", paths: []string{"team-b/*"}, unsigned: true}},
		targets:   map[string]string{"team-a/fw": "release", "team-b/fw": "release"},
		fetched:   []string{"parent-a", "release", "parent-b"},
		trusted:   []string{"team-a/fw from release"},
		refusedBy: "parent-b",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGraphRepo(t, tc.edges, tc.targets)
			snap, err := g.client(t, t.TempDir()).Refresh(context.Background())
			if err != nil {
				t.Fatalf("Refresh() = %v", err)
			}
			if diff := cmp.Diff(tc.fetched, g.requested()); diff != "" {
				t.Errorf("Refresh() fetched (-want +got):\n%s", diff)
			}
			var trusted []string
			for _, tg := range snap.Targets {
				trusted = append(trusted, tg.Name+" from "+tg.Role)
			}
			if diff := cmp.Diff(tc.trusted, trusted); diff != "" {
				t.Errorf("Refresh() targets (-want +got):\n%s", diff)
			}
			if tc.refusedBy != "" && !slices.ContainsFunc(snap.Rejected, func(r Rejected) bool {
				return r.Name == "" && strings.Contains(r.Reason, "delegated by "+tc.refusedBy)
			}) {
				t.Errorf("Rejected = %v, want a role refused as delegated by %s", snap.Rejected, tc.refusedBy)
			}
		})
	}
}

// TestLookupDiamondCached checks that a role already verified (and cached)
// through one delegator is verified again against the delegator of the
// current search, in one process and in the next.
func TestLookupDiamondCached(t *testing.T) {
	g := newGraphRepo(t, []graphEdge{{delegator: "targets", role: "parent-a", paths: []string{"team-a/*"}},
		{delegator: "targets", role: "parent-b", paths: []string{"team-b/*"}},
		{delegator: "parent-a", role: "release", paths: []string{"team-a/*"}},
		{delegator: "parent-b", role: "release", paths: []string{"team-b/*"}, unsigned: true}},
		map[string]string{"team-a/fw": "release", "team-b/fw": "release"})
	dir := t.TempDir()
	for run := range 2 {
		res, _, err := g.client(t, dir).refresh(context.Background(), false)
		if err != nil {
			t.Fatalf("run %d: refresh() = %v", run, err)
		}
		if role, _, err := res.lookup("team-a/fw"); err != nil || role != "release" {
			t.Errorf("run %d: lookup(team-a/fw) = %q, %v; want release", run, role, err)
		}
		if _, _, err := res.lookup("team-b/fw"); err == nil || !strings.Contains(err.Error(), "parent-b") {
			t.Errorf("run %d: lookup(team-b/fw) = %v, want release refused as delegated by parent-b", run, err)
		}
	}
}

func TestPatternsOverlap(t *testing.T) {
	for _, tc := range []struct {
		p, q string
		want bool
	}{
		{"a/*", "a/x.bin", true},
		{"a/*", "b/*", false},
		{"a/*", "*/x", true},
		{"*", "a/b", false},
		{"fw-?.bin", "fw-1.bin", true},
		{"fw-?.bin", "fw-10.bin", false},
		{"*.py", "*.md", true}, // two wildcards: assumed to overlap
	} {
		if got := patternsOverlap(tc.p, tc.q); got != tc.want {
			t.Errorf("patternsOverlap(%q, %q) = %v, want %v", tc.p, tc.q, got, tc.want)
		}
	}
	for _, tc := range []struct {
		paths       []string
		terminating [][]string
		want        bool
	}{
		{[]string{"a/x"}, [][]string{{"a/*"}}, true},
		{[]string{"a/*"}, [][]string{{"a/*"}}, true},
		{[]string{"a/*", "b/*"}, [][]string{{"a/*"}}, false},
		{[]string{"a/*", "b/*"}, [][]string{{"a/*"}, {"*/*"}}, true},
		{[]string{"a/*"}, [][]string{{"a/x*"}}, false},
		{[]string{"a/*"}, nil, false},
	} {
		if got := coveredBy(tc.paths, tc.terminating); got != tc.want {
			t.Errorf("coveredBy(%q, %q) = %v, want %v", tc.paths, tc.terminating, got, tc.want)
		}
	}
}
