// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/testreport"
	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// reportTargetDir is where test reports live among the targets.
const reportTargetDir = "test-reports/"

func reportCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "report",
		Short: "Publish staging test reports as documents, for production groups with require_tested",
	}
	c.AddCommand(reportAddCmd())
	return c
}

func reportAddCmd() *cobra.Command {
	var (
		keys []string
		role string
	)
	c := &cobra.Command{
		Use:   "add DIR REPORT.json... --staging-key ID=PUBLIC_KEY",
		Short: "Verify staging test reports and stage them as document targets (commit publishes them)",
		Long: "report add verifies each REPORT.json (as fieldgatectl reports --export writes them on a\n" +
			"staging gateway) against the staging public keys given, refuses an expired, malformed or\n" +
			"unverifiable one, and stages it as the document target\n" +
			reportTargetDir + "<sha256>/<hardware_id>/<key>-<device>.json of kind test-report.\n" +
			"Production gateways fetch it with the same signature, freshness and rollback checks as\n" +
			"firmware, in the same snapshot (and offline bundle) as the image it vouches for, verify it\n" +
			"again against their own staging_keys and keep it for groups[].require_tested.\n\n" +
			"A newer test of the same device replaces the older one; an older one is refused unless it\n" +
			"is the same report again. Every REPORT is checked before anything is staged.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := parseStagingKeys(keys)
			if err != nil {
				return err
			}
			type checked struct {
				file, name string
				meta       tuf.DocumentMeta
			}
			var docs []checked
			var errs []string
			now := time.Now()
			for _, file := range args[1:] {
				raw, err := readReportFile(file)
				if err == nil {
					var r testreport.Report
					if r, err = testreport.Parse(raw, pub, now); err == nil {
						if err = r.Passed(); err == nil {
							docs = append(docs, checked{file: file,
								name: reportTargetDir + r.SHA256 + "/" + r.HardwareID + "/" + r.Key + "-" + r.Device + ".json",
								meta: tuf.DocumentMeta{Kind: tuf.DocumentTestReport, ID: r.ID,
									Revision: strconv.FormatInt(r.Finished.Unix(), 10), Released: r.Finished}})
						}
					}
				}
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", file, err))
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("report add: %d of %d report(s) refused, nothing staged:\n  %s", len(errs), len(args)-1, strings.Join(errs, "\n  "))
			}
			r, err := publish.Open(args[0])
			if err != nil {
				return err
			}
			opts := publish.DocumentOptions{Role: role}
			for _, d := range docs {
				if _, err := r.CheckDocument(d.name, d.file, d.meta, opts); err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", d.file, err))
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("report add: %d of %d report(s) refused, nothing staged:\n  %s", len(errs), len(args)-1, strings.Join(errs, "\n  "))
			}
			w := cmd.OutOrStdout()
			for _, d := range docs {
				res, err := r.AddDocument(d.name, d.file, d.meta, opts)
				if err != nil {
					return fmt.Errorf("%s: %w", d.file, err)
				}
				if res.Unchanged {
					fmt.Fprintf(w, "unchanged %s (%s)\n", d.name, d.meta.ID)
				} else {
					fmt.Fprintf(w, "staged %s (%s)\n", d.name, d.meta.ID)
				}
			}
			fmt.Fprintln(w, "run commit to publish")
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&keys, "staging-key", nil, "ID=BASE64 public key of a staging gateway whose reports are accepted (repeatable; fieldgatectl remote pubkey prints it)")
	f.StringVar(&role, "role", "targets", "role that signs the documents: targets, or a delegated role (see delegate)")
	c.MarkFlagRequired("staging-key")
	return c
}

func parseStagingKeys(specs []string) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for _, s := range specs {
		id, b64, ok := strings.Cut(s, "=")
		k, err := base64.StdEncoding.DecodeString(b64)
		if !ok || id == "" || err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("--staging-key %q: want ID=BASE64 of a 32-byte ed25519 public key", s)
		}
		keys[id] = k
	}
	return keys, nil
}

func readReportFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, testreport.MaxSize+1))
}
