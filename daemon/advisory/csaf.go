// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// MaxDocumentSize bounds what ParseCSAF and ParseKEV read. The largest CISA
// ICS advisory of 2024 is under 1 MiB and the KEV catalog about 1.5 MiB; a
// gateway refuses anything far beyond that rather than buffer it.
const MaxDocumentSize = 16 << 20

// Advisory is a CSAF 2.0 document reduced to what matching needs.
type Advisory struct {
	ID        string    // document.tracking.id, e.g. "ICSA-24-011-08"
	Title     string    // document.title
	Category  string    // document.category, e.g. "csaf_security_advisory"
	Publisher string    // document.publisher.name
	Revision  string    // document.tracking.version
	Status    string    // document.tracking.status: draft, interim, final
	Initial   time.Time // document.tracking.initial_release_date
	Released  time.Time // document.tracking.current_release_date

	// Products holds every product the tree names, by product_id, with
	// its branch path flattened into it; composed products (relationships)
	// included.
	Products map[string]*Product
	// Order lists the product ids in document order, for stable output.
	Order []string
	// Groups maps a product_group id to its product ids.
	Groups map[string][]string

	Vulnerabilities []Vulnerability
}

// Product is one product_id of the product tree with its identity: the
// names along its branch path and its identification helper.
type Product struct {
	ID   string
	Name string // full_product_name.name

	Vendor      string
	Families    []string // product_family branch names, outermost first
	ProductName string   // product_name branch name
	Version     string   // product_version branch name (one exact version)
	Range       string   // product_version_range branch name (raw text)
	Path        []Branch // every branch from the root to the product

	CPE     string
	PURL    string
	Models  []string // model_numbers: order numbers
	SKUs    []string
	Serials []string

	// Relationship is set on a composed product (a relationship's
	// full_product_name): Component is installed on, or part of, Platform.
	// The composed product takes its identity (vendor, names, models) from
	// the platform and its version or range from the component.
	Relationship *Relationship
}

// Branch is one step of a product's path in the product tree.
type Branch struct {
	Category string // vendor, product_family, product_name, product_version, product_version_range, ...
	Name     string
}

// Relationship is a CSAF relationship between two products.
type Relationship struct {
	Category  string // default_component_of, installed_on, installed_with, ...
	Component string // product_reference
	Platform  string // relates_to_product_reference
}

// Vulnerability is one entry of the document's vulnerabilities.
type Vulnerability struct {
	CVE    string
	IDs    []string // ids[].text (vendor ids such as "SSA-123456")
	CWE    string   // "CWE-79"
	Title  string
	Scores []Score
	// CVSS4 is a CVSS 4.0 vector found in the vulnerability's references
	// or notes: CISA's CSAF 2.0 documents have no cvss_v4 field, they link
	// the FIRST calculator with the vector instead.
	CVSS4        string
	Threats      []Threat
	Flags        []Flag
	Status       ProductStatus
	Remediations []Remediation
}

// Score is one scores[] entry: a CVSS v3 (and optionally v2) score for a set
// of products.
type Score struct {
	Products []string
	Base     float64 // cvss_v3.baseScore; 0 when absent
	Vector   string  // cvss_v3.vectorString
}

// Threat is one threats[] entry (category exploit_status, impact, target_set).
type Threat struct {
	Category string
	Details  string
	Products []string // product_ids and the members of group_ids
}

// Flag is one flags[] entry: a machine-readable VEX justification for the
// products it lists being not affected.
type Flag struct {
	Label    string // component_not_present, vulnerable_code_not_present, ...
	Products []string
}

// ProductStatus is a vulnerability's product_status, by product_id.
type ProductStatus struct {
	FirstAffected      []string `json:"first_affected"`
	KnownAffected      []string `json:"known_affected"`
	LastAffected       []string `json:"last_affected"`
	Fixed              []string `json:"fixed"`
	FirstFixed         []string `json:"first_fixed"`
	KnownNotAffected   []string `json:"known_not_affected"`
	UnderInvestigation []string `json:"under_investigation"`
	Recommended        []string `json:"recommended"`
}

