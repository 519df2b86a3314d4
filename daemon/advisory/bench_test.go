// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// benchInventory is 256 devices: the evaluation inventory repeated with
// distinct ids, so every kind of match is exercised.
func benchInventory() []Item {
	var items []Item
	for i := 0; len(items) < 256; i++ {
		it := evalSet[i%len(evalSet)].item
		it.Device = fmt.Sprintf("%s-%d", it.Device, i)
		items = append(items, it)
	}
	return items
}

// BenchmarkMatchAll matches all 344 advisories of 2024 against 256 devices
// per iteration (index built once) and reports the heap the parsed
// documents and index hold.
func BenchmarkMatchAll(b *testing.B) {
	needTestdata(b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	advs := loadCorpus(b)
	x := NewIndex(advs, loadKEV(b))
	runtime.GC()
	runtime.ReadMemStats(&after)
	items := benchInventory()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, it := range items {
			x.Match(it)
		}
	}
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(after.Sys-before.Sys)/(1<<20), "sys-MiB")
	runtime.KeepAlive(x)
}

// BenchmarkParseAll parses the 344 documents once per iteration.
func BenchmarkParseAll(b *testing.B) {
	loadCorpus(b)
	b.ReportAllocs()
	for b.Loop() {
		corpusOnce = sync.Once{}
		corpus = nil
		loadCorpus(b)
	}
}
