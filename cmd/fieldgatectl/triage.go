// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/advisory"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// verdictFlags are the flags that say what a triage verdict is, shared by
// `fieldgatectl triage` and `fieldgatectl remote triage`.
type verdictFlags struct {
	cve, notAffected, until, control, note string
}

func (f *verdictFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cve, "cve", "", "the verdict is on this CVE of the advisory only (default: every CVE it has for the device)")
	fl.StringVar(&f.notAffected, "not-affected", "", "not affected, with this VEX justification (a CSAF flag label, e.g. component_not_present)")
	fl.StringVar(&f.until, "accept-risk-until", "", "risk accepted until this day (YYYY-MM-DD, UTC; at most 5 years ahead)")
	fl.StringVar(&f.control, "mitigated-by", "", "mitigated by this named compensating control")
	fl.StringVar(&f.note, "note", "", "free text kept with the verdict")
}

// verdict builds the verdict on device and adv from the flags and checks
// it at now as the gateway will.
func (f verdictFlags) verdict(device, adv string, now time.Time) (advisory.Verdict, error) {
	v := advisory.Verdict{Device: device, Advisory: adv, CVE: f.cve, Note: f.note}
	n := 0
	if f.notAffected != "" {
		v.Kind, v.Justification, n = advisory.VerdictNotAffected, f.notAffected, n+1
	}
	if f.until != "" {
		v.Kind, v.Until, n = advisory.VerdictRiskAccepted, f.until, n+1
	}
	if f.control != "" {
		v.Kind, v.Control, n = advisory.VerdictMitigated, f.control, n+1
	}
	if n != 1 {
		return v, errors.New("give exactly one of --not-affected JUSTIFICATION, --accept-risk-until DATE, --mitigated-by CONTROL")
	}
	if v.Kind == advisory.VerdictNotAffected && !slices.Contains(advisory.Justifications, v.Justification) {
		return v, fmt.Errorf("--not-affected %q: want one of %s", v.Justification, strings.Join(advisory.Justifications, ", "))
	}
	return v, v.Validate(now)
}

// triageCommand is `fieldgatectl triage`: record, remove and list the
// site's verdicts on advisories through the control socket.
func triageCommand(socket *string, stdout io.Writer) *cobra.Command {
	var (
		vf           verdictFlags
		remove, list bool
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use: "triage DEVICE ADVISORY [--cve CVE] (--not-affected JUSTIFICATION | --accept-risk-until DATE | --mitigated-by CONTROL) [--note TEXT]\n" +
			"  triage --remove DEVICE ADVISORY [--cve CVE]\n  triage --list [--json]",
		Short: "Record, remove or list the site's verdicts on advisories (not affected, risk accepted, mitigated)",
		Long: `Record the site's verdict on an advisory for a device: not affected (with a
VEX justification), risk accepted until a date, or mitigated by a named
compensating control; on one CVE of the advisory (--cve) or on every CVE it
has for the device. The gateway keeps the verdict across restarts, audits
it (triage-recorded, triage-removed) with the local user who asked, and
applies it to the device's advisories: a finding with a verdict no longer
drives the device's priority. A verdict holds for the advisory revision it
was recorded against; a later revision that says something else about the
device shows "needs-review" instead, and a risk acceptance past its date
stops holding.

A verdict on the same device, advisory and CVE replaces the one before.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if list {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			client := control.NewClient(*socket)
			ctx := cmd.Context()
			switch {
			case list:
				vs, err := client.Verdicts(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(vs)
				}
				printVerdicts(stdout, vs, timesOf(cmd))
				return nil
			case remove:
				if vf.notAffected != "" || vf.until != "" || vf.control != "" || vf.note != "" {
					return errors.New("--remove takes DEVICE ADVISORY and --cve only")
				}
				if err := client.RemoveVerdict(ctx, args[0], args[1], vf.cve); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "removed the verdict on %s for %s\n", verdictScope(args[1], vf.cve), args[0])
				return nil
			}
			v, err := vf.verdict(args[0], args[1], time.Now())
			if err != nil {
				return err
			}
			got, err := client.RecordVerdict(ctx, v)
			if err != nil {
				return err
			}
			rev := "no current match: holds for every revision"
			if got.Revision != "" {
				rev = "against revision " + got.Revision
			}
			fmt.Fprintf(stdout, "recorded %s on %s for %s (%s)\n", verdictLabel(got), verdictScope(got.Advisory, got.CVE), got.Device, rev)
			return nil
		},
	}
	vf.add(cmd)
	cmd.Flags().BoolVar(&remove, "remove", false, "remove the verdict on DEVICE ADVISORY (and --cve)")
	cmd.Flags().BoolVar(&list, "list", false, "list every verdict")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --list: print the verdicts as JSON")
	cmd.MarkFlagsMutuallyExclusive("remove", "list")
	return cmd
}

func verdictScope(adv, cve string) string {
	if cve == "" {
		return adv + " (every CVE)"
	}
	return adv + " " + cve
}

// verdictLabel is the verdict as a table or a message shows it.
func verdictLabel(v advisory.Verdict) string {
	switch v.Kind {
	case advisory.VerdictNotAffected:
		return "not affected (" + v.Justification + ")"
	case advisory.VerdictRiskAccepted:
		return "risk accepted until " + v.Until
	case advisory.VerdictMitigated:
		return "mitigated by " + v.Control
	}
	return string(v.Kind)
}

func printVerdicts(w io.Writer, vs []advisory.Verdict, tf timeFormat) {
	if len(vs) == 0 {
		fmt.Fprintln(w, "no verdicts")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tADVISORY\tCVE\tVERDICT\tREVISION\tBY\tAT\tNOTE")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Device, v.Advisory, cmpOr(v.CVE, "(all)"), verdictLabel(v),
			cmpOr(v.Revision, "-"), cmpOr(v.Actor, "-"), tf.at(v.At), cmpOr(v.Note, "-"))
	}
	tw.Flush()
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// remoteTriage is `fieldgatectl remote triage`: the same verdict as a
// signed command (action triage).
func remoteTriage() (*cobra.Command, func(args []string, now time.Time) (mqtt.Command, error)) {
	var vf verdictFlags
	cmd := &cobra.Command{
		Use:   "triage DEVICE ADVISORY [--cve CVE] (--not-affected JUSTIFICATION | --accept-risk-until DATE | --mitigated-by CONTROL) [--note TEXT]",
		Short: "Record the site's verdict on an advisory for a device (not affected, risk accepted, mitigated)",
		Args:  cobra.ExactArgs(2),
	}
	vf.add(cmd)
	return cmd, func(args []string, now time.Time) (mqtt.Command, error) {
		v, err := vf.verdict(args[0], args[1], now)
		if err != nil {
			return mqtt.Command{}, err
		}
		return mqtt.Command{Action: mqtt.ActionTriage, Device: v.Device, Advisory: v.Advisory, CVE: v.CVE, Verdict: string(v.Kind),
			Justification: v.Justification, Until: v.Until, Control: v.Control, Note: v.Note}, nil
	}
}
