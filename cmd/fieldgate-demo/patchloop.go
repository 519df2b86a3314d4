// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// The patch loop (issue 15, docs/staging.md): an advisory arrives, a
// device is matched, the update that fixes it waits until a staging twin
// has tested it, the approval becomes possible, the device is updated and
// the advisory shows fixed. Two fieldgated processes (production gw1 and
// staging-1, each with its embedded broker, state and simulated device)
// share one repository.

const (
	plAdvisory   = "FGDEMO-2026-0001" // the demo advisory's tracking id
	plCVE        = "CVE-0000-0001"    // a placeholder: no CVE has year 0000
	plStagingKey = "staging-1"        // the staging gateway's id, its key id
	plDevice     = "io16-a"           // the production device
	plTwin       = "io16-twin"        // its staging twin
)

// PatchLoopResult is what the patch loop observed, from outside.
type PatchLoopResult struct {
	Matched  api.Advisories // production advisories once the device is matched
	Untested string         // the job's waiting reason before the staging test
	Refused  string         // fieldgatectl approve's output before the test
	Fixed    api.Advisories // production advisories at the end
	Final    api.Status     // production status at the end
	Audit    []auditEvent   // the production audit log
	Running  string         // the version the production device's simulator runs
	Elapsed  time.Duration
}

// auditEvent is the part of a `fieldgatectl audit export` line the demo reads.
type auditEvent struct {
	Type   string         `json:"type"`
	Job    string         `json:"job"`
	Device string         `json:"device"`
	Detail map[string]any `json:"detail"`
}

// runPatchLoopCmd is `fieldgate-demo patch-loop`.
func runPatchLoopCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fieldgate-demo patch-loop", flag.ContinueOnError)
	bin := fs.String("bin", "dist", "directory holding the fieldgate binaries")
	work := fs.String("work", ".demo", "work directory (wiped first)")
	timeout := fs.Duration("timeout", 90*time.Second, "give up after this long")
	emulator := fs.String("emulator", "", "run the binaries through this emulator (e.g. qemu-aarch64-static)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	absBin, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := PatchLoop(ctx, Options{Bin: absBin, Work: *work, Out: out, Emulator: *emulator})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\npatch loop finished in %s: %s matched, tested on a staging twin, %s updated to %s, advisory fixed\n",
		res.Elapsed.Round(time.Millisecond), plAdvisory, plDevice, res.Running)
	return nil
}

// plGateway is one fieldgated of the patch loop.
type plGateway struct {
	name, config, socket, broker string
}

// PatchLoop runs the patch-loop scenario with o's Bin, Work, Out and
// Emulator, and stops every process it started.
func PatchLoop(ctx context.Context, o Options) (*PatchLoopResult, error) {
	work, err := filepath.Abs(o.Work)
	if err != nil {
		return nil, err
	}
	e := &Env{o: o, Work: work, Bin: o.Bin, procs: &procGroup{}, start: time.Now()}
	defer e.Close()
	res := &PatchLoopResult{}
	err = e.patchLoop(ctx, res)
	res.Elapsed = time.Since(e.start)
	return res, err
}

