// SPDX-License-Identifier: Apache-2.0

// The gateway's CPU allotment does not change while it runs; without this
// the runtime re-reads the cgroup's CPU limit every second it is awake.
//
//go:debug updatemaxprocs=0

// Command fieldgated is the fieldgate daemon: it pulls TUF-verified updates
// and pushes them to the field devices behind the gateway inside their
// maintenance windows, reporting over MQTT.
package main

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
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/board"
	"github.com/fieldgate/fieldgate/daemon"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/metrics"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/mqtt/sparkplug"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/systemd"
	"github.com/fieldgate/fieldgate/tuf"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// buildTime (RFC 3339) is set at build time; it is the lowest trusted time.
var buildTime = ""

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fieldgated:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath, check, showVersion := newFlagSet(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	if *showVersion {
		fmt.Fprintln(stdout, "fieldgated", version)
		return nil
	}
	registry := drivers()
	if *check != "" {
		cfg, err := config.Check(*check, checkDevice(registry))
		if cfg != nil {
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(stdout, "warning:", w)
			}
		}
		if err != nil {
			fmt.Fprintln(stdout, err)
			return errors.New("configuration has problems")
		}
		fmt.Fprintln(stdout, *check+": ok")
		return nil
	}
	cfg, err := loadConfig(*cfgPath, registry)
	if err != nil {
		return err
	}
	if err := handover(cfg.Gateway.StateDir, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = serve(ctx, cfg, registry, stderr)
	stop()
	if errors.Is(err, daemon.ErrRestart) {
		return handover(cfg.Gateway.StateDir, args)
	}
	return err
}

// newFlagSet returns fieldgated's flags, which write usage and errors to
// stderr, and where they store their values; fieldgated(8) lists them.
func newFlagSet(stderr io.Writer) (fs *flag.FlagSet, cfgPath, check *string, showVersion *bool) {
	fs = flag.NewFlagSet("fieldgated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath = fs.String("config", "/etc/fieldgate/fieldgated.yaml", "read the configuration from `FILE`")
	check = fs.String("check-config", "", "check the configuration `FILE`, print every problem, and exit")
	showVersion = fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fieldgated [--config FILE] | --check-config FILE | --version\n\n")
		fmt.Fprintf(stderr, "fieldgated pulls TUF-verified updates and pushes them to field devices\ninside their maintenance windows, reporting over MQTT.\n\n")
		fs.PrintDefaults()
	}
	return fs, cfgPath, check, showVersion
}

// handover re-executes into the self-updated fieldgated when there is one
// to run (see daemon.Handover); it returns only if this binary should run.
func handover(stateDir string, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	path, err := daemon.Handover(stateDir, self, version)
	if err != nil || path == "" {
		return err
	}
	return syscall.Exec(path, append([]string{path}, args...), os.Environ())
}

// loadConfig loads and validates the configuration, including each
// device's driver-specific settings.
func loadConfig(path string, registry devices.Registry) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(checkDevice(registry)); err != nil {
		return nil, fmt.Errorf("config %s:\n%w", path, err)
	}
	return cfg, nil
}

// checkDevice lets each device's driver validate its address and options.
func checkDevice(registry devices.Registry) func(config.Device) error {
	return func(d config.Device) error { return registry.Check(deviceConfig(d)) }
}

func deviceConfig(d config.Device) devices.Config {
	return devices.Config{ID: d.ID, Protocol: d.Protocol, HardwareID: d.HardwareID, Address: d.Address, Baud: d.Baud, Options: d.Options}
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(systemd.NewLogHandler(w, &slog.HandlerOptions{Level: l}))
}

