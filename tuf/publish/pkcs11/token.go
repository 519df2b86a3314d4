// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"
)

// Compiled reports whether this build can load PKCS#11 modules.
const Compiled = true

// PKCS#11 3.0 names that miekg/pkcs11 v1.1.2 does not define.
const (
	ckkECEdwards           = 0x40   // CKK_EC_EDWARDS
	ckmECEdwardsKeyPairGen = 0x1055 // CKM_EC_EDWARDS_KEY_PAIR_GEN
	ckmEdDSA               = 0x1057 // CKM_EDDSA
)

// maxObjects is how many matches find asks for: two are enough to tell
// "one" from "several".
const maxObjects = 2

// DER encodings of the curves' object identifiers, as CKA_EC_PARAMS holds them.
var (
	oidP256    = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // 1.2.840.10045.3.1.7
	oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}                               // 1.3.101.112
	// PKCS#11 3.0 also allows the curve's name as a PrintableString.
	nameEd25519 = append([]byte{0x13, 0x0c}, "edwards25519"...)
)

// module is one loaded PKCS#11 library. C_Initialize may be called once per
// library and process, and every user of the library in the process shares
// that initialisation: hence the process-wide table, and a count of the
// sessions that use each module so that the last one finalises it.
type module struct {
	path string
	ctx  *p11.Ctx
	refs int
	// ours is false when the library was initialised before we loaded it
	// (another part of the process uses it): then we never finalise it.
	ours bool
}

var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

func loadModule(path string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("PKCS#11 module: %w", err)
	}
	ctx := p11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("PKCS#11 module %s: cannot be loaded (not a shared library for this architecture, or it lacks C_GetFunctionList)", path)
	}
	m := &module{path: path, ctx: ctx, refs: 1, ours: true}
	if err := ctx.Initialize(); err != nil {
		if !isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			ctx.Destroy()
			return nil, fmt.Errorf("PKCS#11 module %s: initialize: %w", path, err)
		}
		m.ours = false
	}
	modules.m[path] = m
	return m, nil
}

func (m *module) release() error {
	modules.Lock()
	defer modules.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(modules.m, m.path)
	var err error
	if m.ours {
		err = m.ctx.Finalize()
	}
	m.ctx.Destroy()
	return err
}

func isCode(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}

// session is an open, logged-in session with the one token a URI selects.
type session struct {
	mod   *module
	h     p11.SessionHandle
	label string // the token's label, for messages
}

func openSession(u *URI, rw bool) (*session, error) {
	path, err := u.modulePath()
	if err != nil {
		return nil, err
	}
	mod, err := loadModule(path)
	if err != nil {
		return nil, err
	}
	s, err := mod.open(u, rw)
	if err != nil {
		mod.release()
		return nil, err
	}
	return s, nil
}

func (m *module) open(u *URI, rw bool) (*session, error) {
	info, err := m.ctx.GetInfo()
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 module %s: %w", m.path, err)
	}
	if !matchLibrary(u, info) {
		return nil, fmt.Errorf("PKCS#11 module %s (%s, %s %d.%d) does not match the URI's library attributes",
			m.path, trim(info.ManufacturerID), trim(info.LibraryDescription), info.LibraryVersion.Major, info.LibraryVersion.Minor)
	}
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 module %s: list slots: %w", m.path, err)
	}
	var (
		found  []uint
		tokens []p11.TokenInfo
		seen   []string
	)
	for _, slot := range slots {
		si, err := m.ctx.GetSlotInfo(slot)
		if err != nil {
			continue
		}
		ti, err := m.ctx.GetTokenInfo(slot)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue // SoftHSM offers an empty slot for the next token
		}
		seen = append(seen, fmt.Sprintf("%q (serial %s)", trim(ti.Label), trim(ti.SerialNumber)))
		if matchToken(u, slot, si, ti) {
			found = append(found, slot)
			tokens = append(tokens, ti)
		}
	}
	switch {
	case len(found) == 0 && len(seen) == 0:
		return nil, fmt.Errorf("PKCS#11 module %s: no token present", m.path)
	case len(found) == 0:
		return nil, fmt.Errorf("no token matches %s; the module has %s", u, strings.Join(seen, ", "))
	case len(found) > 1:
		return nil, fmt.Errorf("%d tokens match %s (%s): add serial= or slot-id= to choose one", len(found), u, strings.Join(seen, ", "))
	}
	ti := tokens[0]
	flags := uint(p11.CKF_SERIAL_SESSION)
	if rw {
		flags |= p11.CKF_RW_SESSION
	}
	h, err := m.ctx.OpenSession(found[0], flags)
	if err != nil {
		return nil, fmt.Errorf("token %q: open session: %w", trim(ti.Label), err)
	}
	s := &session{mod: m, h: h, label: trim(ti.Label)}
	if ti.Flags&p11.CKF_LOGIN_REQUIRED != 0 {
		if err := s.login(u, ti); err != nil {
			m.ctx.CloseSession(h)
			return nil, err
		}
	}
	return s, nil
}

