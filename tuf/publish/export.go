// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/internal/localfile"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// BundleFormat identifies the layout of an offline bundle.
const BundleFormat = "fieldgate-bundle/1"

// BundleInfo is the bundle.json manifest of an offline bundle. It is
// informational only (for people and logs): the gateway trusts the signed
// metadata in the bundle, never this file.
type BundleInfo struct {
	Format           string    `json:"format"`
	Created          time.Time `json:"created"`
	RootVersion      int64     `json:"root_version"`
	TimestampVersion int64     `json:"timestamp_version"`
	SnapshotVersion  int64     `json:"snapshot_version"`
	// Expires is the bundle's expiry: the earliest expiry among the signed
	// metadata a gateway needs to import it (root, timestamp, snapshot,
	// targets and the delegated roles signing its targets), named by
	// ExpiresRole. Import before this.
	Expires     time.Time `json:"expires"`
	ExpiresRole string    `json:"expires_role"`
	// Resigned lists the roles signed anew for this bundle (ExportOptions.
	// Expires) because they expired before it, as "role vN".
	Resigned []string `json:"resigned,omitempty"`
	// Warnings are about roles in the bundle that expire before it but sign
	// none of its targets: gateways reject those roles after their expiry.
	Warnings []string       `json:"warnings,omitempty"`
	Targets  []BundleTarget `json:"targets"`
}

// ExportOptions select what ExportWith writes.
type ExportOptions struct {
	// Targets are the target names to carry; empty: all published targets.
	Targets []string
	// Expires, if positive, is how long the bundle stays importable (at
	// most MaxBundleExpiry). Zero: the bundle carries the repository's
	// timestamp.json and expires with it (DefaultTimestampExpiry).
	//
	// A bundle with Expires carries a timestamp signed for it alone, with
	// the next version N+1 and that expiry, over the current snapshot; the
	// repository's own timestamp is then re-signed as N+2 with its usual
	// expiry. A bundle timestamp with the version gateways already trust
	// would be ignored (TUF keeps the trusted one when the versions are
	// equal, expired or not), and one that online gateways could not go
	// past would be a rollback error for every gateway that imported the
	// bundle. Snapshot, targets and delegated roles that would expire
	// before the bundle are signed anew (next version, expiry no earlier
	// than the bundle's) and published with it, when their keys are here;
	// otherwise, and when root expires before the bundle, the export is
	// refused, naming the role.
	Expires time.Duration
}

// MaxBundleExpiry bounds ExportOptions.Expires: a bundle is a signed
// statement "nothing newer exists" that can be replayed to a gateway
// until it expires (a freeze attack), so keep it as short as the trip.
const MaxBundleExpiry = 365 * 24 * time.Hour

// ParseBundleExpiry reads the validity of a bundle: whole days ("30d"), a
// Go duration ("12h", "90m", "1h30m") or days followed by one ("1d12h").
// It must be positive and at most MaxBundleExpiry.
func ParseBundleExpiry(s string) (time.Duration, error) {
	bad := func(why string) error {
		return fmt.Errorf("bundle expiry %q: %s; want a positive duration of at most 365d, such as 30d, 12h or 1d12h", s, why)
	}
	rest := strings.TrimSpace(s)
	var d time.Duration
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		days, err := strconv.ParseUint(rest[:i], 10, 16)
		if err != nil {
			return 0, bad("days must be a whole number")
		}
		if days > 366 {
			return 0, bad("too long")
		}
		d, rest = time.Duration(days)*24*time.Hour, rest[i+1:]
	}
	if rest != "" {
		v, err := time.ParseDuration(rest)
		if err != nil {
			return 0, bad("not a duration")
		}
		if v < 0 {
			return 0, bad("negative")
		}
		if v > MaxBundleExpiry {
			return 0, bad("too long")
		}
		d += v
	} else if d == 0 && !strings.Contains(s, "d") {
		return 0, bad("empty")
	}
	if err := checkBundleExpiry(d); err != nil {
		return 0, fmt.Errorf("bundle expiry %q: %w", s, err)
	}
	return d, nil
}

