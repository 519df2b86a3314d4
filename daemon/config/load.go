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
)

// envKeys are the deployment knobs systemd or a container may override with
// FIELDGATE_<KEY> (dots become underscores), e.g. FIELDGATE_GATEWAY_STATE_DIR.
var envKeys = []string{
	"gateway.state_dir",
	"gateway.socket",
	"gateway.log_level",
	"mqtt.broker",
}

// Load reads, strictly decodes and defaults the configuration file at path.
// It does not validate cross-references; call Validate for that. Unknown
// keys are reported with their line numbers, all of them at once.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := strictCheck(raw); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}

	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	v.SetEnvPrefix("FIELDGATE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	for _, k := range envKeys {
		if err := v.BindEnv(k); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", k, err)
		}
	}
	var c Config
	err = v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
	})
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.setDefaults()
	return &c, nil
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
		for _, e := range te.Errors {
			errs = append(errs, errors.New(strings.Replace(e, "not found in type config.", "unknown in ", 1)))
		}
		return errors.Join(errs...)
	}
	return err
}
