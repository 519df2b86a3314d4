// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// rolloutFlags are the flags of a staged rollout, declared by add (as
// --rollout-percent, --rollout-site, …) and by rollout (as --percent,
// --site, …) from this one place.
type rolloutFlags struct {
	prefix            string
	percent           int
	notBefore         string
	sites, gateways   []string
	percentF, beforeF string // the flags' names
}

const rolloutHelp = "A gateway takes the target only when its cohort (0..99, a hash of its site and id,\n" +
	"the same for every target: fieldgatectl status shows it) is below the percent, its\n" +
	"site or id is listed (when sites or gateways are given), and not-before has passed.\n" +
	"Widen by raising the percent; percent 0 halts the rollout: no gateway stages the target\n" +
	"and pending device steps of open jobs wait, while steps already running finish.\n" +
	"Gateways older than rollouts refuse a target that carries one."

// declare adds the rollout flags to f, each name prefixed with r.prefix.
func (r *rolloutFlags) declare(f *pflag.FlagSet) {
	r.percentF, r.beforeF = r.prefix+"percent", r.prefix+"not-before"
	f.IntVar(&r.percent, r.percentF, 0, "staged rollout: percent of gateways (by cohort) that take the target, 0..100 (0 halts)")
	f.StringVar(&r.notBefore, r.beforeF, "", "staged rollout: no gateway takes the target before this time (RFC 3339, e.g. 2026-06-01T22:00:00Z)")
	f.StringArrayVar(&r.sites, r.prefix+"site", nil, "staged rollout: only gateways of this site (repeatable), or listed by --"+r.prefix+"gateway")
	f.StringArrayVar(&r.gateways, r.prefix+"gateway", nil, "staged rollout: only the gateway with this id (repeatable), or of a site listed by --"+r.prefix+"site")
}

// rollout returns the rollout the flags describe: nil when none of them is
// set, an error when some are set without the percent.
func (r *rolloutFlags) rollout(f *pflag.FlagSet) (*tuf.Rollout, error) {
	if !f.Changed(r.percentF) {
		if f.Changed(r.beforeF) || len(r.sites) > 0 || len(r.gateways) > 0 {
			return nil, fmt.Errorf("--%s is required with the other rollout flags", r.percentF)
		}
		return nil, nil
	}
	ro := &tuf.Rollout{Percent: r.percent, Sites: r.sites, Gateways: r.gateways}
	if r.notBefore != "" {
		t, err := time.Parse(time.RFC3339, r.notBefore)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: want RFC 3339, e.g. 2026-06-01T22:00:00Z", r.beforeF, r.notBefore)
		}
		ro.NotBefore = t.UTC()
	}
	if err := ro.Validate(); err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return ro, nil
}

func rolloutCmd() *cobra.Command {
	var (
		flags = rolloutFlags{}
		clear bool
	)
	c := &cobra.Command{
		Use:   "rollout DIR TARGET --percent N [--not-before TIME] [--site S]... [--gateway ID]... | --clear",
		Short: "Stage a new rollout (widen, narrow, halt) of a published target (commit publishes it)",
		Long: "rollout changes the staged rollout of TARGET, in the role that lists it (targets or a\n" +
			"delegated role): same file, same hashes, new signed metadata. commit publishes a new\n" +
			"version of that role. --clear removes the rollout: every gateway takes the target.\n\n" +
			rolloutHelp,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ro, err := flags.rollout(cmd.Flags())
			if err != nil {
				return err
			}
			switch {
			case clear && (ro != nil || cmd.Flags().Changed(flags.beforeF)):
				return errors.New("--clear and the rollout flags: one or the other")
			case !clear && ro == nil:
				return errors.New("--percent (or --clear) is required")
			}
			r, err := publish.Open(args[0])
			if err != nil {
				return err
			}
			role, err := r.SetRollout(args[1], ro)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "staged %s's rollout in role %s: %s (run commit to publish)\n", args[1], role, describeRollout(ro))
			return nil
		},
	}
	flags.declare(c.Flags())
	c.Flags().BoolVar(&clear, "clear", false, "remove the rollout: every gateway takes the target")
	return c
}

// describeRollout says what ro means, in one line.
func describeRollout(ro *tuf.Rollout) string {
	if ro == nil {
		return "every gateway"
	}
	s := fmt.Sprintf("%d %%", ro.Percent)
	if ro.Percent == 0 {
		s += " (halted)"
	}
	if !ro.NotBefore.IsZero() {
		s += ", not before " + ro.NotBefore.Format(time.RFC3339)
	}
	if len(ro.Sites) > 0 {
		s += ", sites " + strings.Join(ro.Sites, " ")
	}
	if len(ro.Gateways) > 0 {
		s += ", gateways " + strings.Join(ro.Gateways, " ")
	}
	return s
}
