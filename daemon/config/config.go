// SPDX-License-Identifier: Apache-2.0

package config

import (
	"net"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// Config is the whole of fieldgated's configuration file. The doc
// comments of the fields below are the descriptions fieldgated.yaml(5)
// prints (cmd/fieldgated's TestManPage generates it); every field needs
// one.
type Config struct {
	Gateway   Gateway    `yaml:"gateway" mapstructure:"gateway"`
	TUF       TUF        `yaml:"tuf" mapstructure:"tuf"`
	MQTT      MQTT       `yaml:"mqtt" mapstructure:"mqtt"`
	Windows   []Window   `yaml:"windows" mapstructure:"windows"`
	Groups    []Group    `yaml:"groups" mapstructure:"groups"`
	Devices   []Device   `yaml:"devices" mapstructure:"devices"`
	Approvers []Approver `yaml:"approvers" mapstructure:"approvers"`
	Board     Board      `yaml:"board" mapstructure:"board"`
	Metrics   Metrics    `yaml:"metrics" mapstructure:"metrics"`

	// StagingKeys are the staging gateways' keys whose signed test
	// reports groups[].require_tested may ask for (docs/staging.md).
	StagingKeys []StagingKey `yaml:"staging_keys" mapstructure:"staging_keys"`
}

// Approver is a person or system whose ed25519 key may sign remote
// commands (approve, cancel, stop…). Name is what the audit log records.
type Approver struct {
	// Name is the approver's identity in the audit log and the key id a
	// signed command names (fieldgatectl remote --key-id); unique.
	Name      string `yaml:"name" mapstructure:"name"`
	PublicKey string `yaml:"public_key" mapstructure:"public_key"` // base64 of the 32-byte ed25519 public key (fieldgatectl remote keygen prints it)
}

// Gateway holds the gateway's identity and local paths.
type Gateway struct {
	// ID names the gateway; required. It becomes an MQTT topic level, so
	// it is letters, digits, '.', '_' and '-' (at most 64).
	ID string `yaml:"id" mapstructure:"id"`
	// Site names the plant or site the gateway is in; required, formed
	// like ID.
	Site string `yaml:"site" mapstructure:"site"`
	// HardwareID is the gateway's own hardware id, which self-update
	// targets are matched against.
	HardwareID string `yaml:"hardware_id" mapstructure:"hardware_id"`
	// StateDir holds the durable state: the job store, the TUF metadata
	// cache and the verified blobs. Environment: FIELDGATE_GATEWAY_STATE_DIR.
	StateDir string `yaml:"state_dir" mapstructure:"state_dir"`
	// Socket is the local control socket fieldgatectl uses. Environment:
	// FIELDGATE_GATEWAY_SOCKET.
	Socket string `yaml:"socket" mapstructure:"socket"`
	// RefreshInterval is how often TUF metadata is refreshed; at least 10s.
	RefreshInterval time.Duration `yaml:"refresh_interval" mapstructure:"refresh_interval"`
	// InventoryInterval is how often every device is identified, to
	// notice versions that changed behind the gateway's back.
	InventoryInterval time.Duration `yaml:"inventory_interval" mapstructure:"inventory_interval"`
	// LogLevel is debug, info, warn or error. Environment:
	// FIELDGATE_GATEWAY_LOG_LEVEL.
	LogLevel string `yaml:"log_level" mapstructure:"log_level"`
	// SelfUpdateWindow names the window in which fieldgated may update
	// itself (targets matching HardwareID); empty disables self-update.
	SelfUpdateWindow string `yaml:"self_update_window" mapstructure:"self_update_window"`
	// MaxParallel is how many devices may be updated at once on the
	// gateway (1..64); devices on one bus segment never are.
	MaxParallel int `yaml:"max_parallel" mapstructure:"max_parallel"`
	// Role is production (default) or staging: a staging gateway runs
	// jobs against its staging twin and signs a test report for every
	// device step that commits (docs/staging.md).
	Role string `yaml:"role" mapstructure:"role"`
	// TestReportKey is a staging gateway's signing key file (made with
	// fieldgatectl remote keygen); required with role staging. Its key
	// id is gateway.id; production gateways list its public key under
	// staging_keys.
	TestReportKey string `yaml:"test_report_key" mapstructure:"test_report_key"`
	// TestReportTTL is how long a test report a staging gateway signs
	// stays valid; default 90 days (2160h).
	TestReportTTL time.Duration `yaml:"test_report_ttl" mapstructure:"test_report_ttl"`
	// Zone is the network exposure of the devices behind the gateway, for
	// advisory priority: internet, dmz, control (default) or isolated. A
	// device's zone overrides it.
	Zone string `yaml:"zone" mapstructure:"zone"`
}

// TUF says where updates come from and which root of trust to start from.
type TUF struct {
	// MetadataURL is the http(s) URL of the repository's metadata
	// directory; required.
	MetadataURL string `yaml:"metadata_url" mapstructure:"metadata_url"`
	// TargetsURL is the http(s) URL of the repository's targets
	// directory; required.
	TargetsURL string `yaml:"targets_url" mapstructure:"targets_url"`
	// TrustedRoot is the file of the repository's root metadata that the
	// gateway starts trusting from (e.g. /etc/fieldgate/root.json); required.
	// Install it with fieldgatectl trust init; --check-config reads it and
	// verifies it with its own keys.
	TrustedRoot string `yaml:"trusted_root" mapstructure:"trusted_root"`
	// HTTPTimeout bounds one request to the repository.
	HTTPTimeout time.Duration `yaml:"http_timeout" mapstructure:"http_timeout"`
	// ImportDir is watched for offline bundles (a USB stick mount point);
	// a bundle that appears there is verified and imported. Empty: off.
	ImportDir string `yaml:"import_dir" mapstructure:"import_dir"`
	// TargetPaths, if set, are the target path patterns this gateway
	// serves ("acme-io16/*"): delegated roles whose paths cannot match
	// them are not fetched. Empty: every role is read.
	TargetPaths []string `yaml:"target_paths" mapstructure:"target_paths"`
}

// MQTT configures the uplink to the central broker. An empty Broker starts
// the embedded broker on Listen, configured by Embedded.
type MQTT struct {
	// Broker is the central broker's URL, tcp://host:1883 or
	// ssl://host:8883 (also tls, mqtt, mqtts); empty starts the embedded
	// broker. Environment: FIELDGATE_MQTT_BROKER.
	Broker string `yaml:"broker" mapstructure:"broker"`
	// Listen is the embedded broker's host:port (only when broker is
	// empty; default 127.0.0.1:1883 then). Beyond loopback it needs
	// embedded.password_file or embedded.client_ca_file.
	Listen string `yaml:"listen" mapstructure:"listen"`
	// ClientID is the gateway's MQTT client id.
	ClientID string `yaml:"client_id" mapstructure:"client_id"`
	// Username logs in to the broker, with Password.
	Username string `yaml:"username" mapstructure:"username"`
	// Password logs in to the broker, with Username.
	Password string `yaml:"password" mapstructure:"password"`
	// CAFile is the PEM bundle of the CAs that sign the broker's
	// certificate; empty: the system's.
	CAFile string `yaml:"ca_file" mapstructure:"ca_file"`
	// CertFile is the gateway's TLS client certificate (PEM), with KeyFile.
	CertFile string `yaml:"cert_file" mapstructure:"cert_file"`
	// KeyFile is the private key of CertFile (PEM).
	KeyFile string `yaml:"key_file" mapstructure:"key_file"`
	// ServerName is the name the broker's certificate must carry, if not
	// the host of Broker.
	ServerName string `yaml:"server_name" mapstructure:"server_name"`
	// Prefix is the topic prefix under which the gateway publishes and
	// receives commands.
	Prefix string `yaml:"prefix" mapstructure:"prefix"`
	// KeepAlive is the MQTT keep-alive interval.
	KeepAlive time.Duration `yaml:"keepalive" mapstructure:"keepalive"`
	// Heartbeat is how often the gateway status is published again when
	// nothing in it changed (a change is published at once; an idle
	// refresh publishes nothing); at least 1m, default 1h. The status
	// carries it, so a consumer may call a gateway whose newest status is
	// older than twice the heartbeat stale.
	Heartbeat time.Duration `yaml:"heartbeat" mapstructure:"heartbeat"`
	// BroadcastPrefix is the topic prefix of signed refresh hints sent to
	// many gateways at once, on {broadcast_prefix}/cmd/{id}: the
	// fleet-wide fieldgate/v1/broadcast by default, or one per site such as
	// fieldgate/v1/SITE/broadcast. Only the refresh action is accepted
	// there. An empty value turns hints off.
	BroadcastPrefix string `yaml:"broadcast_prefix" mapstructure:"broadcast_prefix"`
	// HintSpread bounds the random delay (uniform from 0 to it) between a
	// refresh hint and the refresh it causes, so that a fleet hinted at
	// once does not ask the repository in the same second: 100 000
	// gateways spread over 10s are 10 000 requests per second for a CDN,
	// not 100 000. Between 1s and 1h; default 10s. Hinted refreshes are
	// at most one per 30s whatever is sent.
	HintSpread time.Duration `yaml:"hint_spread" mapstructure:"hint_spread"`
	// Embedded holds the embedded broker's limits and authentication.
	Embedded EmbeddedBroker `yaml:"embedded" mapstructure:"embedded"`
	// Sparkplug makes the gateway a Sparkplug B edge node beside its JSON
	// topic tree, on a connection of its own to the same broker.
	Sparkplug Sparkplug `yaml:"sparkplug" mapstructure:"sparkplug"`
}

// Sparkplug configures the Sparkplug B edge node (docs/mqtt.md): group =
// site or area, edge node = gateway, device = field device. Ids must not
// contain / + or #.
type Sparkplug struct {
	// Enabled switches the Sparkplug B edge node on.
	Enabled bool `yaml:"enabled" mapstructure:"enabled"`
	// GroupID is the Sparkplug group, the site or an area; default gateway.site.
	GroupID string `yaml:"group_id" mapstructure:"group_id"`
	// EdgeNodeID is the gateway's edge node id; default gateway.id.
	EdgeNodeID string `yaml:"edge_node_id" mapstructure:"edge_node_id"`
	// PrimaryHostID names the primary host application: births wait until
	// its STATE says online, and the node disconnects when it goes
	// offline. Empty: publish without waiting for a host.
	PrimaryHostID string `yaml:"primary_host_id" mapstructure:"primary_host_id"`
	// ClientID is the node's own MQTT client id (its connection has its
	// own will, NDEATH); default mqtt.client_id with "-sparkplug" appended.
	ClientID string `yaml:"client_id" mapstructure:"client_id"`
}

// EmbeddedBroker configures the embedded broker (used when MQTT.Broker is
// empty): what one client may make it hold, and who may connect. Listening
// beyond loopback needs PasswordFile or ClientCAFile.
type EmbeddedBroker struct {
	MaxPacketSize    int    `yaml:"max_packet_size" mapstructure:"max_packet_size"`       // bytes of one MQTT packet
	MaxRetained      int    `yaml:"max_retained" mapstructure:"max_retained"`             // retained topics
	MaxRetainedBytes int    `yaml:"max_retained_bytes" mapstructure:"max_retained_bytes"` // payload bytes of all retained messages
	MaxInflight      int    `yaml:"max_inflight" mapstructure:"max_inflight"`             // QoS 1/2 messages held per client
	MaxClients       int    `yaml:"max_clients" mapstructure:"max_clients"`               // connected clients
	PasswordFile     string `yaml:"password_file" mapstructure:"password_file"`           // username:bcrypt-hash lines (htpasswd -B)
	TLSCertFile      string `yaml:"tls_cert_file" mapstructure:"tls_cert_file"`           // the broker's certificate: the listener speaks TLS
	TLSKeyFile       string `yaml:"tls_key_file" mapstructure:"tls_key_file"`             // the private key of tls_cert_file
	ClientCAFile     string `yaml:"client_ca_file" mapstructure:"client_ca_file"`         // clients must present a certificate signed by it
}

// Window is a recurring maintenance window: it opens at each time the cron
// expression Start names, in TimeZone, and stays open for Duration. Dates
// listed in Exclude (YYYY-MM-DD, in TimeZone) never open.
type Window struct {
	// Name is what groups[].window and gateway.self_update_window refer
	// to; unique.
	Name string `yaml:"name" mapstructure:"name"`
	// Start is a standard five-field cron expression ("0 2 * * *": at
	// 02:00 every day) naming when the window opens.
	Start string `yaml:"start" mapstructure:"start"`
	// Duration is how long the window stays open (up to 168h). A step
	// starts only if its estimated duration fits before the window closes.
	Duration time.Duration `yaml:"duration" mapstructure:"duration"`
	// TimeZone is the IANA time zone of Start and Exclude (Europe/Berlin);
	// daylight saving time is followed.
	TimeZone string `yaml:"timezone" mapstructure:"timezone"`
	// Exclude lists dates (YYYY-MM-DD) on which the window does not open.
	Exclude []string `yaml:"exclude" mapstructure:"exclude"`
}

// Group is a set of devices that share a window and an approval policy.
type Group struct {
	// Name is what devices[].group refers to; unique.
	Name string `yaml:"name" mapstructure:"name"`
	// Window names the window in which the group's devices are updated.
	Window string `yaml:"window" mapstructure:"window"`
	// Approval is the approval a job needs before it runs: auto (none),
	// local (a long press of the approve button or fieldgatectl approve),
	// remote (a command signed by one of approvers) or dual (both).
	Approval string `yaml:"approval" mapstructure:"approval"`
	// ApprovalTTL is how long an approval stays valid.
	ApprovalTTL time.Duration `yaml:"approval_ttl" mapstructure:"approval_ttl"`
	// Soak is how long a device must stay healthy after activation before
	// the update is committed.
	Soak time.Duration `yaml:"soak" mapstructure:"soak"`
	// Canary is how many devices are updated (and must commit) before the
	// rest of the group; 1 if not given, 0 for none (the whole group at
	// once, up to gateway.max_parallel).
	Canary int `yaml:"canary" mapstructure:"canary"`
	// MaxFailures halts the job when more devices than this have failed.
	MaxFailures int `yaml:"max_failures" mapstructure:"max_failures"`
	// RequireTested lists staging_keys ids: a job of the group is not
	// approved, nor run, until every device of it is covered by a valid
	// test report signed by one of them for the same image and hardware id.
	RequireTested []string `yaml:"require_tested" mapstructure:"require_tested"`
}

// Device is one field device behind the gateway.
type Device struct {
	// ID names the device in reports, commands and topics; required,
	// unique, formed like gateway.id.
	ID string `yaml:"id" mapstructure:"id"`
	// Group names the device's group; required.
	Group string `yaml:"group" mapstructure:"group"`
	// Protocol names the driver that reaches the device (see DEVICE
	// OPTIONS); required.
	Protocol string `yaml:"protocol" mapstructure:"protocol"`
	// HardwareID is matched against the hardware list of target
	// metadata; required.
	HardwareID string `yaml:"hardware_id" mapstructure:"hardware_id"`
	// Address is the device's serial port (/dev/ttyUSB0) or host:port, as
	// its driver says; required.
	Address string `yaml:"address" mapstructure:"address"`
	// Baud is the serial line's rate for serial drivers; 0 takes the
	// driver's default.
	Baud int `yaml:"baud" mapstructure:"baud"`
	// Segment names the bus a device shares with others (an RS-485 line, a
	// slow link); devices on one segment are never updated in parallel. It
	// defaults to the address's serial port or host.
	Segment string `yaml:"segment" mapstructure:"segment"`
	// Options holds the driver's own settings, listed under DEVICE
	// OPTIONS; a key the driver does not read is an error.
	Options map[string]string `yaml:"options" mapstructure:"options"`
	// Vendor is the device's manufacturer, for the inventory that
	// advisories are matched against. What the device reports wins.
	Vendor string `yaml:"vendor" mapstructure:"vendor"`
	// Product is the device's product name, e.g. "SIMATIC S7-1200",
	// where the device does not report it.
	Product string `yaml:"product" mapstructure:"product"`
	// Model is the device's model or order number, e.g.
	// "6ES7 214-1AG40-0XB0". What the device reports wins.
	Model string `yaml:"model" mapstructure:"model"`
	// HardwareRevision is the device's hardware revision (e.g. "3"),
	// where the device does not report it.
	HardwareRevision string `yaml:"hardware_revision" mapstructure:"hardware_revision"`
	// Serial is the device's serial number. What the device reports wins.
	Serial string `yaml:"serial" mapstructure:"serial"`
	// CPE is the device's CPE 2.3 formatted string
	// (cpe:2.3:h:vendor:product:…), optional.
	CPE string `yaml:"cpe" mapstructure:"cpe"`
	// PURL is the device's firmware package URL (pkg:type/namespace/name),
	// optional.
	PURL string `yaml:"purl" mapstructure:"purl"`
	// Zone is the device's network exposure: internet, dmz, control or
	// isolated; it defaults to gateway.zone.
	Zone string `yaml:"zone" mapstructure:"zone"`
	// Criticality is how much the plant depends on the device: high,
	// medium (default) or low.
	Criticality string `yaml:"criticality" mapstructure:"criticality"`
}

// Board maps buttons and LEDs to GPIO pin names. With none configured the
// daemon runs a virtual board.
type Board struct {
	// Buttons maps a button's name (approve) to its pin. The approve
	// button's long press (3 s) approves or starts an update, a very long
	// one (10 s) is an emergency stop, a short one shows the next page of
	// the status display.
	Buttons map[string]Pin `yaml:"buttons" mapstructure:"buttons"`
	// LEDs maps an LED's name (status, fault) to its pin.
	LEDs map[string]Pin `yaml:"leds" mapstructure:"leds"`
}

// Pin names a GPIO line as periph's gpioreg knows it.
type Pin struct {
	// Pin is the GPIO line's kernel name (gpioinfo lists them, e.g.
	// GPIO17) or gpiochipN:OFFSET; required.
	Pin string `yaml:"pin" mapstructure:"pin"`
	// ActiveLow inverts the line: low is pressed or lit.
	ActiveLow bool `yaml:"active_low" mapstructure:"active_low"`
}

// Approval policies a group may name.
const (
	ApprovalAuto   = "auto"   // no approval needed
	ApprovalLocal  = "local"  // a button long-press or `fieldgatectl approve` on the gateway
	ApprovalRemote = "remote" // a signed remote command
	ApprovalDual   = "dual"   // both: a signed remote approval and a local one
)

func (c *Config) setDefaults() {
	g := &c.Gateway
	if g.StateDir == "" {
		g.StateDir = "/var/lib/fieldgate"
	}
	if g.Socket == "" {
		g.Socket = "/run/fieldgate/fieldgated.sock"
	}
	if g.RefreshInterval == 0 {
		g.RefreshInterval = 15 * time.Minute
	}
	if g.InventoryInterval == 0 {
		g.InventoryInterval = time.Hour
	}
	if g.LogLevel == "" {
		g.LogLevel = "info"
	}
	if c.TUF.HTTPTimeout == 0 {
		c.TUF.HTTPTimeout = 30 * time.Second
	}
	m := &c.MQTT
	if m.Broker == "" && m.Listen == "" {
		m.Listen = mqtt.DefaultListen
	}
	if m.ClientID == "" {
		m.ClientID = "fieldgated-" + g.ID
	}
	if m.Prefix == "" {
		m.Prefix = "fieldgate/v1/" + g.Site + "/" + g.ID
	}
	if m.KeepAlive == 0 {
		m.KeepAlive = 30 * time.Second
	}
	if m.Heartbeat == 0 {
		m.Heartbeat = time.Hour
	}
	if m.HintSpread == 0 {
		m.HintSpread = 10 * time.Second
	}
	c.defaultSparkplug()
	c.defaultStaging()
	c.defaultInventory()
	e := &m.Embedded
	for _, l := range []struct {
		v   *int
		def int
	}{
		{&e.MaxPacketSize, mqtt.DefaultMaxPacketSize},
		{&e.MaxRetained, mqtt.DefaultMaxRetained},
		{&e.MaxRetainedBytes, mqtt.DefaultMaxRetainedBytes},
		{&e.MaxInflight, mqtt.DefaultMaxInflight},
		{&e.MaxClients, mqtt.DefaultMaxClients},
	} {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	for i := range c.Windows {
		if c.Windows[i].TimeZone == "" {
			c.Windows[i].TimeZone = "UTC"
		}
	}
	if g.MaxParallel == 0 {
		g.MaxParallel = 1
	}
	for i := range c.Groups {
		gr := &c.Groups[i]
		if gr.Approval == "" {
			gr.Approval = ApprovalAuto
		}
		if gr.ApprovalTTL == 0 {
			gr.ApprovalTTL = 24 * time.Hour
		}
	}
	for i := range c.Devices {
		if d := &c.Devices[i]; d.Segment == "" {
			d.Segment = d.Address
			if h, _, err := net.SplitHostPort(d.Address); err == nil {
				d.Segment = h
			}
		}
	}
}