func checkBundleExpiry(d time.Duration) error {
	switch {
	case d <= 0:
		return fmt.Errorf("%s is not positive", d)
	case d > MaxBundleExpiry:
		return fmt.Errorf("%s is longer than the maximum of 365d (a bundle can be replayed to a gateway until it expires)", d)
	}
	return nil
}

// BundleTarget describes one target in a bundle.
type BundleTarget struct {
	Name   string            `json:"name"`
	Role   string            `json:"role"`
	Length int64             `json:"length"`
	Hashes map[string]string `json:"hashes"`
}

// Export writes an offline bundle to out, which must not exist: the
// published metadata a gateway needs, byte for byte (every N.root.json from
// 1 so that any gateway can walk the root chain, timestamp.json, and the
// versioned snapshot, targets and delegated role files a consistent-snapshot
// client requests), the targets named (all published targets if names is
// empty) under every hash-prefixed name they are published as, and
// bundle.json. The bundle is built in a sibling temporary directory and
// renamed into place, so a bundle that exists is complete.
func (r *Repo) Export(out string, names []string) (*BundleInfo, error) {
	return r.ExportWith(out, ExportOptions{Targets: names})
}

// ExportWith is Export with options; see ExportOptions.Expires for bundles
// that must stay valid longer than the repository's timestamp. After an
// error the Repo may hold metadata that was not published: Open the
// directory again to continue.
func (r *Repo) ExportWith(out string, opts ExportOptions) (*BundleInfo, error) {
	info, err := r.export(out, opts)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", out, err)
	}
	return info, nil
}

