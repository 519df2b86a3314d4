// SPDX-License-Identifier: Apache-2.0

package ssh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/fieldgate/fieldgate/devices"
)

// ErrHostKeyMismatch is wrapped when the device presents a host key other
// than the pinned one(s).
var ErrHostKeyMismatch = errors.New("ssh host key does not match the pinned key")

// ErrCommand is wrapped when a device command exits non-zero.
var ErrCommand = errors.New("device command failed")

type config struct {
	hostKeys                                         []ssh.PublicKey
	user                                             string
	signer                                           ssh.Signer
	keyFile                                          string
	install, version, rollback, reboot, health, comm string
	hash, remoteDir                                  string
	connectTimeout, bootTimeout, poll                time.Duration
}

// Driver returns the "ssh" driver. Config.Address is host:port of the
// device's SSH server.
func Driver() devices.Driver {
	return devices.Driver{
		Name: "ssh",
		Doc: "A Linux-based device (HMI, RTU) reached by SSH: the image is uploaded by SFTP into remote_dir and " +
			"installed with install_command; version, health, commit and rollback are commands the device runs. " +
			"address is host:port of its SSH server. The host key is pinned: a device presenting another key is refused.",
		Options:   func(o *devices.Options) { readOptions(o) },
		OptionDoc: optionDoc(),
		Check: func(cfg devices.Config) error {
			_, err := parse(cfg) // reads key_file too: --check-config fails on a missing key
			return err
		},
		Open: func(cfg devices.Config, log *slog.Logger) (devices.Device, error) { return Open(cfg, log) },
	}
}

// readOptions reads the options of the "ssh" driver from o ("" = not
// set); optionDoc says what each key means. hostKey is returned as written.
func readOptions(o *devices.Options) (c config, hostKey string) {
	hostKey = o.String("host_key", "")
	return config{
		user:           o.String("user", ""),
		keyFile:        o.String("key_file", ""),
		install:        o.String("install_command", ""),
		version:        o.String("version_command", ""),
		rollback:       o.String("rollback_command", ""),
		reboot:         o.String("reboot_command", ""),
		health:         o.String("health_command", ""),
		comm:           o.String("commit_command", ""),
		hash:           o.String("hash_command", "sha256sum"),
		remoteDir:      o.String("remote_dir", "/tmp"),
		connectTimeout: o.Duration("connect_timeout", 10*time.Second),
		bootTimeout:    o.Duration("boot_timeout", 120*time.Second),
		poll:           o.Duration("poll_interval", time.Second),
	}, hostKey
}

func optionDoc() map[string]string {
	return map[string]string{
		"host_key":         "required: the device's pinned host key(s), as authorized_keys or known_hosts lines, or the path of a file of them",
		"user":             "required: the user to log in as",
		"key_file":         "required: the private key to log in with (OpenSSH or PEM, unencrypted)",
		"install_command":  "required: installs the uploaded image; {file} is replaced by its quoted remote path (else the path is appended)",
		"version_command":  "required: prints the version, or key=value fields with version= (and hardware_id, vendor, product, model, hardware_revision, serial, image_sha256)",
		"rollback_command": "returns to the previous image; setting it enables Revert (two slots)",
		"reboot_command":   "run after install_command; the connection must drop, then the device must answer again",
		"health_command":   "the health probe after activation: exit status 0 is healthy",
		"commit_command":   "makes the running image permanent (Commit)",
		"hash_command":     "run with -- and the uploaded file's quoted path; the first word it prints is the sha256, as sha256sum prints it",
		"remote_dir":       "absolute directory the image is uploaded to by SFTP",
		"connect_timeout":  "deadline of the TCP connection and SSH handshake",
		"boot_timeout":     "how long after reboot_command the device must answer again",
		"poll_interval":    "pause between connection attempts while the device reboots",
	}
}

// parse reads and checks the options of the "ssh" driver.
func parse(cfg devices.Config) (config, error) {
	o := devices.ReadOptions(cfg.Options)
	c, hostKey := readOptions(o)
	var errs []error
	if err := o.Err(); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		errs = append(errs, fmt.Errorf("address %q: want host:port: %w", cfg.Address, err))
	}
	for _, r := range []struct{ key, v string }{
		{"host_key", hostKey}, {"user", c.user}, {"key_file", c.keyFile},
		{"install_command", c.install}, {"version_command", c.version},
	} {
		if r.v == "" {
			errs = append(errs, fmt.Errorf("option %s is required", r.key))
		}
	}
	if !path.IsAbs(c.remoteDir) {
		errs = append(errs, fmt.Errorf("option remote_dir=%q: want an absolute path", c.remoteDir))
	}
	if hostKey != "" {
		keys, err := parseHostKeys(hostKey)
		if err != nil {
			errs = append(errs, err)
		}
		c.hostKeys = keys
	}
	if c.keyFile != "" {
		pem, err := os.ReadFile(c.keyFile)
		if err == nil {
			c.signer, err = ssh.ParsePrivateKey(pem)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("option key_file: %w", err))
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("device %s (ssh): %w", cfg.ID, errors.Join(errs...))
	}
	return c, nil
}