func (s *session) login(u *URI, ti p11.TokenInfo) error {
	pin, ok, err := u.pin()
	if err != nil {
		return fmt.Errorf("token %q: %w", s.label, err)
	}
	if !ok {
		if ti.Flags&p11.CKF_PROTECTED_AUTHENTICATION_PATH == 0 {
			return fmt.Errorf("token %q needs a PIN: add pin-source=file:/path to the URI or set %s", s.label, EnvPIN)
		}
		pin = "" // the PIN is entered on the reader's own keypad
	}
	err = s.mod.ctx.Login(s.h, p11.CKU_USER, pin)
	if err != nil && !isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		return fmt.Errorf("token %q: log in: %w", s.label, err)
	}
	return nil
}

// close closes the session; the token logs the application out with its
// last session.
func (s *session) close() error {
	err := s.mod.ctx.CloseSession(s.h)
	if rerr := s.mod.release(); err == nil {
		err = rerr
	}
	return err
}

func matchLibrary(u *URI, info p11.Info) bool {
	if !eq(u.LibraryManufacturer, info.ManufacturerID) || !eq(u.LibraryDescription, info.LibraryDescription) {
		return false
	}
	if u.LibraryVersion != "" {
		major, minor, _ := parseVersion(u.LibraryVersion)
		if info.LibraryVersion.Major != major || info.LibraryVersion.Minor != minor {
			return false
		}
	}
	return true
}

func matchToken(u *URI, slot uint, si p11.SlotInfo, ti p11.TokenInfo) bool {
	if u.SlotID != nil && *u.SlotID != slot {
		return false
	}
	return eq(u.SlotDescription, si.SlotDescription) && eq(u.SlotManufacturer, si.ManufacturerID) &&
		eq(u.Token, ti.Label) && eq(u.Manufacturer, ti.ManufacturerID) &&
		eq(u.Model, ti.Model) && eq(u.Serial, ti.SerialNumber)
}

// eq compares a URI attribute (empty: any) with a blank-padded token field.
func eq(want, field string) bool { return want == "" || want == trim(field) }

func trim(s string) string { return strings.TrimRight(s, " \x00") }

// Signer is a key in a token: a crypto.Signer whose private key never
// leaves it. It is safe for concurrent use.
type Signer struct {
	mu   sync.Mutex
	s    *session // nil once closed
	priv p11.ObjectHandle
	pub  crypto.PublicKey
	name string // the URI without the PIN
}

var _ crypto.Signer = (*Signer)(nil)

// Open opens the private key uri names (object= and/or id=) and its public
// key, logging in to the token with the URI's PIN. The returned closer (the
// Signer itself) closes the session; sign nothing after that.
func Open(uri string) (crypto.Signer, io.Closer, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, nil, err
	}
	k, err := open(u)
	if err != nil {
		return nil, nil, err
	}
	return k, k, nil
}

func open(u *URI) (*Signer, error) {
	if u.Object == "" && len(u.ID) == 0 {
		return nil, fmt.Errorf("%s names no key: add object=LABEL or id=%%…", u)
	}
	if u.Type != "" && u.Type != "private" {
		return nil, fmt.Errorf("%s: type=%s, but a signing key is type=private", u, u.Type)
	}
	s, err := openSession(u, false)
	if err != nil {
		return nil, err
	}
	k, err := s.key(u)
	if err != nil {
		s.close()
		return nil, err
	}
	return k, nil
}

