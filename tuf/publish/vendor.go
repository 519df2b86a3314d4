// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/internal/localfile"
)

// A vendor signs its own delegated role on its own machine, with only that
// role's key, in a vendor directory (VDIR):
//
//	VDIR/vendor.json          role, key references, hashes, last version signed
//	VDIR/staged.json          unsigned working copy of the role's targets
//	VDIR/targets/NAME         the target files as added
//	VDIR/out/ROLE.json        the signed role metadata of the last Sign
//	VDIR/out/targets/NAME     its target files: VDIR/out is what the vendor sends
//
// The repository's operator delegates paths to the role with the vendor's
// public key only (Delegation.Keys) and takes VDIR/out in with ImportRole,
// which verifies it against the delegation; Commit publishes the vendor's
// bytes unchanged.

// Limits on vendor role metadata.
const (
	// MinVendorValidity is the least validity ImportRole accepts: metadata
	// that expires sooner would be refused by gateways before they fetch it.
	MinVendorValidity = time.Hour
	// MaxVendorValidity is the longest validity Sign writes and ImportRole
	// accepts (plus a day of clock skew at import).
	MaxVendorValidity = 366 * 24 * time.Hour
	maxRoleMetadata   = 5_000_000 // go-tuf's TargetsMaxLength default
)

// DelegationKey reads the public key a delegated role is trusted with: ref
// is a file holding a PEM "PUBLIC KEY" (PKIX: ed25519, ECDSA P-256 or RSA)
// or a TUF key object ({"keytype", "scheme", "keyval": {"public"}}, as in a
// targets role's key list), or a pkcs11: URI whose public key is read from
// the token. A private key file is refused: the repository host never needs
// a vendor's private key.
func DelegationKey(ref string, ka KeyAccess) (*metadata.Key, error) {
	if IsPKCS11(ref) {
		return PublicKey(ref, ka)
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", ref, err)
	}
	return k, nil
}

// ParsePublicKey reads a PEM "PUBLIC KEY" block or a TUF key object (see
// DelegationKey) and returns it in the form go-tuf derives from the key
// itself, so that its key id is the one signatures carry.
func ParsePublicKey(data []byte) (*metadata.Key, error) {
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("{")) {
		var k metadata.Key
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		if err := dec.Decode(&k); err != nil {
			return nil, fmt.Errorf("TUF key: %w", err)
		}
		want := map[string]string{metadata.KeyTypeEd25519: metadata.KeySchemeEd25519,
			metadata.KeyTypeECDSA_SHA2_P256:   metadata.KeySchemeECDSA_SHA2_P256,
			metadata.KeyTypeRSASSA_PSS_SHA256: metadata.KeySchemeRSASSA_PSS_SHA256}
		if scheme, ok := want[k.Type]; !ok || k.Scheme != scheme {
			return nil, fmt.Errorf("TUF key type %q scheme %q: want ed25519/ed25519, ecdsa-sha2-nistp256/ecdsa-sha2-nistp256 or rsa/rsassa-pss-sha256", k.Type, k.Scheme)
		}
		pub, err := safeToPublicKey(&k)
		if err != nil {
			return nil, fmt.Errorf("TUF key: %w", err)
		}
		return publicKeyOf(pub)
	}
	block, _ := pem.Decode(trimmed)
	switch {
	case block == nil:
		return nil, errors.New("neither a PEM public key nor a TUF key object")
	case strings.HasSuffix(block.Type, "PRIVATE KEY"):
		return nil, fmt.Errorf("PEM type %q is a private key: give its public key (the .pub file beside it)", block.Type)
	case block.Type != pemPublic:
		return nil, fmt.Errorf("PEM type %q: want %q", block.Type, pemPublic)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return publicKeyOf(pub)
}

// publicKeyOf accepts the key types TUF and go-tuf verify: ed25519 (32
// bytes), ECDSA on P-256 and RSA of at least 2048 bits.
func publicKeyOf(pub crypto.PublicKey) (*metadata.Key, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 key of %d bytes, want %d", len(p), ed25519.PublicKeySize)
		}
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on %s: want P-256", p.Curve.Params().Name)
		}
	default:
		if k, ok := pub.(interface{ Size() int }); !ok || k.Size()*8 < 2048 {
			return nil, fmt.Errorf("key type %T: want ed25519, ECDSA P-256 or RSA of 2048 bits or more", pub)
		}
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if _, err := k.ID(); err != nil {
		return nil, err
	}
	return k, nil
}

