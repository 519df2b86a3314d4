// SPDX-License-Identifier: Apache-2.0

// Command fieldgate-repo creates, signs and serves fieldgate TUF
// repositories: init keys and roles, delegate paths to vendor roles, add
// firmware with fieldgate metadata, commit (sign targets, delegated roles,
// snapshot, timestamp), refresh the timestamp from a cron job, rotate keys,
// show status, export offline bundles, and serve a repository for
// development. Private keys are encrypted at rest (keys.go); keygen makes a
// key for one holder, sign adds a holder's signature to staged metadata so
// that threshold keys never meet on one disk, and log lists every signing
// event.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fieldgate/fieldgate/systemd"
	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fieldgate-repo:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "fieldgate-repo",
		Short:         "Create, sign and serve fieldgate TUF repositories",
		Long:          "fieldgate-repo creates, signs and serves fieldgate TUF repositories.\n\n" + keyFlagsHelp,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(initCmd(), addCmd(), removeCmd(), commitCmd(), timestampCmd(),
		rotateCmd(), statusCmd(), serveCmd(), exportCmd(), rolloutCmd())
	root.AddCommand(keygenCmd(), keysCmd(), signCmd(), logCmd())
	addKeyFlags(root)
	root.AddCommand(vendorCmds()...)
	root.AddCommand(advisoryCmd())
	root.AddCommand(reportCmd())
	wirePKCS11(root)
	return root
}

func initCmd() *cobra.Command {
	var (
		rootKeys, keyType string
		hashes            []string
		expiry            map[string]string
		threshold         map[string]int
		rootKeyFiles      []string
	)
	c := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a repository with new keys, root, empty targets, snapshot and timestamp",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := publish.Options{RootKeysDir: rootKeys, KeyType: keyType, Hashes: hashes,
				Threshold: threshold, Expiry: map[string]publish.Duration{}}
			for role, s := range expiry {
				d, err := time.ParseDuration(s)
				if err != nil {
					return fmt.Errorf("--expiry %s=%s: %w", role, s, err)
				}
				opts.Expiry[role] = publish.Duration(d)
			}
			opts.Keys, opts.Command = keyAccess(cmd), "init"
			if len(rootKeyFiles) > 0 {
				if rootKeys != "" {
					return errors.New("--root-keys and --root-key-file: the root keys are either generated here or held by their holders")
				}
				pubs, err := readDelegationKeys(rootKeyFiles, opts.Keys)
				if err != nil {
					return err
				}
				opts.RootPublicKeys = pubs
			}
			r, err := publish.Init(args[0], opts)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !r.RootPublished() {
				fmt.Fprintf(w, "initialized repository in %s; root version 1 is staged for its key holders\n", r.Dir())
				printStaged(w, r.StagedSignatures())
				fmt.Fprintf(w, "Each root key holder signs it where their key is:\n"+
					"  fieldgate-repo sign %s root --key THEIR-KEY.pem\n"+
					"then commit publishes it and prints the root fingerprint for gateways:\n"+
					"  fieldgate-repo commit %s\n", r.Dir(), r.Dir())
				return nil
			}
			first, _, err := r.RootFingerprints()
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "initialized repository in %s\ntrusted root for gateways: %s\n", r.Dir(), r.RootPath())
			printFingerprint(w, first)
			fmt.Fprintf(w, "Hand %s to the gateway's installer and read the fingerprint to them\n"+
				"(by phone, not with the file): they run\n"+
				"  fieldgatectl trust init %s --expect-sha256 %s\n", filepath.Base(first.Path), filepath.Base(first.Path), first.SHA256)
			return nil
		},
	}
	c.Long = "init creates DIR with new keys for every role (encrypted), root version 1, empty\n" +
		"targets, a snapshot and a timestamp, and prints the fingerprint of\n" +
		"DIR/repository/metadata/1.root.json (" + fingerprintHelp + ").\n\n" +
		"Root keys held apart: each holder runs fieldgate-repo keygen --out ROOT.pem on their own\n" +
		"machine and hands over ROOT.pub only; init --root-key-file A.pub --root-key-file B.pub\n" +
		"--threshold root=2 lists them and stages root version 1, each holder adds their\n" +
		"signature with sign DIR root --key ROOT.pem, and commit publishes it. No directory ever\n" +
		"holds two root private keys."
	c.Flags().StringVar(&rootKeys, "root-keys", "", "directory for the root keys (offline media); default DIR/keys/root")
	c.Flags().StringVar(&keyType, "key-type", publish.KeyEd25519, "key type: ed25519 or ecdsa-p256")
	c.Flags().StringSliceVar(&hashes, "hash", []string{"sha256"}, "hash algorithms listed for targets: sha256, sha512")
	c.Flags().StringToStringVar(&expiry, "expiry", nil, "validity per role, e.g. root=8760h,targets=2160h,snapshot=168h,timestamp=24h")
	c.Flags().StringToIntVar(&threshold, "threshold", nil, "signature threshold (= keys generated) per role, e.g. root=2")
	c.Flags().StringArrayVar(&rootKeyFiles, "root-key-file", nil, "public key of a root key held by its holder (keygen's .pub, or a pkcs11: URI; repeatable): no root key is generated")
	return c
}

