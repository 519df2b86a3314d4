package tuf

import (
	"context"
	"errors"
	"fmt"
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

// roleNode is one role of the delegation tree after loading.
type roleNode struct {
	name       string
	parent     string                  // delegating role; "root" for targets
	delegation *metadata.DelegatedRole // the parent's entry for this role (nil for targets and hash bins)
	md         *metadata.Metadata[metadata.TargetsType]
	err        error // why md could not be trusted
}

// delegationTree is every role reachable from the top-level targets role,
// loaded and verified with go-tuf's trusted metadata set.
type delegationTree struct {
	nodes map[string]*roleNode
	order []string // roles in load order, targets first
}

// loadDelegations loads every delegated role reachable from the top-level
// targets role, each verified by go-tuf (TrustedMetadata.UpdateDelegatedTargets:
// the delegator's keys and threshold, the version and hashes listed in
// snapshot, expiry) exactly as the Updater's own loadTargets does, from the
// cache when it is still the version snapshot lists, else downloaded. A role
// that fails is recorded with its reason and its subtree is not loaded; a
// role named by two delegations is refused (delegations must form a tree:
// go-tuf would verify it only against the first delegator's keys).
func (c *Client) loadDelegations(ctx context.Context, trusted *trustedmetadata.TrustedMetadata) (*delegationTree, error) {
	top := trusted.Targets[metadata.TARGETS]
	tree := &delegationTree{nodes: map[string]*roleNode{
		metadata.TARGETS: {name: metadata.TARGETS, parent: metadata.ROOT, md: top},
	}, order: []string{metadata.TARGETS}}
	type edge struct {
		role, parent string
		del          *metadata.DelegatedRole
	}
	var queue []edge
	children := func(parent string, md *metadata.Metadata[metadata.TargetsType]) {
		d := md.Signed.Delegations
		if d == nil {
			return
		}
		for _, r := range d.Roles {
			queue = append(queue, edge{role: r.Name, parent: parent, del: &r})
		}
		if d.SuccinctRoles != nil && d.Roles == nil {
			for _, name := range d.SuccinctRoles.GetRoles() {
				queue = append(queue, edge{role: name, parent: parent})
				if len(queue) > maxDelegatedRoles {
					break
				}
			}
		}
	}
	children(metadata.TARGETS, top)
	loaded := 0
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		if n, dup := tree.nodes[e.role]; dup {
			n.md = nil
			n.err = fmt.Errorf("delegated twice (by %s and by %s): delegations must form a tree", n.parent, e.parent)
			continue
		}
		n := &roleNode{name: e.role, parent: e.parent, delegation: e.del}
		tree.nodes[e.role] = n
		tree.order = append(tree.order, e.role)
		switch {
		case slices.Contains([]string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}, e.role):
			n.err = errors.New("a delegated role may not have a top-level role's name")
		case loaded >= maxDelegatedRoles:
			n.err = fmt.Errorf("not loaded: more than %d delegated roles", maxDelegatedRoles)
		default:
			loaded++
			n.md, n.err = c.loadRole(ctx, trusted, e.role, e.parent)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if n.err == nil {
				children(e.role, n.md)
			}
		}
	}
	return tree, nil
}

// loadRole verifies and returns delegated role, from the cache if it is the
// version snapshot lists, else from the repository (and caches it). A panic
// inside go-tuf (a malformed key) is returned as an error.
func (c *Client) loadRole(ctx context.Context, trusted *trustedmetadata.TrustedMetadata, role, parent string) (md *metadata.Metadata[metadata.TargetsType], err error) {
	defer func() {
		if r := recover(); r != nil {
			md, err = nil, fmt.Errorf("panic in metadata verification: %v", r)
		}
	}()
	file := url.PathEscape(role) + ".json"
	cached := filepath.Join(c.cfg.MetadataDir, file)
	if data, err := os.ReadFile(cached); err == nil {
		if md, err := trusted.UpdateDelegatedTargets(data, role, parent); err == nil {
			return md, nil
		}
	}
	meta, ok := trusted.Snapshot.Signed.Meta[role+".json"]
	if !ok {
		return nil, &metadata.ErrRepository{Msg: fmt.Sprintf("snapshot does not list %s.json", role)}
	}
	length := meta.Length
	if length <= 0 {
		length = maxTargetsMetadata
	}
	name := url.PathEscape(role) + ".json"
	if trusted.Root.Signed.ConsistentSnapshot {
		name = strconv.FormatInt(meta.Version, 10) + "." + name
	}
	f := &httpFetcher{ctx: ctx, client: c.http, timeout: c.cfg.HTTPTimeout}
	data, err := f.DownloadFile(strings.TrimSuffix(c.cfg.MetadataURL, "/")+"/"+name, length, 0)
	if err != nil {
		return nil, err
	}
	md, err = trusted.UpdateDelegatedTargets(data, role, parent)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(cached, data); err != nil {
		return nil, fmt.Errorf("cache %s: %w", file, err)
	}
	return md, nil
}

var errNotFound = errors.New("target not found")

// resolve returns the role trusted for target name and its entry: go-tuf's
// pre-order depth-first walk (TUF spec 5.6.7), over the loaded tree. Only
// roles whose delegated paths match name are visited, a terminating
// delegation ends the search, and at most maxDelegations roles are visited.
// Reaching a role that failed to load is an error, never a fallback to a
// lower-priority role.
func (t *delegationTree) resolve(name string) (string, *metadata.TargetFiles, error) {
	stack := []string{metadata.TARGETS}
	visited := map[string]bool{}
	for len(visited) <= maxDelegations && len(stack) > 0 {
		role := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[role] {
			continue
		}
		n := t.nodes[role]
		if n == nil {
			return "", nil, fmt.Errorf("role %s was not loaded", role)
		}
		if n.md == nil {
			return "", nil, fmt.Errorf("role %s, which is trusted for this path, was refused: %w", role, n.err)
		}
		if tf, ok := n.md.Signed.Targets[name]; ok {
			return role, tf, nil
		}
		visited[role] = true
		d := n.md.Signed.Delegations
		if d == nil {
			continue
		}
		var kids []string
		for _, r := range d.GetRolesForTarget(name) {
			kids = append(kids, r.Name)
			if r.Terminating {
				stack = nil
				break
			}
		}
		slices.Reverse(kids)
		stack = append(stack, kids...)
	}
	return "", nil, errNotFound
}

// list returns the targets the tree vouches for and the claims it refuses.
func (t *delegationTree) list() ([]Target, []Rejected) {
	var (
		targets  []Target
		rejected []Rejected
		claims   = map[string][]string{} // target name -> roles listing it
	)
	for _, role := range t.order {
		n := t.nodes[role]
		if n.md == nil {
			rejected = append(rejected, Rejected{Role: role, Reason: n.err.Error()})
			continue
		}
		for name := range n.md.Signed.Targets {
			claims[name] = append(claims[name], role)
		}
	}
	names := make([]string, 0, len(claims))
	for name := range claims {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		winner, tf, err := t.resolve(name)
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
				rejected = append(rejected, Rejected{Name: name, Role: role, Reason: t.whyNot(role, name, winner)})
			}
		}
	}
	return targets, rejected
}

// whyNot explains why role is not the one trusted for name.
func (t *delegationTree) whyNot(role, name, winner string) string {
	n := t.nodes[role]
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
