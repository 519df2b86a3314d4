// SPDX-License-Identifier: Apache-2.0

package api

// The string enumerations of the documents. A value is only ever added,
// never renamed, and never changes its meaning; a consumer ignores values
// it does not know. docs/mqtt.md has a table for each, and the JSON
// Schemas in docs/schema list them as enum. The lists are functions, so
// that no one can change them; enum_test.go fails when the daemon can
// publish a value that is not listed.

// Gateway states (Gateway.State).
const (
	GatewayRunning  = "running"  // no health condition of severity error
	GatewayDegraded = "degraded" // a health condition of severity error is active
	GatewayStopped  = "stopped"  // emergency stop: no new device step starts
)

// GatewayStates lists the values of Gateway.State.
func GatewayStates() []string { return []string{GatewayRunning, GatewayDegraded, GatewayStopped} }

// Health condition severities (Condition.Severity).
const (
	SeverityWarning = "warning" // shown; the gateway stays running
	SeverityError   = "error"   // the gateway is degraded
)

// Severities lists the values of Condition.Severity.
func Severities() []string { return []string{SeverityWarning, SeverityError} }

// ConditionNames lists the values of Condition.Name: the daemon's health
// conditions (daemon/health.go declares each with its severity).
func ConditionNames() []string {
	return []string{
		"clock-unsynced",      // the clock is not plausible: refresh and windows wait
		"verification-failed", // a signature, hash or length did not verify
		"metadata-expired",    // the trusted TUF metadata has expired
		"trust-fallback",      // the newest trusted root could not be loaded
		"metadata-expiring",   // the trusted TUF metadata expires soon
		"refresh-failed",      // the last metadata refresh failed
		"download-failed",     // a target could not be downloaded (transport, not trust)
		"broker-unreachable",  // no MQTT broker for a minute; reports wait in the outbox
		"device-unreachable",  // a device does not answer
		"device-check-failed", // a device did not report the update it was given
		"device-mismatch",     // a device reports another hardware id than configured
		"rollback",            // a device's update was rolled back
		"update-held",         // an update is held back from a device
		"needs-recovery",      // a device reports no running version
		"audit-unwritable",    // the audit log cannot be written
		"store-unwritable",    // a transition could not be written
		"disk-low",            // the state directory's disk is nearly full
		"emergency-stop",      // an emergency stop is in force
		"advisory-unreadable", // an advisory document could not be read or parsed; the others are used
	}
}

// Device states (Device.State) besides the step phases a device can be in
// (DeviceStates has them all).
const (
	DeviceIdle               = "idle"                 // no open job step
	DeviceUpdatePending      = "update-pending"       // in an open job, waiting to start; the job says why
	DeviceBlockedByInterlock = "blocked-by-interlock" // waiting: the interlock says the process is running
	DeviceUnreachable        = "unreachable"          // never identified; see last_error
	DeviceMismatch           = "mismatch"             // reports another hardware id than configured
	DeviceNeedsRecovery      = "needs-recovery"       // reports no running version; see recovery
)

// DeviceStates lists the values of Device.State: the states above and
// the step phases in which a device is busy.
func DeviceStates() []string {
	return []string{DeviceIdle, DeviceUpdatePending, DeviceBlockedByInterlock, DeviceUnreachable,
		DeviceMismatch, DeviceNeedsRecovery,
		StepBackup, StepTransfer, StepActivate, StepVerify, StepSoak, StepRollback}
}

// DeviceProtocols lists the values of Device.Protocol: the protocol names
// of the device drivers fieldgated links (cmd/fieldgated's drivers; a
// test there fails when the two differ). The configuration accepts no
// other protocol, so a device document never carries another.
func DeviceProtocols() []string {
	return []string{"xmodem", "ymodem", "modbus-tcp", "modbus-rtu", "tftp", "tftp-pull", "smp-udp", "smp-serial", "ssh"}
}

// Job phases (Job.Phase).
const (
	JobAwaitingApproval = "awaiting-approval" // waits for the approvals its policy needs
	JobScheduled        = "scheduled"         // approved; waits for its window
	JobRunning          = "running"           // steps are being carried out
	JobSucceeded        = "succeeded"         // final: every device committed
	JobPartiallyFailed  = "partially-failed"  // final: some devices committed, some did not
	JobFailed           = "failed"            // final: no device committed
	JobHalted           = "halted"            // final: the canary failed or too many failures; the rest was not touched
	JobCancelled        = "cancelled"         // final: cancelled by a person
)

// JobPhases lists the values of Job.Phase.
func JobPhases() []string {
	return []string{JobAwaitingApproval, JobScheduled, JobRunning, JobSucceeded,
		JobPartiallyFailed, JobFailed, JobHalted, JobCancelled}
}