// safeToPublicKey is Key.ToPublicKey, with a panic on a malformed key
// (go-tuf v2.4.2) turned into an error.
func safeToPublicKey(k *metadata.Key) (pub crypto.PublicKey, err error) {
	defer func() {
		if p := recover(); p != nil {
			pub, err = nil, fmt.Errorf("malformed key: %v", p)
		}
	}()
	return k.ToPublicKey()
}

// verifyDelegate is delegator.VerifyDelegate(role, md) with a panic inside
// go-tuf (a malformed key) turned into an error.
func verifyDelegate(delegator, md *metadata.Metadata[metadata.TargetsType], role string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in signature verification: %v", p)
		}
	}()
	return delegator.VerifyDelegate(role, md)
}

// vendorConfig is VDIR/vendor.json.
type vendorConfig struct {
	Role    string   `json:"role"`
	Keys    []string `json:"keys"`    // key references as given (file paths, pkcs11: URIs)
	KeyIDs  []string `json:"key_ids"` // their TUF key ids
	Paths   []string `json:"paths,omitempty"`
	Hashes  []string `json:"hashes"`
	Version int64    `json:"version"` // last version signed; 0 before the first
}

const vendorConfigFile = "vendor.json"

// Vendor is a vendor directory: one delegated role's targets, signed on the
// vendor's machine. It is not safe for concurrent use.
type Vendor struct {
	dir    string
	cfg    vendorConfig
	staged *metadata.Metadata[metadata.TargetsType]
	now    func() time.Time
}

