// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

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
			return nil
		case raw := <-c.queue:
			c.handleCommand(raw.topic, raw.payload)
		}
	}
}

// handleCommand verifies and executes one command, publishing its result.
func (c *commander) handleCommand(topic string, payload []byte) {
	d := c.d
	mcfg := mqtt.Config{Prefix: d.cfg.MQTT.Prefix}
	id, ok := mcfg.CommandID(topic)
	if !ok {
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
	var replay bool
	err = d.st.Update(func(tx *store.Tx) error {
		var err error
		replay, err = tx.SeenCommand(cmd.ID, cmd.Expires, now)
		return err
	})
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
