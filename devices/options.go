package devices

import (
	"errors"
	"fmt"
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
	m     map[string]string
	known []string // keys read so far, in order
	errs  []error
}

// ReadOptions returns a reader of m. A nil m reads as empty: every key
// takes its default.
func ReadOptions(m map[string]string) *Options {
	return &Options{m: m}
}

// lookup declares key as accepted and returns its value, if set.
func (o *Options) lookup(key string) (string, bool) {
	if !slices.Contains(o.known, key) {
		o.known = append(o.known, key)
	}
	v, ok := o.m[key]
	return v, ok
}

func (o *Options) bad(key, v string, err error) {
	o.errs = append(o.errs, fmt.Errorf("option %s=%q: %w", key, v, err))
}

// String returns the value of key as it is written, white space and all,
// or def when key is absent. An empty value is a value: a driver that
// needs one checks it.
func (o *Options) String(key, def string) string {
	if v, ok := o.lookup(key); ok {
		return v
	}
	return def
}

// Duration returns the value of key as a positive Go duration ("2s",
// "500ms", "1m30s"), or def when key is absent or invalid.
func (o *Options) Duration(key string, def time.Duration) time.Duration {
	v, ok := o.lookup(key)
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
	v, ok := o.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		want := fmt.Sprintf("want a whole number in %d..%d", lo, hi)
		if hi == math.MaxInt {
			want = fmt.Sprintf("want a whole number of at least %d", lo)
		}
		o.bad(key, v, errors.New(want))
		return def
	}
	return n
}

// Bool returns the value of key as true or false (also 1/0, t/f, in any
// case strconv.ParseBool accepts), or def when key is absent or invalid.
func (o *Options) Bool(key string, def bool) bool {
	v, ok := o.lookup(key)
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
	v, ok := o.lookup(key)
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
// none") and is reported with the key and the value.
func (o *Options) Func(key string, parse func(v string) error) {
	v, ok := o.lookup(key)
	if !ok {
		return
	}
	if err := parse(strings.TrimSpace(v)); err != nil {
		o.bad(key, v, err)
	}
}

// Known returns the keys read so far, sorted: the keys the driver accepts.
func (o *Options) Known() []string {
	return slices.Sorted(slices.Values(o.known))
}

// Err returns every problem found so far, joined: the invalid values in
// the order they were read, then each key that no reader asked for,
// sorted, with the accepted keys. Call it after reading every key the
// driver accepts. It returns nil when there is no problem.
func (o *Options) Err() error {
	errs := slices.Clone(o.errs)
	var unknown []string
	for k := range o.m {
		if !slices.Contains(o.known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	known := strings.Join(o.Known(), ", ")
	if known == "" {
		known = "none"
	}
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("unknown option %q (known: %s)", k, known))
	}
	return errors.Join(errs...)
}
