// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/daemon/advisory"
)

// MaxCommandSize is the largest command payload ParseCommand accepts.
const MaxCommandSize = 8 << 10

// MaxCommandLifetime bounds how far in the future a command may expire, so
// that the daemon's memory of seen command ids (replay protection) stays small.
const MaxCommandLifetime = 24 * time.Hour

// Command actions. The strings are stable: they appear in signed payloads.
const (
	ActionApprove   = "approve"    // approve job (bound to its image sha256)
	ActionCancel    = "cancel"     // cancel job
	ActionDefer     = "defer"      // move job to window
	ActionUpdateNow = "update-now" // start job and/or update devices now, outside the window
	ActionRefresh   = "refresh"    // refresh TUF metadata now
	ActionRollback  = "rollback"   // roll devices back to their previous image
	ActionStop      = "stop"       // emergency stop: start no new device step (devices optional)
	ActionRetry     = "retry"      // lift the hold on a failed update: of a job's target, or of devices
	ActionTriage    = "triage"     // record a site verdict on an advisory for a device
)

// Reasons a command is rejected (ParseCommand errors wrap one of these).
// RejectReason maps them to the stable strings used in command results.
var (
	ErrCommandTooLarge  = errors.New("command too large")
	ErrCommandMalformed = errors.New("command malformed")
	ErrCommandUnsigned  = errors.New("command unsigned")
	ErrUnknownKey       = errors.New("unknown approver key")
	ErrBadSignature     = errors.New("bad signature")
	ErrCommandExpired   = errors.New("command expired")
	ErrWrongGateway     = errors.New("command for another gateway")
	ErrBroadcastAction  = errors.New("action not allowed on the broadcast topic")
)

// RejectReason returns the stable reason string for a ParseCommand error:
// "too-large", "malformed", "unsigned", "unknown-key", "bad-signature",
// "expired", "wrong-gateway", "broadcast-action", or "invalid" for
// anything else.
func RejectReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrCommandTooLarge, "too-large"},
		{ErrCommandMalformed, "malformed"},
		{ErrCommandUnsigned, "unsigned"},
		{ErrUnknownKey, "unknown-key"},
		{ErrBadSignature, "bad-signature"},
		{ErrCommandExpired, "expired"},
		{ErrWrongGateway, "wrong-gateway"},
		{ErrBroadcastAction, "broadcast-action"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid"
}

// Window is a time interval in UTC, written "start/end" in RFC 3339.
type Window struct {
	Start, End time.Time
}

// IsZero reports whether w is unset.
func (w Window) IsZero() bool { return w.Start.IsZero() && w.End.IsZero() }

func (w Window) String() string {
	if w.IsZero() {
		return ""
	}
	return w.Start.UTC().Format(time.RFC3339) + "/" + w.End.UTC().Format(time.RFC3339)
}

// Command is a verified remote command. ParseCommand returns it only when it
// is well-formed, signed by a known key, addressed to a gateway and not expired;
// the daemon still checks that its id is new (replay), that Gateway is its
// own prefix (or uses Config.ParseCommand), and that the job and image match.
type Command struct {
	ID      string
	Action  string
	Gateway string // topic prefix of the gateway the command is for
	Expires time.Time
	Job     string
	SHA256  string // hex, lower case
	Devices []string
	Window  Window
	Key     string // id of the approver key that signed it

	// Triage: a site verdict (see advisory.Verdict), signed in the v2
	// canonical form.
	Device        string
	Advisory      string // tracking id
	CVE           string // "" for every CVE of the advisory
	Verdict       string // not_affected, risk_accepted or mitigated
	Justification string
	Until         string // YYYY-MM-DD
	Control       string
	Note          string
}

// wireCommand is the JSON form; see docs/mqtt.md.
type wireCommand struct {
	ID      string   `json:"id"`
	Action  string   `json:"action"`
	Gateway string   `json:"gateway"`
	Expires string   `json:"expires"`
	Args    wireArgs `json:"args"`
	Key     string   `json:"key"`
	Sig     string   `json:"sig"`
}

type wireArgs struct {
	Job     string   `json:"job,omitempty"`
	SHA256  string   `json:"sha256,omitempty"`
	Devices []string `json:"devices,omitempty"`
	Window  string   `json:"window,omitempty"`

	Device        string `json:"device,omitempty"`
	Advisory      string `json:"advisory,omitempty"`
	CVE           string `json:"cve,omitempty"`
	Verdict       string `json:"verdict,omitempty"`
	Justification string `json:"justification,omitempty"`
	Until         string `json:"until,omitempty"`
	Control       string `json:"control,omitempty"`
	Note          string `json:"note,omitempty"`
}

