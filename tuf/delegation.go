// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// Limits of the delegation walk. maxDelegations is go-tuf's default for one
// target lookup (config.UpdaterConfig.MaxDelegations); maxDelegatedRoles
// bounds how many delegated roles one refresh loads in total (hash-bin
// delegations can name millions).
const (
	maxDelegations     = 32
	maxDelegatedRoles  = 256
	maxTargetsMetadata = 5_000_000 // go-tuf's TargetsMaxLength default
)

// Rejected is a target, or a whole delegated role, that a refresh refused.
// A rejected target's length and hashes are never used.
type Rejected struct {
	Name   string // target name; "" when a whole role was refused
	Role   string // the role that listed the target, or the role refused
	Reason string
}

func (r Rejected) String() string {
	if r.Name == "" {
		return fmt.Sprintf("role %s refused: %s", r.Role, r.Reason)
	}
	return fmt.Sprintf("target %s from role %s refused: %s", r.Name, r.Role, r.Reason)
}

// resolver finds targets through the delegations of one refresh, as TUF
// spec 5.6.7 says: a pre-order depth-first search from the top-level
// targets role that fetches a delegated role only when the search reaches
// it, and verifies it against the delegator that led to it in this search
// (a role delegated by two roles is checked against each of them). The
// bytes of a role are fetched at most once per refresh; each verification
// (delegator, role) is done once. A resolver is not safe for concurrent use.
type resolver struct {
	c       *Client
	ctx     context.Context
	trusted *trustedmetadata.TrustedMetadata

	files map[string]*roleFile   // role -> bytes of the version snapshot lists
	edges map[[2]string]roleLoad // {delegator, role} -> verification
	nodes map[string]*roleNode   // roles reached, by name
	order []string               // roles reached, in the order first reached; targets first
	skip  map[string]string      // roles walk did not fetch -> why
}

// roleFile is the metadata file of a delegated role.
type roleFile struct {
	data   []byte
	fresh  bool  // downloaded in this refresh (else read from the cache)
	cached bool  // written to the cache
	err    error // download failed
}

type roleLoad struct {
	md  *metadata.Metadata[metadata.TargetsType]
	err error
}

// roleNode is one role the search reached.
type roleNode struct {
	name       string
	parent     string                  // the delegator it was first reached from; "root" for targets
	delegation *metadata.DelegatedRole // that delegator's entry for it (nil for targets and hash bins)
	md         *metadata.Metadata[metadata.TargetsType]
	err        error  // why it was refused (through refusedBy)
	refusedBy  string // delegator through which it was refused
}

func newResolver(ctx context.Context, c *Client, trusted *trustedmetadata.TrustedMetadata) *resolver {
	top := trusted.Targets[metadata.TARGETS]
	return &resolver{
		c: c, ctx: ctx, trusted: trusted,
		files: map[string]*roleFile{},
		edges: map[[2]string]roleLoad{},
		skip:  map[string]string{},
		nodes: map[string]*roleNode{metadata.TARGETS: {name: metadata.TARGETS, parent: metadata.ROOT, md: top}},
		order: []string{metadata.TARGETS},
	}
}

// visit is a role to search and the delegation that leads to it.
type visit struct {
	role, parent string
	del          *metadata.DelegatedRole // nil for targets and hash bins
}

// lookup returns the role trusted for target name and its entry (TUF spec
// 5.6.7): roles are searched in pre-order, depth first, in the order their
// delegator lists them; only delegations whose paths (or path hash
// prefixes) match name are followed; a matching terminating delegation ends
// the search after its subtree; a role is searched once; at most
// maxDelegations roles are searched. Reaching a role that fails to load or
// verify is an error, never a fallback to a lower-priority role.
func (r *resolver) lookup(name string) (string, *metadata.TargetFiles, error) {
	stack := []visit{{role: metadata.TARGETS, parent: metadata.ROOT}}
	visited := map[string]bool{}
	for searched := 0; searched < maxDelegations && len(stack) > 0; {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[v.role] {
			continue
		}
		md, err := r.load(v)
		if err != nil {
			if r.ctx.Err() != nil {
				return "", nil, r.ctx.Err()
			}
			return "", nil, fmt.Errorf("role %s (delegated by %s), which is trusted for this path, was refused: %w", v.role, v.parent, err)
		}
		if tf, ok := md.Signed.Targets[name]; ok {
			return v.role, tf, nil
		}
		visited[v.role] = true
		searched++
		d := md.Signed.Delegations
		if d == nil {
			continue
		}
		var kids []visit
		for _, rr := range d.GetRolesForTarget(name) {
			kids = append(kids, visit{role: rr.Name, parent: v.role, del: delegatedRole(d, rr.Name)})
			if rr.Terminating {
				stack = nil
				break
			}
		}
		slices.Reverse(kids)
		stack = append(stack, kids...)
	}
	return "", nil, errNotFound
}

