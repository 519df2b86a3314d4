// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readAll reads every kind of option once, the way a driver does.
type readAll struct {
	name    string
	timeout time.Duration
	retries int
	limit   int
	verbose bool
	mode    string
	custom  string
}

func readEvery(m map[string]string) (readAll, *Options) {
	o := ReadOptions(m)
	r := readAll{
		name:    o.String("name", "dev"),
		timeout: o.Duration("timeout", 2*time.Second),
		retries: o.Int("retries", 3, 0, 10),
		limit:   o.Int("limit", 64, 1, math.MaxInt),
		verbose: o.Bool("verbose", false),
		mode:    o.OneOf("mode", "fast", "fast", "safe"),
		custom:  "none",
	}
	o.Func("custom", "none", func(v string) error {
		if !strings.HasPrefix(v, "x:") {
			return errors.New("want x:NAME")
		}
		r.custom = v
		return nil
	})
	return r, o
}

func TestOptions(t *testing.T) {
	defaults := readAll{name: "dev", timeout: 2 * time.Second, retries: 3, limit: 64, mode: "fast", custom: "none"}
	with := func(f func(*readAll)) readAll { r := defaults; f(&r); return r }
	tests := []struct {
		name string
		in   map[string]string
		want readAll
		errs []string // each must appear in Err(); none: Err() is nil
	}{
		{"nil map", nil, defaults, nil},
		{"empty map", map[string]string{}, defaults, nil},
		{"all set", map[string]string{
			"name": " a b ", "timeout": "1m30s", "retries": "0", "limit": "100000",
			"verbose": "true", "mode": "safe", "custom": "x:y",
		}, readAll{name: " a b ", timeout: 90 * time.Second, retries: 0, limit: 100000, verbose: true, mode: "safe", custom: "x:y"}, nil},
		{"white space around typed values", map[string]string{"timeout": " 5s\n", "retries": " 7 ", "verbose": " 1", "mode": "safe ", "custom": " x:1 "},
			with(func(r *readAll) {
				r.timeout, r.retries, r.verbose, r.mode, r.custom = 5*time.Second, 7, true, "safe", "x:1"
			}), nil},
		{"empty string kept", map[string]string{"name": ""}, with(func(r *readAll) { r.name = "" }), nil},
		{"bad duration", map[string]string{"timeout": "5"}, defaults,
			[]string{`option timeout="5": want a positive duration like 2s`}},
		{"zero duration", map[string]string{"timeout": "0s"}, defaults,
			[]string{`option timeout="0s": want a positive duration`}},
		{"negative duration", map[string]string{"timeout": "-1s"}, defaults,
			[]string{`option timeout="-1s"`}},
		{"int above range", map[string]string{"retries": "11"}, defaults,
			[]string{`option retries="11": want a whole number in 0..10`}},
		{"int not a number", map[string]string{"retries": "three"}, defaults,
			[]string{`option retries="three": want a whole number in 0..10`}},
		{"int no upper bound", map[string]string{"limit": "0"}, defaults,
			[]string{`option limit="0": want a whole number of at least 1`}},
		{"int hex is not decimal", map[string]string{"limit": "0x10"}, defaults,
			[]string{`option limit="0x10"`}},
		{"bad bool", map[string]string{"verbose": "yes"}, defaults,
			[]string{`option verbose="yes": want true or false`}},
		{"not one of", map[string]string{"mode": "Fast"}, defaults,
			[]string{`option mode="Fast": want one of fast, safe`}},
		{"func error", map[string]string{"custom": "y"}, defaults,
			[]string{`option custom="y": want x:NAME`}},
		{"unknown key", map[string]string{"timeuot": "5s"}, defaults,
			[]string{`unknown option "timeuot" (known: custom, limit, mode, name, retries, timeout, verbose)`}},
		{"every problem at once", map[string]string{"timeout": "soon", "retries": "-1", "colour": "red", "b": ""}, defaults,
			[]string{`option timeout="soon"`, `option retries="-1"`, `unknown option "b"`, `unknown option "colour"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, o := readEvery(tt.in)
			if got != tt.want {
				t.Errorf("values = %+v, want %+v", got, tt.want)
			}
			err := o.Err()
			if len(tt.errs) == 0 {
				if err != nil {
					t.Errorf("Err() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Err() = nil, want %q", tt.errs)
			}
			msg := err.Error()
			if n := strings.Count(msg, "\n") + 1; n != len(tt.errs) {
				t.Errorf("Err() has %d lines, want %d:\n%s", n, len(tt.errs), msg)
			}
			for _, want := range tt.errs {
				if !strings.Contains(msg, want) {
					t.Errorf("Err() = %q, want it to contain %q", msg, want)
				}
			}
		})
	}
}

func TestOptionsOrder(t *testing.T) {
	// Invalid values come in reading order, unknown keys sorted after them.
	o := ReadOptions(map[string]string{"z": "1", "b": "x", "a": "y", "y": "2"})
	o.Int("b", 0, 0, 1)
	o.Int("a", 0, 0, 1)
	got := strings.Split(o.Err().Error(), "\n")
	want := []string{`option b="x"`, `option a="y"`, `unknown option "y"`, `unknown option "z"`}
	if len(got) != len(want) {
		t.Fatalf("Err() = %q, want %d lines", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("Err() line %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestOptionsNoneKnown(t *testing.T) {
	err := ReadOptions(map[string]string{"x": "1"}).Err()
	if err == nil || err.Error() != `unknown option "x" (known: none)` {
		t.Errorf("Err() = %v, want unknown option \"x\" (known: none)", err)
	}
}

// FuzzOptions reads one arbitrary key and value with every reader: nothing
// panics, values stay in range, and every problem names its key.
func FuzzOptions(f *testing.F) {
	for _, kv := range [][2]string{
		{"timeout", "2s"}, {"timeout", "-0s"}, {"retries", "10"}, {"retries", "+3"},
		{"limit", "9223372036854775808"}, {"verbose", "T"}, {"mode", "safe"},
		{"custom", "x:"}, {"name", "\x00"}, {"", ""}, {"Timeout", "1s"},
	} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		got, o := readEvery(map[string]string{k: v})
		if got.timeout <= 0 || got.retries < 0 || got.retries > 10 || got.limit < 1 ||
			(got.mode != "fast" && got.mode != "safe") {
			t.Fatalf("ReadOptions({%q: %q}) read out of range: %+v", k, v, got)
		}
		err := o.Err()
		if err == nil {
			return
		}
		if strings.Count(err.Error(), "\n") != 0 {
			t.Errorf("Err() = %q, want one problem for one key", err)
		}
		if !strings.Contains(err.Error(), "option "+k) && !strings.Contains(err.Error(), "option "+strconv.Quote(k)) {
			t.Errorf("Err() = %q, want it to name key %q", err, k)
		}
		known := map[string]bool{"name": true, "timeout": true, "retries": true, "limit": true, "verbose": true, "mode": true, "custom": true}
		if !known[k] && !strings.Contains(err.Error(), "unknown option") {
			t.Errorf("Err() = %q for unknown key %q, want unknown option", err, k)
		}
		if known[k] && k == "name" {
			t.Errorf("Err() = %q, want nil: any string is a name", err)
		}
	})
}

func TestOptionsRead(t *testing.T) {
	_, o := readEvery(map[string]string{"timeout": "9s"})
	want := []Option{
		{Key: "name", Kind: "string", Default: "dev"},
		{Key: "timeout", Kind: "duration", Default: "2s"},
		{Key: "retries", Kind: "whole number", Default: "3", Values: "0..10"},
		{Key: "limit", Kind: "whole number", Default: "64", Values: "at least 1"},
		{Key: "verbose", Kind: "true or false", Default: "false"},
		{Key: "mode", Kind: "one of", Default: "fast", Values: "fast, safe"},
		{Key: "custom", Kind: "value", Default: "none"},
	}
	got := o.Read()
	if len(got) != len(want) {
		t.Fatalf("Read() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Read()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tt := range []struct {
		in   time.Duration
		want string
	}{
		{time.Second, "1s"}, {15 * time.Minute, "15m"}, {time.Hour, "1h"}, {24 * time.Hour, "24h"},
		{90 * time.Second, "1m30s"}, {500 * time.Millisecond, "500ms"}, {time.Hour + time.Second, "1h0m1s"},
		{2*time.Hour + 30*time.Minute, "2h30m"},
	} {
		if got := FormatDuration(tt.in); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if d, err := time.ParseDuration(FormatDuration(tt.in)); err != nil || d != tt.in {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", tt.in, d, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	read := func(o *Options) { o.Duration("timeout", time.Minute); o.Int("retries", 2, 1, 5) }
	d := Driver{Name: "fake", Doc: "A fake.", Options: read,
		OptionDoc: map[string]string{"timeout": "how long", "retries": "how often"}}
	got, err := d.Describe()
	if err != nil {
		t.Fatalf("Describe() error = %v", err)
	}
	want := []Option{
		{Key: "timeout", Kind: "duration", Default: "1m", Doc: "how long"},
		{Key: "retries", Kind: "whole number", Default: "2", Values: "1..5", Doc: "how often"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Describe() = %+v, want %+v", got, want)
	}

	d.OptionDoc = map[string]string{"timeout": " ", "colour": "never read"}
	d.Doc = ""
	_, err = d.Describe()
	if err == nil {
		t.Fatal("Describe() with missing and stale descriptions = nil error")
	}
	for _, w := range []string{
		"driver fake: option timeout has no description",
		"driver fake: option retries has no description",
		"driver fake: OptionDoc describes colour, which Options never reads",
		"driver fake: Doc is empty",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Describe() error = %q, want it to contain %q", err, w)
		}
	}

	if got, err := (Driver{Name: "none", Doc: "No options."}).Describe(); err != nil || len(got) != 0 {
		t.Errorf("Describe() of a driver without options = %v, %v; want none, nil", got, err)
	}
}
