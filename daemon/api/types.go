package api

import "time"

// Status is the whole local view, as `fieldgatectl status` shows it.
type Status struct {
	Gateway Gateway  `json:"gateway"`
	Devices []Device `json:"devices"`
	Jobs    []Job    `json:"jobs"`
}

// Gateway is the gateway's retained status document (MQTT topic
// {prefix}/status). Online is false only in the broker's last will.
type Gateway struct {
	Online  bool      `json:"online"`
	ID      string    `json:"gateway"`
	Site    string    `json:"site"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	// State is running, stopped (emergency stop) or degraded (a health
	// condition of severity error is active).
	State           string            `json:"state"`
	Healthy         bool              `json:"healthy"`
	Health          []Condition       `json:"health"`
	MetadataExpires *time.Time        `json:"metadata_expires,omitempty"`
	LastRefresh     *time.Time        `json:"last_refresh,omitempty"`
	BrokerConnected bool              `json:"broker_connected"`
	OutboxDepth     int               `json:"outbox_depth"`
	LEDs            map[string]string `json:"leds,omitempty"`
	Display         string            `json:"display,omitempty"` // page of the LED status display: state, uplink, devices
}

// Condition is one active health condition.
type Condition struct {
	Name     string    `json:"name"`     // stable: see the health table in the README
	Severity string    `json:"severity"` // warning | error
	Subject  string    `json:"subject,omitempty"`
	Message  string    `json:"message"`
	Since    time.Time `json:"since"`
}

// Device is one device's retained inventory and update state (MQTT topic
// {prefix}/devices/{id}).
type Device struct {
	ID          string `json:"id"`
	Protocol    string `json:"protocol"`
	Group       string `json:"group"`
	HardwareID  string `json:"hardware_id"`
	Model       string `json:"model,omitempty"`
	Serial      string `json:"serial,omitempty"`
	Version     string `json:"version"`
	ImageSHA256 string `json:"image_sha256,omitempty"`
	KnownGood   string `json:"known_good,omitempty"`
	Floor       uint64 `json:"security_floor"`
	State       string `json:"state"` // idle | update-pending | blocked-by-interlock | <job step phase> | unreachable | mismatch | needs-recovery
	Job         string `json:"job,omitempty"`
	// Recovery says why the device needs recovery (its version is then
	// unknown: empty).
	Recovery string `json:"recovery,omitempty"`
	// Held lists updates not offered to the device again until a newer
	// target is published or a person retries (fieldgatectl retry).
	Held      []Hold    `json:"held,omitempty"`
	Progress  *Progress `json:"progress,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Hold is one update held back from a device.
type Hold struct {
	Target  string    `json:"target,omitempty"`
	Version string    `json:"version,omitempty"`
	SHA256  string    `json:"sha256"`
	Job     string    `json:"job,omitempty"`
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
}

// Progress of a transfer in bytes.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
	// Started is when the daemon saw the transfer's first progress (a
	// retried or resumed transfer starts again).
	Started *time.Time `json:"started,omitempty"`
	// Rate is the transfer's speed in bytes per second over the last ten
	// seconds, as the daemon measured it; 0 (left out) while it is not
	// known yet, or when nothing moved in that time.
	Rate int64 `json:"rate,omitempty"`
}

// Job is one update's retained state (MQTT topic {prefix}/jobs/{id}).
type Job struct {
	ID        string     `json:"id"`
	Target    string     `json:"target"`
	Version   string     `json:"version"`
	SHA256    string     `json:"sha256"`
	Length    int64      `json:"length"`
	Severity  string     `json:"severity,omitempty"`
	Group     string     `json:"group"`
	Window    string     `json:"window"`
	Policy    string     `json:"approval_policy"` // auto | local | remote | dual
	Approvals []Approval `json:"approvals,omitempty"`
	Phase     string     `json:"phase"` // awaiting-approval | scheduled | running | succeeded | partially-failed | failed | halted | cancelled
	Reason    string     `json:"reason,omitempty"`
	Waiting   string     `json:"waiting,omitempty"` // what the job waits for, e.g. "window nightly: next opening …"
	Created   time.Time  `json:"created"`
	Updated   time.Time  `json:"updated"`
	Steps     []Step     `json:"devices"`
}

// Approval is one recorded approval of a job.
type Approval struct {
	Kind    string    `json:"kind"` // local | remote
	Actor   string    `json:"actor"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
}

// Step is one device's phase within a job.
type Step struct {
	Device   string    `json:"device"`
	Phase    string    `json:"phase"`             // pending | backup | transfer | activate | verify | soak | committed | rollback | rolled-back | failed | skipped
	Blocked  string    `json:"blocked,omitempty"` // why a pending step waits
	Attempts int       `json:"attempts"`
	From     string    `json:"from_version,omitempty"`
	Progress *Progress `json:"progress,omitempty"`
	// SoakUntil is when a step in soak ends: the device's health is probed
	// until then, and the step commits after it.
	SoakUntil *time.Time `json:"soak_until,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// Event is one audit event as published on {prefix}/events.
type Event struct {
	Seq    uint64         `json:"seq"`
	Time   time.Time      `json:"time"`
	Type   string         `json:"type"`
	Job    string         `json:"job,omitempty"`
	Device string         `json:"device,omitempty"`
	Actor  string         `json:"actor,omitempty"`
	Detail map[string]any `json:"detail,omitempty"` // values keep their JSON types
	Hash   string         `json:"hash"`
}

// WindowInfo is one group's window as `fieldgatectl windows` shows it.
type WindowInfo struct {
	Group    string      `json:"group"`
	Window   string      `json:"window"`
	TimeZone string      `json:"timezone"`
	Open     bool        `json:"open"`
	Closes   *time.Time  `json:"closes,omitempty"`
	Next     []time.Time `json:"next"`
}
