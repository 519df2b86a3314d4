// SPDX-License-Identifier: Apache-2.0

package main

// fieldgatectl remote: signed commands to gateways over MQTT, and a live
// view of what gateways publish, for central operators and their scripts.
// The gateway's side is daemon/command.go; the wire format is docs/mqtt.md.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// remoteCommand is `fieldgatectl remote`: approve, cancel, defer,
// update-now, refresh and stop by signed MQTT command; keygen and pubkey for
// approver keys; watch for the gateways' published state.
func remoteCommand(stdout io.Writer) *cobra.Command {
	remote := &cobra.Command{
		Use:   "remote",
		Short: "Send signed commands to gateways over MQTT and watch their state",
		Long: `Send signed commands to gateways through the central MQTT broker, and watch
what gateways publish.

A command is signed with an approver's ed25519 key (--key FILE, made by
"fieldgatectl remote keygen"; the gateway lists its public key under
approvers[] with the name given as --key-id), published with QoS 1 on
{gateway}/cmd/{id} with a fresh id, and its results are awaited on
{gateway}/cmd/{id}/result. The exit status is 0 only if the final result is
"succeeded". A gateway that is offline receives the command when it comes
back (its broker session is persistent), as long as the command has not
expired (--expires).`,
	}
	remote.AddCommand(remoteActions(stdout)...)
	remote.AddCommand(keygenCommand(stdout), pubkeyCommand(stdout), watchCommand(stdout))
	return remote
}

// brokerFlags are the connection settings every remote subcommand that
// talks to the broker takes.
type brokerFlags struct {
	broker, caFile, certFile, keyFile, serverName, username, password string
}

func (b *brokerFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&b.broker, "broker", "", "broker URL: tcp://host:port or ssl://host:port (required)")
	f.StringVar(&b.caFile, "ca-file", "", "PEM CA bundle for the broker certificate (default: system pool)")
	f.StringVar(&b.certFile, "cert-file", "", "PEM client certificate (with --key-file)")
	f.StringVar(&b.keyFile, "key-file", "", "PEM client certificate key (with --cert-file); not the signing key")
	f.StringVar(&b.serverName, "server-name", "", "name to check in the broker certificate (default: the broker's host)")
	f.StringVar(&b.username, "username", "", "broker user name")
	f.StringVar(&b.password, "password", "", "broker password (default: $FIELDGATE_MQTT_PASSWORD, which keeps it out of the process list)")
}

// config returns the client configuration; prefix is only used to check it.
func (b brokerFlags) config(prefix string) (mqtt.Config, error) {
	if b.broker == "" {
		return mqtt.Config{}, errors.New("--broker is required (e.g. tcp://broker.example:1883)")
	}
	pw := b.password
	if pw == "" {
		pw = os.Getenv("FIELDGATE_MQTT_PASSWORD")
	}
	cfg := mqtt.Config{Broker: b.broker, Username: b.username, Password: pw,
		CAFile: b.caFile, CertFile: b.certFile, KeyFile: b.keyFile, ServerName: b.serverName}
	check := cfg
	check.ClientID, check.Prefix = "fieldgatectl", prefix
	if check.Prefix == "" {
		check.Prefix = "fieldgate"
	}
	if err := check.Validate(); err != nil {
		return mqtt.Config{}, fmt.Errorf("broker settings: %w", err)
	}
	return cfg, nil
}

// signFlags are the settings of a signed command.
type signFlags struct {
	key, keyID, gateway string
	broadcast           string // refresh only: the broadcast prefix to hint instead of one gateway
	expires, timeout    time.Duration
	json                bool
	times               timeFormat // how messages print instants (--utc)
}

func (s *signFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.key, "key", "", "approver's signing key file (from `fieldgatectl remote keygen`) (required)")
	f.StringVar(&s.keyID, "key-id", "", "approver name the gateway knows the key by (approvers[].name) (required)")
	f.StringVar(&s.gateway, "gateway", "", "the gateway's topic prefix, e.g. fieldgate/v1/site1/gw1 (required)")
	f.DurationVar(&s.expires, "expires", 10*time.Minute, "how long the command stays valid (at most 24h)")
	f.DurationVar(&s.timeout, "timeout", 30*time.Second, "how long to wait for the final result")
	f.BoolVar(&s.json, "json", false, "print each result as the gateway published it (JSON lines)")
}