// key finds the private key u names and reads the public key beside it.
func (s *session) key(u *URI) (*Signer, error) {
	ctx := s.mod.ctx
	privs, err := s.find(p11.CKO_PRIVATE_KEY, u.Object, u.ID)
	if err != nil {
		return nil, err
	}
	switch len(privs) {
	case 0:
		return nil, fmt.Errorf("token %q holds no private key %s (is the PIN right? private objects are visible only after login)", s.label, objectName(u.Object, u.ID))
	case 1:
	default:
		return nil, fmt.Errorf("token %q holds several private keys %s: add id=… to choose one", s.label, objectName(u.Object, u.ID))
	}
	attrs, err := ctx.GetAttributeValue(s.h, privs[0], []*p11.Attribute{
		p11.NewAttribute(p11.CKA_ID, nil), p11.NewAttribute(p11.CKA_LABEL, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("token %q: read key %s: %w", s.label, objectName(u.Object, u.ID), err)
	}
	id, label := attrs[0].Value, string(attrs[1].Value)
	// The public key object shares the private key's id (and label); an
	// id alone is what tools such as pkcs11-tool pair keys by.
	var pubs []p11.ObjectHandle
	if len(id) > 0 {
		pubs, err = s.find(p11.CKO_PUBLIC_KEY, "", id)
	} else {
		pubs, err = s.find(p11.CKO_PUBLIC_KEY, label, nil)
	}
	if err != nil {
		return nil, err
	}
	if len(pubs) != 1 {
		return nil, fmt.Errorf("token %q: %d public key objects beside private key %s, want 1 (the public key names the key in TUF metadata)",
			s.label, len(pubs), objectName(label, id))
	}
	pub, err := s.publicKey(pubs[0])
	if err != nil {
		return nil, fmt.Errorf("token %q: key %s: %w", s.label, objectName(label, id), err)
	}
	n := *u
	n.PINValue = ""
	return &Signer{s: s, priv: privs[0], pub: pub, name: n.String()}, nil
}

func objectName(label string, id []byte) string {
	var parts []string
	if label != "" {
		parts = append(parts, "object="+label)
	}
	if len(id) > 0 {
		parts = append(parts, fmt.Sprintf("id=%x", id))
	}
	return strings.Join(parts, ";")
}

func (s *session) find(class uint, label string, id []byte) ([]p11.ObjectHandle, error) {
	tmpl := []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, class)}
	if label != "" {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_LABEL, label))
	}
	if len(id) > 0 {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, id))
	}
	ctx := s.mod.ctx
	if err := ctx.FindObjectsInit(s.h, tmpl); err != nil {
		return nil, fmt.Errorf("token %q: find objects: %w", s.label, err)
	}
	objs, _, err := ctx.FindObjects(s.h, maxObjects)
	if ferr := ctx.FindObjectsFinal(s.h); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("token %q: find objects: %w", s.label, err)
	}
	return objs, nil
}

// publicKey reads an EC or Edwards public key object.
func (s *session) publicKey(h p11.ObjectHandle) (crypto.PublicKey, error) {
	attrs, err := s.mod.ctx.GetAttributeValue(s.h, h, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		p11.NewAttribute(p11.CKA_EC_PARAMS, nil),
		p11.NewAttribute(p11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	keyType := decodeULong(attrs[0].Value)
	params, point := attrs[1].Value, ecPoint(attrs[2].Value)
	switch {
	case keyType == p11.CKK_EC && bytes.Equal(params, oidP256):
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		return pub, nil
	case keyType == ckkECEdwards && (bytes.Equal(params, oidEd25519) || bytes.Equal(params, nameEd25519)):
		if len(point) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 public key of %d bytes", len(point))
		}
		return ed25519.PublicKey(bytes.Clone(point)), nil
	}
	return nil, fmt.Errorf("key type %#x with curve parameters %x: fieldgate signs with ECDSA P-256 or Ed25519", keyType, params)
}

// ecPoint unwraps CKA_EC_POINT, which PKCS#11 says is a DER OCTET STRING
// but some modules return bare.
func ecPoint(v []byte) []byte {
	var inner []byte
	if rest, err := asn1.Unmarshal(v, &inner); err == nil && len(rest) == 0 {
		return inner
	}
	return v
}

// decodeULong reads a CK_ULONG attribute (the C unsigned long: native
// byte order and size).
func decodeULong(v []byte) uint {
	switch len(v) {
	case 8:
		return uint(binary.NativeEndian.Uint64(v))
	case 4:
		return uint(binary.NativeEndian.Uint32(v))
	}
	return ^uint(0)
}

// Public returns the key's public half (*ecdsa.PublicKey or ed25519.PublicKey).
func (k *Signer) Public() crypto.PublicKey { return k.pub }

// String names the key by its URI, without the PIN.
func (k *Signer) String() string { return k.name }

// Sign signs digest (ECDSA: a digest made with opts.HashFunc(); Ed25519:
// the whole message, opts.HashFunc() zero) in the token. ECDSA signatures
// are ASN.1 DER. rand is not used: the token has its own.
func (k *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var mech uint
	switch k.pub.(type) {
	case *ecdsa.PublicKey:
		if opts.HashFunc() == 0 || len(digest) != opts.HashFunc().Size() {
			return nil, fmt.Errorf("sign with %s: ECDSA needs a digest (%d bytes given, hash %v)", k.name, len(digest), opts.HashFunc())
		}
		mech = p11.CKM_ECDSA
	case ed25519.PublicKey:
		if opts.HashFunc() != 0 {
			return nil, fmt.Errorf("sign with %s: Ed25519ph is not supported, sign the message itself", k.name)
		}
		if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
			return nil, fmt.Errorf("sign with %s: Ed25519 contexts are not supported", k.name)
		}
		mech = ckmEdDSA
	}
	raw, err := k.sign(mech, digest)
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", k.name, err)
	}
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if len(raw) != 64 {
			return nil, fmt.Errorf("sign with %s: token returned %d bytes, want r||s of 64", k.name, len(raw))
		}
		sig, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
		if err != nil {
			return nil, err
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return nil, fmt.Errorf("sign with %s: the token's signature does not verify with its public key", k.name)
		}
		return sig, nil
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, digest, raw) {
			return nil, fmt.Errorf("sign with %s: the token's signature does not verify with its public key", k.name)
		}
		return raw, nil
	}
	return nil, fmt.Errorf("sign with %s: unsupported key %T", k.name, k.pub)
}

