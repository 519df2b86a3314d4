// SPDX-License-Identifier: Apache-2.0

package publish_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// TestSetRolloutRoundTrip: a target published at 10 % is widened, halted
// and cleared by SetRollout + Commit, in the top-level targets role and in
// a delegated role; a client sees each new rollout with the same hashes,
// and other keys of the custom field survive.
func TestSetRolloutRoundTrip(t *testing.T) {
	repo := tuftest.New(t)
	repo.Delegate("vendor", publish.Delegation{Paths: []string{"vendor/*"}})
	m := tuftest.Meta("hw", "2.0.0", 1)
	m.Rollout = &tuf.Rollout{Percent: 10, Sites: []string{"plant-1"}}
	repo.Add("fw-2.0.0", []byte("firmware 2.0.0"), m)
	repo.AddTo("vendor", "vendor/fw-3.0.0", []byte("firmware 3.0.0"), m)
	// A custom field with a key of someone else's next to fieldgate's.
	custom, _ := tuf.MarshalCustom(tuftest.Meta("hw", "1.0.0", 1))
	custom = append([]byte(`{"other":{"keep":true},`), custom[1:]...)
	repo.AddRaw("fw-1.0.0", []byte("firmware 1.0.0"), custom)
	repo.Commit()

	c := repo.Client(t, nil)
	refresh := func() *tuf.Snapshot {
		t.Helper()
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("Refresh() = %v", err)
		}
		return snap
	}
	find := func(snap *tuf.Snapshot, name string) tuf.Target {
		t.Helper()
		for _, tg := range snap.Targets {
			if tg.Name == name {
				if tg.MetaErr != nil {
					t.Fatalf("%s: %v", name, tg.MetaErr)
				}
				return tg
			}
		}
		t.Fatalf("target %s not in snapshot", name)
		return tuf.Target{}
	}
	before := refresh()
	for _, name := range []string{"fw-2.0.0", "vendor/fw-3.0.0"} {
		if r := find(before, name).Meta.Rollout; r == nil || r.Percent != 10 || r.Sites[0] != "plant-1" {
			t.Fatalf("%s: rollout = %+v, want 10 %% at plant-1", name, r)
		}
	}

	for _, step := range []struct {
		ro   *tuf.Rollout
		want string
	}{
		{&tuf.Rollout{Percent: 50}, `{"percent":50}`},
		{&tuf.Rollout{Percent: 0}, `{"percent":0}`},
		{nil, `null`},
	} {
		for _, tc := range []struct{ name, role string }{{"fw-2.0.0", "targets"}, {"vendor/fw-3.0.0", "vendor"}} {
			role, err := repo.Pub.SetRollout(tc.name, step.ro)
			if err != nil || role != tc.role {
				t.Fatalf("SetRollout(%s, %s) = %q, %v; want role %s", tc.name, step.want, role, err, tc.role)
			}
		}
		repo.Commit()
		snap := refresh()
		for _, name := range []string{"fw-2.0.0", "vendor/fw-3.0.0"} {
			tg := find(snap, name)
			got, _ := json.Marshal(tg.Meta.Rollout)
			if string(got) != step.want {
				t.Errorf("after SetRollout %s: %s rollout = %s", step.want, name, got)
			}
			if tg.SHA256() != find(before, name).SHA256() || tg.Length != find(before, name).Length {
				t.Errorf("%s: hashes or length changed with the rollout", name)
			}
		}
	}

	if _, err := repo.Pub.SetRollout("fw-1.0.0", &tuf.Rollout{Percent: 5}); err != nil {
		t.Fatal(err)
	}
	repo.Commit()
	snap := refresh()
	if r := find(snap, "fw-1.0.0").Meta.Rollout; r == nil || r.Percent != 5 {
		t.Errorf("fw-1.0.0 rollout = %+v, want 5 %%", r)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, repo.ReadMetadata(fmt.Sprintf("%d.targets.json", snap.Versions["targets"]))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(compact.String(), `"other":{"keep":true}`) {
		t.Errorf("targets.json lost the custom key next to fieldgate's: %s", compact.String())
	}

	for _, tc := range []struct {
		name string
		ro   *tuf.Rollout
		want string
	}{
		{"nope", &tuf.Rollout{Percent: 5}, "no such staged target"},
		{"fw-2.0.0", &tuf.Rollout{Percent: 101}, "percent 101"},
		{"fw-2.0.0", &tuf.Rollout{Percent: 5, Gateways: []string{"a", "a"}}, "listed twice"},
	} {
		if _, err := repo.Pub.SetRollout(tc.name, tc.ro); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetRollout(%s, %+v) = %v, want an error containing %q", tc.name, tc.ro, err, tc.want)
		}
	}
}
