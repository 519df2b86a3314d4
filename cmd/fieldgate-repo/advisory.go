// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/gocsaf/csaf/v3/csaf"
	"github.com/gocsaf/csaf/v3/util"
	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// Target names of documents.
const (
	csafTargetDir = "advisories/csaf/"
	kevTargetName = "advisories/kev/known_exploited_vulnerabilities.json"
)

// maxSchemaErrors bounds the schema errors listed per document.
const maxSchemaErrors = 20

func advisoryCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "advisory",
		Short: "Publish security advisories (CSAF 2.0) and the CISA KEV catalog as documents",
	}
	c.AddCommand(advisoryAddCmd())
	return c
}

func advisoryAddCmd() *cobra.Command {
	var (
		kind, role string
		force      bool
	)
	c := &cobra.Command{
		Use:   "add DIR FILE...",
		Short: "Check and stage CSAF advisories or the KEV catalog as document targets (commit publishes them)",
		Long: "advisory add checks each FILE and stages it as a document target: gateways list it\n" +
			"among the repository's documents, not as firmware, and fetch it with the same\n" +
			"signature, freshness and rollback checks. Commit publishes what is staged.\n\n" +
			"A CSAF 2.0 advisory needs FILE.sha512 beside it (the CSAF provider convention: the\n" +
			"hex digest, optionally followed by the file name), which must match; it must validate\n" +
			"against the CSAF 2.0 JSON schema, its file name must be its document/tracking/id as\n" +
			"CSAF 2.0 section 5.1 derives it (lower case, runs of other characters than a-z, 0-9,\n" +
			"'+' and '-' replaced by '_', then .json), and its status must not be draft. It is\n" +
			"staged as " + csafTargetDir + "<file name>.\n\n" +
			"The CISA Known Exploited Vulnerabilities catalog (known_exploited_vulnerabilities.json)\n" +
			"is checked for its catalogVersion, dateReleased, a count equal to the number of\n" +
			"entries and well-formed cveIDs, and staged as " + kevTargetName + ";\n" +
			"a FILE.sha512 beside it is checked when present.\n\n" +
			"A newer revision of a document replaces it under the same name. An older one (by\n" +
			"release date or revision), or other bytes under the same revision, is refused unless\n" +
			"--force. Every FILE is checked before anything is staged: one refused file stages none.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch kind {
			case "", tuf.DocumentCSAF, tuf.DocumentKEV:
			default:
				return fmt.Errorf("--kind %q: want %s or %s", kind, tuf.DocumentCSAF, tuf.DocumentKEV)
			}
			var (
				docs []checkedDocument
				errs []string
			)
			names := map[string]string{}
			for _, file := range args[1:] {
				d, err := checkDocumentFile(file, kind)
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				if other, ok := names[d.name]; ok {
					errs = append(errs, fmt.Sprintf("%s: target %s is also given as %s", file, d.name, other))
					continue
				}
				names[d.name] = file
				docs = append(docs, d)
			}
			if len(errs) > 0 {
				return fmt.Errorf("advisory add: %d of %d file(s) refused, nothing staged:\n  %s",
					len(errs), len(args)-1, strings.Join(errs, "\n  "))
			}
			r, err := publish.Open(args[0])
			if err != nil {
				return err
			}
			opts := publish.DocumentOptions{Role: role, Force: force}
			for _, d := range docs {
				if _, err := r.CheckDocument(d.name, d.file, d.meta, opts); err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", d.file, err))
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("advisory add: %d of %d file(s) refused, nothing staged:\n  %s",
					len(errs), len(args)-1, strings.Join(errs, "\n  "))
			}
			w := cmd.OutOrStdout()
			for _, d := range docs {
				res, err := r.AddDocument(d.name, d.file, d.meta, opts)
				if err != nil {
					return fmt.Errorf("%s: %w", d.file, err)
				}
				switch {
				case res.Unchanged:
					fmt.Fprintf(w, "unchanged %s (%s revision %s)\n", d.name, d.meta.ID, d.meta.Revision)
				case res.Previous != nil:
					fmt.Fprintf(w, "staged %s (%s revision %s, replaces revision %s)\n", d.name, d.meta.ID, d.meta.Revision, res.Previous.Revision)
				default:
					fmt.Fprintf(w, "staged %s (%s revision %s)\n", d.name, d.meta.ID, d.meta.Revision)
				}
			}
			fmt.Fprintln(w, "run commit to publish")
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&kind, "kind", "", "csaf or kev (default: detected from the content)")
	f.StringVar(&role, "role", "targets", "role that signs the documents: targets, or a delegated role (see delegate)")
	f.BoolVar(&force, "force", false, "stage an older revision, or changed bytes under the same revision (rolls gateways' view of the advisory back)")
	return c
}

