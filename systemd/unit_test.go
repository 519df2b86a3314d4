// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` rating the unit may
// get (issue 8).
const maxExposure = 2.0

// newRoot builds a minimal file system root for systemd's --root options:
// the host's unit directory (for the targets the unit depends on) and the
// given files.
func newRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	var units string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			units = d
			break
		}
	}
	if units == "" {
		t.Fatalf("no systemd unit directory on this machine")
	}
	if err := copyTree(units, filepath.Join(root, "usr/lib/systemd/system")); err != nil {
		t.Fatalf("copy %s: %v", units, err)
	}
	for name, src := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(name, "/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// copyTree copies regular files and symbolic links (as links).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
		return nil
	})
}

// TestUnitVerify runs `systemd-analyze verify` on the unit, inside a
// temporary root that holds the unit and a stand-in /usr/bin/fieldgated
// (verify checks that ExecStart= is executable). The unit is checked as
// shipped, unchanged. verify exits 0 even for unknown keys or bad values,
// so any output counts as a failure. The man pages Documentation= names are
// the packages' (TestUnitDocumentation), not this machine's: --man=no.
func TestUnitVerify(t *testing.T) {
	analyze := needPeer(t, "systemd-analyze", "systemd")
	fake := filepath.Join(t.TempDir(), "fieldgated")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := newRoot(t, map[string]string{
		"etc/systemd/system/fieldgated.service": "fieldgated.service",
		"usr/bin/fieldgated":                    fake,
	})
	out, err := exec.Command(analyze, "verify", "--man=no", "--root="+root, "fieldgated.service").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify fieldgated.service: %v\n%s", err, out)
	}
}

var manRefRE = regexp.MustCompile(`^man:([a-z0-9._-]+)\(([1-8])\)$`)

// TestUnitDocumentation: every unit names its man pages in Documentation=,
// and each of them is one the packages ship (deb/man).
func TestUnitDocumentation(t *testing.T) {
	for unit, want := range map[string][]string{
		"fieldgated.service":                {"man:fieldgated(8)", "man:fieldgated.yaml(5)"},
		"fieldgate-repo-timestamp@.service": {"man:fieldgate-repo(1)"},
		"fieldgate-repo-timestamp@.timer":   {"man:fieldgate-repo(1)"},
	} {
		var got []string
		for _, v := range readUnit(t, unit)["Documentation"] {
			got = append(got, strings.Fields(v)...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Documentation = %q, want %q", unit, got, want)
		}
		for _, ref := range got {
			m := manRefRE.FindStringSubmatch(ref)
			if m == nil {
				t.Errorf("%s: Documentation %q is not a man page reference", unit, ref)
				continue
			}
			if _, err := os.Stat(filepath.Join("deb/man", m[1]+"."+m[2])); err != nil {
				t.Errorf("%s: Documentation %s: the packages do not ship it: %v", unit, ref, err)
			}
		}
	}
}

// readUnit parses the assignments of a unit file in this directory;
// repeated keys accumulate, sections are not told apart.
func readUnit(t *testing.T, name string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]string)
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", name, line)
		}
		m[k] = append(m[k], v)
	}
	return m
}

// TestTimestampTimerVerify runs `systemd-analyze verify` on an instance of
// the timestamp timer and its service, for the repository /srv/tuf
// (instance srv-tuf), in a temporary root with a stand-in
// /usr/bin/fieldgate-repo; any output is a failure. It also rates the
// service's sandbox with `systemd-analyze security`.
func TestTimestampTimerVerify(t *testing.T) {
	analyze := needPeer(t, "systemd-analyze", "systemd")
	fake := filepath.Join(t.TempDir(), "fieldgate-repo")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := newRoot(t, map[string]string{
		"usr/lib/systemd/system/fieldgate-repo-timestamp@.service": "fieldgate-repo-timestamp@.service",
		"usr/lib/systemd/system/fieldgate-repo-timestamp@.timer":   "fieldgate-repo-timestamp@.timer",
		"usr/bin/fieldgate-repo":                                   fake,
	})
	const instance = "fieldgate-repo-timestamp@srv-tuf"
	out, err := exec.Command(analyze, "verify", "--man=no", "--root="+root, instance+".timer", instance+".service").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s.timer %s.service: %v\n%s", instance, instance, err, out)
	}

	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", "--root="+root, instance+".service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security %s.service: %v\n%s", instance, err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in systemd-analyze output:\n%s", out)
	}
	if got, err := strconv.ParseFloat(string(m[1]), 64); err != nil || got > maxExposure {
		t.Errorf("exposure level of %s.service = %s, want <= %.1f\n%s", instance, m[1], maxExposure, out)
	}
}

