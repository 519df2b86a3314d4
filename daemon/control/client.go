// SPDX-License-Identifier: Apache-2.0

package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// Client talks to a Server over its Unix socket.
type Client struct {
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// Post sends a command to the daemon. A refusal comes back as an error
// holding the daemon's reason.
func (c *Client) Post(ctx context.Context, path string, req Request) (Reply, error) {
	var rep Reply
	resp, err := c.do(ctx, http.MethodPost, path, req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep); err != nil {
		return rep, fmt.Errorf("daemon answered %s: %w", resp.Status, err)
	}
	if !rep.OK {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}

// do sends one request with body (JSON; nil: none) to the daemon. The
// caller closes the response body.
func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://fieldgated"+path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is fieldgated running? %w", err)
	}
	return resp, nil
}

// Get fetches path into v (JSON) or copies it to w when v is an io.Writer.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	if w, ok := v.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Inventory fetches the gateway's inventory.
func (c *Client) Inventory(ctx context.Context) (api.Inventory, error) {
	var inv api.Inventory
	if err := c.Get(ctx, "/v1/inventory", &inv); err != nil {
		return inv, fmt.Errorf("inventory: %w", err)
	}
	return inv, nil
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	if err := c.Get(ctx, "/v1/status", &st); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	return st, nil
}
