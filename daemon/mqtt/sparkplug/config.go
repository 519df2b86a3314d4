// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// Namespace is the first level of every Sparkplug B topic.
const Namespace = "spBv1.0"

// Config configures a Node.
type Config struct {
	// MQTT holds the broker, TLS settings, credentials and keepalive of
	// the gateway's own connection; ClientID is the node's own (its
	// connection has its own will), and Prefix is the gateway's JSON
	// tree, whose command topic the node hands written commands to.
	MQTT mqtt.Config
	// GroupID, EdgeNodeID name the node: spBv1.0/{GroupID}/NBIRTH/{EdgeNodeID}.
	GroupID, EdgeNodeID string
	// PrimaryHostID, if set, holds births back until the host's STATE
	// says it is online, and ends the session when it says offline.
	PrimaryHostID string
	// StateDir holds the file that keeps bdSeq across restarts; empty:
	// bdSeq starts at 0 each time the Node is created (tests).
	StateDir string
	// Now is the clock of payload timestamps; nil: time.Now.
	Now func() time.Time
}

// CheckID reports why id cannot be a Sparkplug group, edge node, device
// or host id: empty, not UTF-8, or containing / + # (which Sparkplug
// forbids in ids) or NUL.
func CheckID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case !utf8.ValidString(id):
		return fmt.Errorf("%q is not UTF-8", id)
	case strings.ContainsAny(id, "/+#\x00"):
		return fmt.Errorf("%q contains / + # or NUL", id)
	}
	return nil
}

// Validate reports every problem with the ids as one error (nil if
// none); the MQTT settings are the gateway's, validated with its
// configuration.
func (c Config) Validate() error {
	var errs []error
	for i, id := range [...]string{c.GroupID, c.EdgeNodeID, c.PrimaryHostID} {
		if i == 2 && id == "" {
			continue // no primary host
		}
		if err := CheckID(id); err != nil {
			errs = append(errs, fmt.Errorf("sparkplug id: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Topic returns the topic of a message of type typ (NBIRTH, NDATA, NDEATH,
// NCMD; DBIRTH, DDATA, DDEATH, DCMD with device) of this node.
func (c Config) Topic(typ, device string) string {
	t := Namespace + "/" + c.GroupID + "/" + typ + "/" + c.EdgeNodeID
	if device != "" {
		t += "/" + device
	}
	return t
}

// StateTopic returns the primary host's STATE topic.
func (c Config) StateTopic() string { return Namespace + "/STATE/" + c.PrimaryHostID }
