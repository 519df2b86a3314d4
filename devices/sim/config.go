// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// File is fieldgate-sim's configuration file:
//
//	devices:
//	  - id: io16-a
//	    kind: xmodem-console
//	    hardware_id: acme-io16-rev3
//	    version: 1.0.0
//	    state_dir: work/sim/io16-a
//	    address: work/tty-io16-a
//	    baud: 115200
//	    faults: [slow-flash]
//	    options: {model: IO16}
//
// Relative paths are relative to the working directory of the process.
type File struct {
	Devices []Spec `yaml:"devices"`
}

// LoadFile reads and validates a configuration file.
func LoadFile(path string) ([]Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load sim config: %w", err)
	}
	specs, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("load sim config %s: %w", path, err)
	}
	return specs, nil
}

// Parse decodes a configuration strictly (an unknown or misspelt key is an
// error naming it and its line) and checks what every kind needs: a unique
// id, a known kind, a hardware id, an address and a state directory. Each
// kind checks its own options when it is constructed.
func Parse(b []byte) ([]Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file: want a devices: list")
		}
		return nil, err
	}
	if len(f.Devices) == 0 {
		return nil, errors.New("no devices: want a devices: list with at least one entry")
	}
	kinds := Kinds()
	seen := map[string]bool{}
	addrs := map[string]string{}
	var errs []error
	for i, s := range f.Devices {
		where := fmt.Sprintf("devices[%d]", i)
		if s.ID == "" {
			errs = append(errs, fmt.Errorf("%s: id is empty", where))
		} else {
			where = fmt.Sprintf("devices[%d] (%s)", i, s.ID)
			if seen[s.ID] {
				errs = append(errs, fmt.Errorf("%s: duplicate id", where))
			}
			seen[s.ID] = true
		}
		if _, ok := kinds[s.Kind]; !ok {
			errs = append(errs, fmt.Errorf("%s: kind %q is unknown (known: %v)", where, s.Kind, kindNames(kinds)))
		}
		if s.HardwareID == "" {
			errs = append(errs, fmt.Errorf("%s: hardware_id is empty", where))
		}
		if s.Address == "" {
			errs = append(errs, fmt.Errorf("%s: address is empty", where))
		} else if other, dup := addrs[s.Address]; dup {
			errs = append(errs, fmt.Errorf("%s: address %s is also used by %s", where, s.Address, other))
		} else {
			addrs[s.Address] = s.ID
		}
		if s.StateDir == "" {
			errs = append(errs, fmt.Errorf("%s: state_dir is empty", where))
		}
		if s.Baud < 0 {
			errs = append(errs, fmt.Errorf("%s: baud %d is negative", where, s.Baud))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f.Devices, nil
}
