// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/daemon/advisory"
	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/store"
)

// Remote commands arrive on {prefix}/cmd/{id}, signed by an approver key
// from the configuration. Every command gets a result on
// {prefix}/cmd/{id}/result and an audit record, whatever becomes of it; a
// malformed, unsigned, forged, expired or replayed command changes nothing.

// commandResult is the payload of {prefix}/cmd/{id}/result.
type commandResult = api.CommandResult

// commander verifies remote commands and carries them out through the
// Daemon's own API, as a person on site would: the same checks, the same
// audit, whoever asks.
type commander struct {
	d     *Daemon
	queue chan rawCommand

	mu       sync.Mutex  // guards the hinted refresh below
	hintWait *time.Timer // the hinted refresh waiting for its delay; nil if none
	hintDue  time.Time   // when the last hinted refresh was due
}

type rawCommand struct {
	topic   string
	payload []byte
}

// approverKeys decodes the configured approver keys (validated at load).
func (c *commander) approverKeys() map[string]ed25519.PublicKey {
	d := c.d
	keys := map[string]ed25519.PublicKey{}
	for _, a := range d.cfg.Approvers {
		if k, err := base64.StdEncoding.DecodeString(a.PublicKey); err == nil && len(k) == ed25519.PublicKeySize {
			keys[a.Name] = ed25519.PublicKey(k)
		}
	}
	return keys
}

// CommandHandler returns the function the MQTT session calls for each
// command message. It only queues the command: the daemon handles it on
// its own goroutine. A full queue drops the message and says so; the
// sender sees no result and may resend with the same id.
func (d *Daemon) CommandHandler() func(topic string, payload []byte) {
	return func(topic string, payload []byte) {
		select {
		case d.cmds.queue <- rawCommand{topic, append([]byte(nil), payload...)}:
		default:
			d.log.Warn("command queue full; dropped", "topic", topic)
		}
	}
}

func (c *commander) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			if c.hintWait != nil {
				c.hintWait.Stop()
			}
			c.mu.Unlock()
			return nil
		case raw := <-c.queue:
			c.handleCommand(raw.topic, raw.payload)
		}
	}
}

// handleCommand verifies and executes one command, publishing its result.
func (c *commander) handleCommand(topic string, payload []byte) {
	d := c.d
	mcfg := mqtt.Config{Prefix: d.cfg.MQTT.Prefix, Broadcast: d.cfg.MQTT.BroadcastPrefix}
	id, ok := mcfg.CommandID(topic)
	if !ok {
		if id, ok := mcfg.BroadcastID(topic); ok {
			c.handleHint(mcfg, id, payload)
		}
		return // a result topic or something else under cmd/: not a request
	}
	now := d.now()
	cmd, err := mcfg.ParseCommand(payload, c.approverKeys(), now)
	if err != nil {
		c.commandResult(id, cmd, "rejected", mqtt.RejectReason(err)+": "+err.Error())
		return
	}
	if cmd.ID != id {
		c.commandResult(id, cmd, "rejected", fmt.Sprintf("malformed: command id %q does not match its topic", cmd.ID))
		return
	}
	replay, err := c.replayed(cmd, now)
	switch {
	case err != nil:
		c.commandResult(id, cmd, "failed", "store: "+err.Error())
		return
	case replay:
		c.commandResult(id, cmd, "rejected", "replayed: command id already used")
		return
	}
	c.commandResult(id, cmd, "accepted", "")
	if err := c.execute(cmd); err != nil {
		status := "failed"
		if errors.Is(err, ErrRefused) || errors.Is(err, errUnsupported) {
			status = "rejected"
		}
		c.commandResult(id, cmd, status, err.Error())
		return
	}
	c.commandResult(id, cmd, "succeeded", "")
}

// replayed records cmd's id as used (kept until it expires) and reports
// whether it was used before.
func (c *commander) replayed(cmd mqtt.Command, now time.Time) (replay bool, err error) {
	err = c.d.st.Update(func(tx *store.Tx) error {
		var err error
		replay, err = tx.SeenCommand(cmd.ID, cmd.Expires, now)
		return err
	})
	return replay, err
}

var errUnsupported = errors.New("not supported")

