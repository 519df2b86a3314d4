// SPDX-License-Identifier: Apache-2.0

// Package control is the daemon's local control socket: an HTTP server on
// a Unix socket for fieldgatectl, and its client. The socket is the only
// thing fieldgated listens on by default; its file mode restricts it to the
// service user and its group.
//
// The server serves two small interfaces the daemon implements: a Reader
// (status, windows, the audit log) and a Commander (approve, cancel, defer,
// stop, resume, refresh, press, import, retry, recover). The documents it
// serves are package daemon/api; its own request and reply bodies are
// Request and Reply.
package control
