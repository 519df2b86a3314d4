// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// sharedTestdata is the project's shared folder of real public documents,
// beside the repository (see ../shared/testdata/README.md).
const sharedTestdata = "../../../shared/testdata"

func needTestdata(tb testing.TB) string {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(sharedTestdata, "csaf", "cisa-ot-2024")); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("shared testdata missing under CI: %v", err)
		}
		tb.Skipf("shared testdata (../shared/testdata beside the repository) not found: %v", err)
	}
	return sharedTestdata
}

var (
	corpusOnce sync.Once
	corpus     []*Advisory
	corpusErr  error
)

// loadCorpus parses the 344 CISA ICS advisories of 2024 once per test binary.
func loadCorpus(tb testing.TB) []*Advisory {
	dir := filepath.Join(needTestdata(tb), "csaf", "cisa-ot-2024")
	corpusOnce.Do(func() {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		sort.Strings(files)
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				corpusErr = err
				return
			}
			a, err := ParseCSAF(fh)
			fh.Close()
			if err != nil {
				corpusErr = err
				return
			}
			corpus = append(corpus, a)
		}
	})
	if corpusErr != nil {
		tb.Fatal(corpusErr)
	}
	return corpus
}

func loadKEV(tb testing.TB) *KEV {
	f, err := os.Open(filepath.Join(needTestdata(tb), "kev", "known_exploited_vulnerabilities.json"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	k, err := ParseKEV(f)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestCorpusCounts checks the parser against the counts the testdata README
// gives for the 344 documents.
func TestCorpusCounts(t *testing.T) {
	advs := loadCorpus(t)
	var products, ranges, models, cpes, purls, composed int
	rem := map[string]int{}
	v4docs := 0
	for _, a := range advs {
		hasV4 := false
		for _, id := range a.Order {
			p := a.Products[id]
			if p.Relationship != nil {
				composed++
				continue
			}
			products++
			if p.Range != "" {
				ranges++
			}
			if len(p.Models) > 0 {
				models++
			}
			if p.CPE != "" {
				cpes++
			}
			if p.PURL != "" {
				purls++
			}
		}
		for _, v := range a.Vulnerabilities {
			for _, r := range v.Remediations {
				rem[r.Category]++
			}
			if v.CVSS4 != "" {
				hasV4 = true
			}
		}
		if hasV4 {
			v4docs++
		}
	}
	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"documents", len(advs), 344},
		{"products in branches", products, 2334},
		{"products under a product_version_range", ranges, 2101},
		{"products with model_numbers", models, 886},
		{"products with a CPE", cpes, 0},
		{"products with a PURL", purls, 0},
		{"composed products (relationships)", composed, 1283},
		{"mitigation remediations", rem["mitigation"], 2908},
		{"vendor_fix remediations", rem["vendor_fix"], 1438},
		{"no_fix_planned + none_available remediations", rem["no_fix_planned"] + rem["none_available"], 91},
		{"workaround remediations", rem["workaround"], 28},
		{"documents with a CVSS 4.0 vector", v4docs, 147},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
}

// TestCorpusRanges measures how many of the free-text version ranges parse
// and logs the most frequent shapes that do not; it fails if the rate drops
// below what was measured when the parser was written.
func TestCorpusRanges(t *testing.T) {
	advs := loadCorpus(t)
	digits := regexp.MustCompile(`[0-9]+`)
	total, parsed, cond := 0, 0, 0
	shapes := map[string]int{}
	for _, a := range advs {
		for _, id := range a.Order {
			p := a.Products[id]
			if p.Range == "" || p.Relationship != nil {
				continue
			}
			total++
			r := ParseRange(p.Range)
			if r.Parsed {
				parsed++
				if r.Condition != "" {
					cond++
				}
				continue
			}
			shapes[digits.ReplaceAllString(p.Range, "9")]++
		}
	}
	type kv struct {
		k string
		n int
	}
	var top []kv
	for k, n := range shapes {
		top = append(top, kv{k, n})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].n > top[j].n || top[i].n == top[j].n && top[i].k < top[j].k })
	var b strings.Builder
	for i, s := range top {
		if i == 15 {
			break
		}
		fmt.Fprintf(&b, "\n  %4d  %s", s.n, s.k)
	}
	t.Logf("ranges parsed: %d of %d (%.1f %%), %d with an unchecked condition; top unparsed shapes:%s", parsed, total, 100*float64(parsed)/float64(total), cond, b.String())
	if total != 2101 {
		t.Errorf("ranges = %d, want 2101", total)
	}
	if parsed < minParsedRanges {
		t.Errorf("ranges parsed = %d, want at least %d", parsed, minParsedRanges)
	}
}

// minParsedRanges is the count measured when the parser was written; a
// change that parses fewer is a regression.
const minParsedRanges = 2067