func (cm *commander) execute(c mqtt.Command) error {
	d := cm.d
	actor := "key " + c.Key
	switch c.Action {
	case mqtt.ActionApprove:
		j, err := d.st.Job(c.Job)
		if err != nil {
			return fmt.Errorf("approve %s: %w: no such job", c.Job, ErrRefused)
		}
		devs := c.Devices
		if len(devs) == 0 { // the command binds the image; the device set is the job's
			for _, s := range j.Devices {
				devs = append(devs, s.Device)
			}
		}
		a := Approval{Job: c.Job, Kind: ApprovalRemote, Actor: actor, SHA256: c.SHA256, Devices: devs,
			Window: j.Window, Expires: c.Expires, Command: c.ID}
		if !c.Window.IsZero() {
			a.Window, a.From, a.Until = "", c.Window.Start, c.Window.End
		}
		return d.Approve(a)
	case mqtt.ActionCancel:
		return d.Cancel(c.Job, actor)
	case mqtt.ActionDefer:
		return d.Defer(c.Job, actor, c.Window.Start)
	case mqtt.ActionRefresh:
		d.Refresh(actor)
		return nil
	case mqtt.ActionStop:
		return d.Stop(actor)
	case mqtt.ActionUpdateNow:
		// "Update now" never skips a window or an approval: it refreshes
		// now and lifts a deferral of the named job.
		if c.Job != "" {
			j, err := d.st.Job(c.Job)
			if err != nil || jobTerminal(j.Phase) {
				return fmt.Errorf("update-now %s: %w: no open job", c.Job, ErrRefused)
			}
			if _, err := d.m.setJob(c.Job, j.Phase, "update-now by "+actor, func(_ *store.Tx, j *store.Job) error { j.NotBefore = time.Time{}; return nil }); err != nil {
				return err
			}
		}
		d.Refresh(actor)
		return nil
	case mqtt.ActionRollback:
		_, err := d.Rollback(c.Devices, actor, c.ID)
		return err
	case mqtt.ActionRetry:
		what := append([]string(nil), c.Devices...)
		if c.Job != "" {
			what = append(what, c.Job)
		}
		var errs []error
		for _, w := range what {
			if _, err := d.Retry(w, actor, c.ID); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	case mqtt.ActionTriage:
		_, err := d.RecordVerdict(advisory.Verdict{Device: c.Device, Advisory: c.Advisory, CVE: c.CVE,
			Kind: advisory.VerdictKind(c.Verdict), Justification: c.Justification, Until: c.Until, Control: c.Control, Note: c.Note}, actor, c.ID)
		return err
	}
	return fmt.Errorf("action %q: %w", c.Action, errUnsupported)
}

// commandResult publishes a command's result and audits it.
func (cm *commander) commandResult(id string, c mqtt.Command, status, reason string) {
	d := cm.d
	now := d.now().UTC()
	res := commandResult{ID: id, Action: c.Action, Status: status, Reason: reason, Time: now, TSMillis: now.UnixMilli()}
	if c.Key != "" {
		res.Actor = "key " + c.Key
	}
	if status != "accepted" {
		d.log.Info("command", "id", id, "action", c.Action, "status", status, "reason", reason)
	}
	err := d.st.Update(func(tx *store.Tx) error {
		if _, err := d.rep.audit(tx, store.Event{Type: "command-" + status, Job: c.Job, Actor: res.Actor,
			Detail: map[string]any{"command": id, "action": c.Action, "reason": reason}}); err != nil {
			return err
		}
		_, err := tx.Enqueue(d.rep.topic("cmd", id, "result"), res, false)
		return err
	})
	if err != nil {
		d.m.auditFailed(err)
		return
	}
	d.rep.commandResult(res)
}

// Refresh hints: a signed refresh command on the broadcast topic
// ({broadcast_prefix}/cmd/{id}) reaches every gateway of a fleet or a
// site at once. Each gateway checks it as it checks its own commands
// (signature by an approver key, expiry, replay), accepts only the
// refresh action, and answers with an audit event (refresh-hint, or
// refresh-hint-rejected) on its events topic, not with a result: a
// result from each of 200 gateways on one topic would be noise.

// hintInterval is the shortest time between two hinted refreshes: a
// stolen approver key may make the fleet refresh early, never poll the
// repository faster than this.
const hintInterval = 30 * time.Second

// handleHint verifies a broadcast request with id and schedules the
// refresh it asks for.
func (c *commander) handleHint(mcfg mqtt.Config, id string, payload []byte) {
	d := c.d
	now := d.now()
	cmd, err := mcfg.ParseBroadcast(payload, c.approverKeys(), now)
	reason := mqtt.RejectReason(err)
	if err == nil && cmd.ID != id {
		reason, err = "malformed", fmt.Errorf("command id %q does not match its topic", cmd.ID)
	}
	if err == nil {
		var replay bool
		replay, err = c.replayed(cmd, now)
		switch {
		case err != nil:
			reason = "store"
		case replay:
			reason, err = "replayed", errors.New("command id already used")
		}
	}
	actor := ""
	if cmd.Key != "" {
		actor = "key " + cmd.Key
	}
	if err != nil {
		if d.errlog.allow("refresh-hint-rejected", time.Minute) {
			d.log.Warn("refresh hint rejected (repeats within a minute are not logged)", "id", id, "reason", reason, "err", err)
		}
		d.audit(store.Event{Type: "refresh-hint-rejected", Actor: actor,
			Detail: map[string]any{"command": id, "action": cmd.Action, "reason": reason + ": " + err.Error()}})
		return
	}
	at, scheduled := c.hint(now)
	d.log.Info("refresh hint", "id", id, "key", cmd.Key, "refresh_at", at.UTC().Format(time.RFC3339), "new", scheduled)
	d.audit(store.Event{Type: "refresh-hint", Actor: actor,
		Detail: map[string]any{"command": id, "key": cmd.Key, "refresh_at": at.UTC().Format(time.RFC3339)}})
}

// hint schedules a hinted refresh after a random delay, uniform in [0,
// mqtt.hint_spread], and at least hintInterval after the last one. A hint
// that arrives while one waits joins it. It returns when the refresh is
// due, and whether this hint scheduled it.
func (c *commander) hint(now time.Time) (time.Time, bool) {
	d := c.d
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hintWait != nil {
		return c.hintDue, false
	}
	due := now.Add(time.Duration(d.rand() * float64(d.cfg.MQTT.HintSpread)))
	if next := c.hintDue.Add(hintInterval); !c.hintDue.IsZero() && due.Before(next) {
		due = next
	}
	c.hintDue = due
	c.hintWait = time.AfterFunc(due.Sub(now), func() {
		c.mu.Lock()
		c.hintWait = nil
		c.mu.Unlock()
		d.Wake()
	})
	return due, true
}