// serve wires the parts and runs the daemon until ctx ends.
func serve(ctx context.Context, cfg *config.Config, registry devices.Registry, logw io.Writer) error {
	log := newLogger(cfg.Gateway.LogLevel, logw)
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	notify := systemd.NewNotifier()
	dir := cfg.Gateway.StateDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	bt, _ := time.Parse(time.RFC3339, buildTime)
	src, err := tuf.New(tuf.Config{
		MetadataURL: cfg.TUF.MetadataURL, TargetsURL: cfg.TUF.TargetsURL,
		MetadataDir: filepath.Join(dir, "tuf"), BlobDir: filepath.Join(dir, "blobs"),
		TrustedRoot: cfg.TUF.TrustedRoot, HTTPTimeout: cfg.TUF.HTTPTimeout, BuildTime: bt,
		Paths: cfg.TUF.TargetPaths,
	}, log.With("part", "tuf"))
	if err != nil {
		return err
	}

	devs := map[string]devices.Device{}
	for _, dc := range cfg.Devices {
		d, err := registry.Open(deviceConfig(dc), log.With("device", dc.ID))
		if err != nil {
			return err
		}
		defer d.Close()
		devs[dc.ID] = d
	}

	bd, err := board.Open(boardConfig(cfg.Board), log.With("part", "board"))
	if err != nil {
		return err
	}

	mcfg := mqtt.Config{
		Broker: cfg.MQTT.Broker, Listen: cfg.MQTT.Listen, ClientID: cfg.MQTT.ClientID,
		Site: cfg.Gateway.Site, Gateway: cfg.Gateway.ID,
		Username: cfg.MQTT.Username, Password: cfg.MQTT.Password, CAFile: cfg.MQTT.CAFile,
		CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile, ServerName: cfg.MQTT.ServerName,
		Prefix: cfg.MQTT.Prefix, Broadcast: cfg.MQTT.BroadcastPrefix, KeepAlive: cfg.MQTT.KeepAlive,
	}
	if mcfg.Broker == "" {
		broker, err := embeddedBroker(cfg.MQTT).Start(log.With("part", "broker"))
		if err != nil {
			return err
		}
		defer broker.Close()
		mcfg.Broker = broker.URL()
		if user, pw := broker.Credentials(); user != "" {
			mcfg.Username, mcfg.Password = user, pw
		}
	}
	var d *daemon.Daemon // commands reach the daemon once it runs
	session := mqtt.NewSession(mcfg, daemon.Outbox{Store: st}, log.With("part", "mqtt"),
		mqtt.WithCommandHandler(func(topic string, payload []byte) { d.CommandHandler()(topic, payload) }))

	ind := &indicator{board: bd, notify: notify}
	importer := func(ctx context.Context, dir string) (*tuf.Snapshot, error) {
		imp, err := tuf.ImportBundle(ctx, src, dir)
		if err != nil {
			return nil, err
		}
		return imp.Snapshot, nil
	}
	msrv, meter := metricsServer(cfg, func() (daemon.Counts, error) { return d.Counts() }, log)
	d, err = daemon.New(daemon.Deps{Importer: importer,
		Config: cfg, Store: st, Source: src, Devices: devs, Indicator: ind, Buttons: bd, Broker: session,
		Meter: meter, Version: version, Log: log,
	})
	if err != nil {
		return err
	}
	sock := &control.Server{Path: cfg.Gateway.Socket, Reader: d, Commander: d, Log: log}
	if err := sock.Listen(); err != nil { // before READY: fieldgatectl works once systemctl start returns
		return err
	}
	if msrv != nil {
		if err := msrv.Listen(); err != nil {
			return err
		}
		d.AddRunners(msrv)
	}
	d.AddRunners(session, sock, bd, &watchdog{notify: notify, alive: d.Alive, restore: ind.resendStatus, log: log.With("part", "watchdog")})
	if sp := cfg.MQTT.Sparkplug; sp.Enabled {
		d.AddRunners(sparkplugNode(d, mcfg, sp, dir, log))
	}
	notify.Ready()
	log.Info("fieldgated started", "version", version, "devices", len(devs), "board_virtual", bd.Virtual())
	err = d.Run(ctx)
	// A handover to a new binary re-executes in this same process: systemd
	// must keep seeing a running service whose watchdog is armed, so that a
	// new binary that never comes up is killed after WatchdogSec and rolled
	// back at the restart. STOPPING=1 would disarm the watchdog and leave it
	// to TimeoutStopSec (TestInteropSystemdBoot/self-update-rollback).
	if !errors.Is(err, daemon.ErrRestart) {
		notify.Stopping()
	}
	return err
}