func addCmd() *cobra.Command {
	var (
		name, role string
		meta       tuf.Meta
		rollout    = rolloutFlags{prefix: "rollout-"}
	)
	c := &cobra.Command{
		Use:   "add DIR FILE",
		Short: "Stage FILE as a target with fieldgate metadata (commit publishes it)",
		Long: "add stages FILE as target --name with fieldgate metadata, in the targets role or a\n" +
			"delegated role (--role); commit publishes it. The --rollout-* flags make it a staged\n" +
			"rollout, which the rollout command widens or halts later.\n\n" + rolloutHelp,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			var err error
			if meta.Rollout, err = rollout.rollout(cmd.Flags()); err != nil {
				return err
			}
			r, err := publish.Open(args[0])
			if err != nil {
				return err
			}
			if err := r.AddTargetTo(role, name, args[1], meta); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "staged %s in role %s (run commit to publish)\n", name, role)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&name, "name", "", "target name (path in the repository), e.g. acme-io16/fw-2.4.1.bin")
	f.StringVar(&role, "role", "targets", "role that signs the target: targets, or a delegated role (see delegate)")
	targetMetaFlags(f, &meta)
	rollout.declare(f)
	return c
}

// targetMetaFlags declares the flags of a target's fieldgate metadata, for
// add and vendor add.
func targetMetaFlags(f *pflag.FlagSet, meta *tuf.Meta) {
	f.StringSliceVar(&meta.Hardware, "hardware", nil, "hardware id(s) the image is for (comma-separated or repeated)")
	f.StringVar(&meta.Version, "version", "", "image version, e.g. 2.4.1")
	f.Uint64Var(&meta.SecurityCounter, "security-counter", 0, "anti-rollback security counter")
	f.StringVar(&meta.Protocol, "protocol", "", "protocol the image is made for (informational), e.g. xmodem, modbus-tcp, tftp, smp-udp, ssh")
	f.StringVar(&meta.Severity, "severity", "", "none, low, medium, high or critical")
	f.StringSliceVar(&meta.Advisories, "advisory", nil, "advisory fixed (repeatable), e.g. CVE-2026-1234")
	f.BoolVar(&meta.RequiresReboot, "requires-reboot", false, "activation reboots the device")
	f.StringVar(&meta.Notes, "notes", "", "release notes (short)")
}

func removeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove DIR NAME",
		Short: "Stage the removal of a target (commit publishes it)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := publish.Open(args[0])
			if err != nil {
				return err
			}
			return r.Remove(args[1])
		},
	}
}