// triage returns the triage args as a verdict, and the name of the first
// one that is set ("" if none).
func (a wireArgs) triage() (advisory.Verdict, string) {
	v := advisory.Verdict{Device: a.Device, Advisory: a.Advisory, CVE: a.CVE, Kind: advisory.VerdictKind(a.Verdict),
		Justification: a.Justification, Until: a.Until, Control: a.Control, Note: a.Note}
	for _, f := range [][2]string{{"device", a.Device}, {"advisory", a.Advisory}, {"cve", a.CVE}, {"verdict", a.Verdict},
		{"justification", a.Justification}, {"until", a.Until}, {"control", a.Control}, {"note", a.Note}} {
		if f[1] != "" {
			return v, f[0]
		}
	}
	return v, ""
}

var (
	identRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// argRule says which args an action requires (r) and allows (a).
type argRule struct{ job, sha, devices, window byte }

const (
	no  = 0
	may = 1
	req = 2
)

var actionArgs = map[string]argRule{
	ActionApprove:   {job: req, sha: req, devices: may, window: may}, // window: this opening of the job's window only
	ActionCancel:    {job: req},
	ActionDefer:     {job: req, window: req},
	ActionUpdateNow: {job: may, sha: may, devices: may}, // job or devices, checked below
	ActionRefresh:   {},
	ActionRollback:  {job: may, devices: req},
	ActionStop:      {devices: may},
	ActionRetry:     {job: may, devices: may}, // job or devices, checked below
	ActionTriage:    {},                       // its own args, checked by advisory.Verdict.Validate
}

const maxDevices = 256

// ParseCommand decodes, validates and verifies a command payload against the
// approver keys (key id → public key) at time now. Errors wrap one of the
// Err* reasons above (see RejectReason) and say what is wrong. It never
// panics on any input and reads at most MaxCommandSize bytes.
func ParseCommand(payload []byte, keys map[string]ed25519.PublicKey, now time.Time) (Command, error) {
	if len(payload) > MaxCommandSize {
		return Command{}, fmt.Errorf("%w: %d bytes, limit %d", ErrCommandTooLarge, len(payload), MaxCommandSize)
	}
	var w wireCommand
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrCommandMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Command{}, fmt.Errorf("%w: data after the JSON object", ErrCommandMalformed)
	}
	c, err := w.command(now)
	if err != nil {
		return Command{}, err
	}
	if w.Sig == "" || w.Key == "" {
		return c, fmt.Errorf("command %s: %w", c.ID, ErrCommandUnsigned)
	}
	pub, ok := keys[w.Key]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return c, fmt.Errorf("command %s: %w %q", c.ID, ErrUnknownKey, w.Key)
	}
	sig, err := base64.StdEncoding.DecodeString(w.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, fmt.Errorf("command %s: %w: sig is not a base64 ed25519 signature", c.ID, ErrBadSignature)
	}
	if !ed25519.Verify(pub, c.canonical(), sig) {
		return c, fmt.Errorf("command %s: %w by key %q", c.ID, ErrBadSignature, w.Key)
	}
	if !now.Before(c.Expires) {
		return c, fmt.Errorf("command %s: %w at %s", c.ID, ErrCommandExpired, c.Expires.Format(time.RFC3339))
	}
	if c.Expires.Sub(now) > MaxCommandLifetime {
		return c, fmt.Errorf("command %s: %w: expires %s, more than %v ahead", c.ID, ErrCommandMalformed, c.Expires.Format(time.RFC3339), MaxCommandLifetime)
	}
	return c, nil
}

// ParseCommand is the package ParseCommand plus the check that the command
// is addressed to this gateway (Gateway == c.Prefix).
func (c Config) ParseCommand(payload []byte, keys map[string]ed25519.PublicKey, now time.Time) (Command, error) {
	cmd, err := ParseCommand(payload, keys, now)
	if err == nil && cmd.Gateway != c.Prefix {
		return cmd, fmt.Errorf("command %s: %w %q", cmd.ID, ErrWrongGateway, cmd.Gateway)
	}
	return cmd, err
}

