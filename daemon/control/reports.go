// SPDX-License-Identifier: Apache-2.0

package control

import (
	"context"
	"encoding/json"
	"net/http"
)

// TestReports is what `fieldgatectl reports` needs: the staging test
// reports the gateway holds, and the import of one carried to the site by
// hand. The daemon implements it; a Reader or Commander that does not
// answers 404.
type TestReports interface {
	// TestReportsJSON returns every stored report that verifies now, as
	// signed (JSON), newest first.
	TestReportsJSON() ([]json.RawMessage, error)
	// ImportTestReportFile verifies the report in file path and stores
	// it; it returns the report's id and whether it was new.
	ImportTestReportFile(path, actor string) (id string, added bool, err error)
}

func (s *Server) reportRoutes(mux *http.ServeMux, post func(string, func(Request, string) (Reply, error))) {
	tr, ok := s.Reader.(TestReports)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/reports", func(w http.ResponseWriter, r *http.Request) {
		reps, err := tr.TestReportsJSON()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, Reply{Error: err.Error()})
			return
		}
		if reps == nil {
			reps = []json.RawMessage{}
		}
		writeJSON(w, http.StatusOK, reps)
	})
	post("/v1/reports/import", func(q Request, a string) (Reply, error) {
		id, added, err := tr.ImportTestReportFile(q.File, a)
		n := 0
		if added {
			n = 1
		}
		return Reply{Job: id, Count: n}, err
	})
}

// TestReports returns the signed test reports the gateway holds.
func (c *Client) TestReports(ctx context.Context) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := c.Get(ctx, "/v1/reports", &out)
	return out, err
}
