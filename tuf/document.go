// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// DocumentKey is the key of a document's object inside a target's TUF custom
// field. A target with this key and no "fieldgate" key is a document
// (an advisory, a catalogue), not firmware: Refresh lists it in
// Snapshot.Documents.
const DocumentKey = "fieldgate-document"

// Kinds of documents.
const (
	DocumentCSAF = "csaf" // a CSAF 2.0 advisory
	DocumentKEV  = "kev"  // CISA's Known Exploited Vulnerabilities catalog
	// DocumentTestReport is a staging test report signed by a staging
	// gateway (daemon/testreport); its id is the report's id.
	DocumentTestReport = "test-report"
)

// Limits of a document's metadata and contents.
const (
	// MaxDocumentBytes bounds what FetchDocument loads into memory. The
	// largest CSAF advisory of CISA's 2024 ICS set is 0.3 MiB, the KEV
	// catalog about 1.5 MiB.
	MaxDocumentBytes = 32 << 20
	// MaxDocumentCVEs bounds the CVE list signed into targets metadata,
	// which every gateway downloads on every change (the largest ICS
	// advisory of 2024 names 160).
	MaxDocumentCVEs  = 256
	maxDocumentIDLen = 128
	maxCVELen        = 32
)

// DocumentMeta is the custom metadata of a document target, signed with the
// targets (or a delegated) role. In JSON it is the object under the
// "fieldgate-document" key of the TUF custom field:
//
//	{"fieldgate-document": {
//	  "kind": "csaf",                          // csaf | kev
//	  "id": "ICSA-24-004-01",                  // CSAF document/tracking/id; "kev" for the KEV catalog
//	  "revision": "2",                         // CSAF document/tracking/version; KEV catalogVersion
//	  "released": "2024-01-04T00:00:00Z",      // CSAF current_release_date; KEV dateReleased
//	  "cves": ["CVE-2023-1234"]                // CVEs the advisory names (optional, at most 256; none for kev)
//	}}
//
// Unknown keys are an error, as for Meta.
type DocumentMeta struct {
	Kind     string    `json:"kind"`
	ID       string    `json:"id"`
	Revision string    `json:"revision"`
	Released time.Time `json:"released"`
	CVEs     []string  `json:"cves,omitempty"`
}

// isDocument reports whether a custom field is a document's: it has a
// "fieldgate-document" key and no "fieldgate" key. Malformed JSON is not.
func isDocument(custom []byte) bool {
	if len(custom) > maxCustomBytes {
		return false
	}
	var outer map[string]json.RawMessage
	if json.Unmarshal(custom, &outer) != nil {
		return false
	}
	_, doc := outer[DocumentKey]
	_, fw := outer[CustomKey]
	return doc && !fw
}

