// SPDX-License-Identifier: Apache-2.0

// Command fieldgate-demo runs the whole update path on one machine with
// the real binaries: it builds a signed repository with fieldgate-repo,
// serves it, starts simulated serial devices with fieldgate-sim, runs
// fieldgated (with its embedded MQTT broker) inside an open window, watches
// the retained MQTT status as a central dashboard would, and stops
// everything when every device reports the new version. `make demo` runs it,
// then `fieldgate-demo patch-loop`: an advisory matched, the fix tested on a
// staging gateway, approved once its signed report is published, installed,
// and the advisory fixed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fieldgate-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "patch-loop" {
		return runPatchLoopCmd(ctx, args[1:], out)
	}
	fs := flag.NewFlagSet("fieldgate-demo", flag.ContinueOnError)
	bin := fs.String("bin", "dist", "directory holding the fieldgate binaries")
	work := fs.String("work", ".demo", "work directory (wiped first)")
	timeout := fs.Duration("timeout", 90*time.Second, "give up after this long")
	approval := fs.String("approval", "local", "approval policy of the demo's device group: auto, or local (the demo presses the virtual button)")
	emulator := fs.String("emulator", "", "run the binaries through this emulator (e.g. qemu-aarch64-static)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	absBin, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := Run(ctx, Options{Bin: absBin, Work: *work, Out: out, Devices: 2, Emulator: *emulator, Approval: *approval})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\ndemo finished in %s: %d devices updated to %s\n", res.Elapsed.Round(time.Millisecond), len(res.Devices), res.Version)
	return nil
}