func commitCmd() *cobra.Command {
	var refs []string
	c := &cobra.Command{
		Use:   "commit DIR",
		Short: "Sign and publish staged changes (a root signed by its holders too), a new snapshot and timestamp",
		Long: "commit publishes a root staged for signatures once its thresholds are met, then the\n" +
			"staged targets and delegated roles, a new snapshot and timestamp. Every role is signed\n" +
			"with the keys found in DIR, those given with --key and the signatures added with sign;\n" +
			"a role below its threshold is named with its counts, and nothing is published.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, closeKeys, err := openRepo(cmd, args[0], "commit", refs)
			if err != nil {
				return err
			}
			defer closeKeys()
			rootBefore := r.RootPublished()
			if err := r.Commit(); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if err := printStatus(w, r.Status()); err != nil {
				return err
			}
			if !rootBefore {
				first, _, err := r.RootFingerprints()
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "root version 1 published: trusted root for gateways: %s\n", r.RootPath())
				printFingerprint(w, first)
			}
			return nil
		},
	}
	addKeyRefFlag(c, &refs, "key that signs, besides those in DIR")
	return c
}

func timestampCmd() *cobra.Command {
	var refs []string
	c := &cobra.Command{
		Use:   "timestamp DIR",
		Short: "Re-sign the timestamp only (for a timer with the online timestamp key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, closeKeys, err := openRepo(cmd, args[0], "timestamp", refs)
			if err != nil {
				return err
			}
			defer closeKeys()
			return r.Timestamp()
		},
	}
	addKeyRefFlag(c, &refs, "timestamp key, if not in DIR")
	return c
}

func rotateCmd() *cobra.Command {
	var (
		keyFiles, refs []string
		threshold      int
	)
	c := &cobra.Command{
		Use:   "rotate DIR ROLE",
		Short: "Replace the keys of ROLE (root, targets, snapshot, timestamp or a delegated role)",
		Long: "rotate replaces every key of ROLE and publishes root version N+1, signed by the\n" +
			"old and new root keys; other top-level roles are re-signed with their new keys at once.\n" +
			"New keys are generated in DIR (encrypted), or --key-file NEW.pub (repeatable) lists keys\n" +
			"held elsewhere (keygen's .pub, a pkcs11: URI). When the root keys here (and --key) do not\n" +
			"meet both root N's and root N+1's thresholds, root N+1 is staged: its holders add their\n" +
			"signatures with sign DIR root --key KEY, then commit publishes it. The replaced private\n" +
			"keys in DIR are removed (unlinked) once the new root is published, or moved to\n" +
			"DIR/keys/retired with --keep-retired.\n\n" +
			"For a delegated role, the top-level targets lists the new keys instead of the old\n" +
			"(re-signed now): --key-file NEW.pub (repeatable) when the vendor holds the role's\n" +
			"private keys, else new keys are generated in the role's keys directory.\n" +
			"--threshold changes the role's threshold. Metadata signed with the old keys is\n" +
			"refused from then on.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, closeKeys, err := openRepo(cmd, args[0], "rotate "+args[1], refs)
			if err != nil {
				return err
			}
			defer closeKeys()
			if slices.Contains(r.DelegatedRoles(), args[1]) {
				return rotateDelegated(cmd, r, args[1], keyFiles, threshold)
			}
			pubs, err := readDelegationKeys(keyFiles, keyAccess(cmd))
			if err != nil {
				return err
			}
			res, err := r.RotateWith(args[1], publish.RotateOptions{PublicKeys: pubs, Threshold: threshold})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !res.Published {
				printStaged(w, []publish.StagedRole{res.Staged})
				fmt.Fprintf(w, "root version %d is staged: each holder of a missing key runs\n"+
					"  fieldgate-repo sign %s root --key THEIR-KEY\nthen: fieldgate-repo commit %s\n", res.Staged.Version, r.Dir(), r.Dir())
				return nil
			}
			if args[1] != "root" {
				if err := r.Commit(); err != nil {
					return err
				}
			}
			return printStatus(w, r.Status())
		},
	}
	c.Flags().StringArrayVar(&keyFiles, "key-file", nil, "the role's new public key, held elsewhere (PEM or TUF key JSON file, or pkcs11: URI; repeatable); default: generate new keys here")
	c.Flags().IntVar(&threshold, "threshold", 0, "the role's new threshold (default: unchanged)")
	c.Flags().Bool("keep-retired", false, "move the replaced private keys to DIR/keys/retired instead of removing them")
	addKeyRefFlag(c, &refs, "root key that signs the new root, besides those in DIR")
	return c
}

