// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/fieldgate/fieldgate/board"
	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/store"
)

// Buttons is the board as the daemon consumes it: press events in, and (on
// a virtual board) presses injected from the console.
type Buttons interface {
	Events() <-chan board.Event
	Press(name string, hold time.Duration) error
}

// ErrNoBoard is returned by Press when the daemon runs without a board.
var ErrNoBoard = errors.New("no board")

// Refresh implements control.Commander: refresh metadata now.
func (d *Daemon) Refresh(actor string) {
	d.audit(store.Event{Type: "refresh-requested", Actor: actor})
	d.Wake()
}

// Press implements control.Commander: press a button on the virtual board.
func (d *Daemon) Press(button string, hold time.Duration) error {
	if d.buttons == nil {
		return ErrNoBoard
	}
	return d.buttons.Press(button, hold)
}

// ExportAudit implements control.Reader.
func (d *Daemon) ExportAudit(w io.Writer) error { return d.st.ExportAudit(w) }

// VerifyAudit implements control.Reader.
func (d *Daemon) VerifyAudit() (int, error) { return d.st.VerifyAudit() }

// Windows implements control.Reader: each group's window and its next openings.
func (d *Daemon) Windows() []api.WindowInfo {
	now := d.now()
	var out []api.WindowInfo
	for _, g := range d.cfg.Groups {
		w := d.windows[g.Window]
		info := api.WindowInfo{Group: g.Name, Window: w.Name, TimeZone: w.loc.String()}
		if open, closes := w.OpenAt(now); open {
			info.Open = true
			c := closes.UTC()
			info.Closes = &c
		}
		t := now
		for i := 0; i < 3; i++ {
			if t = w.NextOpening(t); t.IsZero() {
				break
			}
			info.Next = append(info.Next, t)
		}
		out = append(out, info)
	}
	return out
}

// buttonLoop turns button presses into actions: a short press on any
// button turns the status display to its next page; a long press on the
// approve button approves the job awaiting a local approval in an open
// window, or, if none does, asks for an update now (which still waits for
// a window and any approval the policy requires); a very long press on any
// button is the emergency stop.
func (d *Daemon) buttonLoop(ctx context.Context) error {
	if d.buttons == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-d.buttons.Events():
			actor := "button " + ev.Button
			d.log.Info("button", "button", ev.Button, "press", ev.Press.String(), "held", ev.Held)
			switch {
			case ev.Press == board.ShortPress:
				d.log.Info("status display", "page", d.pages.next().String())
				d.showState()
			case ev.Press == board.VeryLongPress:
				if err := d.Stop(actor); err != nil {
					d.log.Error("emergency stop", "err", err)
				}
			case ev.Press == board.LongPress && ev.Button == board.ButtonApprove:
				job, err := d.ApproveLocal("", actor)
				if err != nil {
					d.log.Info("long press: nothing to approve; refreshing now", "reason", err)
					d.Refresh(actor)
					continue
				}
				d.log.Info("long press approved job", "job", job)
			}
		}
	}
}