// ParseBroadcast is the package ParseCommand for a request on the
// broadcast topic (Config.BroadcastFilter): the command must be addressed
// to the broadcast prefix (Gateway == c.Broadcast), and its action must be
// ActionRefresh, the only one a broadcast may carry. A hint that reaches
// every gateway at once can only make them ask for metadata a little
// earlier; anything that changes a device stays addressed to one gateway.
func (c Config) ParseBroadcast(payload []byte, keys map[string]ed25519.PublicKey, now time.Time) (Command, error) {
	cmd, err := ParseCommand(payload, keys, now)
	switch {
	case err != nil:
	case c.Broadcast == "" || cmd.Gateway != c.Broadcast:
		err = fmt.Errorf("command %s: %w %q, not the broadcast prefix %q", cmd.ID, ErrWrongGateway, cmd.Gateway, c.Broadcast)
	case cmd.Action != ActionRefresh:
		err = fmt.Errorf("command %s: %w: %s (only %s)", cmd.ID, ErrBroadcastAction, cmd.Action, ActionRefresh)
	}
	return cmd, err
}

// command validates the fields of w (not the signature). A zero now skips
// the checks that need a clock (a triage risk acceptance's date).
func (w wireCommand) command(now time.Time) (Command, error) {
	bad := func(format string, a ...any) (Command, error) {
		return Command{}, fmt.Errorf("%w: %s", ErrCommandMalformed, fmt.Sprintf(format, a...))
	}
	if !identRE.MatchString(w.ID) {
		return bad("id %q: want 1-64 of [A-Za-z0-9._:-]", w.ID)
	}
	rule, ok := actionArgs[w.Action]
	if !ok {
		return bad("command %s: unknown action %q", w.ID, w.Action)
	}
	if w.Gateway == "" || len(w.Gateway) > 256 || strings.ContainsAny(w.Gateway, "+#\n\x00") {
		return bad("command %s: gateway %q: want the gateway's topic prefix", w.ID, w.Gateway)
	}
	exp, err := parseUTC(w.Expires)
	if err != nil {
		return bad("command %s: expires: %v", w.ID, err)
	}
	if w.Key != "" && !identRE.MatchString(w.Key) {
		return bad("command %s: key %q: want 1-64 of [A-Za-z0-9._:-]", w.ID, w.Key)
	}
	c := Command{ID: w.ID, Action: w.Action, Gateway: w.Gateway, Expires: exp, Key: w.Key,
		Job: w.Args.Job, SHA256: w.Args.SHA256, Devices: w.Args.Devices,
		Device: w.Args.Device, Advisory: w.Args.Advisory, CVE: w.Args.CVE, Verdict: w.Args.Verdict,
		Justification: w.Args.Justification, Until: w.Args.Until, Control: w.Args.Control, Note: w.Args.Note}
	check := func(name string, r byte, set bool) error {
		switch {
		case r == req && !set:
			return fmt.Errorf("%w: command %s: %s needs args.%s", ErrCommandMalformed, w.ID, w.Action, name)
		case r == no && set:
			return fmt.Errorf("%w: command %s: args.%s does not apply to %s", ErrCommandMalformed, w.ID, name, w.Action)
		}
		return nil
	}
	if err := errors.Join(
		check("job", rule.job, w.Args.Job != ""),
		check("sha256", rule.sha, w.Args.SHA256 != ""),
		check("devices", rule.devices, len(w.Args.Devices) > 0),
		check("window", rule.window, w.Args.Window != ""),
	); err != nil {
		return Command{}, err
	}
	switch v, first := w.Args.triage(); {
	case w.Action != ActionTriage && first != "":
		return bad("command %s: args.%s does not apply to %s", w.ID, first, w.Action)
	case w.Action == ActionTriage:
		if err := v.Validate(now); err != nil {
			return bad("command %s: %v", w.ID, err)
		}
	}
	if (w.Action == ActionUpdateNow || w.Action == ActionRetry) && w.Args.Job == "" && len(w.Args.Devices) == 0 {
		return bad("command %s: %s needs args.job or args.devices", w.ID, w.Action)
	}
	if w.Args.Job != "" && !identRE.MatchString(w.Args.Job) {
		return bad("command %s: job %q: want 1-64 of [A-Za-z0-9._:-]", w.ID, w.Args.Job)
	}
	if w.Args.SHA256 != "" && !sha256RE.MatchString(w.Args.SHA256) {
		return bad("command %s: sha256 %q: want 64 lower-case hex digits", w.ID, w.Args.SHA256)
	}
	if len(w.Args.Devices) > maxDevices {
		return bad("command %s: %d devices, limit %d", w.ID, len(w.Args.Devices), maxDevices)
	}
	seen := map[string]bool{}
	for _, d := range w.Args.Devices {
		if !identRE.MatchString(d) {
			return bad("command %s: device %q: want 1-64 of [A-Za-z0-9._:-]", w.ID, d)
		}
		if seen[d] {
			return bad("command %s: device %q listed twice", w.ID, d)
		}
		seen[d] = true
	}
	if w.Args.Window != "" {
		s, e, ok := strings.Cut(w.Args.Window, "/")
		start, err1 := parseUTC(s)
		end, err2 := parseUTC(e)
		if !ok || err1 != nil || err2 != nil || !start.Before(end) {
			return bad("command %s: window %q: want START/END in RFC 3339 UTC, START before END", w.ID, w.Args.Window)
		}
		c.Window = Window{start, end}
	}
	return c, nil
}

