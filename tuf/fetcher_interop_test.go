// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// lines returns the requests as access log lines without their time.
func lines(reqs []tuftest.Request) []string {
	l := make([]string, len(reqs))
	for i, r := range reqs {
		l[i] = r.String()
	}
	return l
}

// TestInteropIdleRefreshNginx: against a repository served by nginx, an
// idle refresh costs the next root's probe (404) and one conditional
// request for timestamp.json answered 304, nothing else; a new timestamp is
// fetched (200) at the next refresh. The figures for an idle refresh before
// (a gateway just started, which knows no validators) and after are logged.
func TestInteropIdleRefreshNginx(t *testing.T) {
	repo := tuftest.New(t)
	repo.Publish("fw/a.bin", []byte("firmware a"), tuftest.Meta("hw", "1.0.0", 1))
	ng := tuftest.StartNginx(t, filepath.Join(repo.Dir, "repository"))
	// timestamp.json as a gateway usually finds it: signed a while ago
	// (validators of a file modified within racyWindow are not used).
	tsPath := filepath.Join(repo.Dir, "repository", "metadata", "timestamp.json")
	age := func(d time.Duration) {
		t.Helper()
		mtime := time.Now().Add(-d)
		if err := os.Chtimes(tsPath, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	age(time.Minute)
	metadataDir := filepath.Join(t.TempDir(), "metadata")
	client := func() *tuf.Client {
		return repo.Client(t, func(c *tuf.Config) {
			c.MetadataURL, c.TargetsURL, c.MetadataDir = ng.URL+"/metadata", ng.URL+"/targets", metadataDir
		})
	}
	refresh := func(c *tuf.Client) *tuf.Snapshot {
		t.Helper()
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	check := func(what string, reqs []tuftest.Request, want ...string) {
		t.Helper()
		got := lines(reqs)
		ok := len(got) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = strings.HasPrefix(got[i], want[i])
		}
		// Every timestamp.json request after the first carries the
		// validators.
		for i := 0; ok && i < len(want); i++ {
			if strings.Contains(want[i], "timestamp.json") {
				ok = reqs[i].IfNoneMatch != "-"
			}
		}
		if !ok {
			t.Fatalf("%s: nginx logged\n\t%s\nwant lines starting with\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}

	c := client()
	snap := refresh(c)
	ts := snap.Versions["timestamp"]
	next := fmt.Sprintf("GET /metadata/%d.root.json 404 ", snap.Versions["root"]+1)
	if n := len(ng.Next(t)); n < 4 {
		t.Fatalf("first refresh: %d requests, want the whole chain", n)
	}

	// Before: a gateway that knows no validators (as after a start) pays
	// the whole timestamp.json.
	refresh(client())
	beforeReqs := ng.Next(t)
	before, beforeBytes := lines(beforeReqs), tuftest.BytesSent(beforeReqs)
	if len(before) != 2 || !strings.HasPrefix(before[0], next) || !strings.HasPrefix(before[1], "GET /metadata/timestamp.json 200 ") || !strings.HasSuffix(before[1], `"-" "-"`) {
		t.Fatalf("idle refresh of a new client: nginx logged\n\t%s\nwant %s…, then a plain GET of timestamp.json answered 200", strings.Join(before, "\n\t"), next)
	}

	// After: the probe and a conditional request answered 304.
	for i := range 2 {
		snap = refresh(c)
		reqs := ng.Next(t)
		after := lines(reqs)
		check(fmt.Sprintf("idle refresh %d", i+1), reqs, next, `GET /metadata/timestamp.json 304 `)
		if snap.Versions["timestamp"] != ts {
			t.Fatalf("idle refresh: timestamp version %d, want %d", snap.Versions["timestamp"], ts)
		}
		if i == 0 {
			t.Logf("idle refresh before: %d requests, %d bytes sent (%s); after: %d requests, %d bytes sent (%s)",
				len(before), beforeBytes, strings.Join(before, "; "), len(after), tuftest.BytesSent(reqs), strings.Join(after, "; "))
		}
	}

	// A new timestamp: 200 and the new version, then idle again.
	repo.Timestamp()
	age(30 * time.Second)
	snap = refresh(c)
	check("refresh after a new timestamp", ng.Next(t), next, `GET /metadata/timestamp.json 200 `)
	if snap.Versions["timestamp"] != ts+1 {
		t.Fatalf("refresh after a new timestamp: version %d, want %d", snap.Versions["timestamp"], ts+1)
	}
	snap = refresh(c)
	check("idle refresh after the new timestamp", ng.Next(t), next, `GET /metadata/timestamp.json 304 `)
	if snap.Versions["timestamp"] != ts+1 {
		t.Fatalf("idle refresh after a new timestamp: version %d, want %d", snap.Versions["timestamp"], ts+1)
	}
}
