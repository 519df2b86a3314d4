package publish

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// privateKey is a signing key with its TUF public key.
type privateKey struct {
	priv   crypto.Signer
	public *metadata.Key
	id     string
	path   string
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

// signer returns the sigstore signer go-tuf's Sign expects.
func (k *privateKey) signer() (signature.Signer, error) {
	switch p := k.priv.(type) {
	case ed25519.PrivateKey:
		return signature.LoadED25519Signer(p)
	case *ecdsa.PrivateKey:
		return signature.LoadECDSASigner(p, crypto.SHA256)
	}
	return nil, fmt.Errorf("unsupported private key type %T", k.priv)
}

// saveKey writes the key to dir/<keyid>.pem, mode 0600.
func saveKey(dir string, k *privateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	k.path = filepath.Join(dir, k.id+".pem")
	return writeFileAtomic(k.path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// loadKeys reads every *.pem key in dir, sorted by key id.
func loadKeys(dir string) ([]*privateKey, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var keys []*privateKey
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pem") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("key %s: no PEM block", path)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", path, err)
		}
		signer, ok := parsed.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key %s: not a signing key", path)
		}
		k, err := newPrivateKey(signer)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", path, err)
		}
		k.path = path
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].id < keys[j].id })
	return keys, nil
}

// signWith clears md's signatures and signs it with every key whose id the
// role lists (keys not listed are skipped). It fails if fewer than threshold
// signatures result.
func signWith[T metadata.Roles](md *metadata.Metadata[T], role string, keys []*privateKey, allowed []string, threshold int) error {
	md.ClearSignatures()
	n := 0
	for _, k := range keys {
		if !contains(allowed, k.id) {
			continue
		}
		s, err := k.signer()
		if err != nil {
			return fmt.Errorf("sign %s: %w", role, err)
		}
		if _, err := md.Sign(s); err != nil {
			return fmt.Errorf("sign %s: %w", role, err)
		}
		n++
	}
	if n < threshold {
		return fmt.Errorf("sign %s: %d of %d required keys available: %w", role, n, threshold, ErrMissingKeys)
	}
	return nil
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