// Step phases (Step.Phase).
const (
	StepPending    = "pending"     // waits for its turn, its window or the interlock
	StepBackup     = "backup"      // reading the running image back from the device
	StepTransfer   = "transfer"    // writing the new image
	StepActivate   = "activate"    // switching the device to the new image (reset, boot)
	StepVerify     = "verify"      // reading back the version and hash
	StepSoak       = "soak"        // probing the device's health until soak_until
	StepCommitted  = "committed"   // final: the device runs the new image
	StepRollback   = "rollback"    // returning the device to its previous image
	StepRolledBack = "rolled-back" // final: the device runs its previous image again
	StepFailed     = "failed"      // final: the update did not take; nothing to roll back, or rollback failed
	StepSkipped    = "skipped"     // final: never started (job cancelled or halted)
)

// StepPhases lists the values of Step.Phase.
func StepPhases() []string {
	return []string{StepPending, StepBackup, StepTransfer, StepActivate, StepVerify, StepSoak,
		StepCommitted, StepRollback, StepRolledBack, StepFailed, StepSkipped}
}

// Approval kinds (Approval.Kind).
const (
	ApprovalLocal  = "local"  // on site: a button long-press or fieldgatectl approve
	ApprovalRemote = "remote" // a signed remote command
)

// ApprovalKinds lists the values of Approval.Kind.
func ApprovalKinds() []string { return []string{ApprovalLocal, ApprovalRemote} }

// Approval policies (Job.Policy): the group's approval setting.
const (
	PolicyAuto   = "auto"   // no approval needed
	PolicyLocal  = "local"  // a local approval
	PolicyRemote = "remote" // a remote approval
	PolicyDual   = "dual"   // both a remote and a local approval
)

// ApprovalPolicies lists the values of Job.Policy.
func ApprovalPolicies() []string { return []string{PolicyAuto, PolicyLocal, PolicyRemote, PolicyDual} }

// TargetSeverities lists the values of Job.Severity, the severity signed
// in the target's metadata (absent when unspecified), lowest first.
func TargetSeverities() []string { return []string{"none", "low", "medium", "high", "critical"} }

// LEDPatterns lists the values of Gateway.LEDs (board's patterns).
func LEDPatterns() []string {
	return []string{"off", "on", "slow-blink", "fast-blink", "double-blink", "triple-blink", "heartbeat"}
}

// DisplayPages lists the values of Gateway.Display.
func DisplayPages() []string { return []string{"state", "uplink", "devices"} }

// EventTypes lists the values of Event.Type.
func EventTypes() []string {
	return []string{
		"daemon-started", "daemon-stopped",
		"device-first-seen", "device-drift", "device-needs-recovery", "device-recovered",
		"refresh-requested", "refresh-hint", "refresh-hint-rejected", "refresh-failed", "download-failed",
		"job-awaiting-approval", "job-scheduled", "job-running", "job-succeeded",
		"job-partially-failed", "job-failed", "job-halted", "job-cancelled",
		"job-recovery-scheduled",
		"step-pending", "step-backup", "step-transfer", "step-activate", "step-verify", "step-soak",
		"step-committed", "step-rollback", "step-rolled-back", "step-failed", "step-skipped",
		"approval", "approval-refused",
		"command-accepted", "command-rejected", "command-executing", "command-succeeded", "command-failed",
		"emergency-stop", "emergency-stop-lifted",
		"hold-released",
		"bundle-imported", "bundle-refused",
		"self-update-staged", "self-update-committed", "self-update-rolled-back", "self-update-failed",
		"test-report-signed", "test-report-failed", "test-report-imported", "test-report-refused",
		"advisory-matched", "advisory-fixed",
		"triage-recorded", "triage-removed",
	}
}

// EventOutboxCompacted is the type of the OutboxCompacted summary.
const EventOutboxCompacted = "outbox-compacted"

// Command result statuses (CommandResult.Status).
const (
	CommandAccepted  = "accepted"  // verified and new: being carried out
	CommandExecuting = "executing" // reserved for long-running actions; none uses it yet
	CommandSucceeded = "succeeded" // final: carried out
	CommandRejected  = "rejected"  // final: a check failed, or the gateway refused it
	CommandFailed    = "failed"    // final: the gateway could not carry it out
)

// CommandStatuses lists the values of CommandResult.Status.
func CommandStatuses() []string {
	return []string{CommandAccepted, CommandExecuting, CommandSucceeded, CommandRejected, CommandFailed}
}

// CommandActions lists the values of CommandRequest.Action (daemon/mqtt
// declares each).
func CommandActions() []string {
	return []string{"approve", "cancel", "defer", "update-now", "refresh", "rollback", "stop", "retry", "triage"}
}

// CommandRejectReasons lists the stable tokens a rejected command's
// Reason starts with when the command failed a check before it was
// carried out.
func CommandRejectReasons() []string {
	return []string{"too-large", "malformed", "unsigned", "unknown-key", "bad-signature",
		"expired", "wrong-gateway", "broadcast-action", "invalid", "replayed"}
}

// TransportReasons lists the reasons of the offline statuses daemon/mqtt
// writes on the status topic: lost (the last will) and shutdown.
func TransportReasons() []string { return []string{"lost", "shutdown"} }
