// SPDX-License-Identifier: Apache-2.0

// Command fieldgate-sim runs simulated field devices that speak the real
// protocols over real transports (pty serial lines, loopback sockets), with
// persistent firmware state and fault injection, and writes simulated
// firmware images.
//
//	fieldgate-sim run --config sim.yaml
//	fieldgate-sim mkimage --hw acme-io16-rev3 --version 2.0.0 --size 65536 -o fw.bin
//	fieldgate-sim mkimage --format mcuboot --hw acme-mcu --version 1.1.0 --size 8192 -o fw.signed.bin
//	fieldgate-sim line --baud 115200 --a work/tty-a --b work/tty-b
//	fieldgate-sim counters --config sim.yaml
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/devices/serialtest"
	"github.com/fieldgate/fieldgate/devices/sim"
	"github.com/fieldgate/fieldgate/systemd"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fieldgate-sim:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "fieldgate-sim",
		Short:         "Simulated field devices for fieldgate (serial bootloaders, Modbus, TFTP, SMP, SFTP)",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	logger := func() (*slog.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(logLevel)); err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
		return slog.New(systemd.NewLogHandler(stderr, &slog.HandlerOptions{Level: l})), nil
	}

	var config string
	runCmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the devices of a configuration file until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger()
			if err != nil {
				return err
			}
			if config == "" {
				return errors.New("run: --config is required")
			}
			specs, err := sim.LoadFile(config)
			if err != nil {
				return err
			}
			ready := make(chan sim.Spec)
			errc := make(chan error, 1)
			go func() {
				errc <- sim.RunNotify(cmd.Context(), specs, log, func(s sim.Spec) { ready <- s })
				close(ready)
			}()
			for s := range ready {
				fmt.Fprintf(stdout, "device %s (%s, hw %s, version on first start %s) at %s\n", s.ID, s.Kind, s.HardwareID, s.Version, s.Address)
			}
			return <-errc
		},
	}
	runCmd.Flags().StringVarP(&config, "config", "c", "", "configuration file (YAML, key devices:)")

	var hw, ver, out, format string
	var size int
	mkimage := &cobra.Command{
		Use:   "mkimage --hw HW --version V --size N [--format fgsim|mcuboot] -o FILE",
		Short: "Write a simulated firmware image (FGSIM1 header + deterministic payload), optionally wrapped as an MCUboot image",
		Long: `mkimage writes a simulated firmware image: the FGSIM1 header line and a
deterministic payload, --size bytes in all. With --format mcuboot the
image is wrapped as an unsigned MCUboot image (header, SHA-256 TLV) whose
body is that simulated firmware, --size bytes long: what the smp-udp and
smp-serial simulated devices boot. The MCUboot header carries --version,
which must then be major.minor.revision[.build].`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var missing []error
			if hw == "" {
				missing = append(missing, errors.New("--hw is required"))
			}
			if ver == "" {
				missing = append(missing, errors.New("--version is required"))
			}
			if out == "" {
				missing = append(missing, errors.New("-o is required"))
			}
			if size <= 0 {
				missing = append(missing, fmt.Errorf("--size %d must be positive", size))
			}
			if format != "fgsim" && format != "mcuboot" {
				missing = append(missing, fmt.Errorf("--format %q: want fgsim or mcuboot", format))
			}
			if err := errors.Join(missing...); err != nil {
				return fmt.Errorf("mkimage: %w", err)
			}
			img := sim.MakeImage(hw, ver, size)
			if format == "mcuboot" {
				var err error
				if img, err = sim.SMPImage(hw, ver, size); err != nil {
					return fmt.Errorf("mkimage: %w", err)
				}
			}
			if err := os.WriteFile(out, img, 0o644); err != nil {
				return fmt.Errorf("mkimage: %w", err)
			}
			fmt.Fprintf(stdout, "%s: %d bytes (%s), hw %s, version %s\n", out, len(img), format, hw, ver)
			return nil
		},
	}
	mkimage.Flags().StringVar(&hw, "hw", "", "hardware id")
	mkimage.Flags().StringVar(&ver, "version", "", "firmware version")
	mkimage.Flags().IntVar(&size, "size", 65536, "simulated firmware size in bytes, FGSIM1 header included (with mcuboot: the MCUboot body's size)")
	mkimage.Flags().StringVar(&format, "format", "fgsim", "image format: fgsim (FGSIM1 only) or mcuboot (FGSIM1 firmware in an MCUboot image, for SMP devices)")
	mkimage.Flags().StringVarP(&out, "output", "o", "", "output file")

	var linkA, linkB string
	var lc serialtest.Config
	var stallAfter int64
	var stallFor time.Duration
	lineCmd := &cobra.Command{
		Use:   "line --a PATH --b PATH [--baud N]",
		Short: "Join two new ptys (linked at --a and --b) with a paced line emulator, with optional faults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if linkA == "" || linkB == "" {
				return errors.New("line: --a and --b are required")
			}
			lc.AtoB.StallAfter, lc.AtoB.StallFor = stallAfter, stallFor
			lc.BtoA.DropEvery, lc.BtoA.CorruptEvery = lc.AtoB.DropEvery, lc.AtoB.CorruptEvery
			p, err := serialtest.NewPair(lc)
			if err != nil {
				return err
			}
			defer p.Close()
			if err := p.A.Link(linkA); err != nil {
				return err
			}
			if err := p.B.Link(linkB); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "line %s <-> %s at %d baud\n", linkA, linkB, lc.Baud)
			select {
			case <-cmd.Context().Done():
				return nil
			case <-p.Done():
				return errors.New("line: cut")
			}
		},
	}
	lineCmd.Flags().StringVar(&linkA, "a", "", "symlink to create for end A")
	lineCmd.Flags().StringVar(&linkB, "b", "", "symlink to create for end B")
	lineCmd.Flags().IntVar(&lc.Baud, "baud", 115200, "line rate (10 bits per byte); 0 = unpaced")
	lineCmd.Flags().IntVar(&lc.AtoB.DropEvery, "drop-every", 0, "drop every Nth byte (both directions)")
	lineCmd.Flags().IntVar(&lc.AtoB.CorruptEvery, "corrupt-every", 0, "corrupt every Nth byte (both directions)")
	lineCmd.Flags().Int64Var(&stallAfter, "stall-after", 0, "stall A→B once after this many bytes")
	lineCmd.Flags().DurationVar(&stallFor, "stall-for", time.Second, "length of the stall")
	lineCmd.Flags().Int64Var(&lc.AtoB.DisconnectAfter, "disconnect-after", 0, "cut the line after this many bytes A→B")

	var countersConfig string
	countersCmd := &cobra.Command{
		Use:   "counters --config FILE",
		Short: "Print each device's own counters (flash writes, partial writes, bytes written, boots) as JSON",
		Long: `counters reads the counters every simulated device keeps in its state
directory (` + sim.CountersFile + `) and prints them as one JSON object keyed by
device id, e.g. {"io16-a": {"writes": 2, "partial_writes": 0,
"bytes_written": 81920, "boots": 3}}. It works while fieldgate-sim run
serves the devices (the file is replaced atomically) and after it stopped.
A device that never started has zero counters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if countersConfig == "" {
				return errors.New("counters: --config is required")
			}
			specs, err := sim.LoadFile(countersConfig)
			if err != nil {
				return err
			}
			out := make(map[string]sim.Counters, len(specs))
			for _, s := range specs {
				c, err := sim.ReadCounters(s.StateDir)
				if err != nil {
					return fmt.Errorf("counters of %s: %w", s.ID, err)
				}
				out[s.ID] = c
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
	countersCmd.Flags().StringVarP(&countersConfig, "config", "c", "", "configuration file (YAML, key devices:)")

	root.AddCommand(runCmd, mkimage, lineCmd, countersCmd)
	return root
}