// remoteActions returns one subcommand per command action.
func remoteActions(stdout io.Writer) []*cobra.Command {
	type action struct {
		cmd   *cobra.Command
		build func(args []string, now time.Time) (mqtt.Command, error)
	}
	var (
		sha                        string
		devices, nowDevices        []string
		rollbackDevices            []string
		retryDevices               []string
		approveWindow, deferWindow string
		nowSHA                     string
	)
	actions := []action{
		{&cobra.Command{Use: "approve JOB --sha256 HEX [--devices a,b] [--window START/END]",
			Short: "Approve a job for the image with this sha256", Args: cobra.ExactArgs(1)},
			func(args []string, now time.Time) (mqtt.Command, error) {
				w, err := parseWindow(approveWindow, now)
				return mqtt.Command{Action: mqtt.ActionApprove, Job: args[0], SHA256: strings.ToLower(sha), Devices: devices, Window: w}, err
			}},
		{&cobra.Command{Use: "cancel JOB", Short: "Cancel a job: pending devices are skipped, running ones finish their step",
			Args: cobra.ExactArgs(1)},
			func(args []string, _ time.Time) (mqtt.Command, error) {
				return mqtt.Command{Action: mqtt.ActionCancel, Job: args[0]}, nil
			}},
		{&cobra.Command{Use: "defer JOB --window START/END", Short: "Postpone a job's pending devices until START",
			Args: cobra.ExactArgs(1)},
			func(args []string, now time.Time) (mqtt.Command, error) {
				w, err := parseWindow(deferWindow, now)
				return mqtt.Command{Action: mqtt.ActionDefer, Job: args[0], Window: w}, err
			}},
		{&cobra.Command{Use: "update-now [JOB] [--devices a,b]",
			Short: "Refresh now and lift a deferral of JOB (windows and approvals still apply)", Args: cobra.MaximumNArgs(1)},
			func(args []string, _ time.Time) (mqtt.Command, error) {
				c := mqtt.Command{Action: mqtt.ActionUpdateNow, Devices: nowDevices, SHA256: strings.ToLower(nowSHA)}
				if len(args) == 1 {
					c.Job = args[0]
				}
				if c.Job == "" && len(c.Devices) == 0 {
					return c, errors.New("update-now needs JOB or --devices")
				}
				return c, nil
			}},
		{&cobra.Command{Use: "refresh [--broadcast [PREFIX]]", Short: "Refresh update metadata now (one gateway, or every gateway listening on a broadcast prefix)",
			Long: `Refresh update metadata now. With --gateway, the gateway refreshes and
answers with results like any command. With --broadcast, the signed hint
goes to every gateway whose mqtt.broadcast_prefix is PREFIX (default
` + mqtt.DefaultBroadcastPrefix + `): each refreshes after a random delay up to its
mqtt.hint_spread (at most once per 30s), and answers with a refresh-hint
event on its own events topic, not with a result; the command returns once
the broker has the hint.`,
			Args: cobra.MaximumNArgs(1)},
			func(args []string, _ time.Time) (mqtt.Command, error) {
				if len(args) > 0 {
					return mqtt.Command{}, fmt.Errorf("unexpected argument %q (a broadcast prefix follows --broadcast)", args[0])
				}
				return mqtt.Command{Action: mqtt.ActionRefresh}, nil
			}},
		{&cobra.Command{Use: "rollback --devices a,b",
			Short: "Return devices to the version they ran before their last committed update (in their window); that update is not offered to them again",
			Args:  cobra.NoArgs},
			func([]string, time.Time) (mqtt.Command, error) {
				if len(rollbackDevices) == 0 {
					return mqtt.Command{}, errors.New("rollback needs --devices")
				}
				return mqtt.Command{Action: mqtt.ActionRollback, Devices: rollbackDevices}, nil
			}},
		{&cobra.Command{Use: "stop", Short: "Emergency stop: the gateway starts no new device step (lifted only on site: fieldgatectl resume)",
			Args: cobra.NoArgs},
			func([]string, time.Time) (mqtt.Command, error) { return mqtt.Command{Action: mqtt.ActionStop}, nil }},
		{&cobra.Command{Use: "retry [JOB] [--devices a,b]",
			Short: "Lift the hold on a failed, rolled-back or cancelled update (of JOB's target, or every hold of the devices): it runs once more",
			Args:  cobra.MaximumNArgs(1)},
			func(args []string, _ time.Time) (mqtt.Command, error) {
				c := mqtt.Command{Action: mqtt.ActionRetry, Devices: retryDevices}
				if len(args) == 1 {
					c.Job = args[0]
				}
				if c.Job == "" && len(c.Devices) == 0 {
					return c, errors.New("retry needs JOB or --devices")
				}
				return c, nil
			}},
	}
	triage, buildTriage := remoteTriage()
	actions = append(actions, action{triage, buildTriage})
	approve, deferCmd, updateNow, rollback := actions[0].cmd, actions[2].cmd, actions[3].cmd, actions[5].cmd
	rollback.Flags().StringSliceVar(&rollbackDevices, "devices", nil, "devices to roll back (required)")
	actions[7].cmd.Flags().StringSliceVar(&retryDevices, "devices", nil, "lift every hold of these devices")
	approve.Flags().StringVar(&sha, "sha256", "", "sha256 of the job's image, as shown in the job (required)")
	approve.Flags().StringSliceVar(&devices, "devices", nil, "approve only these devices (default: the job's devices)")
	approve.Flags().StringVar(&approveWindow, "window", "", "approve for this time only: START/END, each RFC 3339 or a duration from now (0s/4h)")
	approve.MarkFlagRequired("sha256")
	deferCmd.Flags().StringVar(&deferWindow, "window", "", "START/END, each RFC 3339 or a duration from now (e.g. 24h/28h)")
	deferCmd.MarkFlagRequired("window")
	updateNow.Flags().StringSliceVar(&nowDevices, "devices", nil, "devices the command names")
	updateNow.Flags().StringVar(&nowSHA, "sha256", "", "image sha256 the command names")

	var out []*cobra.Command
	for _, a := range actions {
		var bf brokerFlags
		var sf signFlags
		bf.add(a.cmd)
		sf.add(a.cmd)
		build := a.build
		broadcast := a.cmd.Name() == "refresh"
		if broadcast {
			a.cmd.Flags().StringVar(&sf.broadcast, "broadcast", "", "send a refresh hint to every gateway on this broadcast prefix instead of --gateway (default prefix "+mqtt.DefaultBroadcastPrefix+")")
			a.cmd.Flags().Lookup("broadcast").NoOptDefVal = mqtt.DefaultBroadcastPrefix
		}
		a.cmd.RunE = func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			if broadcast && sf.broadcast != "" && len(args) == 1 { // --broadcast PREFIX, not --broadcast=PREFIX
				sf.broadcast, args = args[0], nil
			}
			c, err := build(args, now)
			if err != nil {
				return err
			}
			sf.times = timesOf(cmd)
			return sendCommand(cmd.Context(), stdout, cmd.ErrOrStderr(), bf, sf, c, now)
		}
		out = append(out, a.cmd)
	}
	return out
}

