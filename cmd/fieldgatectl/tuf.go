// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/tuf"
)

// tufCommand is "fieldgatectl tuf": the TUF client-under-test command line
// of the conformance suite (its CLIENT-CLI protocol), using fieldgate's own
// refresh and verified download. It parses its own flags, in the protocol's
// Go flag syntax; cobra passes them through untouched.
func tufCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "tuf [--ref-time T [--force]] --metadata-dir DIR [--metadata-url URL] init|refresh|download …",
		Short:              "TUF client-under-test command line (conformance harnesses), using fieldgate's own verified download",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := runTUF(cmd.Context(), args, cmd.ErrOrStderr()); code != 0 {
				return fmt.Errorf("tuf: exit status %d", code)
			}
			return nil
		},
	}
}

// runTUF runs one conformance command and returns its exit code: 0 on
// success, 1 on any failure (usage errors included), as the protocol wants.
// Usage, errors and (with -v) the client's log go to stderr.
//
//	[--ref-time T] --metadata-dir DIR init TRUSTED_ROOT
//	[--ref-time T] --metadata-dir DIR --metadata-url URL refresh
//	[--ref-time T] --metadata-dir DIR --metadata-url URL --target-name NAME… \
//	    --target-base-url URL --target-dir DIR download
//
// Trusted metadata is kept in DIR under unversioned names with the exact
// bytes received (tuf.InitMetadataDir, tuf.Client.Refresh); targets are
// stored in --target-dir (tuf.Client.DownloadTargets). --ref-time (RFC 3339
// or @unix) sets the reference time; without it the time-floor policy of
// tuf.Client applies. With --ref-time, a metadata directory that belongs to
// the daemon (daemonStateDB) is refused unless --force is given.
func runTUF(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("tuf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		mdDir, mdURL, targetBase, targetDir, refTime string
		names                                        stringList
		verbose, force                               bool
	)
	fs.StringVar(&mdDir, "metadata-dir", "", "trusted metadata directory")
	fs.StringVar(&mdURL, "metadata-url", "", "base URL of the repository metadata")
	fs.Var(&names, "target-name", "target to download (repeatable)")
	fs.StringVar(&targetBase, "target-base-url", "", "base URL of the targets")
	fs.StringVar(&targetDir, "target-dir", "", "directory to store downloaded targets in")
	fs.StringVar(&refTime, "ref-time", "", "reference time for expiry checks: RFC 3339 or @unix-seconds")
	fs.BoolVar(&verbose, "v", false, "log progress to stderr")
	fs.BoolVar(&force, "force", false, "with --ref-time, use a metadata directory that belongs to the daemon anyway")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tuf [flags] init TRUSTED_ROOT | refresh | download")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() < 1 || mdDir == "" {
		fs.Usage()
		return 1
	}
	if refTime != "" && !force {
		if db, ok := daemonStateDB(mdDir); ok {
			fmt.Fprintf(stderr, "tuf: --ref-time: %s is the daemon's metadata directory (%s is next to it): metadata accepted at an arbitrary time would become the daemon's trust; use a copy, or --force\n", mdDir, db)
			return 1
		}
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var err error
	switch cmd := fs.Arg(0); cmd {
	case "init":
		if fs.NArg() != 2 {
			fs.Usage()
			return 1
		}
		err = tuf.InitMetadataDir(mdDir, fs.Arg(1))
	case "refresh":
		err = tufRefresh(ctx, log, mdDir, mdURL, targetBase, refTime)
	case "download":
		err = tufDownload(ctx, log, mdDir, mdURL, targetBase, refTime, names, targetDir)
	default:
		fmt.Fprintf(stderr, "tuf: unknown command %q\n", cmd)
		fs.Usage()
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "tuf %s: %v\n", fs.Arg(0), err)
		return 1
	}
	return 0
}

// daemonStateDB reports whether mdDir belongs to a fieldgated: the daemon
// keeps its trusted metadata in STATE_DIR/tuf next to STATE_DIR/state.db, so
// a state.db in mdDir's parent (or in mdDir itself) marks it. Symbolic links
// are resolved first, so a link to the daemon's directory is caught too. It
// returns the state.db found.
func daemonStateDB(mdDir string) (string, bool) {
	dirs := []string{mdDir}
	if abs, err := filepath.Abs(mdDir); err == nil {
		dirs = append(dirs, abs)
	}
	if real, err := filepath.EvalSymlinks(mdDir); err == nil {
		dirs = append(dirs, real)
	}
	for _, d := range dirs {
		for _, db := range []string{filepath.Join(filepath.Dir(d), "state.db"), filepath.Join(d, "state.db")} {
			if _, err := os.Lstat(db); err == nil {
				return db, true
			}
		}
	}
	return "", false
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func tufRefresh(ctx context.Context, log *slog.Logger, mdDir, mdURL, targetBase, refTime string) error {
	cfg, err := tufConfig(mdDir, mdURL, targetBase, refTime)
	if err != nil {
		return err
	}
	c, err := tuf.New(cfg, log)
	if err != nil {
		return err
	}
	_, err = c.Refresh(ctx)
	return err
}

func tufDownload(ctx context.Context, log *slog.Logger, mdDir, mdURL, targetBase, refTime string, names []string, targetDir string) error {
	cfg, err := tufConfig(mdDir, mdURL, targetBase, refTime)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("--target-name is required")
	}
	if targetDir == "" || targetBase == "" {
		return errors.New("--target-dir and --target-base-url are required")
	}
	c, err := tuf.New(cfg, log)
	if err != nil {
		return err
	}
	return c.DownloadTargets(ctx, targetDir, names)
}

// tufConfig is the client configuration of refresh and download.
func tufConfig(mdDir, mdURL, targetBase, refTime string) (tuf.Config, error) {
	if mdURL == "" {
		return tuf.Config{}, errors.New("--metadata-url is required")
	}
	cfg := tuf.Config{
		MetadataURL: mdURL,
		TargetsURL:  targetBase,
		MetadataDir: mdDir,
		BlobDir:     filepath.Join(mdDir, "blobs"), // never created: targets go to --target-dir
	}
	if refTime != "" {
		t, err := parseRefTime(refTime)
		if err != nil {
			return tuf.Config{}, err
		}
		cfg.RefTime = t
	}
	return cfg, nil
}

// parseRefTime parses an RFC 3339 time or "@" followed by Unix seconds.
func parseRefTime(s string) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("ref time %q: %w", s, err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("ref time %q: want RFC 3339 or @unix: %w", s, err)
	}
	return t.UTC(), nil
}
