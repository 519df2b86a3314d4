// SPDX-License-Identifier: Apache-2.0

// Package systemd integrates fieldgated with systemd: a client for the
// sd_notify protocol (readiness, status, stopping, watchdog) written in pure
// Go, and the unit file and sysusers.d/tmpfiles.d/udev snippets that the
// packages install.
//
// The Notifier is a no-op when the process is not started by systemd with
// Type=notify (no $NOTIFY_SOCKET), so the daemon calls it unconditionally.
//
// Files, and where packages install them:
//
//	fieldgated.service       /usr/lib/systemd/system/fieldgated.service
//	fieldgate.sysusers.conf  /usr/lib/sysusers.d/fieldgate.conf
//	fieldgate.tmpfiles.conf  /usr/lib/tmpfiles.d/fieldgate.conf
//	fieldgate-gpio.rules     /usr/lib/udev/rules.d/60-fieldgate-gpio.rules
//
// The unit runs the daemon as the unprivileged user "fieldgate" (members of
// the groups dialout and gpio) in a sandbox that still lets it open serial
// ports and GPIO chips and talk IP; `systemd-analyze security` rates it
// below 2.0 (TestUnitSecurity). Its watchdog expects WATCHDOG=1 from the
// daemon's main loop at WatchdogInterval, so a hung loop is restarted.
package systemd
