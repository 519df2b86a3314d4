// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/fieldgate/fieldgate/internal/atomicfile"
)

// Device is one running simulated device.
type Device interface {
	// Run serves the device's protocol at its Spec.Address until ctx ends,
	// and returns nil then. It calls ready once clients can connect (the
	// pty link exists, the socket listens).
	Run(ctx context.Context, ready func()) error
}

// Constructor validates a Spec of its kind without I/O and returns the
// device. It rejects unknown options and faults, naming them.
type Constructor func(spec Spec, log *slog.Logger) (Device, error)

// Kinds returns the simulated device kinds by name.
func Kinds() map[string]Constructor {
	return map[string]Constructor{
		ConsoleKind:   NewConsole,
		"modbus-tcp":  opened(NewModbusTCP),
		"modbus-rtu":  opened(NewModbusRTU),
		"tftp-server": bound(NewTFTPServer),
		"tftp-pull":   bound(NewTFTPPull),
		KindSMPUDP:    bound(NewSMPDevice),
		KindSMPSerial: bound(NewSMPDevice),
	}
}

// Run starts every device in specs and serves them until ctx ends. It
// validates all specs before starting any device. It returns nil on
// cancellation, or the first device's error (which stops the others).
func Run(ctx context.Context, specs []Spec, log *slog.Logger) error {
	return RunNotify(ctx, specs, log, nil)
}

// RunNotify is Run, calling ready (if not nil) with each device's spec
// once that device accepts connections. ready may be called concurrently.
func RunNotify(ctx context.Context, specs []Spec, log *slog.Logger, ready func(Spec)) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kinds := Kinds()
	devs := make([]Device, len(specs))
	var errs []error
	for i, s := range specs {
		newDev, ok := kinds[s.Kind]
		if !ok {
			errs = append(errs, fmt.Errorf("device %s: unknown kind %q (known: %s)", s.ID, s.Kind, strings.Join(kindNames(kinds), ", ")))
			continue
		}
		d, err := newDev(s, log.With("device", s.ID, "kind", s.Kind))
		if err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", s.ID, err))
			continue
		}
		devs[i] = d
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	for i, d := range devs {
		s := specs[i]
		g.Go(func() error {
			err := d.Run(ctx, func() {
				log.Info("device ready", "device", s.ID, "kind", s.Kind, "address", s.Address)
				if ready != nil {
					ready(s)
				}
			})
			if err != nil {
				return fmt.Errorf("device %s: %w", s.ID, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func kindNames(kinds map[string]Constructor) []string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// replaceFile replaces path with data atomically (internal/atomicfile).
func replaceFile(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o644)
}