// TestTimestampTimerSettings: the timer re-signs well inside the default
// 24-hour timestamp expiry, catches up after downtime and spreads its start;
// the service runs `fieldgate-repo timestamp` on the instance's directory
// with the timestamp key's passphrase from an encrypted credential, and may
// write only the published metadata and the signing log there.
func TestTimestampTimerSettings(t *testing.T) {
	timer := readUnit(t, "fieldgate-repo-timestamp@.timer")
	svc := readUnit(t, "fieldgate-repo-timestamp@.service")
	for _, c := range []struct {
		unit     map[string][]string
		key, val string
	}{
		{timer, "OnCalendar", "*-*-* 00/6:00:00"},
		{timer, "Persistent", "true"},
		{timer, "RandomizedDelaySec", "15min"},
		{timer, "WantedBy", "timers.target"},
		{svc, "Type", "oneshot"},
		{svc, "ExecStart", "/usr/bin/fieldgate-repo timestamp --passphrase-file %d/fieldgate-repo-timestamp %f"},
		{svc, "LoadCredentialEncrypted", "fieldgate-repo-timestamp:/etc/credstore.encrypted/fieldgate-repo-timestamp@%i"},
		{svc, "ReadWritePaths", "%f/repository/metadata -%f/signing-log.jsonl"},
		{svc, "ProtectSystem", "strict"},
		{svc, "PrivateNetwork", "yes"},
		{svc, "CapabilityBoundingSet", ""},
	} {
		if v := c.unit[c.key]; len(v) != 1 || v[0] != c.val {
			t.Errorf("%s = %q, want %q", c.key, v, c.val)
		}
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		// Four runs a day: a timestamp valid for 24 hours survives three
		// missed ones.
		cmd := exec.Command(analyze, "calendar", "--iterations=5", "--base-time=2026-01-01 00:30:00 UTC", "*-*-* 00/6:00:00")
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze calendar: %v\n%s", err, out)
		}
		if n := strings.Count(string(out), "2026-01-01"); n != 3 {
			t.Errorf("OnCalendar fires %d times on 2026-01-01 after 00:30, want 3 (06, 12, 18)\n%s", n, out)
		}
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

// TestUnitSecurity checks the exposure rating of the shipped unit.
func TestUnitSecurity(t *testing.T) {
	analyze := needPeer(t, "systemd-analyze", "systemd")
	unit, err := filepath.Abs("fieldgated.service")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "security", "--offline=yes", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=yes %s: %v\n%s", unit, err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in systemd-analyze output:\n%s", out)
	}
	got, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exposure level %.1f", got)
	if got > maxExposure {
		t.Errorf("exposure level = %.1f, want <= %.1f\n%s", got, maxExposure, out)
	}
}

// unitSettings parses the [Service] and [Unit] assignments of the unit file;
// repeated keys accumulate.
func unitSettings(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("fieldgated.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := make(map[string][]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("fieldgated.service: bad line %q", line)
		}
		m[k] = append(m[k], v)
	}
	return m
}