// VendorOptions configure a new vendor directory.
type VendorOptions struct {
	// Keys are the references of the role's signing keys as given to
	// --key (key files or pkcs11: URIs), stored for Sign's caller to open.
	Keys []string
	// Public are the TUF public keys of Keys, in the same order.
	Public []*metadata.Key
	// Paths, if set, are the path patterns the operator delegates to the
	// role; Add refuses names outside them (the import would).
	Paths []string
	// Hashes listed for targets: "sha256" (default) and/or "sha512".
	Hashes []string
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// InitVendor creates a vendor directory for role in dir, which must not
// hold one.
func InitVendor(dir, role string, o VendorOptions) (*Vendor, error) {
	if err := CheckRoleName(role); err != nil {
		return nil, fmt.Errorf("vendor init %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, vendorConfigFile)); err == nil {
		return nil, fmt.Errorf("vendor init %s: a vendor directory already exists there", dir)
	}
	for _, p := range o.Paths {
		if err := checkPathPattern(p); err != nil {
			return nil, fmt.Errorf("vendor init %s: %w", dir, err)
		}
	}
	if len(o.Hashes) == 0 {
		o.Hashes = []string{"sha256"}
	}
	for _, h := range o.Hashes {
		if h != "sha256" && h != "sha512" {
			return nil, fmt.Errorf("vendor init %s: hash %q: want sha256 or sha512", dir, h)
		}
	}
	v := &Vendor{dir: dir, now: o.Now, cfg: vendorConfig{Role: role, Paths: slices.Clone(o.Paths), Hashes: slices.Clone(o.Hashes)}}
	if v.now == nil {
		v.now = time.Now
	}
	if err := v.SetKeys(o.Keys, o.Public); err != nil {
		return nil, fmt.Errorf("vendor init %s: %w", dir, err)
	}
	v.staged = metadata.Targets(v.now().UTC().Add(DefaultTargetsExpiry))
	if err := os.MkdirAll(filepath.Join(dir, "targets"), 0o755); err != nil {
		return nil, fmt.Errorf("vendor init %s: %w", dir, err)
	}
	if err := v.saveStaged(); err != nil {
		return nil, fmt.Errorf("vendor init %s: %w", dir, err)
	}
	return v, nil
}

// OpenVendor loads the vendor directory dir. now may be nil (time.Now).
func OpenVendor(dir string, now func() time.Time) (*Vendor, error) {
	v := &Vendor{dir: dir, now: now}
	if v.now == nil {
		v.now = time.Now
	}
	data, err := os.ReadFile(filepath.Join(dir, vendorConfigFile))
	if err != nil {
		return nil, fmt.Errorf("open vendor directory %s: %w", dir, err)
	}
	if err := json.Unmarshal(data, &v.cfg); err != nil {
		return nil, fmt.Errorf("open vendor directory %s: %s: %w", dir, vendorConfigFile, err)
	}
	if err := CheckRoleName(v.cfg.Role); err != nil {
		return nil, fmt.Errorf("open vendor directory %s: %w", dir, err)
	}
	if v.staged, err = metadata.Targets().FromFile(filepath.Join(dir, "staged.json")); err != nil {
		return nil, fmt.Errorf("open vendor directory %s: %w", dir, err)
	}
	return v, nil
}

// Role returns the delegated role this directory signs.
func (v *Vendor) Role() string { return v.cfg.Role }

// Dir returns the vendor directory.
func (v *Vendor) Dir() string { return v.dir }

// OutDir returns VDIR/out, what the vendor sends to the operator.
func (v *Vendor) OutDir() string { return filepath.Join(v.dir, "out") }

// Keys returns the references of the role's signing keys.
func (v *Vendor) Keys() []string { return slices.Clone(v.cfg.Keys) }

// KeyIDs returns the TUF key ids of the role's signing keys.
func (v *Vendor) KeyIDs() []string { return slices.Clone(v.cfg.KeyIDs) }

// Version returns the last version signed (0 before the first Sign).
func (v *Vendor) Version() int64 { return v.cfg.Version }

// Targets returns the staged target names, sorted.
func (v *Vendor) Targets() []string { return slices.Sorted(maps.Keys(v.staged.Signed.Targets)) }

// SetKeys records the role's signing keys (after the operator rotated the
// role to new keys): refs as given, pubs their public keys.
func (v *Vendor) SetKeys(refs []string, pubs []*metadata.Key) error {
	if len(refs) == 0 || len(refs) != len(pubs) {
		return errors.New("at least one key (--key) is required")
	}
	var ids []string
	for i, k := range pubs {
		id, err := k.ID()
		if err != nil {
			return fmt.Errorf("key %s: %w", refs[i], err)
		}
		if slices.Contains(ids, id) {
			return fmt.Errorf("key %s: given twice (key id %s)", refs[i], id)
		}
		ids = append(ids, id)
	}
	v.cfg.Keys, v.cfg.KeyIDs = slices.Clone(refs), ids
	return v.saveConfig()
}

func (v *Vendor) saveConfig() error {
	data, err := json.MarshalIndent(v.cfg, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(v.dir, vendorConfigFile), append(data, '\n'), 0o644)
}

func (v *Vendor) saveStaged() error {
	v.staged.ClearSignatures()
	data, err := v.staged.ToBytes(true)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(v.dir, "staged.json"), data, 0o644)
}

// Add stages target name with the contents of src and custom, the TUF
// custom field: {"fieldgate": {...}} with the fieldgate metadata (checked as
// gateways check it). The file is copied to VDIR/targets/NAME. Adding an
// existing name replaces it.
func (v *Vendor) Add(name, src string, custom []byte) error {
	if err := CheckTargetName(name); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	if len(v.cfg.Paths) > 0 {
		probe := metadata.DelegatedRole{Paths: v.cfg.Paths}
		if ok, _ := probe.IsDelegatedPath(name); !ok {
			return fmt.Errorf("add %s: outside the paths delegated to role %s (%s)", name, v.cfg.Role, strings.Join(v.cfg.Paths, ", "))
		}
	}
	if _, err := tuf.ParseCustom(custom); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	defer in.Close()
	dst := filepath.Join(v.dir, "targets", filepath.FromSlash(name))
	tmp, tf, err := copyHashed(in, filepath.Dir(dst), v.cfg.Hashes, -1)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	raw := json.RawMessage(slices.Clone(custom))
	tf.Custom = &raw
	v.staged.Signed.Targets[name] = tf
	if err := v.saveStaged(); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	return nil
}

// Remove unstages target name and deletes its copy in VDIR/targets.
func (v *Vendor) Remove(name string) error {
	if _, ok := v.staged.Signed.Targets[name]; !ok {
		return fmt.Errorf("remove %s: no such target", name)
	}
	delete(v.staged.Signed.Targets, name)
	if err := v.saveStaged(); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if err := os.Remove(filepath.Join(v.dir, "targets", filepath.FromSlash(name))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// VendorSignOptions configure Sign.
type VendorSignOptions struct {
	// Version of the role metadata; 0 means one more than the last signed.
	// It must be greater than every version signed here before (gateways
	// and the operator refuse rollbacks).
	Version int64
	// Expires is the validity from now; 0 means DefaultTargetsExpiry. At
	// most MaxVendorValidity.
	Expires time.Duration
}

// VendorRelease describes what Sign wrote to VDIR/out.
type VendorRelease struct {
	Role    string
	Version int64
	Expires time.Time
	KeyIDs  []string
	Targets []string
	Dir     string // VDIR/out
	File    string // VDIR/out/ROLE.json
}

// Sign signs the staged targets as version o.Version of the role, valid
// for o.Expires, with signers (every one must be a key recorded with
// SetKeys), and writes VDIR/out afresh: ROLE.json and targets/NAME for
// every target. Each target file is checked against the hashes staged for
// it first, so a file changed after Add is never sent.
func (v *Vendor) Sign(signers []crypto.Signer, o VendorSignOptions) (*VendorRelease, error) {
	role := v.cfg.Role
	if o.Version == 0 {
		o.Version = v.cfg.Version + 1
	}
	if o.Version <= v.cfg.Version {
		return nil, fmt.Errorf("sign %s: version %d is not greater than version %d signed before (the operator refuses a rollback)", role, o.Version, v.cfg.Version)
	}
	if o.Expires == 0 {
		o.Expires = DefaultTargetsExpiry
	}
	if o.Expires < MinVendorValidity || o.Expires > MaxVendorValidity {
		return nil, fmt.Errorf("sign %s: validity %s: want %s to %s", role, o.Expires, MinVendorValidity, MaxVendorValidity)
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("sign %s: no signing key", role)
	}
	md := cloneTargets(v.staged)
	md.Signed.Version = o.Version
	md.Signed.Expires = v.now().UTC().Add(o.Expires).Truncate(time.Second)
	md.ClearSignatures()
	rel := &VendorRelease{Role: role, Version: o.Version, Expires: md.Signed.Expires, Targets: v.Targets(), Dir: v.OutDir(),
		File: filepath.Join(v.OutDir(), role+".json")}
	for _, s := range signers {
		id, err := KeyID(s.Public())
		if err != nil {
			return nil, fmt.Errorf("sign %s: %w", role, err)
		}
		if !slices.Contains(v.cfg.KeyIDs, id) {
			return nil, fmt.Errorf("sign %s: key %s is not one of the role's keys (%s): after a rotation, record the new key with vendor sign --key", role, id, strings.Join(v.cfg.KeyIDs, ", "))
		}
		if slices.Contains(rel.KeyIDs, id) {
			continue
		}
		if _, err := md.Sign(tufSigner{s}); err != nil {
			return nil, fmt.Errorf("sign %s: key %s: %w", role, id, err)
		}
		rel.KeyIDs = append(rel.KeyIDs, id)
	}
	data, err := md.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", role, err)
	}
	tmp, err := os.MkdirTemp(v.dir, ".out-")
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", role, err)
	}
	defer os.RemoveAll(tmp)
	for _, name := range rel.Targets {
		if err := v.copyOut(name, md.Signed.Targets[name], tmp); err != nil {
			return nil, fmt.Errorf("sign %s: target %s: %w", role, name, err)
		}
	}
	if err := writeFileAtomic(filepath.Join(tmp, role+".json"), data, 0o644); err != nil {
		return nil, fmt.Errorf("sign %s: %w", role, err)
	}
	if err := os.RemoveAll(v.OutDir()); err != nil {
		return nil, fmt.Errorf("sign %s: %w", role, err)
	}
	if err := os.Rename(tmp, v.OutDir()); err != nil {
		return nil, fmt.Errorf("sign %s: %w", role, err)
	}
	if err := syncDir(v.dir); err != nil {
		return nil, fmt.Errorf("sign %s: %w", role, err)
	}
	v.cfg.Version = o.Version
	if err := v.saveConfig(); err != nil {
		return nil, fmt.Errorf("sign %s: %w", role, err)
	}
	return rel, nil
}

// copyOut copies VDIR/targets/NAME to out/targets/NAME, checking it against
// tf's length and hashes.
func (v *Vendor) copyOut(name string, tf *metadata.TargetFiles, out string) error {
	in, err := localfile.Open(filepath.Join(v.dir, "targets"), name)
	if err != nil {
		return err
	}
	defer in.Close()
	dst := filepath.Join(out, "targets", filepath.FromSlash(name))
	tmp, got, err := copyHashed(in, filepath.Dir(dst), slices.Sorted(maps.Keys(tf.Hashes)), tf.Length)
	if err != nil {
		return err
	}
	if err := sameFile(tf, got); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w (changed since add: add it again)", err)
	}
	return os.Rename(tmp, dst)
}

