// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fieldgateBinaries are the commands the packages ship.
var fieldgateBinaries = []string{"fieldgated", "fieldgatectl", "fieldgate-repo", "fieldgate-sim"}

// needPeer returns the path of an external program a test runs, or skips
// the test (fails it under CI=true) with what to install.
func needPeer(t *testing.T, name, debian string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, fmt.Sprintf("%s not found: install the Debian package %s", name, debian))
	}
	return p
}

// missing skips a test whose peer or privilege is absent, with msg saying
// what it needs, or fails it under CI=true, where everything must be there.
func missing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// releaseGCFlags returns the Makefile's GCFLAGS, which `make cross` builds
// with, so that what the tests build and measure is what ships.
func releaseGCFlags(t *testing.T) []string {
	t.Helper()
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mk), "\n") {
		if name, val, ok := strings.Cut(line, ":="); ok && strings.TrimSpace(name) == "GCFLAGS" {
			return strings.Fields(val)
		}
	}
	t.Fatal("Makefile: no GCFLAGS line")
	return nil
}

// TestReleaseFlags: release builds inline only in the runtime and the hash
// and cipher cores, and leave out net/http's HTTP/2, as BENCHMARKS.md
// measured them.
func TestReleaseFlags(t *testing.T) {
	got := releaseGCFlags(t)
	for _, want := range []string{"-tags=nethttpomithttp2", "-gcflags=all=-l", "-gcflags=runtime/...=", "-gcflags=crypto/internal/fips140/sha256="} {
		if !slices.Contains(got, want) {
			t.Errorf("Makefile GCFLAGS = %q, want it to contain %q", got, want)
		}
	}
}

// crossBuild builds the fieldgate commands for linux/goarch (armv7 for
// "arm") the way `make cross` does, static and stripped, into dir.
func crossBuild(t *testing.T, goarch, dir, version string, cmds ...string) {
	t.Helper()
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -X main.version=" + version, "-o", dir + string(os.PathSeparator)}
	args = append(args, releaseGCFlags(t)...)
	for _, c := range cmds {
		args = append(args, "../cmd/"+c)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM=7")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build for linux/%s: %v\n%s", goarch, err, out)
	}
}

// pkcs11CC is the C compiler `make fieldgate-repo-pkcs11` uses per
// architecture (the Makefile's PKCS11_CC_<arch>) and its Debian package.
var pkcs11CC = map[string][2]string{
	"amd64": {"x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu (or gcc on amd64)"},
	"arm64": {"aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"},
}

// crossBuildPKCS11 builds fieldgate-repo for linux/goarch (amd64 or arm64)
// with cgo, hardened and stripped as `make fieldgate-repo-pkcs11` does
// (PKCS11_CFLAGS, PKCS11_LDFLAGS, objcopy), into dir: the build that signs
// with PKCS#11 tokens and that the packages ship for those architectures.
// lintian, in TestDebPackages, checks the hardening.
func crossBuildPKCS11(t *testing.T, goarch, dir, version string) {
	t.Helper()
	cc := needPeer(t, pkcs11CC[goarch][0], pkcs11CC[goarch][1])
	objcopy := needPeer(t, strings.TrimSuffix(pkcs11CC[goarch][0], "gcc")+"objcopy", pkcs11CC[goarch][1])
	args := []string{"build", "-trimpath", "-buildmode=pie", "-o", dir + string(os.PathSeparator),
		"-ldflags", "-s -w -X main.version=" + version + " -linkmode=external -extldflags=-Wl,-z,relro,-z,now"}
	args = append(args, releaseGCFlags(t)...)
	cmd := exec.Command("go", append(args, "../cmd/fieldgate-repo")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "CC="+cc, "GOOS=linux", "GOARCH="+goarch,
		"CGO_CFLAGS=-O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build fieldgate-repo with cgo for linux/%s: %v\n%s", goarch, err, out)
	}
	if out, err := exec.Command(objcopy, "--remove-section=.comment", filepath.Join(dir, "fieldgate-repo")).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
}

// debEntry is one line of `dpkg-deb -c`.
type debEntry struct {
	mode  string // e.g. "-rwxr-xr-x"
	owner string // e.g. "root/root"
}