// Remediation is one remediations[] entry.
type Remediation struct {
	Category string // vendor_fix, mitigation, workaround, none_available, no_fix_planned
	Details  string
	URL      string
	Products []string // product_ids and the members of group_ids
	// FixedVersion is the version a vendor_fix names ("Update to V3.1.2
	// or later version" gives "V3.1.2"), when one can be read from Details.
	FixedVersion string
}

// The JSON shapes below carry only the fields matching reads; unknown
// fields are ignored, as CSAF allows extensions.
type csafDoc struct {
	Document *struct {
		Category    string `json:"category"`
		CSAFVersion string `json:"csaf_version"`
		Title       string `json:"title"`
		Publisher   struct {
			Name string `json:"name"`
		} `json:"publisher"`
		Tracking *struct {
			ID                 string            `json:"id"`
			Version            string            `json:"version"`
			Status             string            `json:"status"`
			InitialReleaseDate string            `json:"initial_release_date"`
			CurrentReleaseDate string            `json:"current_release_date"`
			RevisionHistory    []json.RawMessage `json:"revision_history"`
		} `json:"tracking"`
	} `json:"document"`
	ProductTree *struct {
		Branches         []csafBranch  `json:"branches"`
		FullProductNames []csafProduct `json:"full_product_names"`
		ProductGroups    []struct {
			GroupID    string   `json:"group_id"`
			ProductIDs []string `json:"product_ids"`
		} `json:"product_groups"`
		Relationships []struct {
			Category        string      `json:"category"`
			FullProductName csafProduct `json:"full_product_name"`
			ProductRef      string      `json:"product_reference"`
			RelatesTo       string      `json:"relates_to_product_reference"`
		} `json:"relationships"`
	} `json:"product_tree"`
	Vulnerabilities []csafVuln `json:"vulnerabilities"`
}

type csafBranch struct {
	Category string       `json:"category"`
	Name     string       `json:"name"`
	Product  *csafProduct `json:"product"`
	Branches []csafBranch `json:"branches"`
}

type csafProduct struct {
	Name      string `json:"name"`
	ProductID string `json:"product_id"`
	Helper    *struct {
		CPE           string   `json:"cpe"`
		PURL          string   `json:"purl"`
		ModelNumbers  []string `json:"model_numbers"`
		SKUs          []string `json:"skus"`
		SerialNumbers []string `json:"serial_numbers"`
	} `json:"product_identification_helper"`
}

type csafVuln struct {
	CVE string `json:"cve"`
	IDs []struct {
		Text string `json:"text"`
	} `json:"ids"`
	CWE *struct {
		ID string `json:"id"`
	} `json:"cwe"`
	Title  string `json:"title"`
	Scores []struct {
		Products []string `json:"products"`
		CVSSv3   *struct {
			BaseScore    float64 `json:"baseScore"`
			VectorString string  `json:"vectorString"`
		} `json:"cvss_v3"`
	} `json:"scores"`
	Threats []struct {
		Category   string   `json:"category"`
		Details    string   `json:"details"`
		ProductIDs []string `json:"product_ids"`
		GroupIDs   []string `json:"group_ids"`
	} `json:"threats"`
	Flags []struct {
		Label      string   `json:"label"`
		ProductIDs []string `json:"product_ids"`
		GroupIDs   []string `json:"group_ids"`
	} `json:"flags"`
	ProductStatus ProductStatus `json:"product_status"`
	Remediations  []struct {
		Category   string   `json:"category"`
		Details    string   `json:"details"`
		URL        string   `json:"url"`
		ProductIDs []string `json:"product_ids"`
		GroupIDs   []string `json:"group_ids"`
	} `json:"remediations"`
	Notes []struct {
		Text string `json:"text"`
	} `json:"notes"`
	References []struct {
		URL     string `json:"url"`
		Summary string `json:"summary"`
	} `json:"references"`
}

