package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// BundleFormat identifies the layout of an offline bundle.
const BundleFormat = "fieldgate-bundle/1"

// BundleInfo is the bundle.json manifest of an offline bundle. It is
// informational only (for people and logs): the gateway trusts the signed
// metadata in the bundle, never this file.
type BundleInfo struct {
	Format           string         `json:"format"`
	Created          time.Time      `json:"created"`
	RootVersion      int64          `json:"root_version"`
	TimestampVersion int64          `json:"timestamp_version"`
	SnapshotVersion  int64          `json:"snapshot_version"`
	Expires          time.Time      `json:"expires"` // the timestamp's expiry: import before this
	Targets          []BundleTarget `json:"targets"`
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
	info, err := r.export(out, names)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", out, err)
	}
	return info, nil
}

func (r *Repo) export(out string, names []string) (*BundleInfo, error) {
	if _, err := os.Lstat(out); err == nil {
		return nil, errors.New("already exists")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	now := r.now()
	if r.timestamp.Signed.Expires.Before(now) {
		return nil, fmt.Errorf("timestamp expired at %s: run timestamp (or commit) first", r.timestamp.Signed.Expires.Format(time.RFC3339))
	}
	published := r.publishedTargets()
	if len(names) == 0 {
		for name := range published {
			names = append(names, name)
		}
		slices.Sort(names)
	}
	info := &BundleInfo{
		Format: BundleFormat, Created: now.UTC().Truncate(time.Second),
		RootVersion: r.root.Signed.Version, TimestampVersion: r.timestamp.Signed.Version,
		SnapshotVersion: r.snapshot.Signed.Version, Expires: r.timestamp.Signed.Expires,
	}
	for _, name := range names {
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

	if err := os.MkdirAll(filepath.Dir(filepath.Clean(out)), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(out)), ".export-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	md, tg := filepath.Join(tmp, "metadata"), filepath.Join(tmp, "targets")
	for _, d := range []string{md, tg} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	files := []string{"timestamp.json",
		strconv.FormatInt(r.snapshot.Signed.Version, 10) + ".snapshot.json"}
	for v := int64(1); v <= r.root.Signed.Version; v++ {
		files = append(files, strconv.FormatInt(v, 10)+".root.json")
	}
	for file, mf := range r.snapshot.Signed.Meta {
		files = append(files, strconv.FormatInt(mf.Version, 10)+"."+file)
	}
	for _, f := range files {
		if err := copyFile(filepath.Join(r.MetadataDir(), f), filepath.Join(md, f)); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", f, err)
		}
	}
	for _, name := range names {
		tf := published[name].tf
		dir := filepath.Join(tg, filepath.FromSlash(path.Dir(name)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		for _, h := range tf.Hashes {
			file := h.String() + "." + path.Base(name)
			src := filepath.Join(r.TargetsDir(), filepath.FromSlash(path.Dir(name)), file)
			if err := copyFile(src, filepath.Join(dir, file)); err != nil {
				return nil, fmt.Errorf("target %s: %w", name, err)
			}
		}
	}
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

// copyFile streams src to a new file dst and fsyncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
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
