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

	if err := os.MkdirAll(filepath.Dir(filepath.Clean(out)), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(out)), ".export-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
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
	files := []string{"timestamp.json",
		strconv.FormatInt(r.snapshot.Signed.Version, 10) + ".snapshot.json"}
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
