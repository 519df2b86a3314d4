// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"
	"time"
)

// watchdogNotifier is the part of systemd.Notifier the watchdog uses.
type watchdogNotifier interface {
	WatchdogInterval() time.Duration
	Watchdog() error
	Status(string) error
}

// watchdogLogEvery bounds how often the watchdog repeats that it holds
// back its pings (systemd usually ends the process long before).
const watchdogLogEvery = time.Minute

// watchdog pings systemd's service watchdog (WATCHDOG=1) only while the
// daemon makes progress, as alive (daemon.Daemon.Alive) reports it: the
// update loop turned within the last period, and no device phase overran
// its deadline. A ticker that pinged by itself would keep systemd happy
// while the loop is deadlocked; holding back the pings lets systemd kill
// and restart a hung daemon after WatchdogSec.
//
// The period is half of WatchdogSec (WatchdogInterval, as
// sd_watchdog_enabled(3) advises) and the watchdog asks twice per period,
// so that one check that comes a moment too early does not miss
// systemd's deadline. The update loop turns at least every 5s, so
// WatchdogSec must be well above 10s. The last ping comes at most a
// period after the loop's last turn, and systemd kills the process a
// WatchdogSec after it: between 1.25 and 1.5 WatchdogSec after the last
// turn.
//
// While it holds back its pings the watchdog logs why (at most every
// watchdogLogEvery, so that a loop that is only sometimes late does not
// flood the journal) and shows it in STATUS=; restore puts the daemon's
// own status back when pings resume.
type watchdog struct {
	notify  watchdogNotifier
	alive   func(period time.Duration) error
	restore func() // may be nil
	log     *slog.Logger
}

// Run checks and pings until ctx ends; it returns at once when systemd
// expects no pings from this process.
func (w *watchdog) Run(ctx context.Context) error {
	period := w.notify.WatchdogInterval()
	if period <= 0 {
		return nil
	}
	t := time.NewTicker(period / 2)
	defer t.Stop()
	var (
		stuckSince   time.Time // zero while pinging
		logged       time.Time // the last "not pinging" log
		streakLogged bool      // this spell without pings was logged
		pingFailed   bool      // the last ping's error was logged
	)
	for {
		if err := w.alive(period); err != nil {
			now := time.Now()
			if stuckSince.IsZero() {
				stuckSince = now
				w.notify.Status("watchdog: " + err.Error())
			}
			if logged.IsZero() || now.Sub(logged) >= watchdogLogEvery {
				logged, streakLogged = now, true
				w.log.Error("daemon makes no progress: not pinging systemd's watchdog", "reason", err)
			}
		} else {
			if !stuckSince.IsZero() {
				if streakLogged {
					w.log.Info("daemon makes progress again: pinging systemd's watchdog", "after", time.Since(stuckSince).Round(time.Second))
				}
				stuckSince, streakLogged = time.Time{}, false
				if w.restore != nil {
					w.restore()
				}
			}
			if err := w.notify.Watchdog(); err != nil {
				if !pingFailed {
					w.log.Warn("watchdog ping", "err", err)
				}
				pingFailed = true
			} else {
				pingFailed = false
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// resendStatus sends the state the indicator last showed as STATUS=
// again, replacing the watchdog's complaint once the daemon makes
// progress. It holds the indicator's lock, so that a state shown
// meanwhile is not overwritten by an older one.
func (i *indicator) resendStatus() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.last.State != "" {
		i.notify.Status(string(i.last.State))
	}
}