// checkedDocument is a file that passed its checks, with its target name
// and metadata.
type checkedDocument struct {
	file, name string
	meta       tuf.DocumentMeta
}

// checkDocumentFile reads and checks one document; kind "" detects it.
func checkDocumentFile(file, kind string) (checkedDocument, error) {
	data, err := readDocument(file)
	if err != nil {
		return checkedDocument{}, err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return checkedDocument{}, fmt.Errorf("%s: not a JSON object: %w", file, err)
	}
	if kind == "" {
		switch {
		case doc["document"] != nil:
			kind = tuf.DocumentCSAF
		case doc["catalogVersion"] != nil && doc["vulnerabilities"] != nil:
			kind = tuf.DocumentKEV
		default:
			return checkedDocument{}, fmt.Errorf("%s: neither a CSAF document (no /document) nor the KEV catalog (no /catalogVersion): give --kind", file)
		}
	}
	if kind == tuf.DocumentKEV {
		return checkKEV(file, data)
	}
	return checkCSAF(file, data, doc)
}

func readDocument(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, tuf.MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(data) > tuf.MaxDocumentBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes, the limit gateways accept", file, tuf.MaxDocumentBytes)
	}
	return data, nil
}

// checkSHA512 compares data with FILE.sha512: "<hex>", or "<hex>  <name>"
// (sha512sum's output, '*' before the name in binary mode), where name is
// FILE's base name. required says whether a missing file is an error.
func checkSHA512(file string, data []byte, required bool) error {
	sumFile := file + ".sha512"
	raw, err := os.ReadFile(sumFile)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: no checksum: %w (a CSAF provider publishes <file>.sha512 beside each advisory; for a document you wrote, run sha512sum %s > %s)",
			file, err, filepath.Base(file), filepath.Base(sumFile))
	}
	fields := strings.Fields(string(raw))
	if len(fields) == 0 || len(fields) > 2 {
		return fmt.Errorf("%s: want \"<hex>\" or \"<hex>  <name>\"", sumFile)
	}
	if len(fields) == 2 {
		if name := strings.TrimPrefix(fields[1], "*"); name != filepath.Base(file) {
			return fmt.Errorf("%s: is the checksum of %q, not of %q", sumFile, name, filepath.Base(file))
		}
	}
	want, err := hex.DecodeString(fields[0])
	if err != nil || len(want) != sha512.Size {
		return fmt.Errorf("%s: %q is not a SHA-512 in hex", sumFile, fields[0])
	}
	got := sha512.Sum512(data)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return fmt.Errorf("%s: SHA-512 mismatch: the file hashes to %x, %s says %x (damaged or altered in transit)",
			file, got, filepath.Base(sumFile), want)
	}
	return nil
}

// csafTracking is the part of a CSAF document fieldgate signs into metadata.
type csafTracking struct {
	Document struct {
		Tracking struct {
			ID                 string `json:"id"`
			Version            string `json:"version"`
			CurrentReleaseDate string `json:"current_release_date"`
			Status             string `json:"status"`
		} `json:"tracking"`
	} `json:"document"`
	Vulnerabilities []struct {
		CVE string `json:"cve"`
	} `json:"vulnerabilities"`
}