// debContents lists a package's files by path without the leading ".".
func debContents(t *testing.T, deb string) map[string]debEntry {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c %s: %v", deb, err)
	}
	files := map[string]debEntry{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c: unexpected line %q", line)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = debEntry{mode: f[0], owner: f[1]}
	}
	return files
}

// debField returns one field of a package's control file.
func debField(t *testing.T, deb, field string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -f %s %s: %v", deb, field, err)
	}
	return strings.TrimSpace(string(out))
}

// debArches are the Go architectures the packages are built for (arm is
// armv7, Debian armhf).
var debArches = []string{"amd64", "arm64", "arm"}

// debs is one architecture's pair of packages.
type debs struct{ main, tools string }

// buildDebs runs deb/build.sh for amd64 on freshly built binaries and
// returns the paths of the fieldgate and fieldgate-tools packages.
func buildDebs(t *testing.T, version string) (main, tools string) {
	t.Helper()
	d := buildArchDebs(t, version, "amd64")["amd64"]
	return d.main, d.tools
}

// buildArchDebs cross-builds the binaries for each of arches and runs
// deb/build.sh on them. Once nfpm, pinned in deb/tools/go.mod, is in the
// module cache, build.sh runs with the module proxy switched off
// (GOPROXY=off), which is the claim that `make deb` needs no network.
func buildArchDebs(t *testing.T, version string, arches ...string) map[string]debs {
	t.Helper()
	if testing.Short() {
		t.Skip("builds four binaries and two packages per architecture")
	}
	needPeer(t, "dpkg-deb", "dpkg")
	needPeer(t, "go", "golang-go (or Go from go.dev)")
	// Warm the module cache (the only step that may use the network).
	warm := exec.Command("go", "-C", "deb/tools", "mod", "download")
	if out, err := warm.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("go mod download in deb/tools: %v\n%s", err, out)
		if os.Getenv("CI") != "true" {
			t.Skip("nfpm is not in the module cache and the proxy is unreachable: " + msg)
		}
		t.Fatal(msg)
	}
	dist := t.TempDir()
	pkgs := map[string]debs{}
	for _, arch := range arches {
		crossBuild(t, arch, filepath.Join(dist, arch), version, fieldgateBinaries...)
		if _, ok := pkcs11CC[arch]; ok {
			crossBuildPKCS11(t, arch, filepath.Join(dist, arch), version)
		}
		cmd := exec.Command("bash", "deb/build.sh", arch, version, dist)
		cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GOPROXY=off deb/build.sh %s %s: %v\n%s", arch, version, err, stderr.String())
		}
		var d debs
		for _, p := range strings.Fields(string(out)) {
			switch {
			case strings.Contains(filepath.Base(p), "fieldgate-tools_"):
				d.tools = p
			case strings.HasPrefix(filepath.Base(p), "fieldgate_"):
				d.main = p
			}
		}
		if d.main == "" || d.tools == "" {
			t.Fatalf("deb/build.sh %s printed %q, want the paths of both packages", arch, out)
		}
		pkgs[arch] = d
	}
	return pkgs
}