// TestUnitKeepsAccess guards the other side of the hardening: the rating
// must not be bought by cutting the daemon off from its serial ports, GPIO
// chips, network or its directories.
func TestUnitKeepsAccess(t *testing.T) {
	s := unitSettings(t)
	last := func(k string) string {
		if v := s[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	var words []string
	for _, k := range []string{"RestrictAddressFamilies", "SupplementaryGroups"} {
		for _, v := range s[k] {
			words = append(words, strings.Fields(v)...)
		}
	}
	var devices []string
	for _, v := range s["DeviceAllow"] {
		devices = append(devices, strings.Fields(v)[0])
	}
	for _, want := range []string{"AF_INET", "AF_INET6", "AF_UNIX", "dialout", "gpio"} {
		if !slices.Contains(words, want) {
			t.Errorf("unit lacks %s in RestrictAddressFamilies/SupplementaryGroups", want)
		}
	}
	for _, want := range []string{"char-ttyS", "char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-usb_serial", "char-gpiochip"} {
		if !slices.Contains(devices, want) {
			t.Errorf("DeviceAllow = %v, want %s", devices, want)
		}
	}
	for k, want := range map[string]string{
		"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "User": "fieldgate",
		"StateDirectory": "fieldgate", "ConfigurationDirectory": "fieldgate", "RuntimeDirectory": "fieldgate",
		"ExecStart": "/usr/bin/fieldgated --config /etc/fieldgate/fieldgated.yaml",
	} {
		if got := last(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"WatchdogSec", "TimeoutStopSec"} {
		if last(k) == "" {
			t.Errorf("%s is not set", k)
		}
	}
	for _, k := range []string{"PrivateNetwork", "PrivateDevices", "DynamicUser"} {
		if v := last(k); v == "yes" || v == "true" {
			t.Errorf("%s=%s would cut the daemon off from its devices or network", k, v)
		}
	}
}

// TestSnippets applies the sysusers.d and tmpfiles.d snippets to a temporary
// root and checks the user, groups and directories they create.
func TestSnippets(t *testing.T) {
	sysusers := needPeer(t, "systemd-sysusers", "systemd")
	tmpfiles := needPeer(t, "systemd-tmpfiles", "systemd")
	if os.Geteuid() != 0 {
		t.Skip("systemd-tmpfiles needs root to set owners")
	}
	root := t.TempDir()
	for name, src := range map[string]string{
		"usr/lib/sysusers.d/fieldgate.conf": "fieldgate.sysusers.conf",
		"usr/lib/tmpfiles.d/fieldgate.conf": "fieldgate.tmpfiles.conf",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sysusers, "--root="+root, "fieldgate.conf").CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	if out, err := exec.Command(tmpfiles, "--root="+root, "--create", "fieldgate.conf").CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles --create: %v\n%s", err, out)
	}

	passwd := readDB(t, filepath.Join(root, "etc/passwd"))
	group := readDB(t, filepath.Join(root, "etc/group"))
	u, ok := passwd["fieldgate"]
	if !ok {
		t.Fatalf("no user fieldgate in %v", passwd)
	}
	if u[5] != "/var/lib/fieldgate" || !strings.HasSuffix(u[6], "nologin") {
		t.Errorf("user fieldgate = %v, want home /var/lib/fieldgate and a nologin shell", u)
	}
	for _, g := range []string{"dialout", "gpio"} {
		if !slices.Contains(strings.Split(group[g][3], ","), "fieldgate") {
			t.Errorf("group %s = %v, want member fieldgate", g, group[g])
		}
	}
	uid, gid := u[2], group["fieldgate"][2]
	for _, d := range []struct {
		path     string
		uid, gid string
		mode     os.FileMode
	}{
		{"etc/fieldgate", "0", gid, 0o750},
		{"var/lib/fieldgate", uid, gid, 0o750},
	} {
		fi, err := os.Stat(filepath.Join(root, d.path))
		if err != nil {
			t.Errorf("tmpfiles did not create /%s: %v", d.path, err)
			continue
		}
		gotUID, gotGID := owner(fi)
		if !fi.IsDir() || fi.Mode().Perm() != d.mode || gotUID != d.uid || gotGID != d.gid {
			t.Errorf("/%s = %v %s:%s, want dir %v %s:%s", d.path, fi.Mode(), gotUID, gotGID, d.mode, d.uid, d.gid)
		}
	}
}

// readDB reads a passwd(5)/group(5) file into name -> fields.
func readDB(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]string)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, ":")
		m[f[0]] = f
	}
	return m
}

// TestTimestampServiceWrites runs what the service runs, `fieldgate-repo
// timestamp --passphrase-file CREDENTIAL DIR`, on a repository made by
// `fieldgate-repo init` whose timestamp key got its own passphrase with
// `keys passwd` (the credential's), and checks that it signs a new
// timestamp, logs it, and changes nothing outside DIR/repository/metadata
// and DIR/signing-log.jsonl, the only paths the sandbox leaves writable; the
// other keys' passphrase is not the credential's.
func TestTimestampServiceWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fieldgate-repo")
	}
	bin := t.TempDir()
	crossBuild(t, runtime.GOARCH, bin, "test", "fieldgate-repo")
	repo := filepath.Join(t.TempDir(), "tuf")
	offline, cred := filepath.Join(t.TempDir(), "offline"), filepath.Join(t.TempDir(), "fieldgate-repo-timestamp")
	os.WriteFile(offline, []byte("offline passphrase\n"), 0o600)
	os.WriteFile(cred, []byte("online passphrase"), 0o600)
	run := func(args ...string) error {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "fieldgate-repo"), args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("fieldgate-repo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"init", repo, "--passphrase-file", offline},
		{"keys", "passwd", repo, "timestamp", "--passphrase-file", offline, "--new-passphrase-file", cred},
	} {
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshotTree(t, repo)
	// ExecStart=/usr/bin/fieldgate-repo timestamp --passphrase-file %d/fieldgate-repo-timestamp %f
	if err := run("timestamp", "--passphrase-file", cred, repo); err != nil {
		t.Fatal(err)
	}
	after := snapshotTree(t, repo)
	if err := run("commit", "--passphrase-file", cred, repo); err == nil {
		t.Error("the timestamp key's credential unlocked the snapshot key too")
	}

	var changed []string
	for p, h := range after {
		if before[p] != h {
			changed = append(changed, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			changed = append(changed, p)
		}
	}
	slices.Sort(changed)
	if !slices.Contains(changed, "repository/metadata/timestamp.json") || !slices.Contains(changed, "signing-log.jsonl") {
		t.Errorf("fieldgate-repo timestamp changed %q, want repository/metadata/timestamp.json and signing-log.jsonl among them", changed)
	}
	for _, p := range changed {
		if !strings.HasPrefix(p, "repository/metadata/") && p != "signing-log.jsonl" {
			t.Errorf("fieldgate-repo timestamp changed %s, outside ReadWritePaths=%%f/repository/metadata -%%f/signing-log.jsonl", p)
		}
	}
}

// snapshotTree maps every file below dir (relative, slash-separated) to its
// contents.
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
