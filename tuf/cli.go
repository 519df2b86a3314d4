package tuf

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CLI runs the TUF client-under-test command line used by conformance
// harnesses and returns the process exit code: 0 on success, 1 on any
// failure (usage errors included).
//
// Deprecated: the command line lives in cmd/fieldgatectl (tuf.go); this copy
// goes once fieldgatectl's main registers that command. Library code uses
// InitMetadataDir and Client.DownloadTargets.
//
//	[--ref-time T] --metadata-dir DIR init TRUSTED_ROOT
//	[--ref-time T] --metadata-dir DIR --metadata-url URL refresh
//	[--ref-time T] --metadata-dir DIR --metadata-url URL --target-name NAME… \
//	    --target-base-url URL --target-dir DIR download
//
// Trusted metadata is stored in DIR under unversioned names with the exact
// bytes received. Targets are looked up through delegations, downloaded with
// Fetch's streaming engine and stored in --target-dir under their
// URL-path-escaped names; one already there and valid is not downloaded
// again. --ref-time (RFC 3339 or @unix) sets the reference time; without it
// the time-floor policy of Client applies.
func CLI(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tuf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		mdDir, mdURL, targetBase, targetDir, refTime string
		names                                        stringList
		verbose                                      bool
	)
	fs.StringVar(&mdDir, "metadata-dir", "", "trusted metadata directory")
	fs.StringVar(&mdURL, "metadata-url", "", "base URL of the repository metadata")
	fs.Var(&names, "target-name", "target to download (repeatable)")
	fs.StringVar(&targetBase, "target-base-url", "", "base URL of the targets")
	fs.StringVar(&targetDir, "target-dir", "", "directory to store downloaded targets in")
	fs.StringVar(&refTime, "ref-time", "", "reference time for expiry checks: RFC 3339 or @unix-seconds")
	fs.BoolVar(&verbose, "v", false, "log progress to stderr")
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
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch cmd := fs.Arg(0); cmd {
	case "init":
		if fs.NArg() != 2 {
			fs.Usage()
			return 1
		}
		err = InitMetadataDir(mdDir, fs.Arg(1))
	case "refresh", "download":
		var cfg Config
		cfg, err = cliConfig(mdDir, mdURL, targetBase, refTime)
		if err != nil {
			break
		}
		if cmd == "refresh" {
			err = cliRefresh(ctx, cfg, log)
		} else {
			err = cliDownload(ctx, cfg, log, names, targetDir)
		}
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

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// ParseRefTime parses an RFC 3339 time or "@" followed by Unix seconds.
//
// Deprecated: it goes with CLI.
func ParseRefTime(s string) (time.Time, error) {
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

func cliConfig(mdDir, mdURL, targetBase, refTime string) (Config, error) {
	if mdURL == "" {
		return Config{}, errors.New("--metadata-url is required")
	}
	cfg := Config{
		MetadataURL: mdURL,
		TargetsURL:  targetBase,
		MetadataDir: mdDir,
		BlobDir:     filepath.Join(mdDir, "blobs"), // never created: the CLI stores targets in --target-dir
	}
	if refTime != "" {
		t, err := ParseRefTime(refTime)
		if err != nil {
			return Config{}, err
		}
		cfg.RefTime = t
	}
	return cfg, nil
}

func cliRefresh(ctx context.Context, cfg Config, log *slog.Logger) error {
	c, err := New(cfg, log)
	if err != nil {
		return err
	}
	_, err = c.Refresh(ctx)
	return err
}

func cliDownload(ctx context.Context, cfg Config, log *slog.Logger, names []string, targetDir string) error {
	if len(names) == 0 {
		return errors.New("--target-name is required")
	}
	if targetDir == "" || cfg.TargetsURL == "" {
		return errors.New("--target-dir and --target-base-url are required")
	}
	c, err := New(cfg, log)
	if err != nil {
		return err
	}
	return c.DownloadTargets(ctx, targetDir, names)
}
