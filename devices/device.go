// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"context"
	"io"
	"log/slog"
)

// Device is one field device reached through one driver. Methods may block
// on I/O until ctx ends; a Device is not safe for concurrent use (a bus
// segment carries one conversation at a time). A method a device cannot
// perform returns an error wrapping ErrUnsupported; Capabilities says which
// those are in advance so the daemon can plan.
type Device interface {
	// Capabilities reports what this device supports. It does no I/O.
	Capabilities() Capabilities

	// Identify reads the device's identity and running firmware version.
	Identify(ctx context.Context) (Identity, error)

	// Interlock reports whether the device's process is running, in which
	// case no update step may start. Devices without an interlock source
	// return false, ErrUnsupported.
	Interlock(ctx context.Context) (running bool, err error)

	// Backup reads the installed image back into w and returns its length.
	Backup(ctx context.Context, w io.Writer) (int64, error)

	// Transfer writes img, read from r (exactly img.Size bytes), to the
	// device's update slot. progress, if not nil, is called as bytes are
	// acknowledged by the device.
	Transfer(ctx context.Context, img Image, r io.Reader, progress Progress) error

	// Activate boots the transferred image (reset, test-boot, install
	// command) and returns once the device answers again.
	Activate(ctx context.Context) error

	// Health runs the device's health probe after activation.
	Health(ctx context.Context) error

	// Commit makes the running image permanent (MCUboot confirm). Devices
	// with a single slot return nil: the image is already permanent.
	Commit(ctx context.Context) error

	// Revert returns an A/B device to its previous slot. Single-slot devices
	// return ErrUnsupported; the daemon re-pushes the backup instead.
	Revert(ctx context.Context) error

	// Close releases the driver's resources. It does not talk to the device.
	Close() error
}

// Resumer is implemented by a Device whose steps after Transfer (Activate,
// Health, Commit, Revert) depend on the image it transferred, knowledge a
// Device opened after a daemon restart does not have. Before it runs any of
// those steps on a Device that may not have run the job's Transfer itself,
// the daemon calls Resume with the job's Image and its bytes (exactly
// img.Size bytes, the same as given to Transfer). Calling it again, or
// after Transfer on the same Device, is harmless.
//
// Resume does no I/O with the device. It returns a permanent error (see
// Permanent) when r cannot be read or is not img (size, sha256, format);
// the Device then knows no more than before.
type Resumer interface {
	Resume(img Image, r io.Reader) error
}

// Capabilities lists what a device supports; the daemon plans by it.
type Capabilities struct {
	Slots     int  `json:"slots"`     // 1: single slot (rollback = re-push backup); 2: A/B
	ReadBack  bool `json:"read_back"` // Backup works
	Resume    bool `json:"resume"`    // Transfer continues an interrupted upload
	Health    bool `json:"health"`    // Health probes something beyond Identify
	Interlock bool `json:"interlock"` // Interlock reports the process state
}

// Identity is what a device says about itself.
// Fields a device does not report stay empty; the daemon's inventory takes
// them from config.
type Identity struct {
	Vendor           string `json:"vendor,omitempty"`
	Product          string `json:"product,omitempty"` // product name, e.g. "SIMATIC S7-1200"
	Model            string `json:"model,omitempty"`   // model or order number, e.g. "6ES7 214-1AG40-0XB0"
	HardwareRevision string `json:"hardware_revision,omitempty"`
	Serial           string `json:"serial,omitempty"`
	HardwareID       string `json:"hardware_id,omitempty"`  // matched against target metadata, e.g. "acme-io16-rev3"
	Version          string `json:"version"`                // running firmware version
	ImageSHA256      string `json:"image_sha256,omitempty"` // hex sha256 of the running image, where the device reports it
}

// Image describes the firmware image handed to Transfer.
type Image struct {
	Name    string // target name, e.g. "acme-io16/2.4.1/fw.bin"
	Version string
	Size    int64
	SHA256  string // hex, verified by the daemon just before the push
}

// Progress is called with the number of bytes the device has acknowledged
// and the total. It must not block.
type Progress func(done, total int64)

// Config is one device's entry in the gateway configuration, as a driver
// receives it. Address is the protocol's endpoint: a serial port path
// ("/dev/ttyUSB0"), or host:port for network protocols. Options holds the
// driver's own settings; a driver reads them with ReadOptions, which
// rejects the keys the driver does not read.
type Config struct {
	ID         string
	Protocol   string
	HardwareID string
	Address    string
	Baud       int
	Options    map[string]string
}

// Driver opens devices of one protocol family.
type Driver struct {
	// Name is the protocol name used in configuration, e.g. "xmodem".
	Name string
	// Doc says in a few sentences what the driver talks to and what
	// Config.Address and Config.Baud mean for it; fieldgated.yaml(5)
	// prints it above the driver's options.
	Doc string
	// Options reads every option the driver accepts from o, with the same
	// code Check and Open use, so that Describe lists exactly those keys
	// with their defaults. Nil: the driver accepts no options.
	Options func(o *Options)
	// OptionDoc describes each key Options reads, in one line.
	OptionDoc map[string]string
	// Check validates cfg without I/O, so configuration errors surface
	// before anything starts. It returns every problem it finds, joined.
	Check func(cfg Config) error
	// Open returns a Device for cfg. It does no I/O; ports are opened by the
	// methods that need them.
	Open func(cfg Config, log *slog.Logger) (Device, error)
}
