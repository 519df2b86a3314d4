// SPDX-License-Identifier: Apache-2.0

package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/fieldgate/fieldgate/daemon/testreport"
)

// StagingKey is the public key of a staging gateway that signs test
// reports (its gateway.test_report_key).
type StagingKey struct {
	// ID is the key id a report names: the staging gateway's gateway.id;
	// unique.
	ID string `yaml:"id" mapstructure:"id"`
	// PublicKey is the base64 of the 32-byte ed25519 public key
	// (fieldgatectl remote pubkey --key FILE prints it).
	PublicKey string `yaml:"public_key" mapstructure:"public_key"`
}

// Gateway roles.
const (
	RoleProduction = "production"
	RoleStaging    = "staging"
)

// DefaultTestReportTTL is how long a test report stays valid by default.
const DefaultTestReportTTL = 90 * 24 * time.Hour

func (c *Config) defaultStaging() {
	if c.Gateway.Role == "" {
		c.Gateway.Role = RoleProduction
	}
	if c.Gateway.TestReportTTL == 0 {
		c.Gateway.TestReportTTL = DefaultTestReportTTL
	}
}

// StagingPublicKeys returns staging_keys by id (entries that do not
// decode are left out; Validate reports them).
func (c *Config) StagingPublicKeys() map[string]ed25519.PublicKey {
	keys := map[string]ed25519.PublicKey{}
	for _, k := range c.StagingKeys {
		if b, err := base64.StdEncoding.DecodeString(k.PublicKey); err == nil && len(b) == ed25519.PublicKeySize {
			keys[k.ID] = b
		}
	}
	return keys
}

// validateStaging checks the role, the staging keys and every group's
// require_tested, and on a staging gateway reads the signing key.
func (c *Config) validateStaging(bad func(path, format string, a ...any)) {
	g := c.Gateway
	switch g.Role {
	case RoleProduction:
		if g.TestReportKey != "" {
			bad("gateway.test_report_key", "only a gateway with role staging signs test reports")
		}
	case RoleStaging:
		if g.TestReportKey == "" {
			bad("gateway.test_report_key", "is required with role staging (make one with fieldgatectl remote keygen)")
		} else if data, ok := readReferenced("gateway.test_report_key", g.TestReportKey, bad); ok {
			if _, err := testreport.ParsePrivateKey(g.TestReportKey, data); err != nil {
				bad("gateway.test_report_key", "%v", err)
			}
		}
	default:
		bad("gateway.role", "%q is not one of production, staging", g.Role)
	}
	if g.TestReportTTL < time.Hour {
		bad("gateway.test_report_ttl", "%s is below 1h", g.TestReportTTL)
	}
	ids := map[string]bool{}
	for i, k := range c.StagingKeys {
		p := fmt.Sprintf("staging_keys[%d]", i)
		if !idPattern.MatchString(k.ID) {
			bad(p+".id", "%q must match %s", k.ID, idPattern)
		} else if ids[k.ID] {
			bad(p+".id", "duplicate staging key %q", k.ID)
		}
		ids[k.ID] = true
		if b, err := base64.StdEncoding.DecodeString(k.PublicKey); err != nil || len(b) != ed25519.PublicKeySize {
			bad(p+".public_key", "must be the base64 of a 32-byte ed25519 public key")
		}
	}
	for i, gr := range c.Groups {
		for j, id := range gr.RequireTested {
			p := fmt.Sprintf("groups[%d].require_tested[%d]", i, j)
			switch {
			case !ids[id]:
				bad(p, "unknown staging key %q (list it under staging_keys)", id)
			case slices.Index(gr.RequireTested, id) != j:
				bad(p, "%q listed twice", id)
			}
		}
	}
}
