// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// guidePath is the operator's guide the test follows.
const guidePath = "../docs/operations.md"

// guideBlock is one fenced block of the guide.
type guideBlock struct {
	lang string // after the opening fence: sh, yaml, nginx, console
	text string // the lines between the fences
	line int    // line number of the opening fence
}

// file returns the path a block is the contents of: its first line is a
// comment naming an absolute path ("# /etc/fieldgate/fieldgated.yaml").
func (b guideBlock) file() string {
	first, _, _ := strings.Cut(b.text, "\n")
	if p, ok := strings.CutPrefix(first, "# /"); ok && !strings.ContainsAny(p, " \t") {
		return "/" + p
	}
	return ""
}

// deviceEntry reports whether b is one entry of the configuration's
// devices: list (a YAML block that starts with "- id:").
func (b guideBlock) deviceEntry() bool {
	return b.lang == "yaml" && strings.HasPrefix(b.text, "- id:")
}

// parseGuide returns the fenced blocks of the guide in order. Every block
// must be one the test knows what to do with: sh (run), a file (written),
// a device entry (checked), or console (shown only).
func parseGuide(t *testing.T, path string) []guideBlock {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []guideBlock
	var cur *guideBlock
	var body []string
	for i, line := range strings.Split(string(raw), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &guideBlock{lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: i + 1}
			body = nil
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body = append(body, line)
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: fence never closed", path, cur.line)
	}
	for _, b := range blocks {
		switch {
		case b.lang == "sh", b.lang == "console", b.file() != "", b.deviceEntry():
		default:
			t.Errorf("%s:%d: a ```%s block that is neither sh, console, a file (first line \"# /path\") nor a device entry (\"- id:\"): the test would not know what to do with it",
				path, b.line, b.lang)
		}
	}
	return blocks
}

// TestOperatorGuideBlocks checks the guide's conventions without a
// container: every block is one the interop test runs, writes or checks,
// there is something of each kind, and the LED tables say what the
// README's say.
func TestOperatorGuideBlocks(t *testing.T) {
	blocks := parseGuide(t, guidePath)
	var sh, files, devs int
	protocols := map[string]bool{}
	for _, b := range blocks {
		switch {
		case b.lang == "sh":
			sh++
		case b.file() != "":
			files++
		case b.deviceEntry():
			devs++
			for _, m := range regexp.MustCompile(`(?m)^\s*protocol: ([a-z0-9-]+)`).FindAllStringSubmatch(b.text, -1) {
				protocols[m[1]] = true
			}
		}
	}
	if sh < 10 || files < 2 || devs < 5 {
		t.Errorf("guide has %d sh blocks, %d files and %d device entries, want a guide", sh, files, devs)
	}
	for _, p := range []string{"xmodem", "modbus-tcp", "modbus-rtu", "tftp", "tftp-pull", "smp-udp", "smp-serial", "ssh"} {
		if !protocols[p] {
			t.Errorf("guide has no device entry for protocol %s", p)
		}
	}

	guide, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(string(guide), "\n") {
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		switch first {
		case "idle", "update-available", "awaiting-approval", "downloading", "pushing", "success", "failure", "trust-problem", "stopped", "2 uplink", "3 devices":
			rows++
			if !bytes.Contains(readme, []byte(line+"\n")) {
				t.Errorf("guide's LED row %q is not in README.md: the two tables must say the same", line)
			}
		}
	}
	if rows != 11 {
		t.Errorf("guide has %d rows of the LED tables, want 11 (9 states, 2 pages)", rows)
	}
}

// Versions of the simulated PLC: as it ships, after the online update of
// section 6, after the offline bundle of section 8.
var guideVersions = []string{"3.0.0", "3.1.0", "3.1.1"}

