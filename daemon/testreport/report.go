// SPDX-License-Identifier: Apache-2.0

package testreport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Format is the value of a report's format field and the first line of its
// canonical bytes.
const Format = "fieldgate-test-report-v1"

// Limits of a report.
const (
	MaxSize  = 64 << 10 // bytes of a JSON report
	MaxSteps = 256      // phases recorded for one device step
	maxText  = 256      // bytes of a target name or an error
)

// Reasons a report is refused (Parse errors wrap one of these); Reason
// maps them to stable strings for audit records and tools.
var (
	ErrTooLarge     = errors.New("test report too large")
	ErrMalformed    = errors.New("test report malformed")
	ErrUnknownKey   = errors.New("unknown staging key")
	ErrBadSignature = errors.New("bad signature")
	ErrExpired      = errors.New("test report expired")
)

// Reason returns the stable reason for a Parse error: "too-large",
// "malformed", "unknown-key", "bad-signature", "expired", or "invalid".
func Reason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrTooLarge, "too-large"},
		{ErrMalformed, "malformed"},
		{ErrUnknownKey, "unknown-key"},
		{ErrBadSignature, "bad-signature"},
		{ErrExpired, "expired"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid"
}

// Step results.
const (
	ResultOK     = "ok"     // the phase was done; the step moved on
	ResultRetry  = "retry"  // the phase was entered again (a transient error)
	ResultFailed = "failed" // the phase ended in rollback or failure
)

// Phases a step may record. They are the job machine's persisted step
// phase names; a report whose last phase is PhaseCommitted and whose
// phases are all ok or retried shows a step that passed.
const PhaseCommitted = "committed"

var phases = []string{"pending", "backup", "transfer", "activate", "verify", "soak", PhaseCommitted,
	"rollback", "rolled-back", "failed", "skipped"}

// Step is one phase a device step entered, in order.
type Step struct {
	Phase  string    `json:"phase"`
	Result string    `json:"result"`
	At     time.Time `json:"at"` // when the phase was entered
	Error  string    `json:"error,omitempty"`
}

// Report is a staging test of one image on one device. Parse returns it
// only verified; Sign fills in Format, Key and Sig.
type Report struct {
	Format  string // Format
	ID      string // unique per test: the staging gateway, job and device
	Site    string // the staging gateway's site
	Gateway string // the staging gateway's id
	Target  string // target name
	SHA256  string // hex of the image tested
	Length  int64
	Version string // the target's version
	// HardwareID is the tested device's hardware id, which production
	// devices must share for the report to cover them.
	HardwareID string
	Device     string // the staging device's id
	Steps      []Step
	// VersionReadBack and ImageSHA256ReadBack are what the device
	// reported after the update ("" where it does not report a hash).
	VersionReadBack     string
	ImageSHA256ReadBack string
	Soak                time.Duration // how long the device ran healthy before the commit, whole seconds
	Started, Finished   time.Time
	Expires             time.Time
	Key                 string // id of the staging key that signed it
	Sig                 []byte // ed25519 signature of Canonical
}

// wire is the JSON form (docs/staging.md).
type wire struct {
	Format              string     `json:"format"`
	ID                  string     `json:"id"`
	Site                string     `json:"site"`
	Gateway             string     `json:"gateway"`
	Target              string     `json:"target"`
	SHA256              string     `json:"sha256"`
	Length              int64      `json:"length"`
	Version             string     `json:"version"`
	HardwareID          string     `json:"hardware_id"`
	Device              string     `json:"device"`
	Steps               []wireStep `json:"steps"`
	VersionReadBack     string     `json:"version_read_back"`
	ImageSHA256ReadBack string     `json:"image_sha256_read_back,omitempty"`
	SoakSeconds         int64      `json:"soak_seconds"`
	Started             string     `json:"started"`
	Finished            string     `json:"finished"`
	Expires             string     `json:"expires"`
	Key                 string     `json:"key"`
	Sig                 string     `json:"sig"`
}

