// Package api holds fieldgate's wire schema (the JSON documents published
// over MQTT and served on the local control socket) and the control socket
// itself: an HTTP server on a Unix socket for fieldgatectl, and its client.
// The socket is the only thing fieldgated listens on by default; its file
// mode restricts it to the service user and its group.
package api