// TestInteropOperatorGuide follows docs/operations.md in a booted systemd
// container (bootContainer) with the real packages: it builds the
// fieldgate and fieldgate-tools .debs, and in the container runs every sh
// block of the guide in order (bash -e, from /root, where the packages
// are) and writes every file the guide shows, publisher and gateway side
// alike. The test provides only what the guide takes as given, staged
// before the boot and named in guideStage: the packages, the vendor's
// firmware images, a PLC (fieldgate-sim, Modbus TCP at 192.168.10.21:502),
// the names updates.example.com and broker.example.com, the central
// broker (mosquitto with TLS and client certificates) and its CA, and an
// empty /media/usb. Its one substitution is ROOT_SHA256, the fingerprint
// the publisher reads out by phone, taken from what fieldgate-repo
// printed. It types the publisher's passphrase: every block gets it on
// stdin (the guide's read), and fieldgate-repo, which asks for it on a
// terminal and has none here, finds it in $FIELDGATE_REPO_PASSPHRASE as a
// script without a terminal would give it. After each `fieldgatectl approve` it waits until the PLC
// reports the version just published; at the end fieldgatectl status
// must show it at 3.1.1, through the offline bundle, with the broker
// connected over TLS. Last, every device entry of section 3 is checked
// with fieldgated --check-config inside the guide's configuration.
//
// Needs root, systemd-nspawn (systemd-container), nginx, mosquitto and
// openssl on the host: the container boots the host's root.
func TestInteropOperatorGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the packages and boots a systemd container")
	}
	needPeer(t, "systemd-nspawn", "systemd-container")
	needPeer(t, "unshare", "util-linux")
	needPeer(t, "nsenter", "util-linux")
	needPeer(t, "nginx", "nginx")
	needPeer(t, "mosquitto", "mosquitto")
	needPeer(t, "openssl", "openssl")
	needPeer(t, "curl", "curl")
	needPeer(t, "ssh-keygen", "openssh-client")
	needPeer(t, "apt", "apt")
	if os.Geteuid() != 0 {
		missing(t, "systemd-nspawn needs root")
	}
	t.Parallel()
	began := time.Now()
	blocks := parseGuide(t, guidePath)
	mainDeb, toolsDeb := buildDebs(t, "v0.1.0")
	stage := guideStage(t, mainDeb, toolsDeb)
	c := bootContainer(t, stage)
	t.Logf("packages built and container booted in %v", time.Since(began).Round(100*time.Millisecond))

	var outputs strings.Builder // everything the sh blocks printed, for the fingerprint
	approvals := 0
	var mainConfig string
	var devices []guideBlock
	for _, b := range blocks {
		where := fmt.Sprintf("%s:%d", guidePath, b.line)
		switch {
		case b.deviceEntry():
			devices = append(devices, b)
		case b.file() != "":
			if b.file() == "/etc/fieldgate/fieldgated.yaml" {
				mainConfig = b.text
			}
			c.writeFile(t, b.file(), b.text)
		case b.lang == "sh":
			script := b.text
			if strings.Contains(script, "ROOT_SHA256=") {
				fp := regexp.MustCompile(`root fingerprint: sha256:([0-9a-f]{64})`).FindStringSubmatch(outputs.String())
				if fp == nil {
					t.Fatalf("%s: the guide reads the root fingerprint that fieldgate-repo printed, and it printed none:\n%s", where, outputs.String())
				}
				sum := fp[1]
				script = regexp.MustCompile(`(?m)^ROOT_SHA256=.*$`).ReplaceAllString(script, "ROOT_SHA256="+sum)
			}
			out, err := c.script(script)
			outputs.WriteString(out)
			t.Logf("%s:\n%s%s", where, indent(b.text), indent(out))
			if err != nil {
				t.Fatalf("%s: the guide's commands failed: %v\n%s\nfieldgated's journal:\n%s", where, err, out, c.journal("fieldgated"))
			}
			if strings.Contains(script, "fieldgatectl approve") {
				approvals++
				if approvals >= len(guideVersions) {
					t.Fatalf("%s: approval %d, want %d", where, approvals, len(guideVersions)-1)
				}
				c.waitVersion(t, "plc1", guideVersions[approvals])
			}
		}
	}
	if approvals != len(guideVersions)-1 {
		t.Errorf("the guide approved %d updates, want %d (sections 6 and 8)", approvals, len(guideVersions)-1)
	}

	st, err := c.guideStatus()
	if err != nil {
		t.Fatal(err)
	}
	if v := st.version("plc1"); v != guideVersions[len(guideVersions)-1] {
		t.Errorf("after the guide, plc1 runs %q, want %s", v, guideVersions[len(guideVersions)-1])
	}
	if !st.Gateway.BrokerConnected {
		t.Errorf("after the guide, the gateway is not connected to the broker over TLS: %+v", st.Gateway.Health)
	}

	t.Run("device-entries", func(t *testing.T) { c.checkDeviceEntries(t, mainConfig, devices) })
	t.Run("no-plaintext-keys", func(t *testing.T) {
		// Every private key the guide's commands wrote is encrypted: no
		// PEM private key block but ENCRYPTED ones (grep exits 1).
		out, err := c.script(`grep -rlE -- '-----BEGIN ((RSA|EC|DSA|OPENSSH) )?PRIVATE KEY-----' /srv/tuf /media/root-keys | grep . && exit 1
grep -rl -- '-----BEGIN ENCRYPTED PRIVATE KEY-----' /srv/tuf /media/root-keys`)
		if err != nil {
			t.Errorf("after the guide, plaintext private keys (or no encrypted ones) under /srv/tuf and /media/root-keys: %v\n%s", err, out)
		}
		if strings.Count(out, ".pem") != 4 {
			t.Errorf("encrypted key files after the guide:\n%s\nwant the 4 role keys (the root key on /media/root-keys)", out)
		}
	})

	t.Logf("whole guide: %v", time.Since(began).Round(100*time.Millisecond))
}