// walk reaches every delegated role that can be trusted for some target
// name, lazily and in the order of lookup's search, so that list can
// enumerate the targets. The gateway cannot tell from a target's name which
// of its devices it is for (the hardware ids are in the role's custom
// metadata), so no name is ruled out in advance; but a role is not fetched
// when no name can reach it: when its delegated paths cannot match any name
// that the delegations above it in this search path allow, or when a
// terminating delegation listed before it by the same delegator covers all
// its paths. A role refused through one delegator can still be reached
// through another. Which role is trusted for each name is decided by
// lookup, over the roles walk loaded.
func (r *resolver) walk() error {
	type step struct {
		visit
		scope [][]string // path patterns of the delegations above, each a constraint
	}
	top := step{visit: visit{role: metadata.TARGETS, parent: metadata.ROOT}}
	if len(r.c.cfg.Paths) > 0 {
		top.scope = [][]string{r.c.cfg.Paths} // what this gateway serves
	}
	stack := []step{top}
	expanded := map[string]bool{} // role + scope: the same role under another scope may reach more
	// The bound on steps keeps a graph of many scopes (cycles, diamonds)
	// from expanding without end; at most maxDelegatedRoles roles are read.
	for steps := 0; len(stack) > 0 && steps < 4*maxDelegatedRoles; steps++ {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		key := s.role + "\x00" + scopeKey(s.scope)
		if expanded[key] {
			continue
		}
		md, err := r.load(s.visit)
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			continue
		}
		expanded[key] = true
		d := md.Signed.Delegations
		if d == nil {
			continue
		}
		var kids []step
		var terminating [][]string // paths of the terminating delegations seen so far
		for i := range d.Roles {
			del := &d.Roles[i]
			if len(del.Paths) > 0 && !mayMatch(del.Paths, s.scope) {
				r.skip[del.Name] = fmt.Sprintf("not fetched: its paths (%s) cannot match a name the roles delegating to %s are trusted for", strings.Join(del.Paths, ", "), s.role)
				continue
			}
			if len(del.Paths) > 0 && coveredBy(del.Paths, terminating) {
				r.skip[del.Name] = fmt.Sprintf("not fetched: %s delegates its paths (%s) to a terminating delegation listed before it", s.role, strings.Join(del.Paths, ", "))
				continue
			}
			scope := s.scope
			if len(del.Paths) > 0 {
				scope = append(slices.Clip(s.scope), del.Paths)
			}
			kids = append(kids, step{visit: visit{role: del.Name, parent: s.role, del: del}, scope: scope})
			if del.Terminating && len(del.Paths) > 0 {
				terminating = append(terminating, del.Paths)
			}
		}
		if sr := d.SuccinctRoles; sr != nil && d.Roles == nil {
			suffixLen, bins := sr.GetSuffixLen()
			for bin := range min(bins, maxDelegatedRoles+1) {
				name := fmt.Sprintf("%s-%0*x", sr.NamePrefix, suffixLen, bin)
				kids = append(kids, step{visit: visit{role: name, parent: s.role}, scope: s.scope})
			}
		}
		slices.Reverse(kids)
		stack = append(stack, kids...)
	}
	return nil
}

func delegatedRole(d *metadata.Delegations, name string) *metadata.DelegatedRole {
	for i := range d.Roles {
		if d.Roles[i].Name == name {
			return &d.Roles[i]
		}
	}
	return nil
}

func scopeKey(scope [][]string) string {
	var sets []string
	for _, s := range scope {
		s = slices.Clone(s)
		slices.Sort(s)
		sets = append(sets, strings.Join(s, "\x02"))
	}
	slices.Sort(sets)
	return strings.Join(slices.Compact(sets), "\x01")
}

// mayMatch reports whether some name could match one of paths and, for
// every constraint in scope, one of its patterns. It may answer true when
// no such name exists (two wildcards in the same segment are assumed to
// overlap), never false when one does, taking each constraint separately.
func mayMatch(paths []string, scope [][]string) bool {
	for _, constraint := range scope {
		if !slices.ContainsFunc(paths, func(p string) bool {
			return slices.ContainsFunc(constraint, func(q string) bool { return patternsOverlap(p, q) })
		}) {
			return false
		}
	}
	return true
}