// copyHashed copies r into a new temporary file in dir (created), hashing
// with algs, and returns the file's path and its length and hashes. With
// limit >= 0, more than limit bytes is an error. The file is synced, mode
// 0644; the caller renames or removes it.
func copyHashed(r io.Reader, dir string, algs []string, limit int64) (string, *metadata.TargetFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", nil, err
	}
	fail := func(err error) (string, *metadata.TargetFiles, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", nil, err
	}
	hs := map[string]hash.Hash{}
	ws := []io.Writer{tmp}
	for _, alg := range algs {
		switch alg {
		case "sha256":
			hs[alg] = sha256.New()
		case "sha512":
			hs[alg] = sha512.New()
		default:
			return fail(fmt.Errorf("hash %q: want sha256 or sha512", alg))
		}
		ws = append(ws, hs[alg])
	}
	if limit >= 0 {
		r = io.LimitReader(r, limit+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(ws...), r, make([]byte, 1<<20))
	if err != nil {
		return fail(err)
	}
	if limit >= 0 && n > limit {
		return fail(fmt.Errorf("longer than the %d bytes listed", limit))
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", nil, err
	}
	tf := metadata.TargetFile()
	tf.Length = n
	for alg, h := range hs {
		tf.Hashes[alg] = h.Sum(nil)
	}
	return tmp.Name(), tf, nil
}

