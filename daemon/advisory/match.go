// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"fmt"
	"slices"
	"strings"
)

// Tier is how a device was matched to an advisory's product, strongest first.
type Tier int

// Tiers.
const (
	TierIdentifier Tier = 1 // CPE or PURL
	TierModel      Tier = 2 // model or order number
	TierName       Tier = 3 // vendor and product name, version in range
	TierTriage     Tier = 4 // vendor matched, product or version unclear: a person decides
)

func (t Tier) String() string {
	switch t {
	case TierIdentifier:
		return "identifier"
	case TierModel:
		return "model"
	case TierName:
		return "name"
	case TierTriage:
		return "triage"
	}
	return fmt.Sprintf("tier(%d)", int(t))
}

// Confidence is what an operator reads about a match.
type Confidence string

// Confidences.
const (
	High   Confidence = "high"
	Medium Confidence = "medium"
	Low    Confidence = "low"
	Triage Confidence = "triage"
)

// Status is what an advisory says about one CVE for a device.
type Status string

// Statuses.
const (
	Affected           Status = "affected"
	Fixed              Status = "fixed"
	NotAffected        Status = "not_affected"
	UnderInvestigation Status = "under_investigation"
)

// Match is one advisory that concerns one device.
type Match struct {
	Device     string
	Advisory   string // tracking id
	Revision   string // tracking version
	Title      string
	Tier       Tier
	Confidence Confidence
	Products   []string // the advisory's product ids the device matched
	Evidence   []string // which field matched what, one sentence each
	Findings   []Finding
}

// Finding is one CVE of a matched advisory, for the device.
type Finding struct {
	CVE           string
	Status        Status
	Justification string // VEX flag label when not affected by a flag
	Reason        string // why this status
	CVSS          float64
	Vector        string // CVSS v3 vector
	CVSS4         string // CVSS v4 vector when the document gives one
	KEV           bool
	KEVAdded      string
	Ransomware    bool
	Exploit       string // threats exploit_status details
	FixedBy       string // version of the vendor_fix, when it names one
	Remediations  []string
	Verdict       VerdictKind // the site's verdict, when one applies (ApplyVerdicts)
	Effective     string      // the status with the site's verdict, or why a verdict no longer applies
}

// Index holds advisories prepared for matching many devices. It is
// read-only after NewIndex and safe for concurrent use.
type Index struct {
	advs    []*prepared
	byModel map[string][]ref // normalised model number -> products
	byVend  map[string][]int // normalised vendor -> advisories
	kev     *KEV
}

type ref struct{ adv, prod int }

type prepared struct {
	a     *Advisory
	prods []*prepProduct
}

type prepProduct struct {
	p       *Product
	vendor  string
	vendors []string // vendor and the companies a "Vendor A, Vendor B" name lists
	tokens  []string
	nameTok []string // tokens of the full product name
	models  []string
	nameMod map[string]bool // model-like tokens of the name
	article bool            // the product_version is an article number of the name
	rng     Range
	hasRng  bool
	ver     Version
	hasVer  bool
	cpe     CPE
	hasCPE  bool
	purl    PURL
	hasPURL bool
}