func checkCSAF(file string, data []byte, doc map[string]any) (checkedDocument, error) {
	if err := checkSHA512(file, data, true); err != nil {
		return checkedDocument{}, err
	}
	msgs, err := csaf.ValidateCSAF(doc)
	if err != nil {
		return checkedDocument{}, fmt.Errorf("%s: CSAF schema: %w", file, err)
	}
	if len(msgs) > 0 {
		more := ""
		if len(msgs) > maxSchemaErrors {
			more = fmt.Sprintf("\n    … and %d more", len(msgs)-maxSchemaErrors)
			msgs = msgs[:maxSchemaErrors]
		}
		return checkedDocument{}, fmt.Errorf("%s: not valid against the CSAF 2.0 JSON schema (%d error(s)):\n    %s%s",
			file, len(msgs), strings.Join(msgs, "\n    "), more)
	}
	var tr csafTracking
	if err := json.Unmarshal(data, &tr); err != nil {
		return checkedDocument{}, fmt.Errorf("%s: %w", file, err)
	}
	t := tr.Document.Tracking
	if want := util.CleanFileName(t.ID); filepath.Base(file) != want {
		return checkedDocument{}, fmt.Errorf("%s: /document/tracking/id %q requires the file name %s (CSAF 2.0 section 5.1)", file, t.ID, want)
	}
	if t.Status == "draft" {
		return checkedDocument{}, fmt.Errorf("%s: /document/tracking/status is draft: a draft is not distributed (CSAF 2.0 section 3.2.1.12.6)", file)
	}
	released, err := time.Parse(time.RFC3339, t.CurrentReleaseDate)
	if err != nil {
		return checkedDocument{}, fmt.Errorf("%s: /document/tracking/current_release_date: %w", file, err)
	}
	var cves []string
	seen := map[string]bool{}
	for _, v := range tr.Vulnerabilities {
		if v.CVE != "" && !seen[v.CVE] {
			seen[v.CVE] = true
			cves = append(cves, v.CVE)
		}
	}
	// A partial list would mislead: past the limit, gateways read the
	// CVEs from the document itself.
	if len(cves) > tuf.MaxDocumentCVEs {
		cves = nil
	}
	m := tuf.DocumentMeta{Kind: tuf.DocumentCSAF, ID: t.ID, Revision: t.Version, Released: released.UTC(), CVEs: cves}
	if err := m.Validate(); err != nil {
		return checkedDocument{}, fmt.Errorf("%s: %w", file, err)
	}
	return checkedDocument{file: file, name: path.Join(csafTargetDir, filepath.Base(file)), meta: m}, nil
}

// kevCatalog is the part of the KEV catalog that is checked.
type kevCatalog struct {
	CatalogVersion  string `json:"catalogVersion"`
	DateReleased    string `json:"dateReleased"`
	Count           *int   `json:"count"`
	Vulnerabilities []struct {
		CVE string `json:"cveID"`
	} `json:"vulnerabilities"`
}

func checkKEV(file string, data []byte) (checkedDocument, error) {
	if err := checkSHA512(file, data, false); err != nil {
		return checkedDocument{}, err
	}
	var k kevCatalog
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&k); err != nil {
		return checkedDocument{}, fmt.Errorf("%s: not a KEV catalog: %w", file, err)
	}
	var errs []string
	if k.CatalogVersion == "" {
		errs = append(errs, "/catalogVersion: missing")
	}
	released, err := time.Parse(time.RFC3339, k.DateReleased)
	if err != nil {
		errs = append(errs, fmt.Sprintf("/dateReleased %q: want RFC 3339", k.DateReleased))
	}
	switch {
	case k.Count == nil:
		errs = append(errs, "/count: missing")
	case *k.Count != len(k.Vulnerabilities):
		errs = append(errs, fmt.Sprintf("/count is %d, but /vulnerabilities has %d entries", *k.Count, len(k.Vulnerabilities)))
	}
	seen := map[string]int{}
	for i, v := range k.Vulnerabilities {
		switch j, dup := seen[v.CVE]; {
		case !tuf.ValidCVE(v.CVE):
			errs = append(errs, fmt.Sprintf("/vulnerabilities/%d/cveID %q: want CVE-YYYY-NNNN", i, v.CVE))
		case dup:
			errs = append(errs, fmt.Sprintf("/vulnerabilities/%d/cveID %s: also entry %d", i, v.CVE, j))
		default:
			seen[v.CVE] = i
		}
	}
	m := tuf.DocumentMeta{Kind: tuf.DocumentKEV, ID: tuf.DocumentKEV, Revision: k.CatalogVersion, Released: released.UTC()}
	if len(errs) == 0 {
		if err := m.Validate(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		more := ""
		if len(errs) > maxSchemaErrors {
			more = fmt.Sprintf("\n    … and %d more", len(errs)-maxSchemaErrors)
			errs = errs[:maxSchemaErrors]
		}
		return checkedDocument{}, fmt.Errorf("%s: not a valid KEV catalog:\n    %s%s", file, strings.Join(errs, "\n    "), more)
	}
	return checkedDocument{file: file, name: kevTargetName, meta: m}, nil
}