// sameFile compares what was read (got) with what metadata lists (want).
func sameFile(want, got *metadata.TargetFiles) error {
	if got.Length != want.Length {
		return fmt.Errorf("%d bytes, metadata lists %d", got.Length, want.Length)
	}
	for alg, h := range want.Hashes {
		if subtle.ConstantTimeCompare(got.Hashes[alg], h) != 1 {
			return fmt.Errorf("%s %x, metadata lists %x", alg, []byte(got.Hashes[alg]), []byte(h))
		}
	}
	return nil
}

// ImportedRole describes role metadata taken in by ImportRole.
type ImportedRole struct {
	Role    string
	Version int64
	Expires time.Time
	KeyIDs  []string // ids of the delegation's keys that signed it
	Targets []string
}

// importedFile is where an imported role waits for Commit: its exact bytes.
func (r *Repo) importedFile(role string) string {
	return filepath.Join(r.dir, "staged", "imported", role+".json")
}

// ImportRole takes in role metadata a vendor signed on its own machine:
// dir (VDIR/out) holds exactly one ROLE.json and targets/NAME for each of
// its targets. It is verified against the staged delegation to ROLE: its
// signatures meet the threshold of the delegation's keys; every target
// name matches the delegated path patterns, is a clean name no other role
// lists, and carries valid fieldgate metadata; the version is greater than
// the published one; it expires between MinVendorValidity and
// MaxVendorValidity from now; it delegates nothing; every target file is
// there, regular, with the length and hashes listed. Anything wrong fails
// with an error naming it and nothing is staged. Then the files are stored
// in the repository and the metadata waits for Commit, which publishes its
// bytes unchanged (after checking it against the delegation again).
func (r *Repo) ImportRole(dir string) (*ImportedRole, error) {
	role, data, err := readRoleFile(dir)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", dir, err)
	}
	md, err := r.checkImport(role, data)
	if err != nil {
		return nil, fmt.Errorf("import role %s from %s: %w", role, dir, err)
	}
	imp := &ImportedRole{Role: role, Version: md.Signed.Version, Expires: md.Signed.Expires,
		Targets: slices.Sorted(maps.Keys(md.Signed.Targets))}
	for _, s := range md.Signatures {
		if id := s.KeyID; slices.Contains(r.delegation(role).KeyIDs, id) && !slices.Contains(imp.KeyIDs, id) {
			imp.KeyIDs = append(imp.KeyIDs, id)
		}
	}
	// Read and check every file before storing any.
	type stored struct {
		tmp, name string
		tf        *metadata.TargetFiles
	}
	var files []stored
	defer func() {
		for _, f := range files {
			os.Remove(f.tmp)
		}
	}()
	src := filepath.Join(dir, "targets")
	for _, name := range imp.Targets {
		tf := md.Signed.Targets[name]
		tmp, got, err := copyTarget(src, name, r.TargetsDir(), tf)
		if err != nil {
			return nil, fmt.Errorf("import role %s from %s: target %s: %w", role, dir, name, err)
		}
		files = append(files, stored{tmp, name, got})
	}
	for _, f := range files {
		if err := linkTarget(f.tmp, r.TargetsDir(), f.name, f.tf); err != nil {
			return nil, fmt.Errorf("import role %s: target %s: %w", role, f.name, err)
		}
	}
	if err := writeFileAtomic(r.importedFile(role), data, 0o644); err != nil {
		return nil, fmt.Errorf("import role %s: %w", role, err)
	}
	r.stagedDelegated[role] = cloneTargets(md)
	if err := r.saveStagedRole(role); err != nil {
		return nil, fmt.Errorf("import role %s: %w", role, err)
	}
	return imp, nil
}

