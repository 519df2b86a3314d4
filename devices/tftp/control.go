// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"time"
)

// The tftp-pull control channel tells a device to fetch its image from the
// gateway. It is a line protocol over TCP, one command per connection, each
// answered by one line:
//
//	IDENTIFY\n                                  → OK <identity record>\n
//	FETCH <host:port> <file> <size> <sha256>\n  → OK <sha256 of what it stored>\n
//	any                                         → ERR <message>\n
//
// FETCH is answered once the device has read the file by RRQ from the TFTP
// server at host:port, checked size and sha256, and stored it; the device
// then boots it by itself. Lines are at most MaxControlLine bytes. Real
// devices are told to fetch by a vendor channel (console, SNMP, Modbus);
// that plugs in as a Trigger.
const MaxControlLine = 1024

// Control verbs.
const (
	CmdIdentify = "IDENTIFY"
	CmdFetch    = "FETCH"
)

// controlCall sends one command line to addr and returns the text after
// "OK ".
func controlCall(ctx context.Context, addr, line string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("control %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return "", fmt.Errorf("control %s: send: %w", addr, err)
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, MaxControlLine), MaxControlLine)
	if !sc.Scan() {
		err := sc.Err()
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if err == nil {
			err = fmt.Errorf("%w: connection closed without a reply", ErrProtocol)
		}
		return "", fmt.Errorf("control %s: %w", addr, err)
	}
	reply := sc.Text()
	switch {
	case reply == "OK" || strings.HasPrefix(reply, "OK "):
		return strings.TrimPrefix(strings.TrimPrefix(reply, "OK"), " "), nil
	case strings.HasPrefix(reply, "ERR"):
		return "", &RemoteError{Code: ErrCodeUndefined, Msg: printable([]byte(strings.TrimSpace(strings.TrimPrefix(reply, "ERR"))))}
	}
	return "", fmt.Errorf("control %s: %w: reply %q", addr, ErrProtocol, printable([]byte(reply)))
}

// Fetch is a parsed FETCH command.
type Fetch struct {
	Server string // host:port of the gateway's TFTP server
	File   string
	Size   int64
	SHA256 string // hex
}

// ParseFetch parses the arguments of a FETCH line (after the verb).
func ParseFetch(args string) (Fetch, error) {
	f := strings.Fields(args)
	if len(f) != 4 {
		return Fetch{}, fmt.Errorf("FETCH wants <host:port> <file> <size> <sha256>, got %d fields", len(f))
	}
	var size int64
	if _, err := fmt.Sscan(f[2], &size); err != nil || size < 0 {
		return Fetch{}, fmt.Errorf("FETCH size %q: not a byte count", f[2])
	}
	if _, _, err := net.SplitHostPort(f[0]); err != nil {
		return Fetch{}, fmt.Errorf("FETCH server %q: %w", f[0], err)
	}
	if b, err := hex.DecodeString(f[3]); err != nil || len(b) != sha256.Size {
		return Fetch{}, fmt.Errorf("FETCH sha256 %q: want 64 hex digits", printable([]byte(f[3])))
	}
	return Fetch{Server: f[0], File: f[1], Size: size, SHA256: strings.ToLower(f[3])}, nil
}

func (f Fetch) String() string {
	return fmt.Sprintf("%s %s %s %d %s", CmdFetch, f.Server, f.File, f.Size, f.SHA256)
}