func exportCmd() *cobra.Command {
	var (
		names, refs []string
		expires     string
	)
	c := &cobra.Command{
		Use:   "export DIR OUT [--target NAME…] [--expires 30d]",
		Short: "Write an offline bundle (metadata chain and targets) to the new directory OUT",
		Long: "export writes OUT/metadata (every N.root.json, timestamp.json and the versioned\n" +
			"snapshot, targets and delegated role files), OUT/targets (the selected targets, all\n" +
			"published ones without --target) and an informational OUT/bundle.json (which records\n" +
			"the bundle's expiry). Gateways import it with fieldgatectl import OUT, or from their\n" +
			"import directory, before it expires.\n\n" +
			"Without --expires the bundle carries the repository's timestamp and expires with it\n" +
			"(24h by default): too short for a trip to a site. --expires DURATION (30d, 12h, 1d12h;\n" +
			"at most 365d) signs a timestamp for this bundle alone, valid that long, with the\n" +
			"timestamp key: it is the repository's next timestamp version, and the repository's\n" +
			"own timestamp is re-signed right after it with the version after that, so gateways\n" +
			"that imported the bundle move on at their next online refresh. Snapshot, targets and\n" +
			"delegated roles that would expire before the bundle are signed anew for as long (and\n" +
			"published) when their keys are in DIR; otherwise, or when root expires first, export\n" +
			"refuses and names the role. Keep --expires as short as the trip: until it expires,\n" +
			"the bundle can be shown to a gateway that has seen nothing newer, hiding newer\n" +
			"updates from it.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := publish.ExportOptions{Targets: names}
			if cmd.Flags().Changed("expires") {
				d, err := publish.ParseBundleExpiry(expires)
				if err != nil {
					return fmt.Errorf("--expires: %w", err)
				}
				opts.Expires = d
			}
			command := "export"
			if opts.Expires > 0 {
				command = "export --expires"
			}
			r, closeKeys, err := openRepo(cmd, args[0], command, refs)
			if err != nil {
				return err
			}
			defer closeKeys()
			info, err := r.ExportWith(args[1], opts)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "exported %d target(s) to %s (root version %d, timestamp version %d)\n",
				len(info.Targets), args[1], info.RootVersion, info.TimestampVersion)
			for _, t := range info.Targets {
				fmt.Fprintf(w, "  %s (%s, %d bytes)\n", t.Name, t.Role, t.Length)
			}
			if opts.Expires > 0 {
				fmt.Fprintf(w, "bundle timestamp version %d signed for %s; repository timestamp re-signed as version %d\n",
					info.TimestampVersion, expires, r.TimestampMetadata().Signed.Version)
			}
			if len(info.Resigned) > 0 {
				fmt.Fprintf(w, "signed anew to last as long as the bundle (published too): %s\n", strings.Join(info.Resigned, ", "))
			}
			for _, m := range info.Warnings {
				fmt.Fprintf(w, "warning: %s\n", m)
			}
			fmt.Fprintf(w, "import before %s (expiry of %s)\n", info.Expires.Format(time.RFC3339), info.ExpiresRole)
			return nil
		},
	}
	c.Flags().StringArrayVar(&names, "target", nil, "target to include (repeatable); default all published targets")
	c.Flags().StringVar(&expires, "expires", "", "sign a timestamp for this bundle valid this long (e.g. 30d, 12h; at most 365d)")
	addKeyRefFlag(c, &refs, "key that signs the bundle's timestamp (and roles signed anew), besides those in DIR")
	return c
}

func statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status DIR",
		Short: "Show role versions, expiries, targets, warnings and the root fingerprints",
		Long: "status shows each role's version, expiry and keys, the targets, staged changes, each\n" +
			"role version staged for signatures with its valid signatures against every threshold it\n" +
			"must meet, and warnings (unencrypted key files among them), then the fingerprints of\n" +
			"the first root (1.root.json) and, after a root\n" +
			"rotation, of the current root (" + fingerprintHelp + ").",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := publish.Open(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if err := printStatus(w, r.Status()); err != nil {
				return err
			}
			printStaged(w, r.StagedSignatures())
			if found, err := publish.PlaintextKeys(r.Dir()); err == nil && len(found) > 0 {
				fmt.Fprintf(w, "warning: %d unencrypted private key file(s), e.g. %s: encrypt them with fieldgate-repo keys encrypt %s\n",
					len(found), found[0], r.Dir())
			}
			if !r.RootPublished() {
				fmt.Fprintln(w, "no root published yet: its key holders sign it (sign DIR root --key KEY), then commit")
				return nil
			}
			first, current, err := r.RootFingerprints()
			if err != nil {
				return err
			}
			if current.Version == first.Version {
				fmt.Fprintf(w, "trusted root for gateways: %s (root version 1, never rotated)\n", first.Path)
				printFingerprint(w, first)
				return nil
			}
			fmt.Fprintf(w, "first root, hand this to gateways: %s (root version 1)\n", first.Path)
			printFingerprint(w, first)
			fmt.Fprintf(w, "current root, also a trust anchor (hand it out instead if old root keys are compromised): %s (root version %d)\n", current.Path, current.Version)
			printFingerprint(w, current)
			return nil
		},
	}
}

// fingerprintHelp says which root file gateways get and how it is checked.
const fingerprintHelp = "the SHA-256 of the file's bytes, which the gateway's installer\n" +
	"checks with fieldgatectl trust init ROOT.json --expect-sha256 HEX after hearing it by\n" +
	"phone. Hand out 1.root.json: it never changes, and gateways walk the signed chain of\n" +
	"roots from it to the current one. The current root N.root.json works as a trust anchor\n" +
	"too; hand it out instead once old root keys must no longer be trusted (after a rotation\n" +
	"because they leaked), since a gateway starting from 1.root.json trusts what those keys\n" +
	"sign until it reaches the newer root"

// printFingerprint prints "root fingerprint: sha256:HEX" and the same hex
// in groups of four for reading aloud.
func printFingerprint(w io.Writer, f publish.RootFingerprint) {
	fmt.Fprintf(w, "root fingerprint: sha256:%s\n  %s\n", f.SHA256, f.Grouped())
}

func printStatus(w io.Writer, s publish.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES\tKEYS\tTHRESHOLD\tPATHS")
	for _, r := range s.Roles {
		expires, paths := "-", "-"
		if r.Version > 0 {
			expires = r.Expires.Format(time.RFC3339)
		}
		if len(r.Paths) > 0 {
			paths = strings.Join(r.Paths, ",")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d (%d here)\t%d\t%s\n", r.Role, r.Version, expires, r.Keys, r.KeysHere, r.Threshold, paths)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "targets (%d):\n", len(s.Targets))
	for _, t := range s.Targets {
		fmt.Fprintf(w, "  %s (%s)\n", t, s.TargetRole[t])
	}
	for _, t := range s.Added {
		fmt.Fprintf(w, "  staged: + %s\n", t)
	}
	for _, t := range s.Removed {
		fmt.Fprintf(w, "  staged: - %s\n", t)
	}
	for _, m := range s.Notes {
		fmt.Fprintf(w, "note: %s\n", m)
	}
	for _, m := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
	return nil
}

func serveCmd() *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "serve DIR",
		Short: "Serve DIR/repository over HTTP for development (…/metadata, …/targets)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := publish.Open(args[0])
			if err != nil {
				return err
			}
			log := slog.New(systemd.NewLogHandler(cmd.ErrOrStderr(), nil))
			return serve(cmd.Context(), listen, r.Handler(), cmd.OutOrStdout(), log)
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	return c
}

// serve runs an HTTP server until ctx is cancelled, then shuts down
// gracefully. Cancellation is not an error.
func serve(ctx context.Context, addr string, h http.Handler, stdout io.Writer, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{
		Handler:           logRequests(h, log),
		ReadHeaderTimeout: 10 * time.Second,
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "serving on %s\n  metadata: %s/metadata\n  targets:  %s/targets\n", base, base, base)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func logRequests(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.code,
			"range", strings.TrimSpace(r.Header.Get("Range")))
	})
}