type wireStep struct {
	Phase  string `json:"phase"`
	Result string `json:"result"`
	At     string `json:"at"`
	Error  string `json:"error,omitempty"`
}

var (
	identRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	idRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,191}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// versionRE is what tuf accepts as a version, and a little more.
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$`)
)

const timeLayout = time.RFC3339 // UTC, whole seconds: one spelling per time

// Sign validates r, signs it with priv under key id keyID and returns the
// JSON to publish. Times are truncated to whole seconds in UTC, the soak
// to whole seconds.
func Sign(r Report, keyID string, priv ed25519.PrivateKey) ([]byte, error) {
	r.Format, r.Key = Format, keyID
	r = r.normal()
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("sign test report %s: %w", r.ID, err)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign test report %s: private key is %d bytes, want %d", r.ID, len(priv), ed25519.PrivateKeySize)
	}
	r.Sig = ed25519.Sign(priv, r.Canonical())
	b, err := json.MarshalIndent(r.wire(), "", "  ")
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("sign test report %s: %w: %d bytes, limit %d", r.ID, ErrTooLarge, len(b), MaxSize)
	}
	return b, nil
}

// normal returns r with its times in UTC whole seconds and its soak in
// whole seconds: the values the canonical bytes can spell.
func (r Report) normal() Report {
	t := func(v time.Time) time.Time { return v.UTC().Truncate(time.Second) }
	r.Started, r.Finished, r.Expires = t(r.Started), t(r.Finished), t(r.Expires)
	r.Soak = r.Soak.Truncate(time.Second)
	r.Steps = slices.Clone(r.Steps)
	for i := range r.Steps {
		r.Steps[i].At = t(r.Steps[i].At)
	}
	return r
}

func (r Report) wire() wire {
	w := wire{Format: r.Format, ID: r.ID, Site: r.Site, Gateway: r.Gateway, Target: r.Target, SHA256: r.SHA256,
		Length: r.Length, Version: r.Version, HardwareID: r.HardwareID, Device: r.Device,
		VersionReadBack: r.VersionReadBack, ImageSHA256ReadBack: r.ImageSHA256ReadBack,
		SoakSeconds: int64(r.Soak / time.Second),
		Started:     r.Started.Format(timeLayout), Finished: r.Finished.Format(timeLayout), Expires: r.Expires.Format(timeLayout),
		Key: r.Key, Sig: base64.StdEncoding.EncodeToString(r.Sig)}
	w.Steps = make([]wireStep, len(r.Steps))
	for i, s := range r.Steps {
		w.Steps[i] = wireStep{Phase: s.Phase, Result: s.Result, At: s.At.Format(timeLayout), Error: s.Error}
	}
	return w
}

// Canonical returns the bytes a staging key signs for r: a version line,
// then one "name=value" line per field in a fixed order; each step is a
// line "step=PHASE RESULT AT ERROR" (the error last, so that it may
// contain spaces). No value contains a newline (validated), so the
// encoding is unambiguous. docs/staging.md shows an example.
func (r Report) Canonical() []byte {
	var b strings.Builder
	b.WriteString(Format + "\n")
	for _, kv := range [][2]string{
		{"id", r.ID},
		{"site", r.Site},
		{"gateway", r.Gateway},
		{"target", r.Target},
		{"sha256", r.SHA256},
		{"length", strconv.FormatInt(r.Length, 10)},
		{"version", r.Version},
		{"hardware_id", r.HardwareID},
		{"device", r.Device},
		{"steps", strconv.Itoa(len(r.Steps))},
	} {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	for _, s := range r.Steps {
		b.WriteString("step=" + s.Phase + " " + s.Result + " " + s.At.UTC().Format(timeLayout) + " " + s.Error + "\n")
	}
	for _, kv := range [][2]string{
		{"version_read_back", r.VersionReadBack},
		{"image_sha256_read_back", r.ImageSHA256ReadBack},
		{"soak_seconds", strconv.FormatInt(int64(r.Soak/time.Second), 10)},
		{"started", r.Started.UTC().Format(timeLayout)},
		{"finished", r.Finished.UTC().Format(timeLayout)},
		{"expires", r.Expires.UTC().Format(timeLayout)},
		{"key", r.Key},
	} {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	return []byte(b.String())
}

// Parse decodes, validates and verifies a JSON report against the staging
// keys (key id → public key) at time now. Errors wrap one of the Err*
// reasons (see Reason) and say what is wrong. It never panics and reads at
// most MaxSize bytes. A verified report may still not cover a given job:
// see Covers.
func Parse(payload []byte, keys map[string]ed25519.PublicKey, now time.Time) (Report, error) {
	if len(payload) > MaxSize {
		return Report{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), MaxSize)
	}
	if err := checkDuplicateKeys(payload); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Report{}, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	r, err := w.report()
	if err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := r.validate(); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	pub, ok := keys[r.Key]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return Report{}, fmt.Errorf("test report %s: %w %q", r.ID, ErrUnknownKey, r.Key)
	}
	if len(r.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, r.Canonical(), r.Sig) {
		return Report{}, fmt.Errorf("test report %s: %w by key %q", r.ID, ErrBadSignature, r.Key)
	}
	if !now.Before(r.Expires) {
		return Report{}, fmt.Errorf("test report %s: %w at %s", r.ID, ErrExpired, r.Expires.Format(timeLayout))
	}
	return r, nil
}

func (w wire) report() (Report, error) {
	var errs []error
	tm := func(name, s string) time.Time {
		t, err := parseUTC(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return t
	}
	r := Report{Format: w.Format, ID: w.ID, Site: w.Site, Gateway: w.Gateway, Target: w.Target, SHA256: w.SHA256,
		Length: w.Length, Version: w.Version, HardwareID: w.HardwareID, Device: w.Device,
		VersionReadBack: w.VersionReadBack, ImageSHA256ReadBack: w.ImageSHA256ReadBack, Key: w.Key,
		Started: tm("started", w.Started), Finished: tm("finished", w.Finished), Expires: tm("expires", w.Expires)}
	if w.SoakSeconds < 0 || w.SoakSeconds > int64(365*24*time.Hour/time.Second) {
		errs = append(errs, fmt.Errorf("soak_seconds %d: out of range", w.SoakSeconds))
	}
	r.Soak = time.Duration(w.SoakSeconds) * time.Second
	if len(w.Steps) > MaxSteps {
		return Report{}, fmt.Errorf("%d steps, limit %d", len(w.Steps), MaxSteps)
	}
	for i, s := range w.Steps {
		r.Steps = append(r.Steps, Step{Phase: s.Phase, Result: s.Result, At: tm(fmt.Sprintf("steps[%d].at", i), s.At), Error: s.Error})
	}
	sig, err := base64.StdEncoding.DecodeString(w.Sig)
	if err != nil {
		errs = append(errs, errors.New("sig: not base64"))
	}
	r.Sig = sig
	return r, errors.Join(errs...)
}

// validate checks every field, so that the canonical bytes are unambiguous.
func (r Report) validate() error {
	bad := fmt.Errorf
	switch {
	case r.Format != Format:
		return bad("format %q: want %q", r.Format, Format)
	case !idRE.MatchString(r.ID):
		return bad("id %q: want 1-192 of [A-Za-z0-9._:-]", r.ID)
	case !identRE.MatchString(r.Site):
		return bad("site %q: want 1-64 of [A-Za-z0-9._:-]", r.Site)
	case !identRE.MatchString(r.Gateway):
		return bad("gateway %q: want 1-64 of [A-Za-z0-9._:-]", r.Gateway)
	case !text(r.Target, false):
		return bad("target %q: want 1-%d printable characters", r.Target, maxText)
	case !sha256RE.MatchString(r.SHA256):
		return bad("sha256 %q: want 64 lower-case hex digits", r.SHA256)
	case r.Length <= 0:
		return bad("length %d: want > 0", r.Length)
	case !versionRE.MatchString(r.Version):
		return bad("version %q: want 1-64 of [0-9A-Za-z.+_~-]", r.Version)
	case !identRE.MatchString(r.HardwareID):
		return bad("hardware_id %q: want 1-64 of [A-Za-z0-9._:-]", r.HardwareID)
	case !identRE.MatchString(r.Device):
		return bad("device %q: want 1-64 of [A-Za-z0-9._:-]", r.Device)
	case len(r.Steps) == 0 || len(r.Steps) > MaxSteps:
		return bad("%d steps: want 1-%d", len(r.Steps), MaxSteps)
	case r.VersionReadBack != "" && !versionRE.MatchString(r.VersionReadBack):
		return bad("version_read_back %q: want 0-64 of [0-9A-Za-z.+_~-]", r.VersionReadBack)
	case r.ImageSHA256ReadBack != "" && !sha256RE.MatchString(r.ImageSHA256ReadBack):
		return bad("image_sha256_read_back %q: want 64 lower-case hex digits", r.ImageSHA256ReadBack)
	case r.Soak < 0 || r.Soak%time.Second != 0:
		return bad("soak %s: want whole seconds >= 0", r.Soak)
	case r.Started.IsZero() || r.Finished.Before(r.Started):
		return bad("started %s, finished %s: want started <= finished", r.Started.Format(timeLayout), r.Finished.Format(timeLayout))
	case !r.Expires.After(r.Finished):
		return bad("expires %s: want after finished %s", r.Expires.Format(timeLayout), r.Finished.Format(timeLayout))
	case !identRE.MatchString(r.Key):
		return bad("key %q: want 1-64 of [A-Za-z0-9._:-]", r.Key)
	}
	for i, s := range r.Steps {
		switch {
		case !slices.Contains(phases, s.Phase):
			return bad("steps[%d].phase %q: want one of %s", i, s.Phase, strings.Join(phases, ", "))
		case s.Result != ResultOK && s.Result != ResultRetry && s.Result != ResultFailed:
			return bad("steps[%d].result %q: want %s, %s or %s", i, s.Result, ResultOK, ResultRetry, ResultFailed)
		case s.At.IsZero():
			return bad("steps[%d].at: required", i)
		case s.Error != "" && !text(s.Error, true):
			return bad("steps[%d].error: want at most %d printable characters", i, maxText)
		}
	}
	return nil
}

// text reports whether s is 1..maxText bytes of UTF-8 without control
// characters (spaces only if spaces is set).
func text(s string, spaces bool) bool {
	if s == "" || len(s) > maxText || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f || (c >= 0x80 && c < 0xa0) || (!spaces && c == ' ') {
			return false
		}
	}
	return true
}

// parseUTC parses RFC 3339 in UTC with whole seconds, the one spelling
// the canonical bytes use.
func parseUTC(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want UTC like 2026-05-01T22:00:00Z", s)
	}
	if t.Format(timeLayout) != s || t.Location() != time.UTC {
		return time.Time{}, fmt.Errorf("%q: want UTC like 2026-05-01T22:00:00Z", s)
	}
	return t, nil
}

// checkDuplicateKeys walks JSON and refuses an object with a key twice:
// encoding/json keeps the last, so a signed value could hide behind a
// second spelling that another decoder reads.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool // the next string token is a key
	}
	var stack []*frame
	for depth := 0; ; {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.obj {
					top.key = true
				}
				depth++
				if depth > 16 {
					return errors.New("nested too deeply")
				}
				stack = append(stack, &frame{obj: v == '{', keys: map[string]bool{}, key: v == '{'})
			default:
				depth--
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].key = true
				}
			}
			continue
		case string:
			if top != nil && top.obj && top.key {
				if top.keys[v] {
					return fmt.Errorf("key %q twice", v)
				}
				top.keys[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}