// parseHostKeys reads pinned keys from authorized_keys or known_hosts
// lines, given inline or as a file path.
func parseHostKeys(v string) ([]ssh.PublicKey, error) {
	text := []byte(v)
	if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") {
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("option host_key: %w", err)
		}
		text = b
	}
	var keys []ssh.PublicKey
	for _, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			keys = append(keys, k)
			continue
		}
		if _, _, k, _, _, err := ssh.ParseKnownHosts([]byte(line)); err == nil {
			keys = append(keys, k)
			continue
		}
		return nil, fmt.Errorf("option host_key: line %q is neither an authorized_keys nor a known_hosts entry", trunc(line, 40))
	}
	if len(keys) == 0 {
		return nil, errors.New("option host_key: no key")
	}
	return keys, nil
}

// Device is a Linux device updated over SSH/SFTP.
type Device struct {
	cfg    devices.Config
	c      config
	log    *slog.Logger
	client *ssh.Client
	remote string // path of the last transferred image
	pushed *devices.Image
}

var _ devices.Device = (*Device)(nil)

// Open returns the device for cfg. It reads key_file but does no network
// I/O.
func Open(cfg devices.Config, log *slog.Logger) (*Device, error) {
	c, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Device{cfg: cfg, c: c, log: log.With("device", cfg.ID, "protocol", "ssh")}, nil
}

// Capabilities implements devices.Device.
func (d *Device) Capabilities() devices.Capabilities {
	slots := 1
	if d.c.rollback != "" {
		slots = 2
	}
	return devices.Capabilities{Slots: slots, Health: d.c.health != ""}
}

func (d *Device) hostKeyCallback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	got := key.Marshal()
	for _, k := range d.c.hostKeys {
		if bytes.Equal(k.Marshal(), got) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s presents %s %s", ErrHostKeyMismatch, hostname, key.Type(), ssh.FingerprintSHA256(key))
}

