// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// View is what the node publishes: the daemon's documents after a turn of
// its update loop (the same values fieldgatectl status shows), the
// windows' next openings and the trusted TUF root's version.
type View struct {
	Gateway     api.Gateway
	Devices     []api.Device
	Jobs        []api.Job // oldest first
	Windows     []api.WindowInfo
	RootVersion int64 // 0: no metadata trusted yet
}

// Metric names. They are stable: SCADA tags are bound to them.
const (
	MetricBdSeq           = "bdSeq"
	MetricRebirth         = "Node Control/Rebirth"
	MetricGatewayVersion  = "Properties/Gateway Version"
	MetricAgentState      = "Update Agent/State"
	MetricRootVersion     = "Update Agent/TUF Root Version"
	MetricMetadataExpires = "Update Agent/Metadata Expires"
	MetricOutboxDepth     = "Update Agent/Outbox Depth"
	MetricCommand         = "Update Control/Command"
	MetricLastResult      = "Update Control/Last Result"

	MetricHardwareMake     = "Properties/Hardware Make"
	MetricHardwareModel    = "Properties/Hardware Model"
	MetricFW               = "Properties/FW"
	MetricSerial           = "Properties/Serial"
	MetricUpdateState      = "Update/State"
	MetricAvailableVersion = "Update/Available Version"
	MetricProgress         = "Update/Progress"
	MetricJobID            = "Update/Job ID"
	MetricWindowOpens      = "Update/Window Opens"
	MetricPriority         = "Update/Priority"
)

// def declares one metric: its name, type and whether a host may write it.
type def struct {
	name     string
	typ      DataType
	writable bool
}

// nodeDefs are the node's metrics in birth order; bdSeq comes first and
// only in NBIRTH (its value is the connection's, not the view's).
var nodeDefs = []def{
	{MetricBdSeq, Int64, false},
	{MetricRebirth, Boolean, true},
	{MetricGatewayVersion, String, false},
	{MetricAgentState, String, false},
	{MetricRootVersion, Int64, false},
	{MetricMetadataExpires, DateTime, false},
	{MetricOutboxDepth, Int64, false},
	{MetricCommand, String, true},
	{MetricLastResult, String, false},
}

// deviceDefs are every device's metrics in birth order.
var deviceDefs = []def{
	{MetricHardwareMake, String, false},
	{MetricHardwareModel, String, false},
	{MetricFW, String, false},
	{MetricSerial, String, false},
	{MetricUpdateState, String, false},
	{MetricAvailableVersion, String, false},
	{MetricProgress, Int32, false},
	{MetricJobID, String, false},
	{MetricWindowOpens, DateTime, false},
	{MetricPriority, String, false},
	{MetricCommand, String, true},
}

// value is a metric's value, comparable so that DATA can carry only what
// changed.
type value struct {
	null bool
	i    int64 // integers, DateTime (ms), Boolean (1: true)
	s    string
}

func str(s string) value { return value{s: s} }
func num(i int64) value  { return value{i: i} }

func date(t *time.Time) value {
	if t == nil || t.IsZero() {
		return value{null: true}
	}
	return num(t.UnixMilli())
}

// nodeValues returns the node's values in nodeDefs order.
func nodeValues(v View, bdSeq int64, lastResult string) []value {
	g := v.Gateway
	root := value{null: true}
	if v.RootVersion > 0 {
		root = num(v.RootVersion)
	}
	vals := make([]value, len(nodeDefs)) // in nodeDefs order
	vals[0], vals[2], vals[3], vals[4] = num(bdSeq), str(g.Version), str(g.State), root
	vals[5], vals[6], vals[8] = date(g.MetadataExpires), num(int64(g.OutboxDepth)), str(lastResult)
	return vals
}

// transferred reports whether a step in phase has the image on the device.
func transferred(phase string) bool {
	return phase == "activate" || phase == "verify" || phase == "soak" || phase == "committed"
}

// stepEnded reports whether phase ends a device's part in a job.
func stepEnded(phase string) bool {
	return phase == "committed" || phase == "rolled-back" || phase == "failed" || phase == "skipped"
}

// deviceValues returns d's values in deviceDefs order. While a job runs
// for the device, the update metrics are that job's; afterwards its state
// is the outcome of its last job (committed, rolled-back, failed,
// skipped) until another job starts or the device needs attention.
func deviceValues(d api.Device, v View) []value {
	state, progress := d.State, int64(0)
	var job *api.Job
	var step *api.Step
	for i := len(v.Jobs) - 1; i >= 0 && step == nil; i-- {
		j := &v.Jobs[i]
		if d.Job != "" && j.ID != d.Job {
			continue
		}
		for k := range j.Steps {
			if j.Steps[k].Device == d.ID {
				job, step = j, &j.Steps[k]
				break
			}
		}
	}
	open := d.Job != "" && job != nil
	if step != nil && !open && d.State == "idle" && stepEnded(step.Phase) {
		state = step.Phase
	}
	if step != nil && transferred(step.Phase) {
		progress = 100
	}
	if p := d.Progress; p != nil && p.Total > 0 {
		progress = min(100, max(0, p.Done*100/p.Total))
	}
	vals := make([]value, len(deviceDefs)) // in deviceDefs order
	vals[0], vals[1], vals[2], vals[3] = str(d.HardwareID), str(d.Model), str(d.Version), str(d.Serial)
	vals[4], vals[6], vals[8] = str(state), num(progress), value{null: true}
	if job != nil {
		vals[7] = str(job.ID)
	}
	group := d.Group
	if open {
		vals[5], vals[9], group = str(job.Version), str(job.Severity), job.Group
	}
	for _, w := range v.Windows {
		if w.Group == group && len(w.Next) > 0 {
			vals[8] = date(&w.Next[0])
		}
	}
	return vals
}
