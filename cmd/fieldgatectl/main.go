// Command fieldgatectl controls a running fieldgated over its local Unix
// socket: status, inventory and jobs; and diagnoses TUF repositories.
package main

import (
	"context"
	"encoding/json"
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

	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show gateway health, devices and jobs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := control.NewClient(socket).Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(stdout, st)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	root.AddCommand(status)
	root.AddCommand(controlCommands(&socket, stdout)...)
	root.AddCommand(remoteCommand(stdout))
	root.AddCommand(tufCommand())
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// printStatus renders the status for a person at a console.
func printStatus(w io.Writer, st api.Status) {
	g := st.Gateway
	health := "healthy"
	if !g.Healthy {
		health = "NOT HEALTHY"
	}
	fmt.Fprintf(w, "gateway %s/%s  fieldgated %s  %s  %s\n", g.Site, g.ID, g.Version, orDash(g.State), health)
	for _, c := range g.Health {
		subj := ""
		if c.Subject != "" {
			subj = " [" + c.Subject + "]"
		}
		fmt.Fprintf(w, "  %-7s %s%s: %s (since %s)\n", c.Severity, c.Name, subj, c.Message, c.Since.Format(time.RFC3339))
	}
	exp := "unknown (no refresh yet)"
	if g.MetadataExpires != nil {
		exp = g.MetadataExpires.Format(time.RFC3339)
	}
	broker := "disconnected"
	if g.BrokerConnected {
		broker = "connected"
	}
	fmt.Fprintf(w, "  clock %s  metadata expires %s  broker %s  outbox %d\n", g.Time.Format(time.RFC3339), exp, broker, g.OutboxDepth)
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
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Protocol, d.HardwareID, orDash(d.Version), d.State, progress(d.Progress), d.Floor, orDash(d.LastError))
	}
	tw.Flush()
	for _, d := range st.Devices {
		if d.Recovery != "" {
			fmt.Fprintf(w, "  %s NEEDS RECOVERY: %s (fieldgatectl recover %s)\n", d.ID, d.Recovery, d.ID)
		}
		for _, h := range d.Held {
			fmt.Fprintf(w, "  %s held: %s %s since %s: %s (fieldgatectl retry %s)\n", d.ID, h.Target, h.Version, h.Since.Format(time.RFC3339), h.Reason, d.ID)
		}
	}

	fmt.Fprintln(w, "\nJOBS")
	printJobs(w, st.Jobs)
}

func printJobs(w io.Writer, jobs []api.Job) {
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
			fmt.Fprintf(w, "    approved (%s) by %s at %s, expires %s\n", a.Kind, a.Actor, a.At.Format(time.RFC3339), a.Expires.Format(time.RFC3339))
		}
		for _, s := range j.Steps {
			line := fmt.Sprintf("    %-12s %-12s attempts %d", s.Device, s.Phase, s.Attempts)
			if s.Progress != nil {
				line += "  " + progress(s.Progress)
			}
			if s.Blocked != "" {
				line += "  (" + s.Blocked + ")"
			}
			if s.Error != "" {
				line += "  " + s.Error
			}
			fmt.Fprintln(w, line)
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

func progress(p *api.Progress) string {
	if p == nil || p.Total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%% (%d/%d)", p.Done*100/p.Total, p.Done, p.Total)
}
