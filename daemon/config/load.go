// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// envKeys are the deployment knobs systemd or a container may override with
// FIELDGATE_<KEY> (dots become underscores), e.g. FIELDGATE_GATEWAY_STATE_DIR.
var envKeys = []string{
	"gateway.state_dir",
	"gateway.socket",
	"gateway.log_level",
	"mqtt.broker",
}

// MaxFileSize is the largest configuration file Load and Check read. A
// gateway's configuration is a few kilobytes; a bigger file is a mistake
// (or an attack on the YAML decoder) and is refused before it is parsed.
const MaxFileSize = 1 << 20

// Load reads, strictly decodes and defaults the configuration file at path.
// It does not validate cross-references; call Validate for that. Unknown
// keys are reported with their line numbers, all of them at once.
func Load(path string) (*Config, error) {
	c, unknown, err := decode(path)
	if err != nil {
		return nil, err
	}
	if unknown != nil {
		return nil, fmt.Errorf("config %s: %w", path, unknown)
	}
	return c, nil
}

// Check is what `fieldgated --check-config` runs: it loads path and
// validates it, reporting every problem at once — unknown keys and the
// problems Validate finds in the rest of the file — rather than stopping
// at the unknown keys as Load does. The configuration is returned when it
// could be decoded at all (for its Warnings), even if err is not nil.
func Check(path string, checkDevice func(Device) error) (*Config, error) {
	c, unknown, err := decode(path)
	if err != nil {
		return nil, err
	}
	if verr := c.Validate(checkDevice); unknown != nil || verr != nil {
		return c, fmt.Errorf("config %s:\n%w", path, errors.Join(unknown, verr))
	}
	return c, nil
}

// decode reads path and decodes it leniently, returning the unknown keys
// (with their lines) separately from errors that leave nothing to decode:
// an unreadable, oversized, empty or malformed file.
func decode(path string) (c *Config, unknown error, err error) {
	raw, err := readFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	if unknown = strictCheck(raw); unknown != nil && !isUnknownKeys(unknown) {
		return nil, nil, fmt.Errorf("config %s: %w", path, unknown)
	}

	// The YAML is decoded here and handed to viper as a map, not read by
	// viper.ReadConfig: a call of ReadConfig links every codec viper knows
	// (TOML, dotenv, JSON) and their file-finding helpers, 233 KB of
	// fieldgated for armv7 that reads only YAML (BENCHMARKS.md, Footprint).
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	defaultCanary(tree)
	v := viper.New()
	if err := v.MergeConfigMap(tree); err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	// Set here, not in setDefaults: an explicit empty value turns hints off.
	v.SetDefault("mqtt.broadcast_prefix", mqtt.DefaultBroadcastPrefix)
	v.SetEnvPrefix("FIELDGATE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	for _, k := range envKeys {
		if err := v.BindEnv(k); err != nil {
			return nil, nil, fmt.Errorf("config: bind %s: %w", k, err)
		}
	}
	c = new(Config)
	err = v.Unmarshal(c, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = unknown == nil // else the strict pass has named them, with lines
	})
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.setDefaults()
	return c, unknown, nil
}

// readFile reads path, refusing one over MaxFileSize without reading more
// than that of it (path may be a pipe or a device).
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxFileSize {
		return nil, fmt.Errorf("%s is over %d bytes (1 MiB): not a fieldgated configuration", path, MaxFileSize)
	}
	return raw, nil
}

// unknownKeys is strictCheck's error when every problem is an unknown key:
// the rest of the file still decodes and can be validated.
type unknownKeys struct{ error }

func (u unknownKeys) Unwrap() error { return u.error }

func isUnknownKeys(err error) bool {
	var u unknownKeys
	return errors.As(err, &u)
}

// strictCheck decodes raw with yaml's known-fields check, which names every
// unknown key with its line ("line 12: field hardwre_id not found in type
// config.Device"). viper lower-cases keys and loses lines, so this pass is
// what turns a typo into an error a person can act on.
func strictCheck(raw []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var c Config
	err := dec.Decode(&c)
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return errors.New("file is empty")
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		onlyUnknown := true
		for _, e := range te.Errors {
			onlyUnknown = onlyUnknown && strings.Contains(e, "not found in type config.")
			errs = append(errs, errors.New(strings.Replace(e, "not found in type config.", "unknown in ", 1)))
		}
		if onlyUnknown {
			return unknownKeys{errors.Join(errs...)}
		}
		return errors.Join(errs...)
	}
	return err
}

// defaultCanary gives every group without a canary key canary 1. It works
// on the decoded YAML, where an absent key differs from an explicit 0
// (no canary: the whole group at once), which setDefaults cannot tell.
func defaultCanary(tree map[string]any) {
	groups, _ := tree["groups"].([]any)
	for _, g := range groups {
		if m, ok := g.(map[string]any); ok {
			if _, set := m["canary"]; !set {
				m["canary"] = 1
			}
		}
	}
}
