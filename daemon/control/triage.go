// SPDX-License-Identifier: Apache-2.0

package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/fieldgate/fieldgate/daemon/advisory"
)

// Triage is what `fieldgatectl triage` needs: the site's verdicts on
// advisories, and recording and removing one. The daemon implements it; a
// Commander that does not answers 404 on /v1/triage.
type Triage interface {
	// Verdicts returns every stored verdict.
	Verdicts() ([]advisory.Verdict, error)
	// RecordVerdict validates, stores and audits v for actor (command:
	// the remote command's id, "" on site) and returns it as stored.
	RecordVerdict(v advisory.Verdict, actor, command string) (advisory.Verdict, error)
	// RemoveVerdict removes and audits the verdict of device on adv and
	// cve ("" for the one on the whole advisory).
	RemoveVerdict(device, adv, cve, actor, command string) error
}

// VerdictReply is the answer to a triage POST.
type VerdictReply struct {
	OK      bool              `json:"ok"`
	Verdict *advisory.Verdict `json:"verdict,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// triageRoutes serves GET /v1/triage (every verdict), POST /v1/triage (an
// advisory.Verdict to record; actor, time and revision are the daemon's)
// and POST /v1/triage/remove (device, advisory and cve of the verdict to
// remove).
func (s *Server) triageRoutes(mux *http.ServeMux) {
	tr, ok := s.Commander.(Triage)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/triage", func(w http.ResponseWriter, r *http.Request) {
		vs, err := tr.Verdicts()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, VerdictReply{Error: err.Error()})
			return
		}
		if vs == nil {
			vs = []advisory.Verdict{}
		}
		writeJSON(w, http.StatusOK, vs)
	})
	handle := func(path string, fn func(v advisory.Verdict, actor string) (*advisory.Verdict, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var v advisory.Verdict
			dec := json.NewDecoder(r.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				writeJSON(w, http.StatusBadRequest, VerdictReply{Error: "bad request: " + err.Error()})
				return
			}
			actor, _ := r.Context().Value(actorKey{}).(string)
			got, err := fn(v, actor)
			if err != nil {
				writeJSON(w, http.StatusConflict, VerdictReply{Error: err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, VerdictReply{OK: true, Verdict: got})
		})
	}
	handle("/v1/triage", func(v advisory.Verdict, actor string) (*advisory.Verdict, error) {
		got, err := tr.RecordVerdict(v, actor, "")
		return &got, err
	})
	handle("/v1/triage/remove", func(v advisory.Verdict, actor string) (*advisory.Verdict, error) {
		return nil, tr.RemoveVerdict(v.Device, v.Advisory, v.CVE, actor, "")
	})
}

// Verdicts returns the site's triage verdicts.
func (c *Client) Verdicts(ctx context.Context) ([]advisory.Verdict, error) {
	var out []advisory.Verdict
	err := c.Get(ctx, "/v1/triage", &out)
	return out, err
}

// RecordVerdict asks the daemon to record v and returns it as stored.
func (c *Client) RecordVerdict(ctx context.Context, v advisory.Verdict) (advisory.Verdict, error) {
	rep, err := c.postVerdict(ctx, "/v1/triage", v)
	if err != nil || rep.Verdict == nil {
		return v, err
	}
	return *rep.Verdict, nil
}

// RemoveVerdict asks the daemon to remove the verdict of device on adv and
// cve ("" for the one on the whole advisory).
func (c *Client) RemoveVerdict(ctx context.Context, device, adv, cve string) error {
	_, err := c.postVerdict(ctx, "/v1/triage/remove", advisory.Verdict{Device: device, Advisory: adv, CVE: cve})
	return err
}

func (c *Client) postVerdict(ctx context.Context, path string, v advisory.Verdict) (VerdictReply, error) {
	var rep VerdictReply
	resp, err := c.do(ctx, http.MethodPost, path, v)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return rep, errors.New("this fieldgated has no triage (daemon answered 404)")
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep); err != nil {
		return rep, fmt.Errorf("daemon answered %s: %w", resp.Status, err)
	}
	if !rep.OK {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}
