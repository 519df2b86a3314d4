// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
)

// ErrDocumentRollback is returned (wrapped) by AddDocument for a document
// older than the revision staged or published under the same name.
var ErrDocumentRollback = errors.New("older than the revision already in the repository")

// DocumentOptions are the options of AddDocument.
type DocumentOptions struct {
	Role  string // role that signs it; "" means targets
	Force bool   // stage even an older revision, or changed bytes under the same revision
}

// AddedDocument says what AddDocument did.
type AddedDocument struct {
	Previous  *tuf.DocumentMeta // the revision it replaces, nil for a new name
	Unchanged bool              // the same bytes are already staged: nothing was done
}

// AddDocument stages name with the contents of srcFile as a document target:
// its custom field is {"fieldgate-document": m}, and gateways list it in
// Snapshot.Documents instead of firmware. A newer revision replaces the
// target under the same name; an older one (by release time or revision,
// against both the staged and the published entry) is refused with
// ErrDocumentRollback, and so are changed bytes under the same revision and
// release time, unless o.Force. The same bytes again change nothing.
func (r *Repo) AddDocument(name, srcFile string, m tuf.DocumentMeta, o DocumentOptions) (AddedDocument, error) {
	res, err := r.addDocument(name, srcFile, m, o)
	if err != nil {
		return AddedDocument{}, fmt.Errorf("add %s: %w", name, err)
	}
	return res, nil
}

// CheckDocument runs every check of AddDocument and stages nothing: a
// caller adding several documents checks them all first.
func (r *Repo) CheckDocument(name, srcFile string, m tuf.DocumentMeta, o DocumentOptions) (AddedDocument, error) {
	res, _, _, err := r.checkDocument(name, srcFile, m, o)
	if err != nil {
		return AddedDocument{}, fmt.Errorf("add %s: %w", name, err)
	}
	return res, nil
}

func (r *Repo) addDocument(name, srcFile string, m tuf.DocumentMeta, o DocumentOptions) (AddedDocument, error) {
	res, role, custom, err := r.checkDocument(name, srcFile, m, o)
	if err != nil || res.Unchanged {
		return res, err
	}
	staged, err := r.stagedRole(role)
	if err != nil {
		return AddedDocument{}, err
	}
	tf, err := r.storeTarget(name, srcFile)
	if err != nil {
		return AddedDocument{}, err
	}
	raw := json.RawMessage(custom)
	tf.Custom = &raw
	staged.Signed.Targets[name] = tf
	if err := r.saveStagedRole(role); err != nil {
		return AddedDocument{}, err
	}
	return res, nil
}

// checkDocument returns what adding the document would do, the role and
// the custom field.
func (r *Repo) checkDocument(name, srcFile string, m tuf.DocumentMeta, o DocumentOptions) (AddedDocument, string, []byte, error) {
	role := o.Role
	if role == "" {
		role = metadata.TARGETS
	}
	if err := CheckTargetName(name); err != nil {
		return AddedDocument{}, "", nil, err
	}
	if err := r.checkScope(role, name); err != nil {
		return AddedDocument{}, "", nil, err
	}
	for _, other := range append([]string{metadata.TARGETS}, r.DelegatedRoles()...) {
		if md, _ := r.stagedRole(other); other != role && md.Signed.Targets[name] != nil {
			return AddedDocument{}, "", nil, fmt.Errorf("already a target of role %s (remove it there first)", other)
		}
	}
	custom, err := tuf.MarshalDocumentMeta(m)
	if err != nil {
		return AddedDocument{}, "", nil, err
	}
	sum, err := fileSHA256(srcFile)
	if err != nil {
		return AddedDocument{}, "", nil, err
	}
	staged, err := r.stagedRole(role)
	if err != nil {
		return AddedDocument{}, "", nil, err
	}
	var res AddedDocument
	// The staged entry first: it is the newest unless a forced add went
	// back, and the one replaced.
	for i, tf := range []*metadata.TargetFiles{staged.Signed.Targets[name], r.publishedTargetFile(role, name)} {
		if tf == nil {
			continue
		}
		prev, unchanged, err := checkDocumentUpdate(tf, m, sum)
		if err != nil && !o.Force {
			return AddedDocument{}, "", nil, err
		}
		if i == 0 {
			res.Previous, res.Unchanged = prev, unchanged
		}
	}
	// Unchanged: the same bytes with the same metadata.
	if res.Unchanged && res.Previous != nil {
		prev, err := tuf.MarshalDocumentMeta(*res.Previous)
		res.Unchanged = err == nil && bytes.Equal(prev, custom)
	}
	return res, role, custom, nil
}

// checkDocumentUpdate compares the new revision m (whose file has sha256
// sum) with the entry tf already under its name. It returns the previous
// metadata and whether the bytes are the same.
func checkDocumentUpdate(tf *metadata.TargetFiles, m tuf.DocumentMeta, sum []byte) (*tuf.DocumentMeta, bool, error) {
	prev, err := tuf.ParseDocumentMeta(rawCustom(tf))
	if err != nil {
		return nil, false, fmt.Errorf("the target under this name is not a document (%v)", err)
	}
	if prev.Kind != m.Kind || prev.ID != m.ID {
		return &prev, false, fmt.Errorf("the target under this name is %s document %q, not %s %q", prev.Kind, prev.ID, m.Kind, m.ID)
	}
	same := bytes.Equal(tf.Hashes["sha256"], sum)
	switch {
	case m.Released.Before(prev.Released):
		return &prev, same, fmt.Errorf("released %s, but revision %s released %s is in the repository: %w",
			m.Released.Format(time.RFC3339), prev.Revision, prev.Released.Format(time.RFC3339), ErrDocumentRollback)
	case tuf.CompareRevisions(m.Revision, prev.Revision) < 0:
		return &prev, same, fmt.Errorf("revision %s, but revision %s is in the repository: %w", m.Revision, prev.Revision, ErrDocumentRollback)
	case !same && m.Released.Equal(prev.Released) && tuf.CompareRevisions(m.Revision, prev.Revision) == 0:
		return &prev, false, fmt.Errorf("revision %s released %s is in the repository with other bytes (sha256 %x): a changed document needs a new revision",
			prev.Revision, prev.Released.Format(time.RFC3339), []byte(tf.Hashes["sha256"]))
	}
	return &prev, same, nil
}

// publishedTargetFile returns the published entry of name in role, or nil.
func (r *Repo) publishedTargetFile(role, name string) *metadata.TargetFiles {
	md := r.targets
	if role != metadata.TARGETS {
		md = r.delegated[role]
	}
	if md == nil {
		return nil
	}
	return md.Signed.Targets[name]
}

// StagedDocuments returns the document metadata of every staged target of
// role ("" means targets) that is a document, by name.
func (r *Repo) StagedDocuments(role string) (map[string]tuf.DocumentMeta, error) {
	if role == "" {
		role = metadata.TARGETS
	}
	md, err := r.stagedRole(role)
	if err != nil {
		return nil, err
	}
	out := map[string]tuf.DocumentMeta{}
	for name, tf := range md.Signed.Targets {
		if m, err := tuf.ParseDocumentMeta(rawCustom(tf)); err == nil {
			out[name] = m
		}
	}
	return out, nil
}

func rawCustom(tf *metadata.TargetFiles) []byte {
	if tf == nil || tf.Custom == nil {
		return nil
	}
	return *tf.Custom
}

func fileSHA256(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
