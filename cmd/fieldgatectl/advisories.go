// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
)

// advisoriesCommand prints which advisories concern which device, from
// the daemon's control socket (GET /v1/advisories).
func advisoriesCommand(socket *string, stdout io.Writer) *cobra.Command {
	var device string
	var asJSON bool
	c := &cobra.Command{
		Use:   "advisories",
		Short: "Print the advisories matched to each device: CVE, KEV, CVSS, status, fixing update, priority and its reasons",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var adv api.Advisories
			if err := control.NewClient(*socket).Get(cmd.Context(), "/v1/advisories", &adv); err != nil {
				return fmt.Errorf("advisories: %w", err)
			}
			if device != "" {
				var keep []api.DeviceAdvisories
				for _, d := range adv.Devices {
					if d.Device == device {
						keep = append(keep, d)
					}
				}
				if keep == nil {
					return fmt.Errorf("--device %s: no such device on gateway %s", device, adv.Gateway)
				}
				adv.Devices = keep
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(adv)
			}
			return printAdvisories(stdout, adv)
		},
	}
	c.Flags().StringVar(&device, "device", "", "only this device")
	c.Flags().BoolVar(&asJSON, "json", false, "print the daemon's document (one entry per device, as published on {prefix}/advisories/{device})")
	return c
}

// printAdvisories writes one row per (device, advisory, CVE); a device no
// advisory concerns gets one row with its priority, none.
func printAdvisories(w io.Writer, adv api.Advisories) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tADVISORY\tCVE\tKEV\tCVSS\tSTATUS\tFIXED BY\tPRIORITY\tREASONS")
	for _, d := range adv.Devices {
		reasons := strings.Join(d.Reasons, "; ")
		if len(d.Matches) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t%s\t%s\n", d.Device, d.Priority, reasons)
			continue
		}
		for _, m := range d.Matches {
			for _, c := range m.CVEs {
				kev := "no"
				if c.KEV {
					kev = "yes"
				}
				cvss := "-"
				if c.CVSS > 0 {
					cvss = strconv.FormatFloat(c.CVSS, 'f', 1, 64)
				}
				fixed := dash(c.FixedBy)
				if c.FixedByTarget != "" {
					fixed += " (" + c.FixedByTarget + ")"
				}
				status := c.Status
				if c.Verdict != "" {
					status += " [" + c.Verdict + "]"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Device, m.Advisory, c.CVE, kev, cvss, status, fixed, d.Priority, reasons)
			}
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
