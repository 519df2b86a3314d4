// SPDX-License-Identifier: Apache-2.0

package main

// Prometheus interop: Debian's prometheus (package prometheus) scrapes a
// real fieldgated's metrics listener every second while it updates
// simulated devices, and the test reads the series back through
// prometheus's HTTP API.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

// prometheus is a Prometheus server started by a test, with its own
// configuration and storage in a temp dir.
type prometheus struct {
	url string // http://127.0.0.1:PORT
}

// startPrometheus starts prometheus scraping target (host:port) every
// second as job "fieldgate", and waits until it is ready.
func startPrometheus(t *testing.T, ctx context.Context, target string) *prometheus {
	t.Helper()
	bin := mqtttest.NeedPeer(t, "prometheus", "prometheus")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: fieldgate
    static_configs:
      - targets: [%q]
`, target)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("prometheus log:\n%s", out)
		}
	})
	p := &prometheus{url: "http://" + addr}
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("prometheus on %s never became ready: %v", addr, err)
		case <-time.After(100 * time.Millisecond): // waiting for a peer process; not a timing assertion
		}
	}
}

// query evaluates an instant PromQL query and returns the value of each
// series by its labels (as a sorted "k=v,…" string without __name__).
func (p *prometheus) query(ctx context.Context, q string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", p.url+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"` // [unix time, "value"]
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: status %s, result type %s: %s", q, r.Status, r.Data.ResultType, r.Error)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		var labels []string
		for k, v := range s.Metric {
			if k != "__name__" && k != "job" && k != "instance" {
				labels = append(labels, k+"="+v)
			}
		}
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", q, s.Value[1], err)
		}
		slices.Sort(labels)
		out[strings.Join(labels, ",")] = v
	}
	return out, nil
}

// TestInteropPrometheusScrape runs an update of three simulated XMODEM
// devices with metrics.listen on loopback while Debian's prometheus
// scrapes it every second, then checks through prometheus's query API
// that the series carry what happened: image bytes × devices over
// xmodem, every step committed, the job succeeded and seen running
// while it ran, refreshes succeeded, reports delivered.
func TestInteropPrometheusScrape(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test builds and runs every binary")
	}
	const devices = 3
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	listen, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, ctx, listen)

	bin := buildAll(t)
	env, err := Setup(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t), Devices: devices})
	if env != nil {
		t.Cleanup(env.Close)
	}
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	f, err := os.OpenFile(env.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "metrics:\n  listen: %s\n", listen)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	st, err := waitSettled(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Jobs) != 1 || st.Jobs[0].Phase != "succeeded" {
		t.Fatalf("jobs after the update = %+v, want one succeeded", st.Jobs)
	}

	// The scrape after the job ended shows every step committed; wait for it.
	committed := `fieldgate_steps{phase="committed"}`
	for {
		got, err := prom.query(ctx, committed)
		if err == nil && got["phase=committed"] == devices {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("prometheus: %s = %v (%v), want %d", committed, got, err, devices)
		case <-time.After(500 * time.Millisecond): // the next scrape, 1 s apart
		}
	}

	for _, c := range []struct {
		query  string
		labels string
		want   func(float64) bool
		says   string
	}{
		{`up{job="fieldgate"}`, "", eq(1), "1: the target answers"},
		{`fieldgate_transfer_bytes_total`, "protocol=xmodem", eq(imageSize * devices), fmt.Sprintf("%d: the image × %d devices", imageSize*devices, devices)},
		{`fieldgate_transfers_total{result="ok"}`, "protocol=xmodem,result=ok", eq(devices), "one push per device"},
		{`fieldgate_transfers_total{result="failed"}`, "protocol=xmodem,result=failed", eq(0), "0"},
		{`fieldgate_transfer_seconds_count`, "protocol=xmodem", eq(devices), "one duration per push"},
		{`fieldgate_transfer_seconds_sum`, "protocol=xmodem", gt(0), "> 0"},
		{`fieldgate_jobs{phase="succeeded"}`, "phase=succeeded", eq(1), "1"},
		{`fieldgate_jobs{phase="running"}`, "phase=running", eq(0), "0 after the job"},
		{`max_over_time(fieldgate_jobs{phase="running"}[10m])`, "phase=running", eq(1), "1: scraped while the job ran"},
		{`max_over_time(fieldgate_steps{phase="transfer"}[10m])`, "phase=transfer", gt(0), "> 0: scraped during a transfer"},
		{`fieldgate_steps{phase="failed"}`, "phase=failed", eq(0), "0"},
		{`fieldgate_tuf_refreshes_total{result="ok"}`, "result=ok", gt(0), "> 0"},
		{`fieldgate_tuf_refresh_age_seconds`, "", between(0, 60), "within the refresh interval"},
		{`fieldgate_outbox_delivered_total`, "", gt(0), "> 0: the embedded broker took reports"},
		{`fieldgate_audit_records`, "", gt(devices), "several records per device"},
		{`fieldgate_state_db_bytes`, "", gt(0), "> 0"},
		{`fieldgate_state_dir_free_bytes`, "", gt(0), "> 0"},
	} {
		got, err := prom.query(ctx, c.query)
		if err != nil {
			t.Errorf("prometheus: %v", err)
			continue
		}
		v, ok := got[c.labels]
		if !ok || !c.want(v) {
			t.Errorf("prometheus: %s = %v, want {%s} %s", c.query, got, c.labels, c.says)
		}
	}

	// Figures: what a scrape costs and the daemon's memory with metrics on.
	for _, q := range []string{`scrape_duration_seconds{job="fieldgate"}`, `scrape_samples_scraped{job="fieldgate"}`,
		`avg_over_time(scrape_duration_seconds{job="fieldgate"}[10m])`} {
		if got, err := prom.query(ctx, q); err == nil {
			t.Logf("%s = %v", q, got[""])
		}
	}
	if env.daemon != nil {
		if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", env.daemon.Process.Pid)); err == nil {
			for _, l := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "VmHWM:") {
					t.Logf("fieldgated %s", strings.Join(strings.Fields(l), " "))
				}
			}
		}
	}
}

func eq(w float64) func(float64) bool { return func(v float64) bool { return v == w } }
func gt(w float64) func(float64) bool { return func(v float64) bool { return v > w } }
func between(lo, hi float64) func(float64) bool {
	return func(v float64) bool { return v >= lo && v <= hi }
}