// connect returns the cached connection or dials a new one.
func (d *Device) connect(ctx context.Context) (*ssh.Client, error) {
	if d.client != nil {
		return d.client, nil
	}
	dctx, cancel := context.WithTimeout(ctx, d.c.connectTimeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(dctx, "tcp", d.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", d.cfg.Address, err)
	}
	stop := context.AfterFunc(dctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	cc, chans, reqs, err := ssh.NewClientConn(conn, d.cfg.Address, &ssh.ClientConfig{
		User:            d.c.user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(d.c.signer)},
		HostKeyCallback: d.hostKeyCallback,
		Timeout:         d.c.connectTimeout,
	})
	if !stop() {
		err = errors.Join(err, dctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh handshake with %s: %w", d.cfg.Address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	d.client = ssh.NewClient(cc, chans, reqs)
	return d.client, nil
}

func (d *Device) disconnect() {
	if d.client != nil {
		d.client.Close()
		d.client = nil
	}
}

// run executes cmd on the device and returns its standard output.
func (d *Device) run(ctx context.Context, cmd string) (string, error) {
	cl, err := d.connect(ctx)
	if err != nil {
		return "", err
	}
	s, err := cl.NewSession()
	if err != nil {
		d.disconnect() // a broken connection: dial afresh next time
		return "", fmt.Errorf("open session: %w", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var out, errOut limited
	out.max, errOut.max = 64<<10, 4<<10
	s.Stdout, s.Stderr = &out, &errOut
	err = s.Run(cmd)
	if ctx.Err() != nil {
		return out.String(), ctx.Err()
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return out.String(), fmt.Errorf("%w: %q exited %d: %s", ErrCommand, trunc(cmd, 60), ee.ExitStatus(), strings.TrimSpace(errOut.String()))
	}
	if err != nil {
		return out.String(), fmt.Errorf("run %q: %w", trunc(cmd, 60), err)
	}
	return out.String(), nil
}

// Identify implements devices.Device: version_command prints the version,
// or key=value fields (version=, hardware_id=, vendor=, product=, model=,
// hardware_revision=, serial=, image_sha256=).
func (d *Device) Identify(ctx context.Context) (devices.Identity, error) {
	out, err := d.run(ctx, d.c.version)
	if err != nil {
		return devices.Identity{}, classify("identify", fmt.Errorf("identify %s: %w", d.cfg.ID, err))
	}
	id := parseIdentity(out)
	if id.Version == "" {
		return id, devices.Permanent("identify", fmt.Errorf("identify %s: version_command printed no version", d.cfg.ID))
	}
	return id, nil
}

func parseIdentity(out string) devices.Identity {
	var id devices.Identity
	out = strings.TrimSpace(out)
	if !strings.Contains(out, "=") {
		id.Version = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		return id
	}
	for _, f := range strings.Fields(out) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "version":
			id.Version = v
		case "hardware_id":
			id.HardwareID = v
		case "vendor":
			id.Vendor = v
		case "product":
			id.Product = v
		case "model":
			id.Model = v
		case "hardware_revision":
			id.HardwareRevision = v
		case "serial":
			id.Serial = v
		case "image_sha256":
			id.ImageSHA256 = v
		}
	}
	return id
}

// Interlock implements devices.Device.
func (d *Device) Interlock(ctx context.Context) (bool, error) {
	return false, devices.Permanent("interlock", fmt.Errorf("ssh device %s: %w", d.cfg.ID, devices.ErrUnsupported))
}

// Backup implements devices.Device: not supported; rollback is by
// rollback_command.
func (d *Device) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return 0, devices.Permanent("backup", fmt.Errorf("ssh device %s: %w", d.cfg.ID, devices.ErrUnsupported))
}

// remotePath is where img lands: remote_dir plus the last element of its
// target name.
func (d *Device) remotePath(img devices.Image) (string, error) {
	base := path.Base(img.Name)
	if base == "." || base == "/" || base == ".." || strings.ContainsAny(base, "\x00\n") {
		return "", fmt.Errorf("image name %q has no usable file name", img.Name)
	}
	return path.Join(d.c.remoteDir, base), nil
}

// Transfer uploads img to a staging file (.part, renamed when complete and
// verified); the running system changes only in Activate. Every error is
// therefore Untouched: the device still runs what it ran.
func (d *Device) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	return devices.Untouched(d.transfer(ctx, img, r, progress))
}

func (d *Device) transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	final, err := d.remotePath(img)
	if err != nil {
		return devices.Permanent("transfer", err)
	}
	part := final + ".part"
	cl, err := d.connect(ctx)
	if err != nil {
		return classify("transfer", fmt.Errorf("push %s to %s: %w", img.Name, d.cfg.ID, err))
	}
	sc, err := sftp.NewClient(cl, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		d.disconnect()
		return classify("transfer", fmt.Errorf("push %s to %s: sftp: %w", img.Name, d.cfg.ID, err))
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	d.log.Info("sftp upload", "image", img.Name, "version", img.Version, "bytes", img.Size, "path", part)
	h := sha256.New()
	n, err := upload(sc, part, io.TeeReader(io.LimitReader(r, img.Size), h), img.Size, progress)
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = sc.Remove(part)
		return classify("transfer", fmt.Errorf("push %s to %s: %w", img.Name, d.cfg.ID, err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != img.Size || got != img.SHA256 {
		_ = sc.Remove(part)
		return devices.Permanent("transfer", fmt.Errorf("push %s to %s: source gave %d bytes with sha256 %s, want %d with %s", img.Name, d.cfg.ID, n, got, img.Size, img.SHA256))
	}
	if err := sc.PosixRename(part, final); err != nil {
		return classify("transfer", fmt.Errorf("push %s to %s: rename %s: %w", img.Name, d.cfg.ID, part, err))
	}
	out, err := d.run(ctx, d.c.hash+" -- "+quote(final))
	if err != nil {
		return classify("transfer", fmt.Errorf("verify %s on %s: %w", final, d.cfg.ID, err))
	}
	got, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	if !strings.EqualFold(got, img.SHA256) {
		return devices.Permanent("transfer", fmt.Errorf("device %s reports sha256 %s, want %s", d.cfg.ID, trunc(got, 64), img.SHA256))
	}
	d.remote, d.pushed = final, &img
	return nil
}

func upload(sc *sftp.Client, name string, r io.Reader, size int64, progress devices.Progress) (int64, error) {
	f, err := sc.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", name, err)
	}
	pr := devices.ProgressReader(r, size, progress)
	n, err := f.ReadFromWithConcurrency(pr, 0)
	if err != nil {
		f.Close()
		return n, fmt.Errorf("write %s: %w", name, err)
	}
	var se *sftp.StatusError
	if err := f.Sync(); err != nil && !(errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported) && !errors.Is(err, sftp.ErrSSHFxOpUnsupported) {
		f.Close()
		return n, fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("close %s: %w", name, err)
	}
	return n, nil
}

// Activate implements devices.Device: install, reboot if configured, and
// read the version back.
func (d *Device) Activate(ctx context.Context) error {
	if d.remote == "" {
		return devices.Permanent("activate", fmt.Errorf("activate %s: nothing transferred", d.cfg.ID))
	}
	cmd := d.c.install
	if strings.Contains(cmd, "{file}") {
		cmd = strings.ReplaceAll(cmd, "{file}", quote(d.remote))
	} else {
		cmd += " " + quote(d.remote)
	}
	d.log.Info("ssh install", "command", cmd)
	if _, err := d.run(ctx, cmd); err != nil {
		return classify("activate", fmt.Errorf("install on %s: %w", d.cfg.ID, err))
	}
	if err := d.rebootAndWait(ctx, "activate"); err != nil {
		return err
	}
	id, err := d.Identify(ctx)
	if err != nil {
		return err
	}
	if d.pushed != nil && id.Version != d.pushed.Version {
		return devices.Permanent("activate", fmt.Errorf("device %s runs version %s after install, want %s", d.cfg.ID, id.Version, d.pushed.Version))
	}
	return nil
}

// rebootAndWait runs reboot_command, waits for the connection to drop, and
// reconnects until the device answers or boot_timeout passes.
func (d *Device) rebootAndWait(ctx context.Context, op string) error {
	if d.c.reboot == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.c.bootTimeout)
	defer cancel()
	cl, err := d.connect(ctx)
	if err != nil {
		return classify(op, fmt.Errorf("reboot %s: %w", d.cfg.ID, err))
	}
	dropped := make(chan struct{})
	go func() { _ = cl.Wait(); close(dropped) }()
	d.log.Info("ssh reboot", "command", d.c.reboot)
	if s, err := cl.NewSession(); err == nil {
		_ = s.Start(d.c.reboot) // the session dies with the device
	}
	select {
	case <-dropped:
	case <-ctx.Done():
		d.disconnect()
		return devices.Transient(op, fmt.Errorf("device %s did not drop the connection after %q within %s", d.cfg.ID, d.c.reboot, d.c.bootTimeout))
	}
	d.disconnect()
	tick := time.NewTicker(d.c.poll)
	defer tick.Stop()
	for {
		_, err := d.run(ctx, "true")
		if err == nil {
			d.log.Info("ssh device back after reboot")
			return nil
		}
		if errors.Is(err, ErrHostKeyMismatch) {
			return devices.Permanent(op, fmt.Errorf("reconnect %s: %w", d.cfg.ID, err))
		}
		d.disconnect()
		select {
		case <-ctx.Done():
			return devices.Transient(op, fmt.Errorf("device %s not back within %s: %w", d.cfg.ID, d.c.bootTimeout, err))
		case <-tick.C:
		}
	}
}

// Health implements devices.Device.
func (d *Device) Health(ctx context.Context) error {
	if d.c.health == "" {
		return devices.Permanent("health", fmt.Errorf("ssh device %s: no health_command: %w", d.cfg.ID, devices.ErrUnsupported))
	}
	if _, err := d.run(ctx, d.c.health); err != nil {
		return classify("health", fmt.Errorf("health %s: %w", d.cfg.ID, err))
	}
	return nil
}

// Commit implements devices.Device.
func (d *Device) Commit(ctx context.Context) error {
	if d.c.comm == "" {
		return nil
	}
	if _, err := d.run(ctx, d.c.comm); err != nil {
		return classify("commit", fmt.Errorf("commit %s: %w", d.cfg.ID, err))
	}
	return nil
}

// Revert implements devices.Device: rollback_command, then a reboot if one
// is configured.
func (d *Device) Revert(ctx context.Context) error {
	if d.c.rollback == "" {
		return devices.Permanent("revert", fmt.Errorf("ssh device %s: no rollback_command: %w", d.cfg.ID, devices.ErrUnsupported))
	}
	if _, err := d.run(ctx, d.c.rollback); err != nil {
		return classify("revert", fmt.Errorf("rollback %s: %w", d.cfg.ID, err))
	}
	return d.rebootAndWait(ctx, "revert")
}

// Close implements devices.Device.
func (d *Device) Close() error {
	d.disconnect()
	return nil
}

func classify(op string, err error) error {
	var ne net.Error
	var se *sftp.StatusError
	switch {
	case errors.Is(err, ErrHostKeyMismatch), errors.Is(err, ErrCommand), errors.As(err, &se):
		return devices.Permanent(op, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, io.EOF):
		return devices.Transient(op, err)
	case errors.As(err, &ne):
		return devices.Transient(op, err)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return devices.Permanent(op, err)
	}
	return devices.Transient(op, err)
}

// quote makes s one word for a POSIX shell.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

type limited struct {
	bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
