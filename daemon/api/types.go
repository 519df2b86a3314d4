// SPDX-License-Identifier: Apache-2.0

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
	// Online is true in every status the daemon makes; false only in the
	// last will and the shutdown status, which daemon/mqtt writes.
	Online bool `json:"online"`
	// ID is the gateway's id (gateway.id in the configuration).
	ID string `json:"gateway"`
	// Site is the gateway's site (gateway.site in the configuration).
	Site string `json:"site"`
	// Cohort is the gateway's rollout cohort, 0..99, from its site and id
	// (tuf.Cohort): it takes a target with a staged rollout at percent P
	// only when Cohort < P.
	Cohort int `json:"cohort"`
	// Version is fieldgated's version.
	Version string `json:"version"`
	// Time is when the document was made, RFC 3339 in UTC.
	Time time.Time `json:"time"`
	// TSMillis is the instant of time in milliseconds since the Unix epoch,
	// for hosts that want a number.
	TSMillis int64 `json:"ts_ms"`
	// Heartbeat is the period, in seconds, at which the status is published
	// again when nothing in it changed (mqtt.heartbeat); a consumer may call
	// a gateway whose newest status is older than twice this stale. 0 (the
	// statuses daemon/mqtt writes itself): not known.
	Heartbeat int64 `json:"heartbeat,omitempty"`
	// State is running, stopped (emergency stop) or degraded (a health
	// condition of severity error is active).
	State string `json:"state"`
	// Healthy is true when no health condition is active (Health is empty).
	Healthy bool `json:"healthy"`
	// Health lists the active health conditions, by name and subject.
	Health []Condition `json:"health"`
	// MetadataExpires is when the verified TUF metadata expires; absent
	// before the first refresh.
	MetadataExpires *time.Time `json:"metadata_expires,omitempty"`
	// LastRefresh is the last successful metadata refresh or bundle import.
	LastRefresh *time.Time `json:"last_refresh,omitempty"`
	// BrokerConnected says whether the MQTT session was connected when the
	// document was made (a document made during an outage says false and
	// is delivered after it).
	BrokerConnected bool `json:"broker_connected"`
	// OutboxDepth is how many reports waited for delivery when the
	// document was made.
	OutboxDepth int `json:"outbox_depth"`
	// LEDs maps each LED's name to the pattern it shows.
	LEDs map[string]string `json:"leds,omitempty"`
	// Display is the page of the LED status display a short press turned
	// to: state, uplink or devices.
	Display string `json:"display,omitempty"`
}

// Condition is one active health condition.
type Condition struct {
	// Name is the condition's stable name (ConditionNames).
	Name string `json:"name"`
	// Severity is warning or error; an error makes the gateway degraded.
	Severity string `json:"severity"`
	// Subject is what the condition is about: a device id, a target name,
	// bundle or fieldgated; absent when it concerns the gateway as a whole.
	Subject string `json:"subject,omitempty"`
	// Message says what is wrong, for people.
	Message string `json:"message"`
	// Since is when the condition was first raised.
	Since time.Time `json:"since"`
}

// Device is one device's retained inventory and update state (MQTT topic
// {prefix}/devices/{id}).
type Device struct {
	// ID is the device's id from the configuration.
	ID string `json:"id"`
	// Protocol is the device's driver, as configured: one of
	// DeviceProtocols (xmodem, modbus-tcp, smp-udp, …).
	Protocol string `json:"protocol"`
	// Group is the device's group, which gives its window and approval
	// policy.
	Group string `json:"group"`
	// HardwareID is the hardware id the device must match in target
	// metadata.
	HardwareID string `json:"hardware_id"`
	// Model is the model the device identified itself as.
	Model string `json:"model,omitempty"`
	// Serial is the serial number the device identified itself with.
	Serial string `json:"serial,omitempty"`
	// Version is the firmware version read back from the device; empty if
	// it was never identified.
	Version string `json:"version"`
	// ImageSHA256 is the hex SHA-256 of the running image, when the device
	// reports it.
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// KnownGood is the last version known to work (first seen, or last
	// committed).
	KnownGood string `json:"known_good,omitempty"`
	// Floor is the anti-rollback floor: the lowest security counter the
	// device may be given.
	Floor uint64 `json:"security_floor"`
	// State is the device's update state (DeviceStates): idle,
	// update-pending, blocked-by-interlock, unreachable, mismatch,
	// needs-recovery, or the phase of the job step it is in.
	State string `json:"state"`
	// Job is the open job the state belongs to.
	Job string `json:"job,omitempty"`
	// Recovery says why the device needs recovery (its version is then
	// unknown: empty).
	Recovery string `json:"recovery,omitempty"`
	// Held lists updates not offered to the device again until a newer
	// target is published or a person retries (fieldgatectl retry).
	Held []Hold `json:"held,omitempty"`
	// Rollout says why a staged rollout keeps an update from the device:
	// a newer target's rollout does not admit this gateway yet (the older
	// target, if any, is offered meanwhile), or the rollout of its open
	// job's target was halted, so its pending step waits.
	Rollout string `json:"rollout,omitempty"`
	// Progress is the current transfer's progress, while transferring.
	Progress *Progress `json:"progress,omitempty"`
	// LastError is the last identify, verification or update error.
	LastError string `json:"last_error,omitempty"`
	// Updated is when the document was made, RFC 3339 in UTC.
	Updated time.Time `json:"updated"`
	// TSMillis is the instant of updated in milliseconds since the Unix
	// epoch, for hosts that want a number.
	TSMillis int64 `json:"ts_ms"`
}