// checkDeviceEntries puts every device entry of the guide into the
// guide's configuration and checks it with fieldgated --check-config.
func (c *container) checkDeviceEntries(t *testing.T, mainConfig string, devices []guideBlock) {
	if !strings.Contains(mainConfig, "\ndevices:\n") || strings.Contains(mainConfig[strings.Index(mainConfig, "\ndevices:\n")+1:], "\n\n") {
		t.Fatalf("the guide's configuration does not end with its devices: list; the test appends to it")
	}
	all := strings.TrimRight(mainConfig, "\n") + "\n"
	for _, d := range devices {
		for _, line := range strings.Split(strings.TrimRight(d.text, "\n"), "\n") {
			all += "  " + line + "\n"
		}
	}
	// What the guide asks to read from the HMI's console: its host key.
	c.must(t, "sh", "-c", `ssh-keygen -q -t ed25519 -N "" -f /root/hmi1-host && echo "192.168.10.50 $(cut -d' ' -f1,2 /root/hmi1-host.pub)" >/etc/fieldgate/hmi1.known_hosts`)
	c.writeFile(t, "/root/every-device.yaml", all)
	out, err := c.run("fieldgated", "--check-config", "/root/every-device.yaml")
	if err != nil {
		t.Errorf("fieldgated --check-config with every device entry of the guide: %v\n%s\n%s", err, out, all)
	}
	// The check is a real one: a misspelt option of one entry fails it.
	bad := strings.Replace(all, "boot_timeout: 30s", "boot_timout: 30s", 1)
	if bad == all {
		t.Fatal("no xmodem boot_timeout in the guide's device entries to misspell")
	}
	c.writeFile(t, "/root/every-device-bad.yaml", bad)
	if out, err := c.run("fieldgated", "--check-config", "/root/every-device-bad.yaml"); err == nil || !strings.Contains(out, "boot_timout") {
		t.Errorf("fieldgated --check-config with a misspelt option: %v %q, want a failure naming boot_timout", err, out)
	}
}