// readRoleFile finds the one ROLE.json in dir.
func readRoleFile(dir string) (string, []byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 1 {
		return "", nil, fmt.Errorf("want exactly one ROLE.json (what vendor sign writes to VDIR/out), found %d: %s", len(names), strings.Join(names, ", "))
	}
	role := strings.TrimSuffix(names[0], ".json")
	if err := CheckRoleName(role); err != nil {
		return "", nil, err
	}
	data, err := localfile.ReadFile(dir, names[0], maxRoleMetadata)
	if err != nil {
		return "", nil, err
	}
	return role, data, nil
}

// checkImport checks role metadata against the staged delegation (see
// ImportRole), without its target files.
func (r *Repo) checkImport(role string, data []byte) (*metadata.Metadata[metadata.TargetsType], error) {
	dr := r.delegation(role)
	if dr == nil {
		return nil, fmt.Errorf("no delegation to role %s: delegate it first (delegate DIR %s --path PATTERN --key-file %s.pub)", role, role, role)
	}
	md, err := metadata.Targets().FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("not targets metadata: %w", err)
	}
	if err := verifyDelegate(r.staged, md, role); err != nil {
		return nil, fmt.Errorf("signatures do not meet the delegation (threshold %d of key(s) %s): %w", dr.Threshold, strings.Join(dr.KeyIDs, ", "), err)
	}
	if published := r.delegated[role]; published != nil && md.Signed.Version <= published.Signed.Version {
		return nil, fmt.Errorf("version %d is not greater than the published version %d: rollback refused (the vendor signs with --version %d or more)",
			md.Signed.Version, published.Signed.Version, published.Signed.Version+1)
	}
	if md.Signed.Version < 1 {
		return nil, fmt.Errorf("version %d: want 1 or more", md.Signed.Version)
	}
	now := r.now()
	switch exp := md.Signed.Expires; {
	case !exp.After(now.Add(MinVendorValidity)):
		return nil, fmt.Errorf("expires at %s, less than %s from now: the vendor signs again with a longer --expires", exp.Format(time.RFC3339), MinVendorValidity)
	case exp.After(now.Add(MaxVendorValidity + 24*time.Hour)):
		return nil, fmt.Errorf("expires at %s, more than %s from now", exp.Format(time.RFC3339), MaxVendorValidity)
	}
	if d := md.Signed.Delegations; d != nil && (len(d.Roles) > 0 || d.SuccinctRoles != nil) {
		return nil, errors.New("it delegates to other roles: delegations stay one level deep here")
	}
	for _, name := range slices.Sorted(maps.Keys(md.Signed.Targets)) {
		tf := md.Signed.Targets[name]
		if err := CheckTargetName(name); err != nil {
			return nil, err
		}
		if ok, _ := dr.IsDelegatedPath(name); !ok {
			return nil, fmt.Errorf("target %s is outside the paths delegated to role %s (%s)", name, role, strings.Join(dr.Paths, ", "))
		}
		for _, other := range append([]string{metadata.TARGETS}, r.DelegatedRoles()...) {
			if o, _ := r.stagedRole(other); other != role && o != nil && o.Signed.Targets[name] != nil {
				return nil, fmt.Errorf("target %s is already a target of role %s", name, other)
			}
		}
		if tf.Custom == nil {
			return nil, fmt.Errorf("target %s: no custom metadata", name)
		}
		if _, err := tuf.ParseCustom(*tf.Custom); err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
		if len(tf.Hashes) == 0 || tf.Length < 0 {
			return nil, fmt.Errorf("target %s: no hashes or a negative length", name)
		}
		for alg := range tf.Hashes {
			if alg != "sha256" && alg != "sha512" {
				return nil, fmt.Errorf("target %s: hash %q: want sha256 or sha512", name, alg)
			}
		}
	}
	return md, nil
}