// Hold is one update held back from a device.
type Hold struct {
	// Target is the held update's TUF target name.
	Target string `json:"target,omitempty"`
	// Version is the held update's version.
	Version string `json:"version,omitempty"`
	// SHA256 is the held image's hex SHA-256.
	SHA256 string `json:"sha256"`
	// Job is the job whose failure (or whose rollback) put the hold.
	Job string `json:"job,omitempty"`
	// Reason says why the update is held, for people.
	Reason string `json:"reason"`
	// Since is when the hold was put.
	Since time.Time `json:"since"`
}

// Progress of a transfer in bytes.
type Progress struct {
	// Done is how many bytes were transferred.
	Done int64 `json:"done"`
	// Total is the transfer's size in bytes.
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
	// ID is {version}-{first 8 hex of sha256}-{group}, with -2, -3… if
	// the same target is needed again.
	ID string `json:"id"`
	// Target is the TUF target name.
	Target string `json:"target"`
	// Version is the version from the signed target metadata.
	Version string `json:"version"`
	// SHA256 is the image's hex SHA-256: what an approval must name.
	SHA256 string `json:"sha256"`
	// Length is the image's size in bytes.
	Length int64 `json:"length"`
	// Severity is the severity from the signed target metadata
	// (TargetSeverities).
	Severity string `json:"severity,omitempty"`
	// Group is the devices' group.
	Group string `json:"group"`
	// Window is the name of the maintenance window the job runs in.
	Window string `json:"window"`
	// Policy is the group's approval policy (ApprovalPolicies): auto,
	// local, remote or dual.
	Policy string `json:"approval_policy"`
	// Approvals lists the recorded approvals.
	Approvals []Approval `json:"approvals,omitempty"`
	// Phase is the job's phase (JobPhases).
	Phase string `json:"phase"`
	// Reason says why the job entered its phase.
	Reason string `json:"reason,omitempty"`
	// Waiting is what an open job waits for, e.g. "window nightly: next
	// opening …", for people.
	Waiting string `json:"waiting,omitempty"`
	// Created is when the job was made.
	Created time.Time `json:"created"`
	// Updated is the job's last transition, RFC 3339 in UTC.
	Updated time.Time `json:"updated"`
	// TSMillis is the instant of updated in milliseconds since the Unix
	// epoch, for hosts that want a number.
	TSMillis int64 `json:"ts_ms"`
	// Steps are the job's devices, one step each, in rollout order.
	Steps []Step `json:"devices"`
}

// Approval is one recorded approval of a job.
type Approval struct {
	// Kind is local (on site) or remote (a signed command).
	Kind string `json:"kind"`
	// Actor is who approved: key NAME for a signed command, console uid=N
	// or button NAME on site.
	Actor string `json:"actor"`
	// At is when the approval was recorded.
	At time.Time `json:"at"`
	// Expires is when the approval lapses if the job has not started.
	Expires time.Time `json:"expires"`
}

// Step is one device's phase within a job.
type Step struct {
	// Device is the device's id.
	Device string `json:"device"`
	// Phase is the step's phase (StepPhases); committed, rolled-back,
	// failed and skipped are final.
	Phase string `json:"phase"`
	// Blocked says why a pending step waits.
	Blocked string `json:"blocked,omitempty"`
	// Attempts counts the transfers and resumptions so far.
	Attempts int `json:"attempts"`
	// From is the version the device had when the job was made.
	From string `json:"from_version,omitempty"`
	// Progress is the transfer's progress, while transferring.
	Progress *Progress `json:"progress,omitempty"`
	// SoakUntil is when a step in soak ends: the device's health is probed
	// until then, and the step commits after it.
	SoakUntil *time.Time `json:"soak_until,omitempty"`
	// Error says why the step rolled back or failed.
	Error string `json:"error,omitempty"`
}

