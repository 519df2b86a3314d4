// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
)

// controlCommands are the commands that talk to a running fieldgated.
func controlCommands(socket *string, stdout io.Writer) []*cobra.Command {
	client := func() *control.Client { return control.NewClient(*socket) }
	post := func(cmd *cobra.Command, path string, req control.Request, done string) error {
		rep, err := client().Post(cmd.Context(), path, req)
		if err != nil {
			return err
		}
		if rep.Job != "" {
			done = strings.ReplaceAll(done, "JOB", rep.Job)
		}
		fmt.Fprintln(stdout, done)
		return nil
	}

	approve := &cobra.Command{
		Use:   "approve [JOB]",
		Short: "Approve a job locally (without JOB: the one awaiting local approval in an open window)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := control.Request{}
			if len(args) == 1 {
				req.Job = args[0]
			}
			return post(cmd, "/v1/approve", req, "approved JOB")
		},
	}
	cancel := &cobra.Command{
		Use: "cancel JOB", Short: "Cancel a job: pending devices are skipped, running ones finish their step",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(cmd, "/v1/cancel", control.Request{Job: args[0]}, "cancelled JOB")
		},
	}
	var until string
	deferCmd := &cobra.Command{
		Use: "defer JOB --until TIME", Short: "Postpone a job's pending devices until TIME (RFC 3339, or as fieldgatectl prints times) or for a duration (e.g. 24h)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseUntil(until, time.Now())
			if err != nil {
				return err
			}
			return post(cmd, "/v1/defer", control.Request{Job: args[0], Until: t}, "deferred JOB until "+timesOf(cmd).at(t))
		},
	}
	deferCmd.Flags().StringVar(&until, "until", "", "a time (2026-12-01T02:00:00Z, 2026-12-01 03:00:00 +01:00) or a duration from now (24h)")
	deferCmd.MarkFlagRequired("until")

	stop := &cobra.Command{
		Use: "stop", Short: "Emergency stop: no new device step starts until resume", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return post(cmd, "/v1/stop", control.Request{}, "emergency stop active: no new device step starts (fieldgatectl resume lifts it)")
		},
	}
	resume := &cobra.Command{
		Use: "resume", Short: "Lift the emergency stop", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return post(cmd, "/v1/resume", control.Request{}, "emergency stop lifted")
		},
	}
	refresh := &cobra.Command{
		Use: "refresh", Short: "Refresh update metadata now", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return post(cmd, "/v1/refresh", control.Request{}, "refresh requested")
		},
	}

	var hold time.Duration
	press := &cobra.Command{
		Use: "press BUTTON", Short: "Press a button of the virtual board (--hold 3s: long press, 10s: emergency stop)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(cmd, "/v1/board/press", control.Request{Button: args[0], Hold: hold}, fmt.Sprintf("pressed %s for %s", args[0], hold))
		},
	}
	press.Flags().DurationVar(&hold, "hold", 100*time.Millisecond, "how long the button is held")
	boardCmd := &cobra.Command{Use: "board", Short: "The gateway's buttons (virtual board)"}
	boardCmd.AddCommand(press)

	export := &cobra.Command{
		Use: "export", Short: "Print the audit log as JSON lines", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return client().Get(cmd.Context(), "/v1/audit", stdout) },
	}
	verify := &cobra.Command{
		Use: "verify", Short: "Verify the audit log's hash chain", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := client().Post(cmd.Context(), "/v1/audit/verify", control.Request{})
			if err != nil {
				return fmt.Errorf("audit chain broken: %w", err)
			}
			fmt.Fprintf(stdout, "audit chain intact: %d records\n", rep.Count)
			return nil
		},
	}
	audit := &cobra.Command{Use: "audit", Short: "The audit log"}
	audit.AddCommand(export, verify)

	windows := &cobra.Command{
		Use: "windows", Short: "Show each group's window and its next openings", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ws []api.WindowInfo
			if err := client().Get(cmd.Context(), "/v1/windows", &ws); err != nil {
				return err
			}
			printWindows(stdout, ws, timesOf(cmd))
			return nil
		},
	}
	jobs := &cobra.Command{
		Use: "jobs", Short: "Show jobs and what each waits for", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := client().Status(cmd.Context())
			if err != nil {
				return err
			}
			printJobs(stdout, st.Jobs, st.Gateway.Time, timesOf(cmd))
			return nil
		},
	}
	importCmd := &cobra.Command{
		Use: "import DIR", Short: "Verify an offline bundle (fieldgate-repo export) with the gateway's trust and stage its updates",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			rep, err := client().Post(cmd.Context(), "/v1/import", control.Request{Dir: dir})
			if err != nil {
				return err
			}
			if rep.Count == 0 {
				fmt.Fprintln(stdout, "bundle verified: no job staged (no device needs its targets, or they are held)")
				return nil
			}
			fmt.Fprintf(stdout, "bundle verified: %d job(s) staged\n", rep.Count)
			return nil
		},
	}
	retry := &cobra.Command{
		Use:   "retry DEVICE|JOB",
		Short: "Lift the hold on a failed, rolled-back or cancelled update: the next staging runs it once more",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := client().Post(cmd.Context(), "/v1/retry", control.Request{Device: args[0]})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "hold lifted on %d device(s); the update is staged again\n", rep.Count)
			return nil
		},
	}
	var image string
	recoverCmd := &cobra.Command{
		Use:   "recover DEVICE [--image known-good|TARGET]",
		Short: "Push a verified image to a device that needs recovery (default: its known-good version)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(cmd, "/v1/recover", control.Request{Device: args[0], Image: image}, "recovery job JOB scheduled (runs in the device's window)")
		},
	}
	recoverCmd.Flags().StringVar(&image, "image", "known-good", "known-good, or the name of a signed target for the device")
	return []*cobra.Command{importCmd, approve, cancel, deferCmd, stop, resume, refresh, retry, recoverCmd, boardCmd, audit, windows, jobs}
}

// printWindows lists each group's window: open until when, and the next
// openings.
func printWindows(w io.Writer, ws []api.WindowInfo, tf timeFormat) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tWINDOW\tZONE\tNOW\tNEXT OPENINGS")
	for _, w := range ws {
		now := "closed"
		if w.Open && w.Closes != nil {
			now = "open until " + tf.at(*w.Closes)
		}
		var next []string
		for _, t := range w.Next {
			next = append(next, tf.at(t))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.Group, w.Window, w.TimeZone, now, strings.Join(next, ", "))
	}
	tw.Flush()
}

// parseUntil reads a duration from now, an RFC 3339 time, or a time as
// fieldgatectl prints them (timeLayout, with or without seconds).
func parseUntil(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--until %q: the duration must be positive", s)
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339, timeLayout, "2006-01-02 15:04 -07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--until %q: want a time (2026-12-01T02:00:00Z or 2026-12-01 03:00:00 +01:00) or a duration (24h)", s)
}
