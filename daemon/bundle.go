// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/tuf"
)

// Import verifies the offline bundle in dir with the gateway's current
// trust (root chain, rollback, expiry, hashes) and stages jobs for its
// targets like an online refresh would; it returns the number of jobs
// staged. The outcome is audited and reported; reports wait in the outbox
// until the uplink returns.
func (d *Daemon) Import(ctx context.Context, dir, actor string) (int, error) {
	if d.importer == nil {
		return 0, errors.New("import: offline bundles are not enabled in this build")
	}
	snap, err := d.importer(ctx, dir)
	if err != nil {
		d.audit(store.Event{Type: "bundle-refused", Actor: actor, Detail: map[string]any{"dir": dir, "error": err.Error()}})
		d.health.set(condVerify, "bundle", "bundle refused: "+err.Error())
		return 0, fmt.Errorf("import %s: %w", dir, err)
	}
	d.health.clear(condVerify, "bundle")
	d.mu.Lock()
	d.snapshot, d.lastRefresh = snap, d.now()
	d.mu.Unlock()
	d.audit(store.Event{Type: "bundle-imported", Actor: actor, Detail: map[string]any{
		"dir": dir, "targets": fmt.Sprint(len(snap.Targets))}})
	d.importReportDocuments(ctx, snap.Documents) // test reports travel in the bundle with the firmware
	n := d.stage(ctx, snap)
	d.m.kick()
	d.log.Info("offline bundle imported", "dir", dir, "targets", len(snap.Targets), "jobs_staged", n, "actor", actor)
	return n, nil
}

// watchImportDir imports a bundle that appeared in the configured import
// directory, once per distinct bundle (by its timestamp metadata).
func (d *Daemon) watchImportDir(ctx context.Context) {
	dir := d.cfg.TUF.ImportDir
	if dir == "" || d.importer == nil {
		return
	}
	id, err := tuf.BundleID(dir) // never blocks: a FIFO or a link is refused
	if err != nil {
		return // nothing mounted, or not a bundle
	}
	if id == d.lastBundle {
		return
	}
	d.lastBundle = id
	if _, err := d.Import(ctx, dir, "import-dir"); err != nil {
		d.log.Warn("offline bundle refused", "dir", dir, "err", err)
	}
}