// copyTarget reads dir/NAME (a regular file, no symbolic link below dir)
// into a temporary file in the repository's directory for name, checking
// it against tf's length and every hash it lists.
func copyTarget(dir, name, targetsDir string, tf *metadata.TargetFiles) (string, *metadata.TargetFiles, error) {
	in, err := localfile.Open(dir, name)
	if err != nil {
		return "", nil, err
	}
	defer in.Close()
	dst := filepath.Join(targetsDir, filepath.FromSlash(path.Dir(name)))
	tmp, got, err := copyHashed(in, dst, slices.Sorted(maps.Keys(tf.Hashes)), tf.Length)
	if err != nil {
		return "", nil, err
	}
	if err := sameFile(tf, got); err != nil {
		os.Remove(tmp)
		return "", nil, fmt.Errorf("does not match its metadata: %w", err)
	}
	return tmp, got, nil
}

// linkTarget stores tmp as name under every hash prefix tf lists.
func linkTarget(tmp, targetsDir, name string, tf *metadata.TargetFiles) error {
	dir := filepath.Join(targetsDir, filepath.FromSlash(path.Dir(name)))
	for _, h := range tf.Hashes {
		dst := filepath.Join(dir, hex.EncodeToString(h)+"."+path.Base(name))
		os.Remove(dst)
		if err := os.Link(tmp, dst); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// pendingImport returns the role metadata ImportRole left for Commit, or
// nil.
func (r *Repo) pendingImport(role string) ([]byte, *metadata.Metadata[metadata.TargetsType], error) {
	data, err := os.ReadFile(r.importedFile(role))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	md, err := metadata.Targets().FromBytes(data)
	if err != nil {
		return nil, nil, fmt.Errorf("imported role %s: %w", role, err)
	}
	return data, md, nil
}

// publishImported publishes the imported metadata of role as V.ROLE.json,
// its bytes unchanged, after checking it against the delegation as staged
// now (its keys may have changed since the import).
func (r *Repo) publishImported(role string, data []byte) error {
	md, err := r.checkImport(role, data)
	if err != nil {
		return fmt.Errorf("role %s: imported metadata no longer passes: %w (import it again, or discard it with delegate %s --replace-keys)", role, err, role)
	}
	file := fmt.Sprintf("%d.%s.json", md.Signed.Version, role)
	if err := writeFileAtomic(filepath.Join(r.MetadataDir(), file), data, 0o644); err != nil {
		return err
	}
	// The signing log records the vendor's signatures as published here:
	// the keys of the delegation whose signatures verify.
	if dr := r.delegation(role); dr != nil {
		ids := verifiedBy(md, r.staged.Signed.Delegations.Keys, dr.KeyIDs)
		if err := r.LogSigning(SigningEvent{Command: r.opts.Command + " (imported " + role + ")", Role: role,
			Version: md.Signed.Version, Expires: md.Signed.Expires, KeyIDs: ids, Published: true}); err != nil {
			return err
		}
	}
	r.delegated[role] = md
	r.stagedDelegated[role] = cloneTargets(md)
	if err := r.saveStagedRole(role); err != nil {
		return err
	}
	delete(r.resign, role)
	return os.Remove(r.importedFile(role))
}

// discardImport drops role metadata waiting for Commit (its delegation's
// keys changed) and returns the role's working copy to what is published.
func (r *Repo) discardImport(role string) error {
	if err := os.Remove(r.importedFile(role)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if p := r.delegated[role]; p != nil {
		r.stagedDelegated[role] = cloneTargets(p)
	} else {
		r.stagedDelegated[role] = metadata.Targets(r.expires(metadata.TARGETS))
	}
	return r.saveStagedRole(role)
}