// guideStage writes what the guide takes as given into the container's
// root: the packages in /root, the vendor's firmware in /srv/firmware,
// the central broker's CA in /srv/broker-ca, an empty /media/usb, the
// plant's names in /etc/hosts, and three units: the plant network (the
// PLC's address on loopback), the simulated PLC and the central broker.
// bootContainer waits for two units by name, fieldgate-test-repo and
// fieldgate-test-sim: here there is no repository to start at boot (the
// guide makes one), so fieldgate-test-repo is the plant network.
func guideStage(t *testing.T, mainDeb, toolsDeb string) string {
	t.Helper()
	stage := t.TempDir()
	if err := os.Chmod(stage, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, content []byte, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(stage, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, mode); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, deb := range []string{mainDeb, toolsDeb} {
		write("root/"+filepath.Base(deb), read(deb), 0o644)
	}
	for _, d := range []string{"media/usb", "var/backups"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// The simulator from the tools package plays the PLC (before the
	// guide installs that package) and makes the vendor's images.
	x := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", toolsDeb, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", toolsDeb, err, out)
	}
	sim := filepath.Join(x, "usr/bin/fieldgate-sim")
	write("usr/local/lib/fieldgate-guide/fieldgate-sim", read(sim), 0o755)
	for _, v := range guideVersions[1:] {
		img := filepath.Join(t.TempDir(), "fw.bin")
		if out, err := exec.Command(sim, "mkimage", "--format", "fgsim", "--hw", "acme-plc-m40", "--version", v, "--size", "4096", "-o", img).CombinedOutput(); err != nil {
			t.Fatalf("fieldgate-sim mkimage %s: %v\n%s", v, err, out)
		}
		write("srv/firmware/acme-plc-m40-"+v+".bin", read(img), 0o644)
	}
	write("etc/fieldgate-guide/sim.yaml", []byte(`devices:
  - id: plc1
    kind: modbus-tcp
    hardware_id: acme-plc-m40
    version: "`+guideVersions[0]+`"
    state_dir: /var/lib/fieldgate-guide-sim/plc1
    address: 192.168.10.21:502
    options: {image_size: "4096", boot_time: 100ms}
`), 0o644)

	// The central broker's CA (the guide signs the gateway's certificate
	// with it) and the broker's own certificate.
	ca := newGuideCA(t)
	write("srv/broker-ca/ca.pem", ca.certPEM, 0o644)
	write("srv/broker-ca/ca.key", ca.keyPEM, 0o600)
	brokerCert, brokerKey := ca.issue(t, "broker.example.com")
	write("etc/fieldgate-guide/broker.pem", brokerCert, 0o644)
	write("etc/fieldgate-guide/broker.key", brokerKey, 0o644) // mosquitto drops to its own user
	write("etc/fieldgate-guide/mosquitto.conf", []byte(`per_listener_settings false
allow_anonymous true
listener 8883 127.0.0.1
cafile /srv/broker-ca/ca.pem
certfile /etc/fieldgate-guide/broker.pem
keyfile /etc/fieldgate-guide/broker.key
require_certificate true
use_identity_as_username true
`), 0o644)
	write("etc/hosts", []byte("127.0.0.1 localhost updates.example.com broker.example.com\n::1 localhost ip6-localhost\n"), 0o644)

	write("etc/systemd/system/fieldgate-test-repo.service", []byte(`[Unit]
Description=fieldgate guide test: the plant network (the PLC's address)
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip address add 192.168.10.21/32 dev lo
`), 0o644)
	write("etc/systemd/system/fieldgate-test-sim.service", []byte(`[Unit]
Description=fieldgate guide test: the PLC (simulated, Modbus TCP)
Requires=fieldgate-test-repo.service
After=fieldgate-test-repo.service
[Service]
StateDirectory=fieldgate-guide-sim
ExecStart=/usr/local/lib/fieldgate-guide/fieldgate-sim run --config /etc/fieldgate-guide/sim.yaml
`), 0o644)
	write("etc/systemd/system/fieldgate-guide-broker.service", []byte(`[Unit]
Description=fieldgate guide test: the central MQTT broker (TLS, client certificates)
[Service]
ExecStart=/usr/sbin/mosquitto -c /etc/fieldgate-guide/mosquitto.conf
`), 0o644)
	write("etc/systemd/system/fieldgate-test.target", []byte(`[Unit]
Description=fieldgate guide test
Requires=basic.target
After=basic.target
Wants=fieldgate-test-repo.service fieldgate-test-sim.service fieldgate-guide-broker.service
AllowIsolate=yes
`), 0o644)
	return stage
}

