// SPDX-License-Identifier: Apache-2.0

package pkcs11

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxURILen bounds what ParseURI reads: a URI names a token and a key, and
// even one carrying every attribute RFC 7512 defines stays far below it.
const maxURILen = 4096

// URI is a parsed PKCS#11 URI (RFC 7512) that names one key in one token,
// with where to find the module and the PIN.
//
// String attributes are compared with the token's blank-padded fields after
// trimming the padding; an empty field means "any". String leaves
// pin-value out.
type URI struct {
	// Path attributes that select a token.
	Token               string // token label
	Manufacturer        string // token manufacturer
	Model               string // token model
	Serial              string // token serial number
	SlotID              *uint  // slot-id
	SlotDescription     string // slot-description
	SlotManufacturer    string // slot-manufacturer
	LibraryManufacturer string // library-manufacturer
	LibraryDescription  string // library-description
	LibraryVersion      string // library-version, "M" or "M.m"

	// Path attributes that select an object in the token.
	Object string // CKA_LABEL
	ID     []byte // CKA_ID
	Type   string // "private", "public", "cert", "secret-key" or "data"

	// Query attributes.
	ModulePath string // module-path: the PKCS#11 module (a shared library) to load
	ModuleName string // module-name: not resolved here; module-path is needed
	PINValue   string // pin-value
	PINSource  string // pin-source: "file:/abs/path" or "/abs/path"
}

// objectTypes are the values RFC 7512 defines for the type attribute.
var objectTypes = []string{"private", "public", "cert", "secret-key", "data"}

// ParseURI parses a PKCS#11 URI of the form
//
//	pkcs11:token=fieldgate;object=targets-1;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//
// Values are percent-decoded; an attribute given twice, an unknown one
// (other than a vendor's "x-" attribute, which is ignored), a malformed
// escape, a control character, or invalid UTF-8 in a text attribute is an
// error. s is untrusted input: nothing is looked up or read here.
func ParseURI(s string) (*URI, error) {
	if len(s) > maxURILen {
		return nil, fmt.Errorf("pkcs11 URI: %d bytes, at most %d", len(s), maxURILen)
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(scheme, "pkcs11") {
		return nil, errors.New("pkcs11 URI: does not start with pkcs11:")
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return nil, errors.New("pkcs11 URI: a fragment (#) is not allowed")
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	if err := eachAttr(path, ";", seen, u.setPath); err != nil {
		return nil, err
	}
	if err := eachAttr(query, "&", seen, u.setQuery); err != nil {
		return nil, err
	}
	if u.PINValue != "" && u.PINSource != "" {
		return nil, errors.New("pkcs11 URI: pin-value and pin-source both given")
	}
	return u, nil
}

// IsURI reports whether s is meant as a PKCS#11 URI (starts with "pkcs11:").
func IsURI(s string) bool {
	return len(s) >= 7 && strings.EqualFold(s[:7], "pkcs11:")
}

func eachAttr(s, sep string, seen map[string]bool, set func(name, raw string) error) error {
	if s == "" {
		return nil
	}
	for _, a := range strings.Split(s, sep) {
		name, raw, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return fmt.Errorf("pkcs11 URI: attribute %q is not name=value", truncate(a))
		}
		if seen[name] {
			return fmt.Errorf("pkcs11 URI: attribute %q given twice", truncate(name))
		}
		seen[name] = true
		if err := set(name, raw); err != nil {
			return err
		}
	}
	return nil
}

func (u *URI) setPath(name, raw string) error {
	if name == "id" {
		id, err := unescape(raw, false)
		if err != nil {
			return fmt.Errorf("pkcs11 URI: id: %w", err)
		}
		if len(id) == 0 {
			return errors.New("pkcs11 URI: id is empty")
		}
		u.ID = []byte(id)
		return nil
	}
	v, err := textValue(name, raw, false)
	if err != nil {
		return err
	}
	switch name {
	case "token":
		u.Token = v
	case "manufacturer":
		u.Manufacturer = v
	case "model":
		u.Model = v
	case "serial":
		u.Serial = v
	case "slot-description":
		u.SlotDescription = v
	case "slot-manufacturer":
		u.SlotManufacturer = v
	case "library-manufacturer":
		u.LibraryManufacturer = v
	case "library-description":
		u.LibraryDescription = v
	case "library-version":
		if _, _, err := parseVersion(v); err != nil {
			return fmt.Errorf("pkcs11 URI: library-version %q: %w", v, err)
		}
		u.LibraryVersion = v
	case "object":
		u.Object = v
	case "type":
		if !slices.Contains(objectTypes, v) {
			return fmt.Errorf("pkcs11 URI: type %q: want one of %s", v, strings.Join(objectTypes, ", "))
		}
		u.Type = v
	case "slot-id":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("pkcs11 URI: slot-id %q: want a decimal number", v)
		}
		id := uint(n)
		u.SlotID = &id
	default:
		if strings.HasPrefix(name, "x-") {
			return nil
		}
		return fmt.Errorf("pkcs11 URI: unknown attribute %q", truncate(name))
	}
	return nil
}

func (u *URI) setQuery(name, raw string) error {
	v, err := textValue(name, raw, true)
	if err != nil {
		return err
	}
	switch name {
	case "module-path":
		if !strings.HasPrefix(v, "/") {
			return fmt.Errorf("pkcs11 URI: module-path %q is not an absolute path", v)
		}
		u.ModulePath = v
	case "module-name":
		u.ModuleName = v
	case "pin-value":
		u.PINValue = v
	case "pin-source":
		p := strings.TrimPrefix(v, "file:")
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("pkcs11 URI: pin-source %q: want file:/absolute/path", v)
		}
		u.PINSource = v
	default:
		if strings.HasPrefix(name, "x-") {
			return nil
		}
		return fmt.Errorf("pkcs11 URI: unknown query attribute %q", truncate(name))
	}
	return nil
}