// patternsOverlap is true unless no name matches both patterns: "*" and "?"
// match within one path segment, so the segment counts must agree, and two
// literal segments must be equal.
func patternsOverlap(p, q string) bool {
	ps, qs := strings.Split(p, "/"), strings.Split(q, "/")
	if len(ps) != len(qs) {
		return false
	}
	for i := range ps {
		a, b := ps[i], qs[i]
		globA, globB := strings.ContainsAny(a, `*?[\`), strings.ContainsAny(b, `*?[\`)
		switch {
		case globA && globB:
		case !globA && !globB:
			if a != b {
				return false
			}
		case globA:
			if ok, _ := filepath.Match(a, b); !ok {
				return false
			}
		default:
			if ok, _ := filepath.Match(b, a); !ok {
				return false
			}
		}
	}
	return true
}

// coveredBy reports whether every name matching one of paths also matches
// a pattern of one of the terminating delegations' paths: then a search
// for such a name always ends in that terminating role's subtree first.
// It recognises a covering pattern segment by segment ("*" or equal).
func coveredBy(paths []string, terminating [][]string) bool {
	if len(terminating) == 0 {
		return false
	}
	return !slices.ContainsFunc(paths, func(p string) bool {
		ps := strings.Split(p, "/")
		return !slices.ContainsFunc(terminating, func(t []string) bool {
			return slices.ContainsFunc(t, func(q string) bool {
				qs := strings.Split(q, "/")
				if len(qs) != len(ps) {
					return false
				}
				for i := range qs {
					if qs[i] != "*" && qs[i] != ps[i] {
						return false
					}
				}
				return true
			})
		})
	})
}

// load returns role v.role verified against v.parent (the top-level
// targets role as the top-level refresh verified it). Each (delegator,
// role) is verified once per refresh; what the search learns is recorded
// for list.
func (r *resolver) load(v visit) (*metadata.Metadata[metadata.TargetsType], error) {
	if v.role == metadata.TARGETS && v.parent == metadata.ROOT {
		return r.nodes[metadata.TARGETS].md, nil
	}
	e := [2]string{v.parent, v.role}
	if l, ok := r.edges[e]; ok {
		return l.md, l.err
	}
	md, err := r.verify(v.role, v.parent)
	if r.ctx.Err() != nil {
		return nil, r.ctx.Err() // not recorded: the refresh is abandoned
	}
	r.edges[e] = roleLoad{md, err}
	n := r.nodes[v.role]
	if n == nil {
		n = &roleNode{name: v.role, parent: v.parent, delegation: v.del}
		r.nodes[v.role] = n
		r.order = append(r.order, v.role)
	}
	switch {
	case err == nil && n.md == nil:
		n.md = md
	case err != nil && n.err == nil:
		n.err, n.refusedBy = err, v.parent
	}
	return md, err
}

// verify checks role's metadata against delegator with go-tuf
// (TrustedMetadata.UpdateDelegatedTargets: the delegator's keys and
// threshold for it, the version and hashes snapshot lists, expiry), from the
// cache first, then downloaded (once per refresh) if the cached copy does
// not verify. Verified downloaded bytes are cached. A panic inside go-tuf
// (a malformed key) is returned as an error.
func (r *resolver) verify(role, delegator string) (md *metadata.Metadata[metadata.TargetsType], err error) {
	defer func() {
		if p := recover(); p != nil {
			md, err = nil, fmt.Errorf("panic in metadata verification: %v", p)
		}
	}()
	if slices.Contains([]string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}, role) {
		return nil, errors.New("a delegated role may not have a top-level role's name")
	}
	f, err := r.file(role, false)
	if err != nil {
		return nil, err
	}
	md, err = r.trusted.UpdateDelegatedTargets(f.data, role, delegator)
	if err != nil && !f.fresh {
		if f, err = r.file(role, true); err != nil {
			return nil, err
		}
		md, err = r.trusted.UpdateDelegatedTargets(f.data, role, delegator)
	}
	if err != nil {
		return nil, err
	}
	if f.fresh && !f.cached {
		file := url.PathEscape(role) + ".json"
		if err := writeFileAtomic(filepath.Join(r.c.cfg.MetadataDir, file), f.data); err != nil {
			return nil, fmt.Errorf("cache %s: %w", file, err)
		}
		f.cached = true
	}
	return md, nil
}

// file returns the metadata file of role: the cached copy unless fresh is
// set or there is none, else the version snapshot lists, downloaded once.
// At most maxDelegatedRoles roles are read per refresh.
func (r *resolver) file(role string, fresh bool) (*roleFile, error) {
	f := r.files[role]
	if f != nil && (f.fresh || !fresh) {
		return f, f.err
	}
	if f == nil && len(r.files) >= maxDelegatedRoles {
		return nil, fmt.Errorf("not loaded: more than %d delegated roles", maxDelegatedRoles)
	}
	if !fresh {
		if data, err := os.ReadFile(filepath.Join(r.c.cfg.MetadataDir, url.PathEscape(role)+".json")); err == nil {
			f = &roleFile{data: data, cached: true}
			r.files[role] = f
			return f, nil
		}
	}
	f = &roleFile{fresh: true}
	f.data, f.err = r.download(role)
	r.files[role] = f
	return f, f.err
}

// download fetches the version of role that snapshot lists.
func (r *resolver) download(role string) ([]byte, error) {
	meta, ok := r.trusted.Snapshot.Signed.Meta[role+".json"]
	if !ok {
		return nil, &metadata.ErrRepository{Msg: fmt.Sprintf("snapshot does not list %s.json", role)}
	}
	length := meta.Length
	if length <= 0 {
		length = maxTargetsMetadata
	}
	name := url.PathEscape(role) + ".json"
	if r.trusted.Root.Signed.ConsistentSnapshot {
		name = strconv.FormatInt(meta.Version, 10) + "." + name
	}
	f := &httpFetcher{ctx: r.ctx, client: r.c.http, timeout: r.c.cfg.HTTPTimeout}
	return f.DownloadFile(strings.TrimSuffix(r.c.cfg.MetadataURL, "/")+"/"+name, length, 0)
}

var errNotFound = errors.New("target not found")

// loaded returns the roles verified in this refresh, in the order reached.
func (r *resolver) loaded() []*roleNode {
	var out []*roleNode
	for _, role := range r.order {
		if n := r.nodes[role]; n.md != nil {
			out = append(out, n)
		}
	}
	return out
}

// list returns the targets the roles walk reached vouch for, each from the
// role lookup trusts for its name, and the claims and roles it refuses.
func (r *resolver) list() ([]Target, []Rejected) {
	var (
		targets  []Target
		rejected []Rejected
		claims   = map[string][]string{} // target name -> roles listing it
	)
	for _, role := range r.order {
		n := r.nodes[role]
		if n.err != nil {
			reason := n.err.Error()
			if n.md != nil {
				reason = fmt.Sprintf("as delegated by %s: %s", n.refusedBy, reason)
			}
			rejected = append(rejected, Rejected{Role: role, Reason: reason})
		}
		if n.md == nil {
			continue
		}
		for name := range n.md.Signed.Targets {
			claims[name] = append(claims[name], role)
		}
	}
	for _, role := range slices.Sorted(maps.Keys(r.skip)) {
		if r.nodes[role] == nil {
			rejected = append(rejected, Rejected{Role: role, Reason: r.skip[role]})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(claims)) {
		winner, tf, err := r.lookup(name)
		if err == nil {
			tg := newTarget(name, tf)
			tg.Role = winner
			targets = append(targets, tg)
		}
		for _, role := range claims[name] {
			switch {
			case role == winner:
			case err != nil && !errors.Is(err, errNotFound):
				rejected = append(rejected, Rejected{Name: name, Role: role, Reason: err.Error()})
			default:
				rejected = append(rejected, Rejected{Name: name, Role: role, Reason: r.whyNot(role, name, winner)})
			}
		}
	}
	return targets, rejected
}

// whyNot explains why role is not the one trusted for name.
func (r *resolver) whyNot(role, name, winner string) string {
	n := r.nodes[role]
	if d := n.delegation; d != nil {
		if ok, _ := d.IsDelegatedPath(name); !ok {
			var scope string
			if len(d.Paths) > 0 {
				scope = "paths " + strings.Join(d.Paths, ", ")
			} else {
				scope = "path hash prefixes " + strings.Join(d.PathHashPrefixes, ", ")
			}
			return fmt.Sprintf("outside the paths role %s is trusted for (%s delegates it %s)", role, n.parent, scope)
		}
	}
	if winner != "" {
		return fmt.Sprintf("role %s has priority for this path and lists it", winner)
	}
	return fmt.Sprintf("role %s is not reached for this path (a terminating delegation, a delegator's paths or the limit of %d roles per lookup end the search first)", role, maxDelegations)
}

// GetTargetInfo returns lookup's entry for target name, holding the
// client's refresh lock (a lookup may write the metadata cache).
func (r *resolver) GetTargetInfo(name string) (*metadata.TargetFiles, error) {
	r.c.st.refreshMu.Lock()
	defer r.c.st.refreshMu.Unlock()
	_, tf, err := r.lookup(name)
	return tf, err
}