// sparkplugNode returns the Sparkplug B edge node, fed by the daemon: its
// own connection (client id, will) to the broker of mcfg, and commands
// handed to the daemon's command handler.
func sparkplugNode(d *daemon.Daemon, mcfg mqtt.Config, sp config.Sparkplug, stateDir string, log *slog.Logger) *sparkplug.Node {
	mcfg.ClientID = sp.ClientID
	node := sparkplug.New(sparkplug.Config{
		MQTT: mcfg, GroupID: sp.GroupID, EdgeNodeID: sp.EdgeNodeID, PrimaryHostID: sp.PrimaryHostID, StateDir: stateDir,
	}, log.With("part", "sparkplug"), d.CommandHandler())
	d.Observe(func(o daemon.Observation) {
		node.Update(sparkplug.View{Gateway: o.Gateway, Devices: o.Devices, Jobs: o.Jobs, Windows: o.Windows, RootVersion: o.RootVersion})
	}, node.CommandResult)
	return node
}

// metricsServer returns the metrics listener and the meter the daemon
// feeds when metrics.listen is set, or nil and nil. counts reads the
// daemon's numbers at each scrape.
func metricsServer(cfg *config.Config, counts func() (daemon.Counts, error), log *slog.Logger) (*metrics.Server, daemon.Meter) {
	if cfg.Metrics.Listen == "" {
		return nil, nil
	}
	var protocols []string
	for _, dc := range cfg.Devices {
		if !slices.Contains(protocols, dc.Protocol) {
			protocols = append(protocols, dc.Protocol)
		}
	}
	m := metrics.New(counts, protocols)
	return &metrics.Server{Addr: cfg.Metrics.Listen, Metrics: m, Log: log.With("part", "metrics")}, m
}

func embeddedBroker(m config.MQTT) mqtt.BrokerConfig {
	e := m.Embedded
	return mqtt.BrokerConfig{
		Listen: m.Listen, MaxPacketSize: e.MaxPacketSize, MaxRetained: e.MaxRetained,
		MaxRetainedBytes: e.MaxRetainedBytes, MaxInflight: e.MaxInflight, MaxClients: e.MaxClients,
		PasswordFile: e.PasswordFile, TLSCertFile: e.TLSCertFile, TLSKeyFile: e.TLSKeyFile,
		ClientCAFile: e.ClientCAFile,
	}
}

func boardConfig(c config.Board) board.Config {
	bc := board.Config{Buttons: map[string]board.Pin{}, LEDs: map[string]board.Pin{}}
	for n, p := range c.Buttons {
		bc.Buttons[n] = board.Pin{Name: p.Pin, ActiveLow: p.ActiveLow}
	}
	for n, p := range c.LEDs {
		bc.LEDs[n] = board.Pin{Name: p.Pin, ActiveLow: p.ActiveLow}
	}
	return bc
}

// indicator shows the daemon's display on the board's LEDs and its state
// in systemd's STATUS= line. The loop, workers and the button loop all
// call Show.
type indicator struct {
	board  *board.Board
	notify *systemd.Notifier
	mu     sync.Mutex
	last   daemon.Display
}

func (i *indicator) Show(d daemon.Display) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if d == i.last {
		return
	}
	if i.last.Page != 0 && d.Page != i.last.Page {
		i.board.FlashAll(int(d.Page)) // the page number, as it opens
	}
	if d.Page == daemon.PageState {
		i.board.Show(board.State(d.State))
	} else {
		i.board.ShowChecks(d.Good, d.Bad)
	}
	if d.State != i.last.State {
		i.notify.Status(string(d.State))
	}
	i.last = d
}

func (i *indicator) LEDs() map[string]string {
	out := map[string]string{}
	for n, p := range i.board.LEDs() {
		out[n] = string(p)
	}
	return out
}
