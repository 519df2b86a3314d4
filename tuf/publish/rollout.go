// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"encoding/json"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
)

// SetRollout stages a new rollout for target name, in whichever role
// (targets or a delegated role) lists it: same file, same length and
// hashes, only the rollout inside its fieldgate metadata changes; nil
// removes the rollout (every gateway takes the target). Other keys of the
// custom field next to "fieldgate" are kept. Commit publishes a new version
// of that role; a gateway widens, halts or resumes the rollout at its next
// refresh. It returns the role that lists the target.
func (r *Repo) SetRollout(name string, ro *tuf.Rollout) (string, error) {
	if ro != nil {
		if err := ro.Validate(); err != nil {
			return "", fmt.Errorf("rollout %s: %w", name, err)
		}
	}
	for _, role := range append([]string{metadata.TARGETS}, r.DelegatedRoles()...) {
		md, err := r.stagedRole(role)
		if err != nil {
			return "", fmt.Errorf("rollout %s: %w", name, err)
		}
		tf, ok := md.Signed.Targets[name]
		if !ok {
			continue
		}
		if tf.Custom == nil {
			return "", fmt.Errorf("rollout %s: the target has no fieldgate metadata", name)
		}
		meta, err := tuf.ParseCustom(*tf.Custom)
		if err != nil {
			return "", fmt.Errorf("rollout %s: %w", name, err)
		}
		meta.Rollout = ro
		inner, err := tuf.MarshalCustom(meta)
		if err != nil {
			return "", fmt.Errorf("rollout %s: %w", name, err)
		}
		var outer map[string]json.RawMessage
		if err := json.Unmarshal(*tf.Custom, &outer); err != nil {
			return "", fmt.Errorf("rollout %s: %w", name, err)
		}
		var mine map[string]json.RawMessage
		if err := json.Unmarshal(inner, &mine); err != nil {
			return "", fmt.Errorf("rollout %s: %w", name, err)
		}
		outer[tuf.CustomKey] = mine[tuf.CustomKey]
		custom, err := json.Marshal(outer)
		if err != nil {
			return "", fmt.Errorf("rollout %s: %w", name, err)
		}
		raw := json.RawMessage(custom)
		tf.Custom = &raw
		if err := r.saveStagedRole(role); err != nil {
			return "", fmt.Errorf("rollout %s: %w", name, err)
		}
		return role, nil
	}
	return "", fmt.Errorf("rollout %s: no such staged target", name)
}