// TestDebPackages builds the packages for every architecture and checks
// what they install: paths and modes, the example configuration as a
// conffile (and no active configuration), the maintainer scripts, the
// version, homepage, Vcs and dependencies, the man pages and the copyright
// file; that lintian finds nothing that is not overridden with a reason, on
// each architecture (an override that matches on one only is a
// mismatched-override elsewhere); and what the maintainer scripts do in a
// scratch root (debInstall).
func TestDebPackages(t *testing.T) {
	all := buildArchDebs(t, "v0.1.0-3-gabcdef0", debArches...)
	main, tools := all["amd64"].main, all["amd64"].tools
	t.Run("install", func(t *testing.T) { debInstall(t, main) })

	for _, c := range []struct{ deb, field, want string }{
		{main, "Package", "fieldgate"},
		{main, "Version", "0.1.0+3.gabcdef0"},
		{main, "Architecture", "amd64"},
		{main, "Depends", "systemd"},
		{tools, "Package", "fieldgate-tools"},
		{tools, "Version", "0.1.0+3.gabcdef0"},
		{tools, "Architecture", "amd64"},
		{all["arm64"].main, "Architecture", "arm64"},
		{all["arm"].main, "Architecture", "armhf"},
		{all["arm"].tools, "Architecture", "armhf"},
		// armhf's fieldgate-repo is pure Go, static: no dependency.
		{all["arm"].tools, "Depends", ""},
	} {
		if got := debField(t, c.deb, c.field); got != c.want {
			t.Errorf("%s field %s = %q, want %q", filepath.Base(c.deb), c.field, got, c.want)
		}
	}
	// fieldgate-repo for amd64 and arm64 is built with cgo (PKCS#11) and
	// links glibc: the package depends on a libc6 with the symbol versions
	// the binary asks for (2.34 merged libpthread, which cgo's runtime uses).
	libcDep := regexp.MustCompile(`^libc6 \(>= 2\.(3[4-9]|[4-9][0-9])\)$`)
	for _, arch := range []string{"amd64", "arm64"} {
		if got := debField(t, all[arch].tools, "Depends"); !libcDep.MatchString(got) {
			t.Errorf("fieldgate-tools for %s: Depends %q, want libc6 (>= 2.34 or later)", arch, got)
		}
	}

	for _, d := range []string{main, tools} {
		for field, want := range map[string]string{
			"Maintainer":  "fieldgate maintainers <maintainers@fieldgate.dev>",
			"Homepage":    "https://github.com/fieldgate/fieldgate",
			"Vcs-Git":     "https://github.com/fieldgate/fieldgate.git",
			"Vcs-Browser": "https://github.com/fieldgate/fieldgate",
		} {
			if got := debField(t, d, field); got != want {
				t.Errorf("%s field %s = %q, want %q", filepath.Base(d), field, got, want)
			}
		}
	}

	files := debContents(t, main)
	for path, mode := range map[string]string{
		"/usr/bin/fieldgated":                           "-rwxr-xr-x",
		"/usr/bin/fieldgatectl":                         "-rwxr-xr-x",
		"/usr/lib/systemd/system/fieldgated.service":    "-rw-r--r--",
		"/usr/lib/sysusers.d/fieldgate.conf":            "-rw-r--r--",
		"/usr/lib/tmpfiles.d/fieldgate.conf":            "-rw-r--r--",
		"/usr/lib/udev/rules.d/60-fieldgate-gpio.rules": "-rw-r--r--",
		"/etc/fieldgate/fieldgated.yaml.example":        "-rw-r--r--",
		"/usr/share/doc/fieldgate/copyright":            "-rw-r--r--",
		"/usr/share/doc/fieldgate/changelog.gz":         "-rw-r--r--",
		"/usr/share/lintian/overrides/fieldgate":        "-rw-r--r--",
		"/usr/share/man/man8/fieldgated.8.gz":           "-rw-r--r--",
		"/usr/share/man/man5/fieldgated.yaml.5.gz":      "-rw-r--r--",
		"/usr/share/man/man1/fieldgatectl.1.gz":         "-rw-r--r--",
		"/usr/share/doc/fieldgate-tools/copyright":      "",
		"/usr/bin/fieldgate-repo":                       "",
		"/usr/bin/fieldgate-sim":                        "",
		"/etc/fieldgate/fieldgated.yaml":                "",
		"/usr/share/lintian/overrides/fieldgate-tools":  "",
	} {
		e, ok := files[path]
		switch {
		case mode == "" && ok:
			t.Errorf("%s installs %s, want it absent", filepath.Base(main), path)
		case mode != "" && !ok:
			t.Errorf("%s does not install %s", filepath.Base(main), path)
		case ok && (e.mode != mode || e.owner != "root/root"):
			t.Errorf("%s: %s is %s %s, want %s root/root", filepath.Base(main), path, e.mode, e.owner, mode)
		}
	}
	toolFiles := debContents(t, tools)
	for _, path := range []string{"/usr/bin/fieldgate-repo", "/usr/bin/fieldgate-sim", "/usr/share/doc/fieldgate-tools/copyright",
		"/usr/share/man/man1/fieldgate-repo.1.gz", "/usr/share/man/man1/fieldgate-sim.1.gz",
		"/usr/lib/systemd/system/fieldgate-repo-timestamp@.service", "/usr/lib/systemd/system/fieldgate-repo-timestamp@.timer"} {
		if _, ok := toolFiles[path]; !ok {
			t.Errorf("%s does not install %s", filepath.Base(tools), path)
		}
	}
	if _, ok := toolFiles["/usr/bin/fieldgated"]; ok {
		t.Errorf("%s installs the daemon, want it only in fieldgate", filepath.Base(tools))
	}

	// The shipped files are the repository's, byte for byte.
	root := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", main, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	for src, dst := range map[string]string{
		"fieldgated.service":              "usr/lib/systemd/system/fieldgated.service",
		"fieldgate.sysusers.conf":         "usr/lib/sysusers.d/fieldgate.conf",
		"fieldgate.tmpfiles.conf":         "usr/lib/tmpfiles.d/fieldgate.conf",
		"fieldgate-gpio.rules":            "usr/lib/udev/rules.d/60-fieldgate-gpio.rules",
		"../daemon/config/example.yaml":   "etc/fieldgate/fieldgated.yaml.example",
		"deb/fieldgate.lintian-overrides": "usr/share/lintian/overrides/fieldgate",
	} {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, dst))
		if err != nil {
			t.Errorf("read %s from the package: %v", dst, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("/%s in the package differs from %s", dst, src)
		}
	}

	// The copyright file: fieldgate's paragraph with the years filled in,
	// and a paragraph for the linked modules (TestDebianCopyright).
	copyright, err := os.ReadFile(filepath.Join(root, "usr/share/doc/fieldgate/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nFiles: *\nCopyright: 20", "License: Apache-2.0\n", "Files: vendor/github.com/theupdateframework/go-tuf/v2/*", "/usr/share/common-licenses/Apache-2.0"} {
		if !bytes.Contains(copyright, []byte(want)) {
			t.Errorf("the copyright file lacks %q", want)
		}
	}
	if regexp.MustCompile(`@[A-Z]+@`).Match(copyright) {
		t.Errorf("the copyright file has unreplaced placeholders")
	}

	// The tools' timer units are the repository's, byte for byte.
	toolRoot := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", tools, toolRoot).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	for _, u := range []string{"fieldgate-repo-timestamp@.service", "fieldgate-repo-timestamp@.timer"} {
		want, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(toolRoot, "usr/lib/systemd/system", u))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("/usr/lib/systemd/system/%s in the package differs from %s (%v)", u, u, err)
		}
	}

	// lintian with every tag shown, on every architecture's packages; the
	// exceptions are overrides, each explained in deb/*.lintian-overrides.
	// An override that matches on no architecture or on one only shows up as
	// unused-override or mismatched-override, which fail too.
	for _, arch := range debArches {
		t.Run("lintian/"+arch, func(t *testing.T) {
			lintian := needPeer(t, "lintian", "lintian")
			cmd := exec.Command(lintian, "--pedantic", "--display-info", "--fail-on", "error,warning,info,pedantic", all[arch].main, all[arch].tools)
			out, err := cmd.CombinedOutput()
			var tags []string
			for _, l := range strings.Split(string(out), "\n") {
				if len(l) > 2 && l[1] == ':' && l[0] != 'N' && l[0] != 'O' {
					tags = append(tags, l)
				}
			}
			if err != nil || len(tags) > 0 {
				t.Errorf("lintian %s: %v\n%s", arch, err, strings.Join(tags, "\n"))
			}
		})
	}

	ctrl := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", main, ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil {
		t.Fatalf("%s has no conffiles: %v", filepath.Base(main), err)
	}
	if got := strings.Fields(string(conffiles)); !slices.Equal(got, []string{"/etc/fieldgate/fieldgated.yaml.example"}) {
		t.Errorf("conffiles = %q, want only the example configuration", got)
	}
	for name, want := range map[string][]string{
		"postinst": {"systemd-sysusers", "fieldgate.conf", "systemd-tmpfiles", "deb-systemd-helper", "enable", "/etc/fieldgate/fieldgated.yaml"},
		"prerm":    {"deb-systemd-invoke stop fieldgated.service"},
		"postrm":   {"deb-systemd-helper disable", "deb-systemd-helper purge", "daemon-reload"},
	} {
		p := filepath.Join(ctrl, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s has no %s: %v", filepath.Base(main), name, err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s mode = %v, want 0755", name, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		for _, w := range want {
			if !bytes.Contains(b, []byte(w)) {
				t.Errorf("%s does not contain %q", name, w)
			}
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", name, err, out)
		}
	}
}