// guideCA is a throwaway CA standing for the central broker's.
type guideCA struct {
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
	certPEM, keyPEM []byte
}

func newGuideCA(t *testing.T) *guideCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fieldgate guide test broker CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &guideCA{cert: cert, key: key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})}
}

// issue returns a server certificate and key for name, signed by the CA.
func (ca *guideCA) issue(t *testing.T, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})
}

// guidePassphrase is what the publisher types when the guide's commands
// ask for a key passphrase.
const guidePassphrase = "guide: publisher host keys"

// script runs a shell script of the guide in the container as root, from
// /root, with bash -e and pipefail, the publisher's passphrase on stdin and
// in $FIELDGATE_REPO_PASSPHRASE (see TestInteropOperatorGuide); it gives up
// after 5 minutes.
func (c *container) script(s string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(c.leader), "--all", "--",
		"bash", "-e", "-o", "pipefail", "-c", "cd /root\n"+s)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C",
		"DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "TERM=dumb",
		"FIELDGATE_REPO_PASSPHRASE=" + guidePassphrase}
	cmd.Stdin = strings.NewReader(guidePassphrase + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w (timed out)", err)
	}
	return out.String(), err
}

// writeFile writes a file in the container (root:root 0644), making its
// directory; the guide's commands set other owners and modes themselves.
func (c *container) writeFile(t *testing.T, path, content string) {
	t.Helper()
	cmd := exec.Command("nsenter", "--target", strconv.Itoa(c.leader), "--all", "--",
		"sh", "-c", `mkdir -p "$(dirname "$1")" && cat >"$1"`, "sh", path)
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s in the container: %v\n%s", path, err, out)
	}
}

// guideState is the part of `fieldgatectl status --json` the guide test reads.
type guideState struct {
	Gateway struct {
		BrokerConnected bool `json:"broker_connected"`
		Health          []struct {
			Name, Severity, Subject, Message string
		} `json:"health"`
	} `json:"gateway"`
	Devices []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
		State   string `json:"state"`
	} `json:"devices"`
	Jobs []struct {
		ID     string `json:"id"`
		Phase  string `json:"phase"`
		Reason string `json:"reason"`
	} `json:"jobs"`
}

func (s guideState) version(dev string) string {
	for _, d := range s.Devices {
		if d.ID == dev {
			return d.Version
		}
	}
	return ""
}

func (c *container) guideStatus() (guideState, error) {
	var s guideState
	out, err := c.run("fieldgatectl", "status", "--json")
	if err != nil {
		return s, fmt.Errorf("fieldgatectl status --json: %w: %s", err, out)
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// waitVersion waits until fieldgatectl status shows dev at version, with
// its job finished; it fails the test after 3 minutes.
func (c *container) waitVersion(t *testing.T, dev, version string) {
	t.Helper()
	start := time.Now()
	var st guideState
	var err error
	if !waitFor(3*time.Minute, func() bool {
		st, err = c.guideStatus()
		return err == nil && st.version(dev) == version
	}) {
		out, _ := c.run("fieldgatectl", "status")
		t.Fatalf("%s never reported version %s (%v); fieldgatectl status:\n%s\n%s", dev, version, err, out, c.journal("fieldgated"))
	}
	t.Logf("%s runs %s, %v after the approval", dev, version, time.Since(start).Round(100*time.Millisecond))
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
