// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// SigningLogFile is the publisher's audit, DIR/signing-log.jsonl: one JSON
// object per line, one line per signing event, appended and fsynced before
// the command that signed returns. It records what was signed, never a key
// or a passphrase.
const SigningLogFile = "signing-log.jsonl"

// SigningEvent is one signing event: keys signed one version of one role.
type SigningEvent struct {
	Time    time.Time `json:"time"`    // UTC, when the signatures were made
	Command string    `json:"command"` // e.g. "commit", "sign", "rotate root", "export --expires"
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	KeyIDs  []string  `json:"key_ids"` // keys that signed in this event, sorted
	// Published is false for signatures gathered on staged metadata (sign,
	// a root rotation waiting for more signatures).
	Published bool `json:"published"`
}

// LogSigning appends ev to the signing log (filling Time and Command when
// empty) and fsyncs it. Every Repo method that signs calls it; a caller
// that brings signatures made elsewhere (an imported vendor role) calls it
// too, with the signers' key ids.
func (r *Repo) LogSigning(ev SigningEvent) error {
	if ev.Time.IsZero() {
		ev.Time = r.now()
	}
	ev.Time = ev.Time.UTC().Truncate(time.Millisecond)
	ev.Expires = ev.Expires.UTC()
	if ev.Command == "" {
		ev.Command = r.opts.Command
	}
	if ev.Command == "" {
		ev.Command = "library"
	}
	ev.KeyIDs = slices.Sorted(slices.Values(ev.KeyIDs))
	line, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := appendLine(filepath.Join(r.dir, SigningLogFile), line); err != nil {
		return fmt.Errorf("signing log: %w", err)
	}
	return nil
}

// logSigned logs the signatures keyIDs just made on md.
func logSigned[T metadata.Roles](r *Repo, md *metadata.Metadata[T], role string, keyIDs []string, published bool) error {
	if len(keyIDs) == 0 {
		return nil
	}
	version, expires := versionOf(md)
	return r.LogSigning(SigningEvent{Role: role, Version: version, Expires: expires, KeyIDs: keyIDs, Published: published})
}

// versionOf returns the version and expiry of any role's metadata.
func versionOf[T metadata.Roles](md *metadata.Metadata[T]) (int64, time.Time) {
	switch s := any(&md.Signed).(type) {
	case *metadata.RootType:
		return s.Version, s.Expires
	case *metadata.TargetsType:
		return s.Version, s.Expires
	case *metadata.SnapshotType:
		return s.Version, s.Expires
	case *metadata.TimestampType:
		return s.Version, s.Expires
	}
	return 0, time.Time{}
}

// appendLine appends line and a newline to path with one write, and fsyncs
// the file (and its directory when it was created). When the file does not
// end in a newline (a write cut short by a crash), the new line starts on a
// line of its own, so one damaged line never swallows the next.
func appendLine(path string, line []byte) error {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	buf := append(slices.Clip(line), '\n')
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			buf = append([]byte{'\n'}, buf...)
		}
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// SigningLog is the signing log as read: its events in order, and the
// lines that could not be read (a last line cut short by a crash during a
// write, or a line damaged by other means), which are reported and skipped.
type SigningLog struct {
	Events  []SigningEvent
	Damaged []DamagedLine
}

// DamagedLine is a line of the signing log that is not a whole event.
type DamagedLine struct {
	Line      int  // 1-based
	Truncated bool // the file's last line, without its newline: an interrupted write
	Text      string
	Err       error
}

// ReadSigningLog reads DIR/signing-log.jsonl. A missing file is an empty
// log (a repository made before the log existed).
func ReadSigningLog(dir string) (SigningLog, error) {
	var l SigningLog
	data, err := os.ReadFile(filepath.Join(dir, SigningLogFile))
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("signing log: %w", err)
	}
	rd := bufio.NewReader(bytes.NewReader(data))
	for n := 1; ; n++ {
		line, err := rd.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		complete := bytes.HasSuffix(line, []byte("\n"))
		text := bytes.TrimRight(line, "\n")
		if len(bytes.TrimSpace(text)) > 0 {
			var ev SigningEvent
			if derr := json.Unmarshal(text, &ev); derr != nil || ev.Role == "" {
				if derr == nil {
					derr = errors.New("no role")
				}
				if len(text) > 80 {
					text = append(text[:80:80], "…"...)
				}
				l.Damaged = append(l.Damaged, DamagedLine{Line: n, Truncated: !complete, Text: string(text), Err: derr})
			} else {
				l.Events = append(l.Events, ev)
			}
		}
		if err == io.EOF {
			break
		}
	}
	return l, nil
}