// ErrNotCSAF reports a document that is JSON but not a CSAF 2.0 advisory.
var ErrNotCSAF = errors.New("not a CSAF 2.0 document")

// maxBranchDepth bounds the recursion over product tree branches; the CSAF
// schema allows 30 levels.
const maxBranchDepth = 30

// ParseCSAF reads one CSAF 2.0 document of at most MaxDocumentSize bytes. It
// refuses a document without csaf_version 2.0, a category, a tracking id,
// version, current release date and revision history, and one whose product
// ids are duplicated or referenced but never defined.
func ParseCSAF(r io.Reader) (*Advisory, error) {
	data, err := readBounded(r)
	if err != nil {
		return nil, err
	}
	var doc csafDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("csaf: %w", err)
	}
	d := doc.Document
	switch {
	case d == nil:
		return nil, fmt.Errorf("%w: no document", ErrNotCSAF)
	case d.CSAFVersion != "2.0":
		return nil, fmt.Errorf("%w: csaf_version %q", ErrNotCSAF, d.CSAFVersion)
	case d.Category == "":
		return nil, fmt.Errorf("%w: no document.category", ErrNotCSAF)
	case d.Tracking == nil || d.Tracking.ID == "":
		return nil, fmt.Errorf("%w: no tracking.id", ErrNotCSAF)
	case d.Tracking.Version == "":
		return nil, fmt.Errorf("%w: %s: no tracking.version", ErrNotCSAF, d.Tracking.ID)
	case len(d.Tracking.RevisionHistory) == 0:
		return nil, fmt.Errorf("%w: %s: no tracking.revision_history", ErrNotCSAF, d.Tracking.ID)
	}
	a := &Advisory{
		ID: d.Tracking.ID, Title: d.Title, Category: d.Category, Publisher: d.Publisher.Name,
		Revision: d.Tracking.Version, Status: d.Tracking.Status,
		Products: map[string]*Product{}, Groups: map[string][]string{},
	}
	if a.Released, err = time.Parse(time.RFC3339, d.Tracking.CurrentReleaseDate); err != nil {
		return nil, fmt.Errorf("%w: %s: tracking.current_release_date: %v", ErrNotCSAF, a.ID, err)
	}
	a.Initial, _ = time.Parse(time.RFC3339, d.Tracking.InitialReleaseDate)

	if pt := doc.ProductTree; pt != nil {
		if err := a.walk(pt.Branches, nil, 0); err != nil {
			return nil, err
		}
		for _, fp := range pt.FullProductNames {
			if err := a.add(fp, nil); err != nil {
				return nil, err
			}
		}
		for _, g := range pt.ProductGroups {
			a.Groups[g.GroupID] = g.ProductIDs
		}
		for _, rel := range pt.Relationships {
			if err := a.add(rel.FullProductName, nil); err != nil {
				return nil, err
			}
			p := a.Products[rel.FullProductName.ProductID]
			p.Relationship = &Relationship{Category: rel.Category, Component: rel.ProductRef, Platform: rel.RelatesTo}
		}
		// Composed products inherit identity once every product is known.
		for _, id := range a.Order {
			p := a.Products[id]
			if p.Relationship == nil {
				continue
			}
			comp, plat := a.Products[p.Relationship.Component], a.Products[p.Relationship.Platform]
			if comp == nil || plat == nil {
				return nil, fmt.Errorf("csaf %s: relationship %s refers to an unknown product", a.ID, id)
			}
			p.compose(comp, plat)
		}
	}
	for gid, ids := range a.Groups {
		for _, id := range ids {
			if a.Products[id] == nil {
				return nil, fmt.Errorf("csaf %s: product group %s names unknown product %q", a.ID, gid, id)
			}
		}
	}
	for _, v := range doc.Vulnerabilities {
		vv, err := a.vulnerability(v)
		if err != nil {
			return nil, err
		}
		a.Vulnerabilities = append(a.Vulnerabilities, vv)
	}
	return a, nil
}

