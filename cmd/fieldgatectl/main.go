// SPDX-License-Identifier: Apache-2.0

// Command fieldgatectl controls a running fieldgated over its local Unix
// socket: status, inventory and jobs; and diagnoses TUF repositories.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fieldgatectl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func newRoot(stdout io.Writer) *cobra.Command {
	var socket string
	root := &cobra.Command{
		Use:           "fieldgatectl",
		Short:         "Control a running fieldgated",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&socket, "socket", envOr("FIELDGATE_GATEWAY_SOCKET", "/run/fieldgate/fieldgated.sock"), "fieldgated's control socket")
	root.PersistentFlags().Bool("utc", false, "print times in UTC (default: local time with its UTC offset)")

	var (
		asJSON bool
		watch  watchFlags
	)
	status := &cobra.Command{
		Use:   "status",
		Short: "Show gateway health, devices and jobs (--watch: a live view)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if watch.on {
				if asJSON {
					return errors.New("--json and --watch: choose one")
				}
				return watch.run(cmd.Context(), socket, stdout, timesOf(cmd))
			}
			st, err := control.NewClient(socket).Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(stdout, st, timesOf(cmd))
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	status.Flags().BoolVarP(&watch.on, "watch", "w", false, "a live view, redrawn every --interval (plain lines per change when stdout is not a terminal)")
	status.Flags().DurationVar(&watch.interval, "interval", time.Second, "how often --watch asks the daemon")
	var alias watchFlags
	watchCmd := &cobra.Command{
		Use:   "watch",
		Short: "A live view of transfers, soaks, windows, health and holds (status --watch)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return alias.run(cmd.Context(), socket, stdout, timesOf(cmd))
		},
	}
	watchCmd.Flags().DurationVar(&alias.interval, "interval", time.Second, "how often to ask the daemon")
	root.AddCommand(status, watchCmd, inventoryCommand(&socket, stdout), advisoriesCommand(&socket, stdout))
	root.AddCommand(controlCommands(&socket, stdout)...)
	root.AddCommand(reportsCommand(&socket, stdout))
	root.AddCommand(triageCommand(&socket, stdout))
	root.AddCommand(remoteCommand(stdout))
	root.AddCommand(fleetCommand(stdout))
	root.AddCommand(tufCommand())
	root.AddCommand(trustCommand())
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// timeFormat renders instants for people, one rule for every command:
// local time with its UTC offset, or UTC (--utc). The zero value is UTC.
type timeFormat struct{ loc *time.Location }

// timesOf returns the format the persistent --utc flag asks for.
func timesOf(cmd *cobra.Command) timeFormat {
	if utc, _ := cmd.Flags().GetBool("utc"); utc {
		return timeFormat{loc: time.UTC}
	}
	return timeFormat{loc: time.Local}
}

// timeLayout is how every instant is printed; parseUntil reads it back.
const timeLayout = "2006-01-02 15:04:05 -07:00"

// at formats t, or "-" for the zero time.
func (f timeFormat) at(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if f.loc == nil {
		return t.UTC().Format(timeLayout)
	}
	return t.In(f.loc).Format(timeLayout)
}

// printStatus renders the status for a person at a console.
func printStatus(w io.Writer, st api.Status, tf timeFormat) {
	g := st.Gateway
	health := "healthy"
	if !g.Healthy {
		health = "NOT HEALTHY"
	}
	fmt.Fprintf(w, "gateway %s/%s  fieldgated %s  %s  %s\n", g.Site, g.ID, g.Version, orDash(g.State), health)
	for _, c := range g.Health {
		fmt.Fprintf(w, "  %s\n", conditionLine(c, tf))
	}
	exp := "unknown (no refresh yet)"
	if g.MetadataExpires != nil {
		exp = tf.at(*g.MetadataExpires)
	}
	broker := "disconnected"
	if g.BrokerConnected {
		broker = "connected"
	}
	fmt.Fprintf(w, "  clock %s  metadata expires %s  broker %s  outbox %d\n", tf.at(g.Time), exp, broker, g.OutboxDepth)
	if len(g.LEDs) > 0 {
		names := make([]string, 0, len(g.LEDs))
		for n := range g.LEDs {
			names = append(names, n)
		}
		sort.Strings(names)
		var parts []string
		for _, n := range names {
			parts = append(parts, n+"="+g.LEDs[n])
		}
		fmt.Fprintf(w, "  leds %s  (display page: %s)\n", strings.Join(parts, " "), g.Display)
	}

	fmt.Fprintln(w, "\nDEVICES")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tPROTOCOL\tHARDWARE\tVERSION\tSTATE\tPROGRESS\tFLOOR\tLAST ERROR")
	for _, d := range st.Devices {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Protocol, d.HardwareID, orDash(d.Version), d.State, percent(d.Progress), d.Floor, orDash(d.LastError))
	}
	tw.Flush()
	for _, d := range st.Devices {
		if d.Recovery != "" {
			fmt.Fprintf(w, "  %s NEEDS RECOVERY: %s (fieldgatectl recover %s)\n", d.ID, d.Recovery, d.ID)
		}
		for _, h := range d.Held {
			fmt.Fprintf(w, "  %s\n", holdLine(d.ID, h, tf))
		}
	}

	fmt.Fprintln(w, "\nJOBS")
	printJobs(w, st.Jobs, g.Time, tf)
}

// conditionLine describes one health condition.
func conditionLine(c api.Condition, tf timeFormat) string {
	subj := ""
	if c.Subject != "" {
		subj = " [" + c.Subject + "]"
	}
	return fmt.Sprintf("%-7s %s%s: %s (since %s)", c.Severity, c.Name, subj, c.Message, tf.at(c.Since))
}

// holdLine describes one update held back from device dev.
func holdLine(dev string, h api.Hold, tf timeFormat) string {
	return fmt.Sprintf("%s held: %s %s since %s: %s (fieldgatectl retry %s)", dev, h.Target, h.Version, tf.at(h.Since), h.Reason, dev)
}

// printJobs lists jobs with their steps; now is the gateway's clock, for
// the time a soak has left.
func printJobs(w io.Writer, jobs []api.Job, now time.Time, tf timeFormat) {
	if len(jobs) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, j := range jobs {
		fmt.Fprintf(w, "  %s  %s  %s  group %s  window %s  approval %s  sha256 %.16s…  %s\n",
			j.ID, j.Target, j.Phase, j.Group, j.Window, j.Policy, j.SHA256, j.Reason)
		if j.Waiting != "" && !terminalJob(j.Phase) {
			fmt.Fprintf(w, "    waiting: %s\n", j.Waiting)
		}
		for _, a := range j.Approvals {
			fmt.Fprintf(w, "    approved (%s) by %s at %s, expires %s\n", a.Kind, a.Actor, tf.at(a.At), tf.at(a.Expires))
		}
		for _, s := range j.Steps {
			fmt.Fprintln(w, "    "+stepLine(s, stepView{now: now, tf: tf, bar: barWidth}))
		}
	}
}

func terminalJob(p string) bool {
	switch p {
	case "succeeded", "partially-failed", "failed", "halted", "cancelled":
		return true
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// percent is a transfer's progress in whole percent, or "-".
func percent(p *api.Progress) string {
	if p == nil || p.Total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", p.Done*100/p.Total)
}
