// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/internal/atomicfile"
	"github.com/fieldgate/fieldgate/tuf"
)

// defaultTrustedRoot is where the packaged configuration's tuf.trusted_root
// points.
const defaultTrustedRoot = "/etc/fieldgate/root.json"

// trustCommand is "fieldgatectl trust": provisioning the gateway's root of
// trust. It works on files only; fieldgated need not run.
func trustCommand() *cobra.Command {
	trust := &cobra.Command{
		Use:   "trust",
		Short: "Provision the gateway's root of trust (the repository's root metadata)",
		Args:  cobra.NoArgs,
	}
	trust.AddCommand(trustInitCommand())
	return trust
}

// trustInit holds the flags of "trust init".
type trustInit struct {
	expect, dest, config, bundle string
	force                        bool
}

func trustInitCommand() *cobra.Command {
	var o trustInit
	cmd := &cobra.Command{
		Use:   "init (ROOT.json | --bundle DIR) --expect-sha256 FINGERPRINT [--dest PATH | --config FILE] [--force]",
		Short: "Install the repository's root metadata as the gateway's trusted root, after checking its fingerprint",
		Long: `Install the repository's root metadata as the gateway's trusted root.

The root is taken from ROOT.json, or from an offline bundle on a USB stick
(--bundle DIR reads DIR/metadata/1.root.json, the first root of the chain).
It is installed only if

  - its SHA-256 equals --expect-sha256: the "root fingerprint: sha256:…"
    that fieldgate-repo init (or status) printed on the publisher, read out
    by someone who can see it (by phone, say); "sha256:" is optional, case,
    spaces and colons are ignored, so it can be read out in groups;
  - it is TUF root metadata signed by its own root keys at its own threshold.

It is written atomically, mode 0644, to --dest (default ` + defaultTrustedRoot + `,
or the tuf.trusted_root of --config FILE). The same root already there is
left alone; a different one is replaced only with --force. An expired root
is installed with a warning: fieldgated walks the repository's root chain
from it to the current root.`,
		Example: `  fieldgatectl trust init root.json --expect-sha256 sha256:3f1c…
  fieldgatectl trust init --bundle /media/usb/fieldgate-bundle --expect-sha256 "3f1c 9a0b …"
  fieldgatectl trust init root.json --expect-sha256 3f1c… --config /etc/fieldgate/fieldgated.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.OutOrStdout(), cmd.ErrOrStderr(), args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.expect, "expect-sha256", "", "the root's fingerprint as the publisher printed it (required)")
	f.StringVar(&o.dest, "dest", "", "where to install the root (default "+defaultTrustedRoot+")")
	f.StringVar(&o.config, "config", "", "install at this fieldgated configuration's tuf.trusted_root")
	f.StringVar(&o.bundle, "bundle", "", "take the root from this offline bundle (DIR/metadata/1.root.json)")
	f.BoolVar(&o.force, "force", false, "replace a different root already installed")
	return cmd
}

func (o trustInit) run(stdout, stderr io.Writer, args []string) error {
	switch {
	case len(args) == 1 && o.bundle != "":
		return errors.New("give ROOT.json or --bundle DIR, not both")
	case len(args) == 0 && o.bundle == "":
		return errors.New("no root given: ROOT.json or --bundle DIR")
	case o.expect == "":
		return errors.New("--expect-sha256 is required: the root fingerprint fieldgate-repo printed on the publisher, compared by someone who can see it")
	case o.dest != "" && o.config != "":
		return errors.New("give --dest or --config, not both")
	}
	want, err := parseFingerprint(o.expect)
	if err != nil {
		return err
	}
	dest, stateDir, err := o.destination()
	if err != nil {
		return err
	}

	var (
		src  string
		data []byte
	)
	if o.bundle != "" {
		src = filepath.Join(o.bundle, filepath.FromSlash(tuf.BundleRoot))
		data, err = tuf.ReadBundleRoot(o.bundle)
	} else {
		src = args[0]
		data, err = tuf.ReadRootFile(src)
	}
	if err != nil {
		return fmt.Errorf("read root: %w; nothing installed", err)
	}
	got := tuf.RootFingerprint(data)
	if got != want {
		return fmt.Errorf("root %s does not have the expected fingerprint; nothing installed\n  expected  %s\n  file      %s\n"+
			"this is not the root the publisher named: check the file and the fingerprint read out", src, want, got)
	}
	info, err := tuf.CheckRoot(data)
	if err != nil {
		return fmt.Errorf("root %s: %w; nothing installed", src, err)
	}
	fmt.Fprintf(stdout, "root %s\n", src)
	fmt.Fprintf(stdout, "  fingerprint %s (matches --expect-sha256)\n", got)
	fmt.Fprintf(stdout, "  version %d, expires %s\n", info.Version, info.Expires.Format(time.RFC3339))
	fmt.Fprintf(stdout, "  root keys: %d, threshold %d, signed by %d\n", len(info.KeyIDs), info.Threshold, info.Signed)
	for _, id := range info.KeyIDs {
		fmt.Fprintf(stdout, "    %s\n", id)
	}
	if info.Expires.Before(time.Now()) {
		fmt.Fprintf(stderr, "warning: root version %d expired at %s; installing it anyway: fieldgated walks the repository's root chain from it to the current root\n",
			info.Version, info.Expires.Format(time.RFC3339))
	}

	old, err := tuf.ReadRootFile(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("%s: %w; nothing installed", dest, err)
	case bytes.Equal(old, data):
		fmt.Fprintf(stdout, "%s already holds this root: nothing changed\n", dest)
		return nil
	case !o.force:
		what := tuf.RootFingerprint(old)
		if oi, err := tuf.CheckRoot(old); err == nil {
			what = fmt.Sprintf("version %d, %s", oi.Version, what)
		}
		return fmt.Errorf("%s already holds a different root (%s); nothing installed: give --force to replace it", dest, what)
	default:
		fmt.Fprintf(stderr, "note: replacing a different root at %s; a fieldgated that has run starts from the root in its metadata cache (%s), this file only when that has none\n",
			dest, filepath.Join(stateDir, "tuf", "root.json"))
	}
	if err := atomicfile.Write(dest, data, 0o644); err != nil {
		return fmt.Errorf("install root at %s: %w", dest, err)
	}
	fmt.Fprintf(stdout, "installed root version %d at %s\n", info.Version, dest)
	return nil
}

// destination returns where the root goes (--dest, --config's
// tuf.trusted_root, or the default) and the state directory fieldgated
// keeps its metadata cache in.
func (o trustInit) destination() (dest, stateDir string, err error) {
	dest, stateDir = o.dest, "/var/lib/fieldgate"
	if o.config != "" {
		cfg, err := config.Load(o.config)
		if err != nil {
			return "", "", err
		}
		if cfg.TUF.TrustedRoot == "" {
			return "", "", fmt.Errorf("config %s: tuf.trusted_root is empty: set it, or give --dest", o.config)
		}
		dest, stateDir = cfg.TUF.TrustedRoot, cfg.Gateway.StateDir
	}
	if dest == "" {
		dest = defaultTrustedRoot
	}
	return dest, stateDir, nil
}

// parseFingerprint turns a fingerprint as read out by a person into
// "sha256:<64 lower-case hex digits>": an optional "sha256:" prefix, any
// case, spaces and colons between groups.
func parseFingerprint(s string) (string, error) {
	h := strings.TrimSpace(s)
	if len(h) >= 7 && strings.EqualFold(h[:7], "sha256:") {
		h = h[7:]
	}
	h = strings.Map(func(r rune) rune {
		if r == ':' || unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, h)
	if _, err := hex.DecodeString(h); err != nil || len(h) != 64 {
		return "", fmt.Errorf("--expect-sha256 %q: want the 64 hex digits of a SHA-256, as fieldgate-repo prints them (sha256:…)", s)
	}
	return "sha256:" + h, nil
}