// ParseDocumentMeta parses a target's TUF custom field and returns the
// validated document metadata. It refuses a field that also has a
// "fieldgate" object (a target is firmware or a document, never both),
// unknown or duplicate keys and trailing data.
func ParseDocumentMeta(custom []byte) (DocumentMeta, error) {
	if len(custom) > maxCustomBytes {
		return DocumentMeta{}, fmt.Errorf("custom metadata is %d bytes, limit %d", len(custom), maxCustomBytes)
	}
	if err := checkDuplicateKeys(custom); err != nil {
		return DocumentMeta{}, fmt.Errorf("custom metadata: %w", err)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(custom, &outer); err != nil {
		return DocumentMeta{}, fmt.Errorf("custom metadata: %w", err)
	}
	raw, ok := outer[DocumentKey]
	if !ok {
		return DocumentMeta{}, fmt.Errorf("custom metadata has no %q object", DocumentKey)
	}
	if _, ok := outer[CustomKey]; ok {
		return DocumentMeta{}, fmt.Errorf("custom metadata has both %q and %q objects", CustomKey, DocumentKey)
	}
	if err := checkDuplicateKeys(raw); err != nil {
		return DocumentMeta{}, fmt.Errorf("custom metadata %q: %w", DocumentKey, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	// released is decoded as a string so that an error can name it.
	type alias DocumentMeta
	var in struct {
		alias
		Released string `json:"released"`
	}
	if err := dec.Decode(&in); err != nil {
		return DocumentMeta{}, fmt.Errorf("custom metadata %q: %w", DocumentKey, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return DocumentMeta{}, fmt.Errorf("custom metadata %q: trailing data", DocumentKey)
	}
	m := DocumentMeta(in.alias)
	if in.Released != "" {
		t, err := time.Parse(time.RFC3339Nano, in.Released)
		if err != nil {
			return DocumentMeta{}, fmt.Errorf("custom metadata %q: released %q: want RFC 3339", DocumentKey, in.Released)
		}
		m.Released = t
	}
	if err := m.Validate(); err != nil {
		return DocumentMeta{}, fmt.Errorf("custom metadata %q: %w", DocumentKey, err)
	}
	return m, nil
}

// MarshalDocumentMeta returns the TUF custom field for m:
// {"fieldgate-document": m}. It validates m first.
func MarshalDocumentMeta(m DocumentMeta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]DocumentMeta{DocumentKey: m})
}

// Validate reports the first problem of m: an unknown kind, a missing or
// malformed id, revision or release time, malformed or too many CVEs.
func (m DocumentMeta) Validate() error {
	switch m.Kind {
	case DocumentCSAF:
		if err := checkDocumentID(m.ID); err != nil {
			return fmt.Errorf("id: %w", err)
		}
	case DocumentKEV:
		if m.ID != DocumentKEV {
			return fmt.Errorf("id %q: a kev document's id is %q", m.ID, DocumentKEV)
		}
		if len(m.CVEs) > 0 {
			return errors.New("cves: a kev document lists none (the catalog is the list)")
		}
	case DocumentTestReport:
		if err := checkDocumentID(m.ID); err != nil {
			return fmt.Errorf("id: %w", err)
		}
		if len(m.CVEs) > 0 {
			return errors.New("cves: a test-report document lists none")
		}
	default:
		return fmt.Errorf("kind %q: want %s, %s or %s", m.Kind, DocumentCSAF, DocumentKEV, DocumentTestReport)
	}
	if _, err := parseRevision(m.Revision); err != nil {
		return fmt.Errorf("revision: %w", err)
	}
	if m.Released.IsZero() {
		return errors.New("released: required")
	}
	if y := m.Released.Year(); y < 1990 || y > 9999 {
		return fmt.Errorf("released %s: year out of range", m.Released.Format(time.RFC3339))
	}
	if len(m.CVEs) > MaxDocumentCVEs {
		return fmt.Errorf("cves: %d entries, limit %d", len(m.CVEs), MaxDocumentCVEs)
	}
	for i, c := range m.CVEs {
		if !ValidCVE(c) {
			return fmt.Errorf("cves[%d] %q: want CVE-YYYY-NNNN", i, c)
		}
	}
	return nil
}

// ValidCVE reports whether s is shaped like a CVE id: "CVE-", a four-digit
// year, "-" and at least four digits.
func ValidCVE(s string) bool {
	if len(s) > maxCVELen || !strings.HasPrefix(s, "CVE-") {
		return false
	}
	year, seq, ok := strings.Cut(s[len("CVE-"):], "-")
	return ok && len(year) == 4 && allDigits(year) && len(seq) >= 4 && allDigits(seq)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkDocumentID accepts a CSAF tracking id: printable UTF-8 without
// control characters, quotes or backslashes, no leading or trailing space.
func checkDocumentID(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxDocumentIDLen:
		return fmt.Errorf("%d bytes, limit %d", len(s), maxDocumentIDLen)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%q: leading or trailing space", s)
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '"' || r == '\\' {
			return fmt.Errorf("%q: character %U not allowed", s, r)
		}
	}
	return nil
}

// parseRevision splits a revision into its components: decimal numbers
// separated by '.', '-' or '+' (CSAF integer and semantic versions, the KEV
// catalogVersion "2025.08.25"), or identifiers of [0-9A-Za-z].
func parseRevision(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	if len(s) > maxVersionLen {
		return nil, fmt.Errorf("%d bytes, limit %d", len(s), maxVersionLen)
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' })
	if len(parts) == 0 || len(parts) > 2*maxVersionParts {
		return nil, fmt.Errorf("%q: want 1..%d components", s, 2*maxVersionParts)
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' || r == '-' || r == '+') {
			return nil, fmt.Errorf("%q: character %q not allowed", s, r)
		}
	}
	return parts, nil
}

// CompareDocuments orders two revisions of one document: by release time,
// then by revision (numeric components compared as numbers, others as
// strings; a longer revision with an equal prefix is newer). It returns -1
// if a is older than b, +1 if newer, 0 if neither. Metadata that does not
// validate compares as older than any that does.
func CompareDocuments(a, b DocumentMeta) int {
	ra, ea := parseRevision(a.Revision)
	rb, eb := parseRevision(b.Revision)
	switch {
	case ea != nil && eb != nil:
		return 0
	case ea != nil:
		return -1
	case eb != nil:
		return 1
	}
	if c := a.Released.Compare(b.Released); c != 0 {
		return c
	}
	return compareRevisions(ra, rb)
}

// CompareRevisions compares two document revisions (see CompareDocuments);
// a malformed revision is older than a well-formed one.
func CompareRevisions(a, b string) int {
	return CompareDocuments(DocumentMeta{Revision: a}, DocumentMeta{Revision: b})
}

func compareRevisions(ra, rb []string) int {
	for i := 0; i < len(ra) && i < len(rb); i++ {
		x, y := ra[i], rb[i]
		if allDigits(x) && allDigits(y) {
			x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
			if len(x) != len(y) {
				return cmpInt(len(x), len(y))
			}
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return cmpInt(len(ra), len(rb))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Document is one verified document target: an advisory or a catalog that
// travels through the repository like firmware, with the same integrity,
// freshness and rollback protection.
type Document struct {
	Name   string
	Role   string // role that signed it
	Length int64
	Hashes map[string]string // algorithm -> lower-case hex
	Meta   DocumentMeta
}

// target returns d as a Target for the download path.
func (d Document) target() Target {
	return Target{Name: d.Name, Role: d.Role, Length: d.Length, Hashes: d.Hashes}
}

// splitDocuments moves the document targets newTarget recognized out of
// targets, keeping the order of both.
func splitDocuments(targets []Target) ([]Target, []Document) {
	var docs []Document
	targets = slices.DeleteFunc(targets, func(t Target) bool {
		if t.doc == nil {
			return false
		}
		docs = append(docs, Document{Name: t.Name, Role: t.Role, Length: t.Length, Hashes: t.Hashes, Meta: *t.doc})
		return true
	})
	return targets, docs
}

// FetchDocument returns the verified bytes of document d. It goes through
// Fetch (blob store, exact length, every listed hash, resume), so a
// document already in the store, such as one staged by ImportBundle, is
// read without network, and checks the bytes it returns once more. A
// document larger than MaxDocumentBytes is refused before any download.
func (c *Client) FetchDocument(ctx context.Context, d Document) ([]byte, error) {
	if d.Length > MaxDocumentBytes {
		return nil, fmt.Errorf("fetch document %s: %d bytes, limit %d", d.Name, d.Length, MaxDocumentBytes)
	}
	t := d.target()
	p, err := c.Fetch(ctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch document: %w", err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("fetch document %s: %w", d.Name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, d.Length+1))
	if err != nil {
		return nil, fmt.Errorf("fetch document %s: %w", d.Name, err)
	}
	if err := verifyBytes(data, t); err != nil {
		return nil, fmt.Errorf("fetch document %s: %w", d.Name, err)
	}
	return data, nil
}

// verifyBytes checks data against t's length and every hash it lists.
func verifyBytes(data []byte, t Target) error {
	if int64(len(data)) != t.Length {
		return fmt.Errorf("%w: %d bytes, want %d", ErrTargetMismatch, len(data), t.Length)
	}
	for alg, want := range t.Hashes {
		var h hash.Hash
		switch alg {
		case "sha256":
			h = sha256.New()
		case "sha512":
			h = sha512.New()
		default:
			return fmt.Errorf("hash algorithm %q is not accepted", alg)
		}
		h.Write(data)
		w, err := hex.DecodeString(want)
		if err != nil || subtle.ConstantTimeCompare(h.Sum(nil), w) != 1 {
			return fmt.Errorf("%w: %s differs", ErrTargetMismatch, alg)
		}
	}
	return nil
}

// stageDocuments fetches into the blob store every document of snap that
// the bundle behind bc carries (ImportBundle), so that FetchDocument finds
// them on a gateway with no uplink.
func stageDocuments(ctx context.Context, bc *Client, targetsURL string, docs []Document) error {
	for _, d := range docs {
		t := d.target()
		ok, err := bundleHas(targetsURL, bc.TargetURL(t))
		if err != nil {
			return fmt.Errorf("bundle refused: document %s: %w", d.Name, err)
		}
		if !ok {
			continue
		}
		if d.Length > MaxDocumentBytes {
			return fmt.Errorf("document %s: %d bytes, limit %d", d.Name, d.Length, MaxDocumentBytes)
		}
		if _, err := bc.Fetch(ctx, t, nil); err != nil {
			if errors.Is(err, ErrTargetMismatch) {
				return fmt.Errorf("document %s was tampered with (its bytes do not match the signed metadata): %w", d.Name, err)
			}
			return err
		}
	}
	return nil
}