// NewIndex prepares advisories and a KEV catalog (which may be nil) for Match.
func NewIndex(advs []*Advisory, kev *KEV) *Index {
	x := &Index{byModel: map[string][]ref{}, byVend: map[string][]int{}, kev: kev}
	for ai, a := range advs {
		pa := &prepared{a: a}
		seenVend := map[string]bool{}
		for pi, id := range a.Order {
			p := a.Products[id]
			pp := &prepProduct{p: p, vendor: normVendor(p.Vendor), nameMod: map[string]bool{}}
			// The vendor, and each company of a list CISA writes as one
			// vendor ("Exacq Technologies, Johnson Controls Inc.",
			// "Sensormatic Electronics, LLC, a subsidiary of Johnson
			// Controls Inc.").
			pp.vendors = []string{pp.vendor}
			for rest := p.Vendor; rest != ""; {
				var part string
				part, rest, _ = strings.Cut(rest, ",")
				if n := normVendor(part); n != "" && n != pp.vendor {
					pp.vendors = append(pp.vendors, n)
				}
			}
			name := p.ProductName
			if name == "" {
				name = p.Name
			}
			pp.tokens = nameTokens(strings.Join(append(slices.Clone(p.Families), name), " "), pp.vendor)
			pp.nameTok = nameTokens(p.Name, pp.vendor)
			for _, m := range p.Models {
				if n := normModel(m); n != "" {
					pp.models = append(pp.models, n)
					x.byModel[n] = append(x.byModel[n], ref{ai, pi})
				}
			}
			for _, t := range strings.FieldsFunc(p.Name, func(r rune) bool { return r == ' ' || r == '(' || r == ')' || r == ',' || r == '/' || r == ';' }) {
				if n := normModel(t); modelLike(n) && !slices.Contains(pp.models, n) {
					pp.nameMod[n] = true
					x.byModel[n] = append(x.byModel[n], ref{ai, pi})
				}
			}
			if p.Range != "" {
				pp.rng, pp.hasRng = ParseRange(p.Range), true
			}
			// An article number written where the version belongs ("AXC
			// 1050: Article number 2700988") is no version: the product
			// name holds it, and the model tier matches it.
			pp.article = len(p.Version) >= 7 && strings.Trim(p.Version, "0123456789") == "" && pp.nameMod[p.Version]
			if p.Version != "" && !pp.article {
				pp.ver, pp.hasVer = ParseVersion(p.Version)
				// CISA writes ranges as product_version too ("vers:all/*",
				// "10 | 11", "12.4.*", "12.4.1-12.4.11"); one that reads
				// as a range is matched as one.
				if r := ParseRange(p.Version); r.Parsed && !pp.hasRng {
					pp.rng, pp.hasRng = r, true
				}
			}
			if p.CPE != "" {
				c, err := ParseCPE(p.CPE)
				pp.cpe, pp.hasCPE = c, err == nil
			}
			if p.PURL != "" {
				u, err := ParsePURL(p.PURL)
				pp.purl, pp.hasPURL = u, err == nil
			}
			pa.prods = append(pa.prods, pp)
			for _, v := range pp.vendors {
				if !seenVend[v] {
					seenVend[v] = true
					x.byVend[v] = append(x.byVend[v], ai)
				}
			}
		}
		x.advs = append(x.advs, pa)
	}
	return x
}

// candidate is one product a device matched, with how.
type candidate struct {
	pp       *prepProduct
	tier     Tier
	conf     Confidence
	evidence []string
	// versioned is set when the product's range or version (also "all
	// versions") decided that the device's firmware is affected.
	versioned bool
}

// Match returns the advisories that concern a device, in index order.
func (x *Index) Match(it Item) []Match {
	var dcpe CPE
	hasCPE := false
	if it.CPE != "" {
		if c, err := ParseCPE(it.CPE); err == nil {
			if c[3] == "*" && it.Firmware != "" {
				c[3] = strings.ToLower(it.Firmware)
			}
			dcpe, hasCPE = c, true
		}
	}
	var dpurl PURL
	hasPURL := false
	if it.PURL != "" {
		if u, err := ParsePURL(it.PURL); err == nil {
			dpurl, hasPURL = u, true
		}
	}
	fw, hasFW := ParseVersion(it.Firmware)
	vendor := normVendor(it.Vendor)
	model := normModel(it.Model)
	tokens := nameTokens(it.Product, vendor)

	// Only advisories that can concern the device are looked at: the
	// vendor's, those naming its model, and with an identifier all of them.
	todo := map[int]bool{}
	for _, ai := range x.byVend[vendor] {
		todo[ai] = true
	}
	if model != "" {
		for _, r := range x.byModel[model] {
			todo[r.adv] = true
		}
	}
	order := make([]int, 0, len(todo))
	if hasCPE || hasPURL {
		for ai := range x.advs {
			order = append(order, ai)
		}
	} else {
		for ai := range todo {
			order = append(order, ai)
		}
		slices.Sort(order)
	}

	var out []Match
	for _, ai := range order {
		pa := x.advs[ai]
		var cands []candidate
		for _, pp := range pa.prods {
			c, ok := matchProduct(pp, it, dcpe, hasCPE, dpurl, hasPURL, model, vendor, tokens, fw, hasFW)
			if ok {
				cands = append(cands, c)
			}
		}
		if len(cands) == 0 {
			continue
		}
		best := slices.MinFunc(cands, func(a, b candidate) int { return int(a.tier) - int(b.tier) })
		m := Match{Device: it.Device, Advisory: pa.a.ID, Revision: pa.a.Revision, Title: pa.a.Title, Tier: best.tier, Confidence: best.conf}
		rank := map[Confidence]int{High: 0, Medium: 1, Low: 2, Triage: 3}
		for _, c := range cands {
			if c.tier != best.tier {
				continue
			}
			if rank[c.conf] < rank[m.Confidence] {
				m.Confidence = c.conf
			}
			m.Products = append(m.Products, c.pp.p.ID)
			for _, e := range c.evidence {
				if !slices.Contains(m.Evidence, e) {
					m.Evidence = append(m.Evidence, e)
				}
			}
		}
		versioned := false
		for _, c := range cands {
			versioned = versioned || c.tier == best.tier && c.versioned
		}
		m.Findings = x.findings(pa.a, m.Products, fw, hasFW && !versioned)
		if len(m.Findings) == 0 {
			continue // the products matched are in no CVE's product_status
		}
		out = append(out, m)
	}
	return out
}