// parseWindow reads START/END; each side is an RFC 3339 time or a
// duration from now. The empty string is no window.
func parseWindow(s string, now time.Time) (mqtt.Window, error) {
	if s == "" {
		return mqtt.Window{}, nil
	}
	start, end, ok := strings.Cut(s, "/")
	if !ok {
		return mqtt.Window{}, fmt.Errorf("--window %q: want START/END", s)
	}
	var w mqtt.Window
	for _, p := range []struct {
		s string
		t *time.Time
	}{{start, &w.Start}, {end, &w.End}} {
		if d, err := time.ParseDuration(p.s); err == nil {
			*p.t = now.Add(d).UTC().Truncate(time.Second)
			continue
		}
		t, err := time.Parse(time.RFC3339, p.s)
		if err != nil {
			return mqtt.Window{}, fmt.Errorf("--window %q: %q is neither an RFC 3339 time (2026-05-01T22:00:00Z) nor a duration (4h)", s, p.s)
		}
		if !t.Equal(t.Truncate(time.Second)) {
			return mqtt.Window{}, fmt.Errorf("--window %q: %q has fractions of a second; commands carry whole seconds", s, p.s)
		}
		*p.t = t.UTC()
	}
	if !w.Start.Before(w.End) {
		return mqtt.Window{}, fmt.Errorf("--window %q: START must be before END", s)
	}
	return w, nil
}