func (k *Signer) sign(mech uint, data []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.s == nil {
		return nil, errors.New("the key is closed")
	}
	ctx := k.s.mod.ctx
	if err := ctx.SignInit(k.s.h, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, k.priv); err != nil {
		return nil, err
	}
	return ctx.Sign(k.s.h, data)
}

// Close closes the key's session with the token. Closing twice is harmless.
func (k *Signer) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.s == nil {
		return nil
	}
	err := k.s.close()
	k.s = nil
	return err
}

// Generate makes a key pair of keyType (KeyECDSAP256, default, or
// KeyEd25519) in the token uri selects, labelled with the URI's object=
// and with its id= (8 random bytes when the URI has none). The private key
// is a token object with CKA_SENSITIVE true and CKA_EXTRACTABLE false: it
// can sign and never leave the token. An existing object with the same
// label or id is never replaced: Generate refuses. It returns the public
// key and the URI of the new key (with its id, without a pin-value).
func Generate(uri, keyType string) (crypto.PublicKey, string, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, "", err
	}
	if u.Object == "" {
		return nil, "", fmt.Errorf("%s: name the new key with object=LABEL", u)
	}
	if u.Type != "" && u.Type != "private" {
		return nil, "", fmt.Errorf("%s: type=%s: a key pair is named by its private key (type=private or no type)", u, u.Type)
	}
	var (
		mech   uint
		kt     uint
		params []byte
	)
	switch keyType {
	case "", KeyECDSAP256:
		mech, kt, params = p11.CKM_EC_KEY_PAIR_GEN, p11.CKK_EC, oidP256
	case KeyEd25519:
		mech, kt, params = ckmECEdwardsKeyPairGen, ckkECEdwards, oidEd25519
	default:
		return nil, "", fmt.Errorf("key type %q: want %s or %s", keyType, KeyECDSAP256, KeyEd25519)
	}
	if len(u.ID) == 0 {
		u.ID = make([]byte, 8)
		if _, err := rand.Read(u.ID); err != nil {
			return nil, "", err
		}
	}
	s, err := openSession(u, true)
	if err != nil {
		return nil, "", err
	}
	defer s.close()
	for _, q := range []struct {
		label string
		id    []byte
	}{{u.Object, nil}, {"", u.ID}} {
		for _, class := range []uint{p11.CKO_PRIVATE_KEY, p11.CKO_PUBLIC_KEY, p11.CKO_CERTIFICATE, p11.CKO_SECRET_KEY, p11.CKO_DATA} {
			objs, err := s.find(class, q.label, q.id)
			if err != nil {
				return nil, "", err
			}
			if len(objs) > 0 {
				return nil, "", fmt.Errorf("token %q already holds %s: keys are never replaced, choose another object= or id=",
					s.label, objectName(q.label, q.id))
			}
		}
	}
	common := func(class uint) []*p11.Attribute {
		return []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, class),
			p11.NewAttribute(p11.CKA_KEY_TYPE, kt),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_LABEL, u.Object),
			p11.NewAttribute(p11.CKA_ID, u.ID),
		}
	}
	public := append(common(p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_EC_PARAMS, params),
		p11.NewAttribute(p11.CKA_VERIFY, true),
		p11.NewAttribute(p11.CKA_ENCRYPT, false),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_PRIVATE, false),
	)
	private := append(common(p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_SIGN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		// A signing key does nothing else.
		p11.NewAttribute(p11.CKA_DECRYPT, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
	)
	pubH, _, err := s.mod.ctx.GenerateKeyPair(s.h, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, public, private)
	if err != nil {
		return nil, "", fmt.Errorf("token %q: generate %s key %s: %w", s.label, keyType, objectName(u.Object, u.ID), err)
	}
	pub, err := s.publicKey(pubH)
	if err != nil {
		return nil, "", fmt.Errorf("token %q: new key %s: %w", s.label, objectName(u.Object, u.ID), err)
	}
	u.PINValue = ""
	return pub, u.String(), nil
}