// matchProduct decides whether a device is one product of an advisory.
func matchProduct(pp *prepProduct, it Item, dcpe CPE, hasCPE bool, dpurl PURL, hasPURL bool, model, vendor string, tokens []string, fw Version, hasFW bool) (candidate, bool) {
	c := candidate{pp: pp}
	p := pp.p
	switch {
	case hasCPE && pp.hasCPE && pp.cpe.Matches(dcpe):
		c.tier, c.conf = TierIdentifier, High
		c.evidence = append(c.evidence, fmt.Sprintf("CPE %s matches device CPE %s", p.CPE, it.CPE))
		if pp.cpe[3] != "*" {
			return c, true // the CPE's version attribute decided
		}
	case hasPURL && pp.hasPURL && pp.purl.SamePackage(dpurl):
		c.tier, c.conf = TierIdentifier, High
		c.evidence = append(c.evidence, fmt.Sprintf("PURL %s names device package %s", p.PURL, it.PURL))
		if pp.purl.Version != "" {
			v, ok := ParseVersion(pp.purl.Version)
			dv, dok := ParseVersion(cmpOr(dpurl.Version, it.Firmware))
			if !ok || !dok || Compare(v, dv) != 0 {
				return c, false
			}
			return c, true
		}
	case model != "" && slices.Contains(pp.models, model):
		c.tier, c.conf = TierModel, High
		c.evidence = append(c.evidence, fmt.Sprintf("order number %s is a model_number of %q", it.Model, p.Name))
	case model != "" && pp.nameMod[model]:
		c.tier, c.conf = TierModel, Medium
		c.evidence = append(c.evidence, fmt.Sprintf("model %s appears in the product name %q", it.Model, p.Name))
	case vendor != "" && slices.Contains(pp.vendors, vendor):
		switch {
		case len(tokens) > 0 && len(pp.tokens) > 0 && sameSet(tokens, pp.tokens):
			c.tier, c.conf = TierName, Medium
			c.evidence = append(c.evidence, fmt.Sprintf("vendor %q is %q and product %q is %q", it.Vendor, p.Vendor, it.Product, productLabel(p)))
		case len(pp.tokens) > 0 && subset(pp.tokens, tokens):
			c.tier, c.conf = TierName, Low
			c.evidence = append(c.evidence, fmt.Sprintf("vendor %q is %q and product %q names all of %q", it.Vendor, p.Vendor, it.Product, productLabel(p)))
		case len(tokens) > 0 && (subset(tokens, pp.tokens) || subset(tokens, pp.nameTok)):
			// The full product name counts too: "NJ/NX-series Controllers
			// - NJ-series Machine Automation Controller (All Models)"
			// names a device below a broader product_name.
			c.tier, c.conf = TierName, Low
			c.evidence = append(c.evidence, fmt.Sprintf("vendor %q is %q and product %q is part of %q", it.Vendor, p.Vendor, it.Product, p.Name))
		case sharesModelToken(tokens, pp.tokens):
			c.tier, c.conf = TierTriage, Triage
			c.evidence = append(c.evidence, fmt.Sprintf("vendor %q is %q; product %q only partly matches %q", it.Vendor, p.Vendor, it.Product, productLabel(p)))
		default:
			return c, false
		}
	default:
		return c, false
	}
	// The version: one exact version, or a range, or neither (the product
	// as a whole).
	switch {
	case pp.hasRng:
		r := pp.rng
		switch {
		case !r.Parsed:
			c.tier, c.conf = TierTriage, Triage
			c.evidence = append(c.evidence, fmt.Sprintf("version range %q not understood", r.Raw))
		case r.All:
			c.versioned = true
			c.evidence = append(c.evidence, fmt.Sprintf("range %q: all versions", r.Raw))
		case !hasFW:
			c.tier, c.conf = TierTriage, Triage
			c.evidence = append(c.evidence, fmt.Sprintf("device firmware %q unknown; range %q", it.Firmware, r.Raw))
		case r.Contains(fw):
			c.versioned = true
			c.evidence = append(c.evidence, fmt.Sprintf("firmware %s is in range %q", it.Firmware, r.Raw))
		default:
			return c, false
		}
		if r.Parsed && r.Condition != "" && c.tier != TierTriage {
			c.conf = lowerConf(c.conf)
			c.evidence = append(c.evidence, fmt.Sprintf("range holds only %q: not checked", r.Condition))
		}
	case p.Version != "" && !pp.article:
		switch {
		case !pp.hasVer || !hasFW:
			c.tier, c.conf = TierTriage, Triage
			c.evidence = append(c.evidence, fmt.Sprintf("cannot compare firmware %q with version %q", it.Firmware, p.Version))
		case Compare(fw, pp.ver) == 0:
			c.versioned = true
			c.evidence = append(c.evidence, fmt.Sprintf("firmware %s is version %q", it.Firmware, p.Version))
		default:
			return c, false
		}
	}
	return c, true
}

