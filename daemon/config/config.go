package config

import (
	"time"
)

// Config is the whole of fieldgated's configuration file.
type Config struct {
	Gateway Gateway  `yaml:"gateway" mapstructure:"gateway"`
	TUF     TUF      `yaml:"tuf" mapstructure:"tuf"`
	MQTT    MQTT     `yaml:"mqtt" mapstructure:"mqtt"`
	Windows []Window `yaml:"windows" mapstructure:"windows"`
	Groups  []Group  `yaml:"groups" mapstructure:"groups"`
	Devices []Device `yaml:"devices" mapstructure:"devices"`
	Board   Board    `yaml:"board" mapstructure:"board"`
}

// Gateway holds the gateway's identity and local paths.
type Gateway struct {
	ID                string        `yaml:"id" mapstructure:"id"`
	Site              string        `yaml:"site" mapstructure:"site"`
	HardwareID        string        `yaml:"hardware_id" mapstructure:"hardware_id"`
	StateDir          string        `yaml:"state_dir" mapstructure:"state_dir"`
	Socket            string        `yaml:"socket" mapstructure:"socket"`
	RefreshInterval   time.Duration `yaml:"refresh_interval" mapstructure:"refresh_interval"`
	InventoryInterval time.Duration `yaml:"inventory_interval" mapstructure:"inventory_interval"`
	LogLevel          string        `yaml:"log_level" mapstructure:"log_level"`
}

// TUF says where updates come from and which root of trust to start from.
type TUF struct {
	MetadataURL string        `yaml:"metadata_url" mapstructure:"metadata_url"`
	TargetsURL  string        `yaml:"targets_url" mapstructure:"targets_url"`
	TrustedRoot string        `yaml:"trusted_root" mapstructure:"trusted_root"`
	HTTPTimeout time.Duration `yaml:"http_timeout" mapstructure:"http_timeout"`
}

// MQTT configures the uplink to the central broker. An empty Broker starts
// the embedded broker on Listen.
type MQTT struct {
	Broker     string        `yaml:"broker" mapstructure:"broker"`
	Listen     string        `yaml:"listen" mapstructure:"listen"`
	ClientID   string        `yaml:"client_id" mapstructure:"client_id"`
	Username   string        `yaml:"username" mapstructure:"username"`
	Password   string        `yaml:"password" mapstructure:"password"`
	CAFile     string        `yaml:"ca_file" mapstructure:"ca_file"`
	CertFile   string        `yaml:"cert_file" mapstructure:"cert_file"`
	KeyFile    string        `yaml:"key_file" mapstructure:"key_file"`
	ServerName string        `yaml:"server_name" mapstructure:"server_name"`
	Prefix     string        `yaml:"prefix" mapstructure:"prefix"`
	KeepAlive  time.Duration `yaml:"keepalive" mapstructure:"keepalive"`
}

// Window is a recurring maintenance window: it opens at each time the cron
// expression Start names, in TimeZone, and stays open for Duration. Dates
// listed in Exclude (YYYY-MM-DD, in TimeZone) never open.
type Window struct {
	Name     string        `yaml:"name" mapstructure:"name"`
	Start    string        `yaml:"start" mapstructure:"start"`
	Duration time.Duration `yaml:"duration" mapstructure:"duration"`
	TimeZone string        `yaml:"timezone" mapstructure:"timezone"`
	Exclude  []string      `yaml:"exclude" mapstructure:"exclude"`
}

// Group is a set of devices that share a window and an approval policy.
type Group struct {
	Name     string `yaml:"name" mapstructure:"name"`
	Window   string `yaml:"window" mapstructure:"window"`
	Approval string `yaml:"approval" mapstructure:"approval"`
}

// Device is one field device behind the gateway.
type Device struct {
	ID         string            `yaml:"id" mapstructure:"id"`
	Group      string            `yaml:"group" mapstructure:"group"`
	Protocol   string            `yaml:"protocol" mapstructure:"protocol"`
	HardwareID string            `yaml:"hardware_id" mapstructure:"hardware_id"`
	Address    string            `yaml:"address" mapstructure:"address"`
	Baud       int               `yaml:"baud" mapstructure:"baud"`
	Options    map[string]string `yaml:"options" mapstructure:"options"`
}

// Board maps buttons and LEDs to GPIO pin names. With none configured the
// daemon runs a virtual board.
type Board struct {
	Buttons map[string]Pin `yaml:"buttons" mapstructure:"buttons"`
	LEDs    map[string]Pin `yaml:"leds" mapstructure:"leds"`
}

// Pin names a GPIO line as periph's gpioreg knows it.
type Pin struct {
	Pin       string `yaml:"pin" mapstructure:"pin"`
	ActiveLow bool   `yaml:"active_low" mapstructure:"active_low"`
}

// Approval policies a group may name.
const (
	ApprovalAuto = "auto"
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
		m.Listen = "127.0.0.1:1883"
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
	for i := range c.Windows {
		if c.Windows[i].TimeZone == "" {
			c.Windows[i].TimeZone = "UTC"
		}
	}
	for i := range c.Groups {
		if c.Groups[i].Approval == "" {
			c.Groups[i].Approval = ApprovalAuto
		}
	}
}
