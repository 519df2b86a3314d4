// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/fieldgate/fieldgate/tuf/internal/localfile"
)

// Handler serves dir (a repository's DIR/repository, or any directory of
// the same layout) read-only: GET and HEAD of regular files, with Range
// support. Anything else that is missing, a directory, a symbolic link, a
// named pipe or device, hidden or outside dir is 404 — never 403 and never a listing, because a TUF client takes only 404
// as "no newer root".
func Handler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := path.Clean("/" + req.URL.Path)[1:]
		if name == "" || strings.Contains("/"+name, "/.") {
			http.NotFound(w, req)
			return
		}
		// localfile reads only regular files below dir, follows no
		// symbolic link and never blocks in open (a named pipe would hold
		// the request forever).
		f, err := localfile.Open(dir, name)
		if err != nil {
			http.NotFound(w, req)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.NotFound(w, req)
			return
		}
		if strings.HasSuffix(name, ".json") {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-cache")
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		http.ServeContent(w, req, "", st.ModTime(), f)
	})
}

// Handler serves the repository's DIR/repository directory: clients use
// BASE/metadata and BASE/targets.
func (r *Repo) Handler() http.Handler {
	return Handler(r.dir + string(os.PathSeparator) + "repository")
}
