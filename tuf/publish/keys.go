// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Key types accepted by Options.KeyType.
const (
	KeyEd25519   = "ed25519"
	KeyECDSAP256 = "ecdsa-p256"
)

// privateKey is a signing key this Repo can use: a key file in one of the
// repository's key directories, opened (decrypted) only when it first
// signs, or a signer given with Options.Signers (a --key REF).
type privateKey struct {
	id     string
	path   string        // key file; "" for a given signer
	priv   crypto.Signer // nil until opened
	public *metadata.Key // nil until opened, unless a .pub file is beside the key
}

func generateKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case "", KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("key type %q: want %s or %s", keyType, KeyEd25519, KeyECDSAP256)
}

func newPrivateKey(priv crypto.Signer) (*privateKey, error) {
	pub, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	id, err := pub.ID()
	if err != nil {
		return nil, err
	}
	return &privateKey{priv: priv, public: pub, id: id}, nil
}

// describe names the key for a passphrase prompt and in errors.
func (k *privateKey) describe(role string) string {
	short := k.id
	if len(short) > 12 {
		short = short[:12] + "…"
	}
	if k.path == "" {
		return fmt.Sprintf("%s key %s", role, short)
	}
	return fmt.Sprintf("%s key %s (%s)", role, short, k.path)
}

// open decrypts the key file on first use and checks that it holds the key
// its name says.
func (r *Repo) open(k *privateKey, role string) error {
	if k.priv != nil {
		return nil
	}
	priv, err := readKeyFile(k.path, k.describe(role), r.opts.Keys)
	if err != nil {
		return err
	}
	opened, err := newPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("%s: %w", k.describe(role), err)
	}
	if k.id != "" && opened.id != k.id {
		return fmt.Errorf("%s: the file holds key %s", k.describe(role), opened.id)
	}
	k.id, k.priv, k.public = opened.id, opened.priv, opened.public
	return nil
}

// signer returns the sigstore signer go-tuf's Sign expects.
func (k *privateKey) signer() (signature.Signer, error) {
	if k.priv == nil {
		return nil, fmt.Errorf("key %s not opened", k.id)
	}
	return tufSigner{k.priv}, nil
}

// saveKey writes the key to dir/<keyid>.pem (encrypted as r's KeyAccess
// says, mode 0600) and its public key to dir/<keyid>.pub.
func (r *Repo) saveKey(dir string, k *privateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	k.path = filepath.Join(dir, k.id+".pem")
	data, err := encodeKey(k.priv, "new "+k.describe(filepath.Base(dir)), r.opts.Keys)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(k.path, data, 0o600); err != nil {
		return err
	}
	return WritePublicKeyFile(PublicKeyPath(k.path), k.priv.Public())
}

// keyFileID matches the names saveKey gives key files: a TUF key id.
var keyFileID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// loadKeys lists every *.pem key in dir, sorted by key id, without
// decrypting any: the public key comes from the .pub file beside it, or
// from the key itself when it is plaintext (no passphrase needed; using it
// to sign still needs KeyAccess.InsecurePlaintextKeys), or else a file named
// <keyid>.pem is taken to hold that key (open checks it when it signs).
func loadKeys(dir string) ([]*privateKey, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var keys []*privateKey
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".pem")
		if !ok || e.IsDir() {
			continue
		}
		k := &privateKey{path: filepath.Join(dir, e.Name())}
		if pub, err := PublicKey(PublicKeyPath(k.path), KeyAccess{}); err == nil {
			k.public = pub
		} else if priv, err := readKeyFile(k.path, "key "+k.path, KeyAccess{InsecurePlaintextKeys: true}); err == nil {
			if k.public, err = metadata.KeyFromPublicKey(priv.Public()); err != nil {
				return nil, fmt.Errorf("key %s: %w", k.path, err)
			}
		}
		switch {
		case k.public != nil:
			if k.id, err = k.public.ID(); err != nil {
				return nil, fmt.Errorf("key %s: %w", k.path, err)
			}
		case keyFileID.MatchString(name):
			k.id = name
		default:
			return nil, fmt.Errorf("key %s: encrypted, and neither named by its key id nor with its public key beside it (%s)", k.path, PublicKeyPath(k.path))
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].id < keys[j].id })
	return keys, nil
}

// publicKey returns k's TUF public key, opening the key file if no .pub
// file gave it.
func (r *Repo) publicKey(k *privateKey, role string) (*metadata.Key, error) {
	if k.public == nil {
		if err := r.open(k, role); err != nil {
			return nil, err
		}
	}
	return k.public, nil
}