// Event is one audit event as published on {prefix}/events.
type Event struct {
	// Seq is the event's position in the gateway's audit log: 1, 2, 3, …,
	// never reused, no gaps.
	Seq uint64 `json:"seq"`
	// Time is when it happened, RFC 3339 in UTC.
	Time time.Time `json:"time"`
	// TSMillis is the instant of time in milliseconds since the Unix epoch,
	// for hosts that want a number.
	TSMillis int64 `json:"ts_ms"`
	// Type is the event's type (EventTypes).
	Type string `json:"type"`
	// Job is the job the event concerns.
	Job string `json:"job,omitempty"`
	// Device is the device the event concerns.
	Device string `json:"device,omitempty"`
	// Actor is who caused it: key NAME (a signed command), console uid=N
	// (fieldgatectl on the gateway) or button NAME.
	Actor string `json:"actor,omitempty"`
	// Detail holds the event's details, keys per type; values keep their
	// JSON types.
	Detail map[string]any `json:"detail,omitempty"`
	// Hash is the hex SHA-256 chaining this event to the previous one.
	Hash string `json:"hash"`
}

// OutboxCompacted is the summary that takes the place of events the
// outbox had to drop during a very long broker outage, on the topic of
// the events it replaces. It has no seq; FirstSeq and LastSeq are the seq
// of the first and last dropped event, which stay in the audit log.
type OutboxCompacted struct {
	// Type is always outbox-compacted.
	Type string `json:"type"`
	// Dropped is how many messages were dropped.
	Dropped uint64 `json:"dropped"`
	// FirstSeq is the seq of the first dropped event.
	FirstSeq uint64 `json:"first_seq,omitempty"`
	// LastSeq is the seq of the last dropped event.
	LastSeq uint64 `json:"last_seq,omitempty"`
	// Reason says why, for people.
	Reason string `json:"reason"`
}

// CommandResult is the payload of {prefix}/cmd/{id}/result: one message
// per status a command goes through.
type CommandResult struct {
	// ID is the command's id, from its topic.
	ID string `json:"id"`
	// Action is the command's action, when it could be read.
	Action string `json:"action,omitempty"`
	// Status is accepted, then one final status: succeeded, rejected or
	// failed; or rejected alone when a check failed (CommandStatuses).
	Status string `json:"status"`
	// Reason says why, with rejected and failed: a stable token, ": " and
	// a detail for people.
	Reason string `json:"reason,omitempty"`
	// Actor is key NAME of the signing key, when it could be read.
	Actor string `json:"actor,omitempty"`
	// Time is when the result was made, RFC 3339 in UTC.
	Time time.Time `json:"time"`
	// TSMillis is the instant of time in milliseconds since the Unix epoch,
	// for hosts that want a number.
	TSMillis int64 `json:"ts_ms"`
}

// CommandRequest is a signed command as published on {prefix}/cmd/{id}
// (daemon/mqtt parses and verifies it; docs/mqtt.md has the rules and the
// signed canonical form).
type CommandRequest struct {
	// ID is the command's id: 1–64 of A–Z a–z 0–9 . _ : -, starting with
	// a letter or digit; it equals the {id} topic level.
	ID string `json:"id"`
	// Action is what to do (CommandActions).
	Action string `json:"action"`
	// Gateway is the target gateway's topic prefix.
	Gateway string `json:"gateway"`
	// Expires is when the command lapses: UTC, whole seconds, Z suffix; at
	// most 24 h ahead.
	Expires string `json:"expires"`
	// Args are the action's arguments; one that does not apply to the
	// action is an error.
	Args CommandArgs `json:"args"`
	// Key is the name of the approver key that signed the command.
	Key string `json:"key"`
	// Sig is the standard base64 of the ed25519 signature over the
	// canonical form.
	Sig string `json:"sig"`
}

// CommandArgs are a command's arguments.
type CommandArgs struct {
	// Job is the job the command is about.
	Job string `json:"job,omitempty"`
	// SHA256 is the image the approval is for: 64 lower-case hex digits.
	SHA256 string `json:"sha256,omitempty"`
	// Devices are device ids: at most 256, no repeats.
	Devices []string `json:"devices,omitempty"`
	// Window is START/END, both UTC as for expires, START before END.
	Window string `json:"window,omitempty"`
	// Device is the device a triage verdict is about.
	Device string `json:"device,omitempty"`
	// Advisory is the CSAF tracking id a triage verdict is about.
	Advisory string `json:"advisory,omitempty"`
	// CVE limits a triage verdict to one CVE of the advisory; without it
	// the verdict covers every CVE the advisory has for the device.
	CVE string `json:"cve,omitempty"`
	// Verdict is the triage decision: not_affected, risk_accepted or
	// mitigated.
	Verdict string `json:"verdict,omitempty"`
	// Justification is the VEX flag label of a not_affected verdict.
	Justification string `json:"justification,omitempty"`
	// Until is the last day (YYYY-MM-DD, UTC) of a risk_accepted verdict:
	// today at the earliest, at most 5 years ahead.
	Until string `json:"until,omitempty"`
	// Control names the compensating control of a mitigated verdict.
	Control string `json:"control,omitempty"`
	// Note is free text kept with a triage verdict.
	Note string `json:"note,omitempty"`
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