func (e *Env) patchLoop(ctx context.Context, res *PatchLoopResult) error {
	o, work := e.o, e.Work
	os.RemoveAll(work)
	for _, d := range []string{"repo", "advisories", "reports", "prod/state", "prod/dev", "staging/state", "staging/dev", "sim"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return err
		}
	}
	tool := func(args ...string) error { return runTool(ctx, o, o.Out, args...) }

	e.say("1. the publisher signs firmware %s for %s and the advisory %s (fieldgate-repo; throwaway keys)", newVersion, hardware, plAdvisory)
	repo := filepath.Join(work, "repo")
	img := filepath.Join(work, "fw-"+newVersion+".bin")
	adv, err := writeDemoAdvisory(filepath.Join(work, "advisories"))
	if err != nil {
		return err
	}
	for _, s := range [][]string{
		{"fieldgate-sim", "mkimage", "--hw", hardware, "--version", newVersion, "--size", fmt.Sprint(imageSize), "-o", img},
		{"fieldgate-repo", "init", repo, "--insecure-plaintext-keys"},
		{"fieldgate-repo", "add", repo, img, "--name", "acme-io16/fw-" + newVersion + ".bin", "--hardware", hardware,
			"--version", newVersion, "--security-counter", "3", "--protocol", "xmodem", "--severity", "high",
			"--advisory", plCVE, "--notes", "Fixes " + plAdvisory},
		{"fieldgate-repo", "advisory", "add", repo, adv},
		{"fieldgate-repo", "commit", repo, "--insecure-plaintext-keys"},
	} {
		if err := tool(s...); err != nil {
			return err
		}
	}
	repoAddr, err := e.serveRepo(repo)
	if err != nil {
		return err
	}

	// The staging gateway's signing key; production trusts its public key.
	key := filepath.Join(work, "staging", "test-report.key")
	if err := runToolTo(ctx, o, io.Discard, "fieldgatectl", "remote", "keygen", "--out", key); err != nil {
		return err
	}
	var pubOut bytes.Buffer
	if err := runToolTo(ctx, o, &pubOut, "fieldgatectl", "remote", "pubkey", "--key", key); err != nil {
		return fmt.Errorf("%w: %s", err, pubOut.String())
	}
	pub := strings.TrimSpace(pubOut.String())

	e.say("simulated devices (fieldgate-sim): %s on the production line, its staging twin %s on the bench, both %s %s", plDevice, plTwin, hardware, oldVersion)
	simCfg := "devices:\n"
	for _, d := range []struct{ id, gw string }{{plDevice, "prod"}, {plTwin, "staging"}} {
		simCfg += fmt.Sprintf("  - {id: %s, kind: xmodem-console, hardware_id: %s, version: %q, state_dir: %s, address: %s, baud: 115200}\n",
			d.id, hardware, oldVersion, filepath.Join(work, "sim", d.id), filepath.Join(work, d.gw, "dev", d.id))
	}
	simPath := filepath.Join(work, "sim.yaml")
	if err := os.WriteFile(simPath, []byte(simCfg), 0o644); err != nil {
		return err
	}
	simLog, err := logFile(work, "sim")
	if err != nil {
		return err
	}
	if _, err := e.procs.start(o, simLog, "sim", "fieldgate-sim", "run", "--config", simPath); err != nil {
		return err
	}
	for _, p := range []string{filepath.Join(work, "prod", "dev", plDevice), filepath.Join(work, "staging", "dev", plTwin)} {
		if err := waitFile(ctx, p); err != nil {
			return fmt.Errorf("simulated device %s did not come up: %w", filepath.Base(p), err)
		}
	}

	prod, err := e.plConfig("prod", repoAddr, fmt.Sprintf(`gateway:
  id: gw1
  site: demo
%%s
staging_keys:
  - {id: %s, public_key: %q}
groups:
  - {name: line1, window: always, approval: local, require_tested: [%s]}
devices:
  - {id: %s, group: line1, protocol: xmodem, hardware_id: %s, address: %s, baud: 115200, vendor: Acme, product: IO16, criticality: high}
`, plStagingKey, pub, plStagingKey, plDevice, hardware, filepath.Join(work, "prod", "dev", plDevice)))
	if err != nil {
		return err
	}
	stg, err := e.plConfig("staging", repoAddr, fmt.Sprintf(`gateway:
  id: %s
  site: lab
  role: staging
  test_report_key: %s
%%s
groups:
  - {name: bench, window: always, approval: auto}
devices:
  - {id: %s, group: bench, protocol: xmodem, hardware_id: %s, address: %s, baud: 115200, vendor: Acme, product: IO16}
`, plStagingKey, key, plTwin, hardware, filepath.Join(work, "staging", "dev", plTwin)))
	if err != nil {
		return err
	}

	e.say("2. the production gateway gw1 (group line1: approval local, require_tested [%s]) starts and refreshes", plStagingKey)
	if _, err := e.procs.start(o, o.Out, "gw1", "fieldgated", "--config", prod.config); err != nil {
		return err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watch(wctx, "tcp://"+prod.broker, o.Out, &Result{Devices: map[string]api.Device{}, Jobs: map[string]api.Job{}, Seen: map[string][]string{}},
		func(*Result) bool { return false })

	// The advisory arrives and the device is matched.
	err = e.waitFor(ctx, 30*time.Second, "the advisory to match "+plDevice+" on gw1", func() (bool, error) {
		a, err := e.advisories(ctx, prod)
		res.Matched = a
		return err == nil && plCVEStatus(a, plDevice) == "affected", nil
	})
	if err != nil {
		return err
	}
	e.say("   the advisory arrived and %s (Acme IO16 %s) is matched:", plDevice, oldVersion)
	if err := e.show(ctx, prod, "advisories"); err != nil {
		return err
	}

	// The job for 2.4.1 is staged, and waits: untested.
	var job api.Job
	err = e.waitFor(ctx, 30*time.Second, "gw1 to stage a job for "+newVersion, func() (bool, error) {
		st, err := e.status(ctx, prod)
		if err != nil {
			return false, nil
		}
		for _, j := range st.Jobs {
			if j.Version == newVersion && j.Phase == "awaiting-approval" && strings.Contains(j.Waiting, "staging test") {
				job = j
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	res.Untested = job.Waiting
	e.say("   the job for %s is staged, and waits: %s", newVersion, job.Waiting)
	if err := e.show(ctx, prod, "jobs"); err != nil {
		return err
	}
	e.say("   an engineer tries to approve it anyway:")
	var refused bytes.Buffer
	err = runToolTo(ctx, o, &refused, "fieldgatectl", "--socket", prod.socket, "approve", job.ID)
	res.Refused = refused.String()
	fmt.Fprintf(o.Out, "    $ fieldgatectl approve %s\n%s", job.ID, indent(res.Refused))
	if err == nil {
		return fmt.Errorf("fieldgatectl approve %s succeeded before any staging test:\n%s", job.ID, res.Refused)
	}

	e.say("3. the staging gateway %s (role staging, its own state and twin %s) runs the same job", plStagingKey, plTwin)
	if _, err := e.procs.start(o, o.Out, plStagingKey, "fieldgated", "--config", stg.config); err != nil {
		return err
	}
	reports := filepath.Join(work, "reports")
	var files []string
	err = e.waitFor(ctx, 40*time.Second, plStagingKey+" to sign a test report", func() (bool, error) {
		if runToolTo(ctx, o, io.Discard, "fieldgatectl", "--socket", stg.socket, "reports", "--export", reports) != nil {
			return false, nil
		}
		files, _ = filepath.Glob(filepath.Join(reports, "*.json"))
		return len(files) > 0, nil
	})
	if err != nil {
		return err
	}
	e.say("   %s committed %s on %s and signed a test report; the release manager exports and publishes it:", plStagingKey, newVersion, plTwin)
	for _, s := range [][]string{
		{"fieldgatectl", "--socket", stg.socket, "reports", "--export", reports},
		append(append([]string{"fieldgate-repo", "report", "add", repo}, files...), "--staging-key", plStagingKey+"="+pub),
		{"fieldgate-repo", "commit", repo, "--insecure-plaintext-keys"},
	} {
		if err := tool(s...); err != nil {
			return err
		}
	}

	e.say("4. gw1 refreshes: the report arrives through the repository and the approval becomes possible")
	if err := tool("fieldgatectl", "--socket", prod.socket, "refresh"); err != nil {
		return err
	}
	err = e.waitFor(ctx, 20*time.Second, "gw1 to accept the test report", func() (bool, error) {
		st, err := e.status(ctx, prod)
		if err != nil {
			return false, nil
		}
		for _, j := range st.Jobs {
			if j.ID == job.ID {
				job = j
				return j.Phase != "awaiting-approval" || !strings.Contains(j.Waiting, "staging test"), nil
			}
		}
		return false, fmt.Errorf("job %s is gone from gw1's status", job.ID)
	})
	if err != nil {
		return err
	}
	if err := e.show(ctx, prod, "reports"); err != nil {
		return err
	}
	e.say("   the job now waits only for: %s", job.Waiting)
	if err := tool("fieldgatectl", "--socket", prod.socket, "approve", job.ID); err != nil {
		return err
	}
	err = e.waitFor(ctx, 40*time.Second, plDevice+" to run "+newVersion+" and the job to succeed", func() (bool, error) {
		st, err := e.status(ctx, prod)
		if err != nil {
			return false, nil
		}
		res.Final = st
		for _, j := range st.Jobs {
			if j.ID == job.ID && (j.Phase == "failed" || j.Phase == "cancelled") {
				return false, fmt.Errorf("job %s ended %s: %s", j.ID, j.Phase, j.Reason)
			}
			if j.ID == job.ID && j.Phase != "succeeded" {
				return false, nil
			}
		}
		for _, d := range st.Devices {
			if d.ID == plDevice {
				return d.Version == newVersion && d.State == "idle", nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	e.say("   %s is updated to %s; the advisory shows fixed:", plDevice, newVersion)
	err = e.waitFor(ctx, 20*time.Second, "the advisory to show fixed on gw1", func() (bool, error) {
		a, err := e.advisories(ctx, prod)
		res.Fixed = a
		return err == nil && plCVEStatus(a, plDevice) == "fixed", nil
	})
	if err != nil {
		return err
	}
	if err := e.show(ctx, prod, "advisories"); err != nil {
		return err
	}
	if err := e.show(ctx, prod, "status"); err != nil {
		return err
	}

	var audit bytes.Buffer
	if err := runToolTo(ctx, o, &audit, "fieldgatectl", "--socket", prod.socket, "audit", "export"); err != nil {
		return fmt.Errorf("%w: %s", err, audit.String())
	}
	dec := json.NewDecoder(&audit)
	for dec.More() {
		var ev auditEvent
		if err := dec.Decode(&ev); err != nil {
			return fmt.Errorf("fieldgatectl audit export: %w", err)
		}
		res.Audit = append(res.Audit, ev)
	}
	running, err := simRunning(filepath.Join(work, "sim", plDevice))
	if err != nil {
		return err
	}
	res.Running = running
	stopWatch()
	e.say("stopping the gateways, the repository server and the simulator")
	return nil
}

// plConfig writes gateway name's configuration: head (with one %s where
// the common part goes) then the rest, and returns where to reach it.
func (e *Env) plConfig(name, repoAddr, head string) (plGateway, error) {
	broker, err := freeAddr()
	if err != nil {
		return plGateway{}, err
	}
	dir := filepath.Join(e.Work, name)
	g := plGateway{name: name, config: filepath.Join(dir, "fieldgated.yaml"), socket: filepath.Join(dir, "fieldgated.sock"), broker: broker}
	common := fmt.Sprintf(`  state_dir: %s
  socket: %s
  refresh_interval: 10s
  log_level: warn
tuf:
  metadata_url: http://%s/metadata
  targets_url: http://%s/targets
  trusted_root: %s
mqtt:
  listen: %s
windows:
  - {name: always, start: "0 0 * * *", duration: 24h, timezone: UTC}`,
		filepath.Join(dir, "state"), g.socket, repoAddr, repoAddr,
		filepath.Join(e.Work, "repo", "repository", "metadata", "1.root.json"), broker)
	return g, os.WriteFile(g.config, []byte(fmt.Sprintf(head, common)), 0o644)
}

// waitFor polls cond every 300 ms for at most limit; cond's error ends the
// wait at once.
func (e *Env) waitFor(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s after %s (logs in %s)", what, limit, e.Work)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// show runs fieldgatectl CMD on gateway g and prints it.
func (e *Env) show(ctx context.Context, g plGateway, args ...string) error {
	return runTool(ctx, e.o, e.o.Out, append([]string{"fieldgatectl", "--socket", g.socket}, args...)...)
}

func (e *Env) status(ctx context.Context, g plGateway) (api.Status, error) {
	var st api.Status
	err := e.ctlJSON(ctx, g, &st, "status", "--json")
	return st, err
}

func (e *Env) advisories(ctx context.Context, g plGateway) (api.Advisories, error) {
	var a api.Advisories
	err := e.ctlJSON(ctx, g, &a, "advisories", "--json")
	return a, err
}

func (e *Env) ctlJSON(ctx context.Context, g plGateway, v any, args ...string) error {
	var out bytes.Buffer
	cmd := command(ctx, e.o, "fieldgatectl", append([]string{"--socket", g.socket}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, io.Discard
	if err := cmd.Run(); err != nil {
		return err
	}
	return json.Unmarshal(out.Bytes(), v)
}

// plCVEStatus is the status of the demo advisory's CVE for device dev, ""
// when it is not matched.
func plCVEStatus(a api.Advisories, dev string) string {
	for _, d := range a.Devices {
		if d.Device != dev {
			continue
		}
		for _, m := range d.Matches {
			if m.Advisory != plAdvisory {
				continue
			}
			for _, c := range m.CVEs {
				if c.CVE == plCVE {
					return c.Status
				}
			}
		}
	}
	return ""
}

// simRunning reads the version a simulated console device runs from its
// own state (fieldgate-sim's state.json).
func simRunning(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return "", err
	}
	var s struct {
		Running string `json:"running"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("%s/state.json: %w", dir, err)
	}
	return s.Running, nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		fmt.Fprintf(&b, "      %s\n", l)
	}
	return b.String()
}

// demoAdvisory is the demo's CSAF 2.0 advisory: a fictional vendor and
// product, the demo device's, affected below 2.4.1 and fixed by it.
var demoAdvisory = map[string]any{
	"document": map[string]any{
		"category":     "csaf_security_advisory",
		"csaf_version": "2.0",
		"title":        "Acme IO16: demo vulnerability in the Modbus stack (FICTIONAL, fieldgate demo)",
		"lang":         "en",
		"publisher": map[string]any{
			"category":  "vendor",
			"name":      "Acme (fictional vendor of the fieldgate demo)",
			"namespace": "https://acme.example",
		},
		"distribution": map[string]any{"tlp": map[string]any{"label": "WHITE"}},
		"notes": []any{map[string]any{
			"category": "legal_disclaimer",
			"title":    "Fictional",
			"text":     "This advisory is fictional. It exists only for the fieldgate demo; vendor, product and vulnerability are made up, and " + plCVE + " is a placeholder, not a CVE.",
		}},
		"tracking": map[string]any{
			"id":                   plAdvisory,
			"status":               "final",
			"version":              "1",
			"initial_release_date": "2026-01-15T00:00:00Z",
			"current_release_date": "2026-01-15T00:00:00Z",
			"revision_history": []any{map[string]any{
				"date": "2026-01-15T00:00:00Z", "number": "1", "summary": "Initial release.",
			}},
		},
	},
	"product_tree": map[string]any{
		"branches": []any{map[string]any{
			"category": "vendor", "name": "Acme",
			"branches": []any{map[string]any{
				"category": "product_name", "name": "IO16",
				"branches": []any{map[string]any{
					"category": "product_version_range", "name": "vers:generic/<" + newVersion,
					"product": map[string]any{"name": "Acme IO16 firmware < " + newVersion, "product_id": "CSAFPID-0001"},
				}},
			}},
		}},
	},
	"vulnerabilities": []any{map[string]any{
		"cve":   plCVE,
		"title": "Stack overflow in the Modbus request parser (fictional)",
		"notes": []any{map[string]any{
			"category": "description",
			"text":     "A crafted Modbus request overflows a stack buffer (fictional vulnerability of the fieldgate demo).",
		}},
		"product_status": map[string]any{"known_affected": []any{"CSAFPID-0001"}},
		"remediations": []any{map[string]any{
			"category":    "vendor_fix",
			"details":     "Update to " + newVersion + " or later.",
			"product_ids": []any{"CSAFPID-0001"},
		}},
	}},
}

// writeDemoAdvisory writes the demo advisory into dir under the file name
// CSAF 2.0 section 5.1 derives from its tracking id, with its .sha512
// beside it, and returns its path.
func writeDemoAdvisory(dir string) (string, error) {
	b, err := json.MarshalIndent(demoAdvisory, "", "  ")
	if err != nil {
		return "", err
	}
	name := strings.ToLower(plAdvisory) + ".json" // only A-Z, 0-9 and '-'
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	sum := sha512.Sum512(append(b, '\n'))
	return p, os.WriteFile(p+".sha512", []byte(hex.EncodeToString(sum[:])+"  "+name+"\n"), 0o644)
}