func productLabel(p *Product) string {
	return strings.Join(append(slices.Clone(p.Families), cmpOr(p.ProductName, p.Name)), " / ")
}

func lowerConf(c Confidence) Confidence {
	switch c {
	case High:
		return Medium
	case Medium:
		return Low
	}
	return c
}

func sameSet(a, b []string) bool { return subset(a, b) && subset(b, a) }

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// sharesModelToken reports a shared word with a digit ("s7-1200",
// "1756-en2t"): enough to ask a person, not to decide.
func sharesModelToken(a, b []string) bool {
	for _, x := range a {
		if strings.ContainsAny(x, "0123456789") && slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// findings applies product_status, VEX flags, remediations, scores and
// exploitation to the products a device matched. With hasFW, an affected
// device at or past the version a vendor_fix names counts as fixed; the
// caller passes false when a product's own range already placed the
// firmware among the affected ones, because one remediation text often
// lists the fixes of several release lines ("11.0.0 - 11.0.5: update to
// v11.0.6 ... 13.0.0 - 13.0.1: update to v13.0.2") and only its first is
// read, and CISA attaches a remediation to every product of a document
// whatever product it names.
func (x *Index) findings(a *Advisory, prods []string, fw Version, hasFW bool) []Finding {
	var out []Finding
	for _, v := range a.Vulnerabilities {
		f := Finding{CVE: v.CVE}
		st := v.Status
		in := func(l []string) bool {
			for _, p := range prods {
				if slices.Contains(l, p) {
					return true
				}
			}
			return false
		}
		// Precedence when several matched products disagree: the
		// conservative answer first.
		switch {
		case in(st.KnownAffected) || in(st.FirstAffected) || in(st.LastAffected):
			f.Status, f.Reason = Affected, "product_status: known_affected"
		case in(st.UnderInvestigation):
			f.Status, f.Reason = UnderInvestigation, "product_status: under_investigation"
		case in(st.Fixed) || in(st.FirstFixed):
			f.Status, f.Reason = Fixed, "product_status: fixed"
		case in(st.KnownNotAffected):
			f.Status, f.Reason = NotAffected, "product_status: known_not_affected"
		}
		for _, fl := range v.Flags {
			if in(fl.Products) && (f.Status == "" || f.Status == NotAffected) {
				f.Status, f.Justification, f.Reason = NotAffected, fl.Label, "VEX flag: "+fl.Label
			}
		}
		if f.Status == "" {
			continue // this CVE is about other products of the advisory
		}
		for _, r := range v.Remediations {
			if !in(r.Products) {
				continue
			}
			if !slices.Contains(f.Remediations, r.Category) {
				f.Remediations = append(f.Remediations, r.Category)
			}
			if r.Category == "vendor_fix" && r.FixedVersion != "" && f.FixedBy == "" {
				f.FixedBy = r.FixedVersion
			}
		}
		if f.Status == Affected && f.FixedBy != "" && hasFW {
			if fv, ok := ParseVersion(f.FixedBy); ok && Compare(fw, fv) >= 0 {
				f.Status, f.Reason = Fixed, fmt.Sprintf("firmware %s is at or past the vendor_fix version %s", fw.Raw, f.FixedBy)
			}
		}
		for _, s := range v.Scores {
			if in(s.Products) || (f.Vector == "" && len(s.Products) == 0) {
				f.CVSS, f.Vector = s.Base, s.Vector
			}
		}
		if f.Vector == "" && len(v.Scores) > 0 {
			f.CVSS, f.Vector = v.Scores[0].Base, v.Scores[0].Vector
		}
		f.CVSS4 = v.CVSS4
		if e, ok := x.kev.Lookup(v.CVE); ok {
			f.KEV, f.KEVAdded, f.Ransomware = true, e.DateAdded, e.Ransomware
		}
		for _, t := range v.Threats {
			if t.Category == "exploit_status" && (len(t.Products) == 0 || in(t.Products)) {
				f.Exploit = t.Details
			}
		}
		out = append(out, f)
	}
	return out
}