func (r *Repo) export(out string, opts ExportOptions) (*BundleInfo, error) {
	names := slices.Clone(opts.Targets)
	if _, err := os.Lstat(out); err == nil {
		return nil, errors.New("already exists")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	now := r.now()
	var deadline time.Time // the bundle's own timestamp expiry, with opts.Expires
	if opts.Expires != 0 {
		if err := checkBundleExpiry(opts.Expires); err != nil {
			return nil, fmt.Errorf("bundle expiry: %w", err)
		}
		deadline = now.UTC().Add(opts.Expires).Truncate(time.Second)
	} else if r.timestamp.Signed.Expires.Before(now) {
		return nil, fmt.Errorf("timestamp expired at %s: run timestamp (or commit) first, or give the bundle its own expiry", r.timestamp.Signed.Expires.Format(time.RFC3339))
	}
	published := r.publishedTargets()
	if len(names) == 0 {
		for name := range published {
			names = append(names, name)
		}
		slices.Sort(names)
	}
	info := &BundleInfo{Format: BundleFormat, Created: now.UTC().Truncate(time.Second)}
	for _, name := range names {
		// Published metadata may predate name checks at commit: a name that
		// could leave OUT/targets is refused before anything is written.
		if err := CheckTargetName(name); err != nil {
			return nil, err
		}
		pt, ok := published[name]
		if !ok {
			return nil, fmt.Errorf("target %s is not published (add and commit it first)", name)
		}
		bt := BundleTarget{Name: name, Role: pt.role, Length: pt.tf.Length, Hashes: map[string]string{}}
		for alg, h := range pt.tf.Hashes {
			bt.Hashes[alg] = h.String()
		}
		info.Targets = append(info.Targets, bt)
	}
	signing := map[string]bool{} // delegated roles signing a target in the bundle
	for _, bt := range info.Targets {
		signing[bt.Role] = true
	}
	var plan *bundlePlan
	if !deadline.IsZero() {
		var err error
		if plan, err = r.planBundle(deadline, signing); err != nil {
			return nil, err
		}
		info.Warnings = plan.warnings
	}

	if err := os.MkdirAll(filepath.Dir(filepath.Clean(out)), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(out)), ".export-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	// MkdirTemp makes the directory 0700; the bundle is read by another
	// user (fieldgated runs as fieldgate), like its 0755 subdirectories.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	// Every write goes through an os.Root of the new bundle and every read
	// through localfile, so no name can reach outside either directory.
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	for _, d := range []string{"metadata", "targets"} {
		if err := root.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	var bundleTimestamp []byte // nil: copy the repository's timestamp.json
	if plan != nil {
		// Versioned files only: nothing refers to them before the
		// repository's timestamp.json is written below.
		if bundleTimestamp, err = r.signForBundle(plan, deadline); err != nil {
			return nil, err
		}
		info.Resigned = plan.done
	}
	files := []string{strconv.FormatInt(r.snapshot.Signed.Version, 10) + ".snapshot.json"}
	if bundleTimestamp == nil {
		files = append(files, "timestamp.json")
	} else if err := writeRootFile(root, "metadata/timestamp.json", bundleTimestamp); err != nil {
		return nil, fmt.Errorf("metadata timestamp.json: %w", err)
	}
	for v := int64(1); v <= r.root.Signed.Version; v++ {
		files = append(files, strconv.FormatInt(v, 10)+".root.json")
	}
	for _, file := range slices.Sorted(maps.Keys(r.snapshot.Signed.Meta)) {
		if err := localfile.CheckName(file); err != nil || strings.Contains(file, "/") {
			return nil, fmt.Errorf("snapshot lists metadata file %q: not a plain file name", file)
		}
		files = append(files, strconv.FormatInt(r.snapshot.Signed.Meta[file].Version, 10)+"."+file)
	}
	for _, f := range files {
		if err := copyFile(r.MetadataDir(), f, root, "metadata/"+f); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", f, err)
		}
	}
	for _, name := range names {
		tf := published[name].tf
		dir := path.Dir(name)
		if err := root.MkdirAll(joinSlash("targets", dir), 0o755); err != nil {
			return nil, err
		}
		for _, h := range tf.Hashes {
			file := joinSlash(dir, h.String()+"."+path.Base(name))
			if err := copyFile(r.TargetsDir(), file, root, "targets/"+file); err != nil {
				return nil, fmt.Errorf("target %s: %w", name, err)
			}
		}
	}
	r.fillBundleInfo(info, bundleTimestamp, signing)
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(tmp, tuf.BundleManifest), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := syncTree(tmp); err != nil {
		return nil, err
	}
	if bundleTimestamp != nil {
		// The repository moves past the bundle's timestamp before the
		// bundle exists: a crash in between leaves no bundle, never a
		// bundle newer than what online gateways are served.
		if err := r.publishAfterBundle(info.TimestampVersion, bundleTimestamp); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(filepath.Clean(out))); err != nil {
		return nil, err
	}
	return info, nil
}

type publishedTarget struct {
	role string
	tf   *metadata.TargetFiles
}

// publishedTargets returns every published target with the role signing it.
func (r *Repo) publishedTargets() map[string]publishedTarget {
	out := map[string]publishedTarget{}
	for role, md := range r.delegated {
		for name, tf := range md.Signed.Targets {
			out[name] = publishedTarget{role, tf}
		}
	}
	for name, tf := range r.targets.Signed.Targets {
		out[name] = publishedTarget{metadata.TARGETS, tf}
	}
	return out
}

// joinSlash joins slash-separated relative names, dropping a "." dir.
func joinSlash(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

// copyFile streams the regular file name below srcDir (read through
// localfile: no symbolic link followed, no blocking open) to the new file
// dstName below dst, and fsyncs it.
func copyFile(srcDir, name string, dst *os.Root, dstName string) error {
	in, err := localfile.Open(srcDir, name)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := dst.OpenFile(filepath.FromSlash(dstName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, io.LimitReader(in, st.Size()), make([]byte, 1<<20)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncTree fsyncs every directory under root, so that the entries of a
// bundle written to removable media survive unplugging after the rename.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return syncDir(p)
	})
}

// writeRootFile writes data to the new file name below dst and fsyncs it.
func writeRootFile(dst *os.Root, name string, data []byte) error {
	f, err := dst.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