// debInstall installs the package into a scratch root with dpkg
// (maintainer scripts run against that root through $DPKG_ROOT), and
// checks what the scripts did: the system user, the configuration
// directory's owner and mode, the service enabled but not started, no
// active configuration; that an upgrade keeps an administrator's disable;
// then removes and purges it.
func debInstall(t *testing.T, main string) {
	needPeer(t, "dpkg", "dpkg")
	needPeer(t, "systemd-sysusers", "systemd")
	needPeer(t, "deb-systemd-helper", "init-system-helpers")
	needPeer(t, "systemctl", "systemd")
	if os.Geteuid() != 0 {
		t.Skip("dpkg --root needs root to give the installed files their owners")
	}
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/updates", "var/lib/dpkg/info", "var/lib/dpkg/triggers", "etc", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The groups the sysusers snippet adds the user to, as base-passwd has them.
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\ndialout:x:20:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends", "--force-not-root"}, args...)...)
		// dpkg refuses a PATH without the usual sbin directories.
		cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(root, p))
		return err == nil
	}
	const wants = "etc/systemd/system/multi-user.target.wants/fieldgated.service"

	out := dpkg("--install", main)
	passwd := readDB(t, filepath.Join(root, "etc/passwd"))
	group := readDB(t, filepath.Join(root, "etc/group"))
	if _, ok := passwd["fieldgate"]; !ok {
		t.Errorf("after install: no user fieldgate in the root's /etc/passwd\n%s", out)
	}
	for _, g := range []string{"dialout", "gpio"} {
		if e := group[g]; len(e) < 4 || !slices.Contains(strings.Split(e[3], ","), "fieldgate") {
			t.Errorf("after install: group %s = %v, want member fieldgate", g, e)
		}
	}
	if e := group["fieldgate"]; len(e) < 3 {
		t.Errorf("after install: no group fieldgate in the root's /etc/group")
	} else if fi, err := os.Stat(filepath.Join(root, "etc/fieldgate")); err != nil {
		t.Errorf("after install: %v", err)
	} else if uid, gid := owner(fi); fi.Mode().Perm() != 0o750 || uid != "0" || gid != e[2] {
		t.Errorf("after install: /etc/fieldgate is %v %s:%s, want 0750 root:fieldgate (gid %s)", fi.Mode().Perm(), uid, gid, e[2])
	}
	if !exists(wants) {
		t.Errorf("after install: /%s is missing: the service is not enabled\n%s", wants, out)
	}
	if !strings.Contains(out, "enabled but not started") {
		t.Errorf("install without a configuration does not say how to start the service:\n%s", out)
	}
	if exists("etc/fieldgate/fieldgated.yaml") {
		t.Errorf("after install: an active configuration exists, want only the example")
	}
	if !exists("etc/fieldgate/fieldgated.yaml.example") {
		t.Errorf("after install: the example configuration is missing")
	}

	// An upgrade keeps an administrator's decision to disable the service.
	if out, err := exec.Command("systemctl", "--root="+root, "disable", "fieldgated.service").CombinedOutput(); err != nil {
		t.Fatalf("systemctl --root disable: %v\n%s", err, out)
	}
	out = dpkg("--install", main)
	if exists(wants) {
		t.Errorf("after upgrade: the service is enabled again, want it to stay disabled\n%s", out)
	}
	if out, err := exec.Command("systemctl", "--root="+root, "enable", "fieldgated.service").CombinedOutput(); err != nil {
		t.Fatalf("systemctl --root enable: %v\n%s", err, out)
	}

	dpkg("--remove", "fieldgate")
	if exists(wants) {
		t.Errorf("after remove: /%s still exists: the service is still enabled", wants)
	}
	if exists("usr/bin/fieldgated") {
		t.Errorf("after remove: /usr/bin/fieldgated still exists")
	}
	if !exists("etc/fieldgate/fieldgated.yaml.example") {
		t.Errorf("after remove: the conffile is gone, want it kept until purge")
	}

	dpkg("--purge", "fieldgate")
	if exists("etc/fieldgate/fieldgated.yaml.example") {
		t.Errorf("after purge: the example configuration is still there")
	}
	var left []string
	filepath.WalkDir(filepath.Join(root, "etc/systemd"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "fieldgate") {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("after purge: systemd files left: %v", left)
	}
}
