// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options reads a driver's Config.Options: each reader method returns the
// value of one key, parsed and checked, or its default when the key is
// absent, and records what is wrong with it. The keys a driver reads are
// the keys it accepts; Err reports every problem at once, unknown keys
// included, so a configuration check shows all of them in one pass:
//
//	o := devices.ReadOptions(cfg.Options)
//	timeout := o.Duration("timeout", 2*time.Second)
//	retries := o.Int("retries", 3, 0, 100)
//	if err := o.Err(); err != nil { ... }
//
// Every reader but String ignores white space around the value. Messages
// name the key and quote the value: option retries="x": want a whole
// number in 0..100. An Options is not safe for concurrent use.
type Options struct {
	m    map[string]string
	read []Option // keys read so far, in order
	errs []error
}

// Option describes one key a driver reads, as recorded by the reader
// that read it: what fieldgated.yaml(5) lists for each driver.
type Option struct {
	Key string
	// Kind is what the value is: "string", "duration", "whole number",
	// "true or false", "one of" or "value" (read with Func).
	Kind string
	// Default is the value the key takes when absent, written as in a
	// configuration file; "" for none or empty.
	Default string
	// Values says what is accepted beyond the kind ("0..10", "at least 1",
	// "crc32, sha256, none"); "" when the kind says it all.
	Values string
	// Doc is the key's one-line description from Driver.OptionDoc.
	Doc string
}

// ReadOptions returns a reader of m. A nil m reads as empty: every key
// takes its default.
func ReadOptions(m map[string]string) *Options {
	return &Options{m: m}
}

// lookup declares key as accepted, described by opt, and returns its
// value, if set. A key read twice keeps its first description.
func (o *Options) lookup(opt Option) (string, bool) {
	if !slices.ContainsFunc(o.read, func(r Option) bool { return r.Key == opt.Key }) {
		o.read = append(o.read, opt)
	}
	v, ok := o.m[opt.Key]
	return v, ok
}

// FormatDuration writes d as a configuration would, without zero units:
// 15m, 1h, 1m30s, 500ms.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (o *Options) bad(key, v string, err error) {
	o.errs = append(o.errs, fmt.Errorf("option %s=%q: %w", key, v, err))
}

// String returns the value of key as it is written, white space and all,
// or def when key is absent. An empty value is a value: a driver that
// needs one checks it.
func (o *Options) String(key, def string) string {
	if v, ok := o.lookup(Option{Key: key, Kind: "string", Default: def}); ok {
		return v
	}
	return def
}

// Duration returns the value of key as a positive Go duration ("2s",
// "500ms", "1m30s"), or def when key is absent or invalid.
func (o *Options) Duration(key string, def time.Duration) time.Duration {
	v, ok := o.lookup(Option{Key: key, Kind: "duration", Default: FormatDuration(def)})
	if !ok {
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		o.bad(key, v, errors.New("want a positive duration like 2s"))
		return def
	}
	return d
}

// Int returns the value of key as a decimal whole number in lo..hi, or def
// when key is absent or invalid. Pass math.MaxInt as hi for no upper bound.
func (o *Options) Int(key string, def, lo, hi int) int {
	values := fmt.Sprintf("%d..%d", lo, hi)
	if hi == math.MaxInt {
		values = fmt.Sprintf("at least %d", lo)
	}
	v, ok := o.lookup(Option{Key: key, Kind: "whole number", Default: strconv.Itoa(def), Values: values})
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		want := "want a whole number in " + values
		if hi == math.MaxInt {
			want = "want a whole number of " + values
		}
		o.bad(key, v, errors.New(want))
		return def
	}
	return n
}

// Bool returns the value of key as true or false (also 1/0, t/f, in any
// case strconv.ParseBool accepts), or def when key is absent or invalid.
func (o *Options) Bool(key string, def bool) bool {
	v, ok := o.lookup(Option{Key: key, Kind: "true or false", Default: strconv.FormatBool(def)})
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		o.bad(key, v, errors.New("want true or false"))
		return def
	}
	return b
}

// OneOf returns the value of key if it is one of allowed, or def when key
// is absent or invalid.
func (o *Options) OneOf(key, def string, allowed ...string) string {
	v, ok := o.lookup(Option{Key: key, Kind: "one of", Default: def, Values: strings.Join(allowed, ", ")})
	if !ok {
		return def
	}
	if t := strings.TrimSpace(v); slices.Contains(allowed, t) {
		return t
	}
	o.bad(key, v, fmt.Errorf("want one of %s", strings.Join(allowed, ", ")))
	return def
}

// Func reads key with parse, for values the typed readers do not cover.
// parse is called only when key is set, with the value trimmed of white
// space; the error it returns says what is wanted ("want holding:N or
// none") and is reported with the key and the value. def is what the key
// stands for when absent, written as in a configuration file ("" for
// nothing), for the documentation: parse is not called with it.
func (o *Options) Func(key, def string, parse func(v string) error) {
	v, ok := o.lookup(Option{Key: key, Kind: "value", Default: def})
	if !ok {
		return
	}
	if err := parse(strings.TrimSpace(v)); err != nil {
		o.bad(key, v, err)
	}
}

// Known returns the keys read so far, sorted: the keys the driver accepts.
func (o *Options) Known() []string {
	keys := make([]string, len(o.read))
	for i, r := range o.read {
		keys[i] = r.Key
	}
	slices.Sort(keys)
	return keys
}

// Read returns what each reader recorded about the keys read so far, in
// reading order: kind, default and accepted values.
func (o *Options) Read() []Option {
	return slices.Clone(o.read)
}

// Err returns every problem found so far, joined: the invalid values in
// the order they were read, then each key that no reader asked for,
// sorted, with the accepted keys. Call it after reading every key the
// driver accepts. It returns nil when there is no problem.
func (o *Options) Err() error {
	errs := slices.Clone(o.errs)
	var unknown []string
	known := o.Known()
	for k := range o.m {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	list := strings.Join(known, ", ")
	if list == "" {
		list = "none"
	}
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("unknown option %q (known: %s)", k, list))
	}
	return errors.Join(errs...)
}

// Describe lists the options d accepts, in the order its Options reads
// them, each with its kind, default and OptionDoc line. It reads an empty
// map, so every key shows its default. The error names every key read
// without a description and every described key that is never read: the
// documentation cannot drift from the code.
func (d Driver) Describe() ([]Option, error) {
	o := ReadOptions(nil)
	if d.Options != nil {
		d.Options(o)
	}
	opts := o.Read()
	var errs []error
	for i, r := range opts {
		doc, ok := d.OptionDoc[r.Key]
		if !ok || strings.TrimSpace(doc) == "" {
			errs = append(errs, fmt.Errorf("driver %s: option %s has no description in OptionDoc", d.Name, r.Key))
		}
		opts[i].Doc = doc
	}
	for _, k := range slices.Sorted(maps.Keys(d.OptionDoc)) {
		if !slices.ContainsFunc(opts, func(r Option) bool { return r.Key == k }) {
			errs = append(errs, fmt.Errorf("driver %s: OptionDoc describes %s, which Options never reads", d.Name, k))
		}
	}
	if strings.TrimSpace(d.Doc) == "" {
		errs = append(errs, fmt.Errorf("driver %s: Doc is empty", d.Name))
	}
	return opts, errors.Join(errs...)
}