// parseUTC parses the one time format commands use: RFC 3339 in UTC with
// whole seconds ("2026-05-01T22:00:00Z"), so that each time has one spelling
// and the canonical form is the text that was sent.
func parseUTC(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Format(time.RFC3339) != s || t.Location() != time.UTC {
		return time.Time{}, fmt.Errorf("%q: want UTC like 2026-05-01T22:00:00Z", s)
	}
	return t, nil
}

// canonical returns the bytes an approver signs: one "name=value" line per
// field, in a fixed order, after a version line. Values cannot contain a
// newline (validated above), so the encoding is unambiguous and easy to
// reproduce in any language; docs/mqtt.md shows an example. A triage
// command is signed in its own form, fieldgate-command-v2, with its own
// fields; every other action keeps v1, byte for byte.
func (c Command) canonical() []byte {
	var b strings.Builder
	if c.Action == ActionTriage {
		b.WriteString("fieldgate-command-v2\n")
		for _, kv := range [][2]string{
			{"id", c.ID},
			{"action", c.Action},
			{"gateway", c.Gateway},
			{"expires", c.Expires.UTC().Format(time.RFC3339)},
			{"device", c.Device},
			{"advisory", c.Advisory},
			{"cve", c.CVE},
			{"verdict", c.Verdict},
			{"justification", c.Justification},
			{"until", c.Until},
			{"control", c.Control},
			{"note", c.Note},
			{"key", c.Key},
		} {
			b.WriteString(kv[0] + "=" + kv[1] + "\n")
		}
		return []byte(b.String())
	}
	b.WriteString("fieldgate-command-v1\n")
	for _, kv := range [][2]string{
		{"id", c.ID},
		{"action", c.Action},
		{"gateway", c.Gateway},
		{"expires", c.Expires.UTC().Format(time.RFC3339)},
		{"job", c.Job},
		{"sha256", c.SHA256},
		{"devices", strings.Join(c.Devices, ",")},
		{"window", c.Window.String()},
		{"key", c.Key},
	} {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	return []byte(b.String())
}

// CanonicalCommand returns the bytes that are signed for c (with c.Key set
// to the signing key's id). It is exported for tools in other languages'
// test vectors and for debugging signatures.
func CanonicalCommand(c Command) []byte { return c.canonical() }

// SignCommand validates c, signs it with priv under key id keyID and returns
// the JSON payload to publish on Config.CommandTopic(c.ID).
func SignCommand(c Command, keyID string, priv ed25519.PrivateKey) ([]byte, error) {
	c.Key = keyID
	c.Expires = c.Expires.UTC().Truncate(time.Second)
	w := wireCommand{
		ID: c.ID, Action: c.Action, Gateway: c.Gateway, Expires: c.Expires.Format(time.RFC3339), Key: keyID,
		Args: wireArgs{Job: c.Job, SHA256: c.SHA256, Devices: c.Devices, Window: c.Window.String(),
			Device: c.Device, Advisory: c.Advisory, CVE: c.CVE, Verdict: c.Verdict, Justification: c.Justification,
			Until: c.Until, Control: c.Control, Note: c.Note},
	}
	if _, err := w.command(time.Time{}); err != nil {
		return nil, fmt.Errorf("sign command %s: %w", c.ID, err)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign command %s: private key is %d bytes, want %d", c.ID, len(priv), ed25519.PrivateKeySize)
	}
	w.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, c.canonical()))
	return json.Marshal(w)
}