// ErrMissingKeys means the private keys needed to reach a role's signature
// threshold are not available (for root: Options.RootKeysDir not mounted).
var ErrMissingKeys = errors.New("signing keys missing")

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// EncryptKeys encrypts every plaintext private key file of the repository
// in dir (DIR/keys and below, the root keys directory and the delegated
// roles' key directories it names) with a passphrase from ka, in place, and
// writes each key's public key beside it (<keyid>.pub). It returns the
// files it encrypted. Encrypted files are left as they are. The plaintext
// is replaced by rename; see retireKeys on what a file system keeps.
func EncryptKeys(dir string, ka KeyAccess) ([]string, error) {
	opts, err := readOptions(dir)
	if err != nil {
		return nil, fmt.Errorf("encrypt keys: %w", err)
	}
	dirs := []string{filepath.Join(dir, "keys")}
	if opts.RootKeysDir != "" {
		dirs = append(dirs, opts.RootKeysDir)
	}
	for _, d := range opts.KeysDirs {
		dirs = append(dirs, d)
	}
	ka.InsecurePlaintextKeys = false
	done, err := reencrypt(dirs, true, KeyAccess{InsecurePlaintextKeys: true}, ka)
	if err != nil {
		return done, fmt.Errorf("encrypt keys: %w", err)
	}
	return done, nil
}

// ChangePassphrase re-encrypts the key files of role (in its key
// directory) with the passphrase of to, reading them with from (a
// plaintext one only with from.InsecurePlaintextKeys). It returns the files
// it rewrote. The online timestamp key gets a passphrase of its own this
// way, which the host's timer can be given without unlocking the others.
func ChangePassphrase(dir, role string, from, to KeyAccess) ([]string, error) {
	opts, err := readOptions(dir)
	if err != nil {
		return nil, fmt.Errorf("change passphrase: %w", err)
	}
	to.InsecurePlaintextKeys = false
	keyDir := (&Repo{dir: dir, opts: opts}).keyDir(role)
	if _, err := os.Stat(keyDir); err != nil {
		return nil, fmt.Errorf("change passphrase of %s keys: %w", role, err)
	}
	done, err := reencrypt([]string{keyDir}, false, from, to)
	if err != nil {
		return done, fmt.Errorf("change passphrase of %s keys: %w", role, err)
	}
	return done, nil
}

func readOptions(dir string) (Options, error) {
	var opts Options
	data, err := os.ReadFile(filepath.Join(dir, optionsFile))
	if err != nil {
		return opts, err
	}
	if err := json.Unmarshal(data, &opts); err != nil {
		return opts, fmt.Errorf("%s: %w", optionsFile, err)
	}
	return opts, nil
}

// reencrypt rewrites every *.pem key file under dirs (only plaintext ones
// if onlyPlaintext) read with from, encrypted with to, and its .pub file.
func reencrypt(dirs []string, onlyPlaintext bool, from, to KeyAccess) ([]string, error) {
	var done []string
	seen := map[string]bool{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if e.IsDir() || !strings.HasSuffix(path, ".pem") || seen[path] {
				return nil
			}
			seen[path] = true
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if block, _ := pem.Decode(raw); onlyPlaintext && (block == nil || block.Type != pemPlaintext) {
				return nil
			}
			priv, err := decodeKey(raw, path, "key "+path, from)
			if err != nil {
				return err
			}
			enc, err := encodeKey(priv, "key "+path, to)
			if err != nil {
				return err
			}
			if err := writeFileAtomic(path, enc, 0o600); err != nil {
				return err
			}
			if err := WritePublicKeyFile(PublicKeyPath(path), priv.Public()); err != nil {
				return err
			}
			done = append(done, path)
			return nil
		})
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// PlaintextKeys returns the files under dir that hold an unencrypted
// private key: a PEM block of any "PRIVATE KEY" type but ENCRYPTED, or
// (outside DIR/repository, where targets of any size live) a file of
// exactly an ed25519 seed's or private key's size (32 or 64 bytes). Status
// warns about them; tests check that a normal run leaves none.
func PlaintextKeys(dir string) ([]string, error) {
	var found []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil || fi.Size() > 1<<20 {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		inRepo := rel == "repository" || strings.HasPrefix(rel, "repository"+string(filepath.Separator))
		if isPlaintextKey(data) && (!inRepo || len(data) > ed25519.PrivateKeySize) {
			found = append(found, path)
		}
		return nil
	})
	return found, err
}
