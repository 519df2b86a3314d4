// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/internal/atomicfile"
)

// reportSummary is the part of a signed test report the table shows; the
// daemon verified it before handing it out.
type reportSummary struct {
	ID         string `json:"id"`
	Gateway    string `json:"gateway"`
	Target     string `json:"target"`
	SHA256     string `json:"sha256"`
	Version    string `json:"version"`
	HardwareID string `json:"hardware_id"`
	Device     string `json:"device"`
	ReadBack   string `json:"version_read_back"`
	Soak       int64  `json:"soak_seconds"`
	Finished   string `json:"finished"`
	Expires    string `json:"expires"`
	Key        string `json:"key"`
}

func reportsCommand(socket *string, stdout io.Writer) *cobra.Command {
	var export string
	cmd := &cobra.Command{
		Use:   "reports [--export DIR]",
		Short: "List the staging test reports the gateway holds (signed here, or verified from the repository or an import)",
		Long: `List the staging test reports the gateway holds and that verify now: on a
staging gateway those it signed, on a production gateway those it verified
from TUF documents or "reports import". --export writes each signed report to
DIR as <sha256>-<hardware_id>-<device>.json, for "fieldgate-repo report add".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reps, err := control.NewClient(*socket).TestReports(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SHA256\tHARDWARE\tVERSION\tREAD BACK\tSOAK\tDEVICE\tKEY\tFINISHED\tEXPIRES")
			for _, raw := range reps {
				var s reportSummary
				if err := json.Unmarshal(raw, &s); err != nil {
					return fmt.Errorf("reports: %w", err)
				}
				short := s.SHA256
				if len(short) > 12 {
					short = short[:12]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", short, s.HardwareID, s.Version, s.ReadBack,
					time.Duration(s.Soak)*time.Second, s.Device, s.Key, s.Finished, s.Expires)
				if export != "" {
					name := s.SHA256 + "-" + s.HardwareID + "-" + s.Device + ".json"
					if filepath.Base(name) != name {
						return fmt.Errorf("reports: report %s: unusable file name %q", s.ID, name)
					}
					if err := os.MkdirAll(export, 0o755); err != nil {
						return err
					}
					if err := atomicfile.Write(filepath.Join(export, name), raw, 0o644); err != nil {
						return fmt.Errorf("reports: export: %w", err)
					}
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if export != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d report(s) to %s\n", len(reps), export)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&export, "export", "", "also write each signed report into this directory")
	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE",
		Short: "Verify a signed test report carried to the site by hand and keep it for require_tested (audited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			abs, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			rep, err := control.NewClient(*socket).Post(cmd.Context(), "/v1/reports/import", control.Request{File: abs})
			if err != nil {
				return err
			}
			if rep.Count == 0 {
				fmt.Fprintf(stdout, "test report %s already held\n", rep.Job)
			} else {
				fmt.Fprintf(stdout, "imported test report %s\n", rep.Job)
			}
			return nil
		},
	})
	return cmd
}