func readBounded(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("document larger than %d bytes", MaxDocumentSize)
	}
	return data, nil
}

func (a *Advisory) walk(bs []csafBranch, path []Branch, depth int) error {
	if depth >= maxBranchDepth {
		return fmt.Errorf("csaf %s: product tree deeper than %d branches", a.ID, maxBranchDepth)
	}
	for _, b := range bs {
		p := append(slices.Clip(path), Branch{Category: b.Category, Name: b.Name})
		if b.Product != nil {
			if err := a.add(*b.Product, p); err != nil {
				return err
			}
		}
		if err := a.walk(b.Branches, p, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (a *Advisory) add(fp csafProduct, path []Branch) error {
	if fp.ProductID == "" {
		return fmt.Errorf("csaf %s: product %q without product_id", a.ID, fp.Name)
	}
	if a.Products[fp.ProductID] != nil {
		return fmt.Errorf("csaf %s: product_id %q defined twice", a.ID, fp.ProductID)
	}
	p := &Product{ID: fp.ProductID, Name: fp.Name, Path: path}
	for _, b := range path {
		switch b.Category {
		case "vendor":
			p.Vendor = b.Name
		case "product_family":
			p.Families = append(p.Families, b.Name)
		case "product_name":
			p.ProductName = b.Name
		case "product_version":
			p.Version = b.Name
		case "product_version_range":
			p.Range = b.Name
		}
	}
	if h := fp.Helper; h != nil {
		p.CPE, p.PURL, p.Models, p.SKUs, p.Serials = h.CPE, h.PURL, h.ModelNumbers, h.SKUs, h.SerialNumbers
	}
	a.Products[p.ID] = p
	a.Order = append(a.Order, p.ID)
	return nil
}

// compose gives a relationship's product the platform's identity and the
// component's version: "firmware 4.7 installed_on camera D24M" is matched
// as a D24M whose firmware is 4.7.
func (p *Product) compose(comp, plat *Product) {
	p.Vendor = cmpOr(plat.Vendor, comp.Vendor)
	p.Families = plat.Families
	p.ProductName = cmpOr(plat.ProductName, plat.Name)
	p.Models, p.SKUs, p.Serials = plat.Models, plat.SKUs, plat.Serials
	p.CPE, p.PURL = cmpOr(plat.CPE, comp.CPE), cmpOr(plat.PURL, comp.PURL)
	p.Version, p.Range = comp.Version, comp.Range
	p.Path = append(slices.Clip(plat.Path), comp.Path...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (a *Advisory) expand(ids, groups []string, what string) ([]string, error) {
	out := slices.Clone(ids)
	for _, id := range ids {
		if a.Products[id] == nil {
			return nil, fmt.Errorf("csaf %s: %s names unknown product %q", a.ID, what, id)
		}
	}
	for _, g := range groups {
		m, ok := a.Groups[g]
		if !ok {
			return nil, fmt.Errorf("csaf %s: %s names unknown product group %q", a.ID, what, g)
		}
		out = append(out, m...)
	}
	return out, nil
}

var cvss4RE = regexp.MustCompile(`CVSS:4\.0(?:/[A-Za-z]+:[A-Za-z])+`)

func (a *Advisory) vulnerability(v csafVuln) (Vulnerability, error) {
	out := Vulnerability{CVE: v.CVE, Title: v.Title, Status: v.ProductStatus}
	where := cmpOr(v.CVE, "vulnerability")
	for _, id := range v.IDs {
		out.IDs = append(out.IDs, id.Text)
	}
	if v.CWE != nil {
		out.CWE = v.CWE.ID
	}
	for _, s := range v.Scores {
		if _, err := a.expand(s.Products, nil, where+" score"); err != nil {
			return out, err
		}
		sc := Score{Products: s.Products}
		if s.CVSSv3 != nil {
			if s.CVSSv3.BaseScore < 0 || s.CVSSv3.BaseScore > 10 {
				return out, fmt.Errorf("csaf %s: %s: cvss_v3 baseScore %v out of range", a.ID, where, s.CVSSv3.BaseScore)
			}
			sc.Base, sc.Vector = s.CVSSv3.BaseScore, s.CVSSv3.VectorString
		}
		out.Scores = append(out.Scores, sc)
	}
	for _, t := range v.Threats {
		ids, err := a.expand(t.ProductIDs, t.GroupIDs, where+" threat")
		if err != nil {
			return out, err
		}
		out.Threats = append(out.Threats, Threat{Category: t.Category, Details: t.Details, Products: ids})
	}
	for _, f := range v.Flags {
		ids, err := a.expand(f.ProductIDs, f.GroupIDs, where+" flag")
		if err != nil {
			return out, err
		}
		out.Flags = append(out.Flags, Flag{Label: f.Label, Products: ids})
	}
	st := v.ProductStatus
	for _, l := range [][]string{st.FirstAffected, st.KnownAffected, st.LastAffected, st.Fixed, st.FirstFixed, st.KnownNotAffected, st.UnderInvestigation, st.Recommended} {
		if _, err := a.expand(l, nil, where+" product_status"); err != nil {
			return out, err
		}
	}
	for _, r := range v.Remediations {
		ids, err := a.expand(r.ProductIDs, r.GroupIDs, where+" remediation")
		if err != nil {
			return out, err
		}
		rem := Remediation{Category: r.Category, Details: r.Details, URL: r.URL, Products: ids}
		if r.Category == "vendor_fix" {
			rem.FixedVersion = FixedVersion(r.Details)
		}
		out.Remediations = append(out.Remediations, rem)
	}
	for _, ref := range v.References {
		if m := cvss4RE.FindString(ref.URL); m != "" {
			out.CVSS4 = m
		}
	}
	for _, n := range v.Notes {
		if out.CVSS4 == "" {
			out.CVSS4 = cvss4RE.FindString(n.Text)
		}
	}
	return out, nil
}

// fixedRE finds the version in "Update to V3.1.2 or later version",
// "Update P3 cameras to firmware version MX-V4.7.2.18 or later", "update to
// version 2.4.8", "Delta recommends updating to DIAEnergie v1.10.00.005",
// "fixed in 5.3".
var fixedRE = regexp.MustCompile(`(?i)(?:update|updating|upgrade|upgrading)\b[^.:;\n]{0,60}?\bto\b(?:\s+(?:the\s+)?(?:firmware|software)?\s*(?:version|release|build)?)?\s+([A-Za-z]{0,4}-?[vV]?\d[\w.\-]*(?:\s+(?:SP|Update|HF|Upd|Build)\s*\d+)*)|(?i)fixed in (?:version\s+)?([vV]?\d[\w.\-]*)`)

var lineVersionRE = regexp.MustCompile(`^\s+[vV]\d[\w.\-]*`)

// FixedVersion extracts the version a vendor_fix remediation's text names, or
// returns "" when it names none (e.g. "Contact customer support").
func FixedVersion(details string) string {
	m := fixedRE.FindStringSubmatchIndex(details)
	if m == nil {
		return ""
	}
	var v string
	end := 0
	if m[2] >= 0 {
		v, end = details[m[2]:m[3]], m[3]
	} else {
		v, end = details[m[4]:m[5]], m[5]
	}
	// "Update to CPCI85 V05.20": a product line before the version.
	if l := lineVersionRE.FindString(details[end:]); l != "" && !strings.ContainsAny(v, ".") {
		v += l
	}
	v = strings.TrimRight(v, ".-,")
	if _, ok := ParseVersion(v); !ok {
		return ""
	}
	return v
}