// commandResult is what the gateway publishes on {gateway}/cmd/{id}/result
// (daemon/command.go).
type commandResult struct {
	ID     string    `json:"id"`
	Action string    `json:"action"`
	Status string    `json:"status"`
	Reason string    `json:"reason"`
	Actor  string    `json:"actor"`
	Time   time.Time `json:"time"`
}

// final reports whether no further result follows this one.
func (r commandResult) final() bool {
	switch r.Status {
	case "succeeded", "failed", "rejected":
		return true
	}
	return false
}

func (r commandResult) String() string {
	s := r.ID + " " + r.Action + " " + r.Status
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

// newCommandID returns a fresh command id: readable time plus 8 random bytes.
func newCommandID(now time.Time) string {
	b := make([]byte, 8)
	rand.Read(b)
	return "c-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// sendCommand completes c (id, gateway, expiry), signs it, sends it and
// waits for its final result. It returns nil only if that result is
// "succeeded".
func sendCommand(ctx context.Context, stdout, stderr io.Writer, bf brokerFlags, sf signFlags, c mqtt.Command, now time.Time) error {
	switch {
	case sf.broadcast != "" && sf.gateway != "":
		return errors.New("--broadcast and --gateway exclude each other: a hint goes to every gateway on the broadcast prefix")
	case sf.broadcast != "":
		if err := mqtt.CheckPrefix(sf.broadcast); err != nil {
			return fmt.Errorf("--broadcast: %w", err)
		}
		sf.gateway = sf.broadcast
	case sf.gateway == "":
		return errors.New("--gateway is required (the gateway's topic prefix, e.g. fieldgate/v1/site1/gw1)")
	case sf.key == "" || sf.keyID == "":
		return errors.New("--key and --key-id are required (make a key with `fieldgatectl remote keygen`)")
	case sf.expires <= 0 || sf.expires > mqtt.MaxCommandLifetime:
		return fmt.Errorf("--expires %v: must be positive and at most %v", sf.expires, mqtt.MaxCommandLifetime)
	case sf.timeout <= 0:
		return fmt.Errorf("--timeout %v: must be positive", sf.timeout)
	}
	cfg, err := bf.config(sf.gateway)
	if err != nil {
		return err
	}
	priv, err := readSigningKey(sf.key, stderr)
	if err != nil {
		return err
	}
	c.ID, c.Gateway = newCommandID(now), sf.gateway
	c.Expires = now.Add(sf.expires).UTC().Truncate(time.Second)
	payload, err := mqtt.SignCommand(c, sf.keyID, priv)
	if err != nil {
		return err
	}
	if sf.broadcast != "" {
		// No results: each gateway audits refresh-hint on its events topic.
		topic := mqtt.Config{Prefix: sf.broadcast}.CommandTopic(c.ID)
		ctx, cancel := context.WithTimeout(ctx, sf.timeout)
		defer cancel()
		if err := mqtt.Publish(ctx, cfg, mqtt.Message{Topic: topic, Payload: payload, QoS: 1}); err != nil {
			return fmt.Errorf("command %s %s: %w", c.ID, c.Action, err)
		}
		fmt.Fprintf(stdout, "%s refresh hint published on %s (valid until %s); gateways answer with a refresh-hint event\n",
			c.ID, topic, sf.times.at(c.Expires))
		return nil
	}
	var last commandResult
	err = request(ctx, cfg, sf.gateway, c.ID, payload, sf.timeout, func(raw []byte) bool {
		var r commandResult
		if err := json.Unmarshal(raw, &r); err != nil {
			fmt.Fprintf(stderr, "fieldgatectl: ignoring unreadable result for %s: %v\n", c.ID, err)
			return false
		}
		if r == last {
			return false // a QoS 1 duplicate
		}
		last = r
		if sf.json {
			fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(raw))
		} else {
			fmt.Fprintln(stdout, r)
		}
		return r.final()
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			status := "none"
			if last.Status != "" {
				status = last.Status
			}
			return fmt.Errorf("command %s %s: no final result within %v (last result: %s); it stays valid until %s, so a gateway that is offline now may still execute it",
				c.ID, c.Action, sf.timeout, status, sf.times.at(c.Expires))
		}
		return fmt.Errorf("command %s %s: %w", c.ID, c.Action, err)
	}
	if last.Status != "succeeded" {
		return fmt.Errorf("command %s %s: %s", c.ID, c.Action, last.Status)
	}
	return nil
}

// probeSuffix names the topic below {gateway}/cmd/{id} that request
// publishes to itself to learn that its subscription is active. The gateway
// subscribes to {gateway}/cmd/+ only, so it never sees probes.
const probeSuffix = "probe"

// request subscribes to {prefix}/cmd/{id}/#, waits until the subscription
// is active, publishes payload on {prefix}/cmd/{id} with QoS 1 and passes
// every result payload to onResult until it returns true. The whole
// exchange is bounded by timeout; ctx errors are returned as they are.
func request(ctx context.Context, cfg mqtt.Config, prefix, id string, payload []byte, timeout time.Duration, onResult func([]byte) bool) error {
	topics := mqtt.Config{Prefix: prefix}
	cmdTopic, resultTopic := topics.CommandTopic(id), topics.ResultTopic(id)
	probeTopic := cmdTopic + "/" + probeSuffix

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type msg struct {
		topic   string
		payload []byte
	}
	msgs := make(chan msg, 16)
	werr := make(chan error, 1)
	go func() {
		werr <- mqtt.WatchConfig(ctx, cfg, cmdTopic+"/#", func(topic string, p []byte, _ bool) {
			select {
			case msgs <- msg{topic, bytes.Clone(p)}:
			case <-ctx.Done():
			}
		})
	}()
	defer func() { cancel(); <-werr }()
	watchFailed := func(err error) error {
		if err == nil { // the watch ends without error only when ctx ends
			err = ctx.Err()
		}
		return fmt.Errorf("subscribe to results: %w", err)
	}

	// Subscribe before publishing: a result published before the
	// subscription is active would be lost (results are not retained).
	probe := mqtt.Message{Topic: probeTopic, Payload: []byte("subscription check"), QoS: 1}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	if err := mqtt.Publish(ctx, cfg, probe); err != nil {
		return err
	}
	for subscribed := false; !subscribed; {
		select {
		case m := <-msgs:
			subscribed = m.topic == probeTopic
		case <-tick.C:
			if err := mqtt.Publish(ctx, cfg, probe); err != nil {
				return err
			}
		case err := <-werr:
			werr <- err
			return watchFailed(err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	if err := mqtt.Publish(ctx, cfg, mqtt.Message{Topic: cmdTopic, Payload: payload, QoS: 1}); err != nil {
		return err
	}
	for {
		select {
		case m := <-msgs:
			if m.topic == resultTopic && onResult(m.payload) {
				return nil
			}
		case err := <-werr:
			werr <- err
			return watchFailed(err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Signing key files hold one line: the standard base64 of the 64-byte
// ed25519 private key (seed followed by public key, as Go's
// crypto/ed25519 and libsodium store it). The gateway's configuration holds
// the base64 of the 32-byte public key (approvers[].public_key).

// readSigningKey reads a signing key file, warning on stderr if other users
// may read it.
func readSigningKey(path string, stderr io.Writer) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "fieldgatectl: warning: signing key %s is accessible to other users (mode %v); chmod 600 it\n", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	return parseSigningKey(path, b)
}

func parseSigningKey(name string, b []byte) (ed25519.PrivateKey, error) {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing key %s: want one line of base64 of a %d-byte ed25519 private key (see fieldgatectl remote keygen)", name, ed25519.PrivateKeySize)
	}
	priv := ed25519.PrivateKey(raw)
	if !bytes.Equal(ed25519.NewKeyFromSeed(priv.Seed()), priv) {
		return nil, fmt.Errorf("signing key %s: its public half does not belong to its seed (damaged file?)", name)
	}
	return priv, nil
}

func publicKeyText(priv ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
}

func keygenCommand(stdout io.Writer) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make an approver signing key; prints the public key for the gateway's approvers[].public_key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("keygen: %w (an existing key is never overwritten)", err)
			}
			_, err = fmt.Fprintln(f, base64.StdEncoding.EncodeToString(priv))
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(out)
				return fmt.Errorf("keygen: write %s: %w", out, err)
			}
			fmt.Fprintln(stdout, publicKeyText(priv))
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (keep it secret); add to the gateway's configuration:\n  approvers:\n    - {name: NAME, public_key: %s}\nand sign with --key %s --key-id NAME\n",
				out, publicKeyText(priv), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the private key to (mode 0600; must not exist)")
	cmd.MarkFlagRequired("out")
	return cmd
}

func pubkeyCommand(stdout io.Writer) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "pubkey --key FILE",
		Short: "Print the public key of a signing key (for approvers[].public_key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			priv, err := readSigningKey(key, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, publicKeyText(priv))
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "signing key file")
	cmd.MarkFlagRequired("key")
	return cmd
}

func watchCommand(stdout io.Writer) *cobra.Command {
	var (
		bf          brokerFlags
		gateway     string
		site        string
		asJSON      bool
		count       int
		noDedupe    bool
		includeCmds bool
	)
	cmd := &cobra.Command{
		Use:   "watch --broker URL [--gateway PREFIX | --site SITE]",
		Short: "Print gateways' status, devices, jobs and events as they change",
		Long: `Print what gateways publish, one line per change, with local time (UTC
with --utc): gateway status
(online, health), device state and version, job phase and per-device steps,
audit events, command requests and results. Retained state arrives first, then changes live.
Without --gateway or --site it watches every gateway under fieldgate/v1/.
Lines that repeat the previous state of a topic, and events whose seq is not
above the highest seen from that gateway (at-least-once duplicates), are not
printed. --json prints every message as it arrived, one JSON object a line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := watchFilter(gateway, site)
			if err != nil {
				return err
			}
			cfg, err := bf.config(gateway)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			p := newWatchPrinter(stdout, asJSON, !noDedupe, includeCmds)
			p.times = timesOf(cmd)
			var printed int
			return mqtt.WatchConfig(ctx, cfg, filter, func(topic string, payload []byte, retained bool) {
				if ctx.Err() != nil {
					return
				}
				if p.handle(topic, payload, retained) {
					printed++
					if count > 0 && printed >= count {
						cancel()
					}
				}
			})
		},
	}
	bf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&gateway, "gateway", "", "watch one gateway: its topic prefix, e.g. fieldgate/v1/site1/gw1")
	f.StringVar(&site, "site", "", "watch every gateway of a site (fieldgate/v1/SITE/+)")
	f.BoolVar(&asJSON, "json", false, "print raw messages as JSON lines: {topic, retained, payload}")
	f.IntVar(&count, "count", 0, "exit after printing this many lines (0: run until interrupted)")
	f.BoolVar(&noDedupe, "all", false, "print repeated states and duplicate events too")
	f.BoolVar(&includeCmds, "commands", true, "print command requests and results")
	return cmd
}

// watchFilter returns the subscription filter for the watch flags.
func watchFilter(gateway, site string) (string, error) {
	switch {
	case gateway != "" && site != "":
		return "", errors.New("give --gateway or --site, not both")
	case gateway != "":
		if strings.ContainsAny(gateway, "+#") || strings.HasSuffix(gateway, "/") {
			return "", fmt.Errorf("--gateway %q: want a topic prefix without wildcards or trailing slash", gateway)
		}
		return gateway + "/#", nil
	case site != "":
		if strings.ContainsAny(site, "/+#") {
			return "", fmt.Errorf("--site %q: want one topic level", site)
		}
		return "fieldgate/v1/" + site + "/+/#", nil
	}
	return "fieldgate/v1/#", nil
}

// watchPrinter turns messages into one line per change. It is used from
// one goroutine (WatchConfig calls its handler sequentially).
type watchPrinter struct {
	out      io.Writer
	json     bool
	dedupe   bool
	commands bool
	last     map[string]string // topic -> last line printed
	maxSeq   map[string]uint64 // gateway prefix -> highest event seq printed
	now      func() time.Time  // for messages that carry no time
	times    timeFormat
}

func newWatchPrinter(out io.Writer, asJSON, dedupe, commands bool) *watchPrinter {
	return &watchPrinter{out: out, json: asJSON, dedupe: dedupe, commands: commands,
		last: map[string]string{}, maxSeq: map[string]uint64{}, now: time.Now, times: timeFormat{loc: time.UTC}}
}

// handle prints the message if it says something new and reports whether
// it printed a line.
func (p *watchPrinter) handle(topic string, payload []byte, retained bool) bool {
	if p.json {
		raw := json.RawMessage(payload)
		if !json.Valid(payload) {
			raw, _ = json.Marshal(string(payload))
		}
		line, _ := json.Marshal(struct {
			Topic    string          `json:"topic"`
			Retained bool            `json:"retained"`
			Payload  json.RawMessage `json:"payload"`
		}{topic, retained, raw})
		fmt.Fprintf(p.out, "%s\n", line)
		return true
	}
	r, ok := describe(topic, payload, p.times)
	if !ok || (r.command && !p.commands) {
		return false
	}
	if p.dedupe {
		if r.seq > 0 {
			if r.seq <= p.maxSeq[r.gateway] {
				return false
			}
			p.maxSeq[r.gateway] = r.seq
		} else if p.last[topic] == r.line {
			return false
		}
		p.last[topic] = r.line
	}
	when := r.time
	if when.IsZero() {
		when = p.now()
	}
	fmt.Fprintf(p.out, "%s %s  %s\n", p.times.at(when), gatewayLabel(r.gateway), r.line)
	return true
}

// gatewayLabel shortens the default prefix fieldgate/v1/SITE/GW to SITE/GW.
func gatewayLabel(prefix string) string {
	return strings.TrimPrefix(prefix, "fieldgate/v1/")
}

// report is one message described for a person.
type report struct {
	gateway string    // the gateway's topic prefix
	line    string    // what changed, without time or gateway
	time    time.Time // when the gateway made it (zero if unknown)
	seq     uint64    // events: the audit sequence number
	command bool      // a command request or result
}

// describe parses a message of the fieldgate topic tree (docs/mqtt.md). It
// recognises the topic by its last levels, so it works for any prefix.
func describe(topic string, payload []byte, tf timeFormat) (report, bool) {
	lv := strings.Split(topic, "/")
	n := len(lv)
	at := func(i int) string { // i-th level from the end, 1-based
		if n-i < 0 {
			return ""
		}
		return lv[n-i]
	}
	prefix := func(k int) string { return strings.Join(lv[:n-k], "/") }
	if n < 2 {
		return report{}, false
	}
	cleared := len(bytes.TrimSpace(payload)) == 0
	switch {
	case n >= 3 && at(2) == "devices":
		r := report{gateway: prefix(2)}
		if cleared {
			r.line = "device " + at(1) + " retained state cleared"
			return r, true
		}
		var d api.Device
		if json.Unmarshal(payload, &d) != nil {
			return report{}, false
		}
		r.time, r.line = d.Updated, deviceLine(d)
		return r, true
	case n >= 3 && at(2) == "jobs":
		r := report{gateway: prefix(2)}
		if cleared {
			r.line = "job " + at(1) + " retained state cleared"
			return r, true
		}
		var j api.Job
		if json.Unmarshal(payload, &j) != nil {
			return report{}, false
		}
		r.time, r.line = j.Updated, jobLine(j)
		return r, true
	case n >= 4 && at(3) == "cmd" && at(1) == "result":
		var res commandResult
		if json.Unmarshal(payload, &res) != nil {
			return report{}, false
		}
		return report{gateway: prefix(3), time: res.Time, command: true, line: "cmd " + res.String()}, true
	case n >= 3 && at(2) == "cmd":
		var c struct {
			Action, Key string
			Expires     time.Time
		}
		if json.Unmarshal(payload, &c) != nil {
			return report{}, false
		}
		return report{gateway: prefix(2), command: true,
			line: fmt.Sprintf("cmd %s %s requested (key %s, expires %s)", at(1), c.Action, c.Key, tf.at(c.Expires))}, true
	case at(1) == "status":
		r := report{gateway: prefix(1)}
		if cleared {
			r.line = "status cleared"
			return r, true
		}
		var g struct {
			api.Gateway
			Reason string `json:"reason"`
		}
		if json.Unmarshal(payload, &g) != nil {
			return report{}, false
		}
		r.time, r.line = g.Time, statusLine(g.Gateway, g.Reason)
		return r, true
	case at(1) == "events":
		var e api.Event
		if json.Unmarshal(payload, &e) != nil {
			return report{}, false
		}
		if e.Type == "outbox-compacted" {
			var c struct{ Dropped uint64 }
			json.Unmarshal(payload, &c)
			return report{gateway: prefix(1), line: fmt.Sprintf("event outbox-compacted: %d events were dropped while the broker was unreachable", c.Dropped)}, true
		}
		return report{gateway: prefix(1), time: e.Time, seq: e.Seq, line: eventLine(e)}, true
	}
	return report{}, false
}

func statusLine(g api.Gateway, reason string) string {
	if !g.Online {
		if reason == "" {
			reason = "unknown"
		}
		return "status OFFLINE (" + reason + ")"
	}
	s := "status online"
	if g.ID == "" {
		return s // the transport's first status, before the daemon's own
	}
	if g.Healthy {
		s += " healthy"
	} else {
		s += " NOT HEALTHY"
	}
	if g.Version != "" {
		s += " fieldgated " + g.Version
	}
	for _, c := range g.Health {
		s += " | " + c.Severity + " " + c.Name
		if c.Subject != "" {
			s += "[" + c.Subject + "]"
		}
	}
	return s
}

func deviceLine(d api.Device) string {
	s := fmt.Sprintf("device %s version %s state %s", d.ID, orDash(d.Version), d.State)
	if d.Progress != nil && d.Progress.Total > 0 {
		s += fmt.Sprintf(" %d%%", d.Progress.Done*100/d.Progress.Total)
	}
	if d.Job != "" {
		s += " job " + d.Job
	}
	if d.LastError != "" {
		s += " error: " + d.LastError
	}
	return s
}

func jobLine(j api.Job) string {
	s := fmt.Sprintf("job %s %s %s", j.ID, j.Phase, j.Target)
	var steps []string
	for _, st := range j.Steps {
		steps = append(steps, st.Device+"="+st.Phase)
	}
	if len(steps) > 0 {
		s += " [" + strings.Join(steps, " ") + "]"
	}
	if j.Reason != "" {
		s += " reason: " + j.Reason
	}
	if j.Waiting != "" && !terminalJob(j.Phase) {
		s += " waiting: " + j.Waiting
	}
	return s
}

func eventLine(e api.Event) string {
	s := fmt.Sprintf("event #%d %s", e.Seq, e.Type)
	if e.Device != "" {
		s += " device " + e.Device
	}
	if e.Job != "" {
		s += " job " + e.Job
	}
	if e.Actor != "" {
		s += " by " + e.Actor
	}
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if e.Detail[k] != "" {
			s += " " + k + "=" + fmt.Sprint(e.Detail[k])
		}
	}
	return s
}