// textValue percent-decodes a text attribute and refuses what no label or
// path holds: invalid UTF-8 and control characters (NUL would cut the value
// short when it reaches the C module).
func textValue(name, raw string, query bool) (string, error) {
	v, err := unescape(raw, query)
	if err != nil {
		return "", fmt.Errorf("pkcs11 URI: %s: %w", name, err)
	}
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("pkcs11 URI: %s is not valid UTF-8", name)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("pkcs11 URI: %s holds a control character", name)
		}
	}
	return v, nil
}

// unescape decodes %XX escapes; every other printable ASCII byte is taken
// as it is, except the delimiters of the URI's generic syntax ("/" "?" "#"
// in the path, "#" and "&" in the query), which must be escaped. Bytes
// outside printable ASCII must be escaped too.
func unescape(s string, query bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated escape at byte %d", i)
			}
			v, err := hex.DecodeString(s[i+1 : i+3])
			if err != nil {
				return "", fmt.Errorf("bad escape %q", s[i:i+3])
			}
			b.WriteByte(v[0])
			i += 2
		case c <= ' ' || c >= 0x7f || c == '#' || c == '"' || c == '<' || c == '>' || c == '\\' ||
			c == '^' || c == '`' || c == '{' || c == '}' || (!query && (c == '/' || c == '?')):
			return "", fmt.Errorf("byte %q must be percent-encoded", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// parseVersion reads "M" or "M.m" (RFC 7512's library-version).
func parseVersion(v string) (major, minor uint8, err error) {
	maj, min, hasMinor := strings.Cut(v, ".")
	a, err := strconv.ParseUint(maj, 10, 8)
	if err != nil {
		return 0, 0, errors.New("want M or M.m")
	}
	var b uint64
	if hasMinor {
		if b, err = strconv.ParseUint(min, 10, 8); err != nil {
			return 0, 0, errors.New("want M or M.m")
		}
	}
	return uint8(a), uint8(b), nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// String returns the URI in RFC 7512 form without the PIN: pin-value is
// left out, so that the result can be printed and logged.
func (u *URI) String() string { return u.format(false) }

// format writes the URI; withPIN includes pin-value.
func (u *URI) format(withPIN bool) string {
	var path []string
	add := func(list *[]string, name, v string) {
		if v != "" {
			*list = append(*list, name+"="+escape(v, list != &path))
		}
	}
	add(&path, "token", u.Token)
	add(&path, "manufacturer", u.Manufacturer)
	add(&path, "model", u.Model)
	add(&path, "serial", u.Serial)
	if u.SlotID != nil {
		path = append(path, "slot-id="+strconv.FormatUint(uint64(*u.SlotID), 10))
	}
	add(&path, "slot-description", u.SlotDescription)
	add(&path, "slot-manufacturer", u.SlotManufacturer)
	add(&path, "library-manufacturer", u.LibraryManufacturer)
	add(&path, "library-description", u.LibraryDescription)
	add(&path, "library-version", u.LibraryVersion)
	add(&path, "object", u.Object)
	if len(u.ID) > 0 {
		var b strings.Builder
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02x", c)
		}
		path = append(path, "id="+b.String())
	}
	add(&path, "type", u.Type)
	var query []string
	add(&query, "module-name", u.ModuleName)
	add(&query, "module-path", u.ModulePath)
	add(&query, "pin-source", u.PINSource)
	if withPIN {
		add(&query, "pin-value", u.PINValue)
	}
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// escape percent-encodes everything but RFC 3986's unreserved characters
// and the few others RFC 7512 allows unescaped in values (":" "@" "!" "$"
// "'" "(" ")" "*" "+" ","; in the query also "/", so that paths stay
// readable).
func escape(v string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~:@!$'()*+,", c) >= 0 || (query && c == '/') {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// pin returns the PIN the URI selects: pin-value, else the first line of
// the pin-source file, else $FIELDGATE_PKCS11_PIN; ok is false when there
// is none.
func (u *URI) pin() (pin string, ok bool, err error) {
	if u.PINValue != "" {
		return u.PINValue, true, nil
	}
	if u.PINSource != "" {
		p := strings.TrimPrefix(u.PINSource, "file:")
		data, err := os.ReadFile(p)
		if err != nil {
			return "", false, fmt.Errorf("pin-source: %w", err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			return "", false, fmt.Errorf("pin-source %s is empty", p)
		}
		return line, true, nil
	}
	if v, ok := os.LookupEnv(EnvPIN); ok && v != "" {
		return v, true, nil
	}
	return "", false, nil
}

// modulePath returns module-path, else $FIELDGATE_PKCS11_MODULE.
func (u *URI) modulePath() (string, error) {
	if u.ModulePath != "" {
		return u.ModulePath, nil
	}
	if v := os.Getenv(EnvModule); v != "" {
		if !strings.HasPrefix(v, "/") {
			return "", fmt.Errorf("%s=%q is not an absolute path", EnvModule, v)
		}
		return v, nil
	}
	if u.ModuleName != "" {
		return "", fmt.Errorf("module-name=%s: give the module's file as module-path=/… (or %s) instead", u.ModuleName, EnvModule)
	}
	return "", fmt.Errorf("no PKCS#11 module: add ?module-path=/path/to/module.so to the URI or set %s", EnvModule)
}

// Environment variables read when the URI does not say.
const (
	EnvPIN    = "FIELDGATE_PKCS11_PIN"
	EnvModule = "FIELDGATE_PKCS11_MODULE"
)
