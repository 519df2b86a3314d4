// SPDX-License-Identifier: Apache-2.0

package modbus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/modbus/pdu"
)

// Profile is a device's register map and update procedure, read from
// devices.Config.Options. The defaults are fieldgate's reference map, which
// the simulated device (package sim) implements; a real device gets its
// vendor's numbers in the configuration. Every key is optional;
// profileDoc says what each means, and Driver().Describe lists them with
// their defaults.
//
// The update procedure: write length_register, stream the image with 0x15
// into the files from file on (offset = ((file−file₀)·10000 + record)·2),
// read back per verify_readback, write cmd_verify and poll status_register,
// compare the digest; Activate writes cmd_activate and polls status (the
// device may drop off the bus while it boots) until it reads idle or ok,
// then reads identity with 0x2B (version = MajorMinorRevision).
type Profile struct {
	Unit          byte
	Timeout       time.Duration
	Retries       int
	File          uint16
	BackupFile    uint16
	MaxRegisters  int
	CommandReg    uint16
	CmdVerify     uint16
	CmdActivate   uint16
	CmdRevert     uint16
	StatusReg     uint16
	StatusIdle    uint16
	StatusBusy    uint16
	StatusOK      uint16
	StatusError   uint16
	LengthReg     uint16
	RunningLenReg uint16
	Digest        string // crc32, sha256, none
	DigestReg     uint16
	Interlock     Source
	InterlockOn   uint16
	Slots         int
	HardwareObj   byte
	SerialObj     int    // -1 = none
	ReadBack      string // none, sample, full
	ActivateWait  time.Duration
	PollInterval  time.Duration
	Parity        string
	StopBits      int
}

// Source is a register or bit the interlock is read from.
type Source struct {
	Kind string // holding, input, coil, discrete, or "" for none
	Addr uint16
}

// DefaultProfile returns the reference register map.
func DefaultProfile() Profile {
	return Profile{
		Unit: 1, Timeout: time.Second, Retries: 2, File: 1, BackupFile: 1001, MaxRegisters: pdu.MaxRecordRegs,
		CommandReg: 100, CmdVerify: 1, CmdActivate: 2, CmdRevert: 3,
		StatusReg: 101, StatusIdle: 0, StatusBusy: 1, StatusOK: 2, StatusError: 3,
		LengthReg: 102, RunningLenReg: 104, Digest: "crc32", DigestReg: 110,
		Interlock: Source{Kind: "holding", Addr: 106}, InterlockOn: 1,
		Slots: 1, HardwareObj: pdu.ObjProductCode, SerialObj: -1, ReadBack: "sample",
		ActivateWait: 60 * time.Second, PollInterval: 500 * time.Millisecond,
		Parity: "none",
	}
}

// digestRegs is the number of registers the digest occupies.
func (p Profile) digestRegs() uint16 {
	switch p.Digest {
	case "crc32":
		return 2
	case "sha256":
		return 16
	}
	return 0
}

// ParseProfile reads opts over the defaults. It returns every problem,
// joined; unknown keys are errors naming the key.
func ParseProfile(opts map[string]string) (Profile, error) {
	o := devices.ReadOptions(opts)
	p := readProfile(o)
	errs := []error{o.Err()}
	if p.StopBits == 0 {
		p.StopBits = 1
		if p.Parity == "none" {
			p.StopBits = 2 // Modbus over serial line 2.5.1: no parity needs 2 stop bits
		}
	}
	if p.BackupFile != 0 && p.BackupFile == p.File {
		errs = append(errs, fmt.Errorf("option backup_file=%d: must differ from file", p.BackupFile))
	}
	codes := map[uint16]string{}
	for _, s := range []struct {
		name string
		v    uint16
	}{{"status_idle", p.StatusIdle}, {"status_busy", p.StatusBusy}, {"status_ok", p.StatusOK}, {"status_error", p.StatusError}} {
		if other, dup := codes[s.v]; dup {
			errs = append(errs, fmt.Errorf("options %s and %s: both are %d", other, s.name, s.v))
		}
		codes[s.v] = s.name
	}
	return p, errors.Join(errs...)
}

// readProfile reads the options over DefaultProfile from o, leaving
// StopBits 0 when stop_bits is not set; profileDoc says what each key
// means.
func readProfile(o *devices.Options) Profile {
	p := DefaultProfile()
	// Register numbers and codes are read with Go's prefixes (0x64 is 100),
	// as vendors' register maps often give them in hex. A value is stored
	// only when it is valid, so later checks see the default, not a zero.
	number := func(v string, bits int, want string) (uint64, error) {
		n, err := strconv.ParseUint(v, 0, bits)
		if err != nil {
			return 0, errors.New(want)
		}
		return n, nil
	}
	u16 := func(key string, dst *uint16) {
		o.Func(key, strconv.Itoa(int(*dst)), func(v string) error {
			n, err := number(v, 16, "want a number 0..65535")
			if err == nil {
				*dst = uint16(n)
			}
			return err
		})
	}
	o.Func("unit", strconv.Itoa(int(p.Unit)), func(v string) error {
		n, err := number(v, 8, "want a unit id 0..255")
		if err == nil {
			p.Unit = byte(n)
		}
		return err
	})
	p.Timeout = o.Duration("timeout", p.Timeout)
	p.Retries = o.Int("retries", p.Retries, 0, 10)
	p.ActivateWait = o.Duration("activate_timeout", p.ActivateWait)
	p.PollInterval = o.Duration("poll_interval", p.PollInterval)
	o.Func("file", strconv.Itoa(int(p.File)), func(v string) error {
		n, err := number(v, 16, "want a file number 1..65535")
		if err == nil && n == 0 {
			err = errors.New("want a file number 1..65535")
		}
		if err == nil {
			p.File = uint16(n)
		}
		return err
	})
	o.Func("backup_file", strconv.Itoa(int(p.BackupFile)), func(v string) error {
		if v == "none" {
			p.BackupFile = 0
			return nil
		}
		n, err := number(v, 16, "want a number 0..65535 or none")
		if err == nil {
			p.BackupFile = uint16(n)
		}
		return err
	})
	p.MaxRegisters = o.Int("max_registers", p.MaxRegisters, 1, pdu.MaxRecordRegs)
	u16("command_register", &p.CommandReg)
	u16("cmd_verify", &p.CmdVerify)
	u16("cmd_activate", &p.CmdActivate)
	u16("cmd_revert", &p.CmdRevert)
	u16("status_register", &p.StatusReg)
	u16("status_idle", &p.StatusIdle)
	u16("status_busy", &p.StatusBusy)
	u16("status_ok", &p.StatusOK)
	u16("status_error", &p.StatusError)
	u16("length_register", &p.LengthReg)
	u16("running_length_register", &p.RunningLenReg)
	p.Digest = o.OneOf("digest", p.Digest, "crc32", "sha256", "none")
	u16("digest_register", &p.DigestReg)
	o.Func("interlock", p.Interlock.Kind+":"+strconv.Itoa(int(p.Interlock.Addr)), func(v string) error {
		if v == "none" {
			p.Interlock = Source{}
			return nil
		}
		kind, addr, ok := strings.Cut(v, ":")
		n, err := strconv.ParseUint(addr, 0, 16)
		if !ok || err != nil || (kind != "holding" && kind != "input" && kind != "coil" && kind != "discrete") {
			return errors.New("want holding:N, input:N, coil:N, discrete:N or none")
		}
		p.Interlock = Source{Kind: kind, Addr: uint16(n)}
		return nil
	})
	u16("interlock_running", &p.InterlockOn)
	p.Slots = int(o.OneOf("slots", strconv.Itoa(p.Slots), "1", "2")[0] - '0')
	o.Func("hardware_object", strconv.Itoa(int(p.HardwareObj)), func(v string) error {
		n, err := number(v, 8, "want an object id 0..255")
		if err == nil {
			p.HardwareObj = byte(n)
		}
		return err
	})
	o.Func("serial_object", "none", func(v string) error {
		if v == "none" {
			p.SerialObj = -1
			return nil
		}
		n, err := number(v, 8, "want an object id 0..255 or none")
		if err == nil {
			p.SerialObj = int(n)
		}
		return err
	})
	p.ReadBack = o.OneOf("verify_readback", p.ReadBack, "none", "sample", "full")
	p.Parity = o.OneOf("parity", p.Parity, "none", "even", "odd")
	if sb := o.OneOf("stop_bits", "", "1", "2"); sb != "" {
		p.StopBits = int(sb[0] - '0')
	}
	return p
}

// profileDoc describes each key readProfile reads.
func profileDoc() map[string]string {
	return map[string]string{
		"unit":                    "unit id (RTU slave address 1..247; TCP 0..255)",
		"timeout":                 "deadline of one request/response",
		"retries":                 "extra attempts of a request whose answer was lost or garbled (timeout, CRC); only reads, file records and the length registers, never a command",
		"file":                    "first file of the update store (0x15 writes, 0x14 reads back)",
		"backup_file":             "first file of the running image (0x14, read-only); 0 or none: no Backup",
		"max_registers":           "registers per 0x14/0x15 sub-request (1..122)",
		"command_register":        "holding register the gateway writes commands to",
		"cmd_verify":              "command: check the received image, compute its digest",
		"cmd_activate":            "command: boot the received image",
		"cmd_revert":              "command: boot the previous slot (slots=2 only)",
		"status_register":         "holding register with the state of the last command",
		"status_idle":             "status: nothing pending",
		"status_busy":             "status: command in progress (also: booting)",
		"status_ok":               "status: last command succeeded",
		"status_error":            "status: last command failed",
		"length_register":         "2 holding registers (u32, high word first): received image length, written by the gateway before a transfer",
		"running_length_register": "2 holding registers (u32): length of the running image, for Backup",
		"digest":                  "what the device reports after cmd_verify: crc32 (IEEE, 2 registers, high word first), sha256 (16 registers, big-endian bytes) or none",
		"digest_register":         "first holding register of the digest",
		"interlock":               "process-running source: holding:N, input:N, coil:N, discrete:N or none",
		"interlock_running":       "value of the interlock source that means \"process running\" (coil/discrete: 1 = on)",
		"slots":                   "1 (rollback = re-push the backup) or 2 (A/B: cmd_revert boots the previous slot)",
		"hardware_object":         "device identification object holding the hardware id (1 = ProductCode)",
		"serial_object":           "device identification object holding the serial number, or none",
		"verify_readback":         "after a transfer, read back with 0x14: none, sample (first, middle and last chunk) or full",
		"activate_timeout":        "how long Activate/Revert wait for the device to answer with a final status",
		"poll_interval":           "pause between status polls",
		"parity":                  "modbus-rtu only: none, even or odd",
		"stop_bits":               "modbus-rtu only: 1 or 2; default 2 with parity none, else 1",
	}
}

// maxImage is the largest image the update store holds: up to backup_file
// if that follows file, else up to file 65535.
func (p Profile) maxImage() int64 {
	end := int64(65536)
	if p.BackupFile > p.File {
		end = int64(p.BackupFile)
	}
	return (end - int64(p.File)) * pdu.RecordsPerFile * 2
}

func check(cfg devices.Config, rtu bool) error {
	var errs []error
	p, err := ParseProfile(cfg.Options)
	if err != nil {
		errs = append(errs, err)
	}
	switch {
	case cfg.Address == "":
		errs = append(errs, errors.New("address is empty"))
	case rtu:
		if p.Unit == 0 || p.Unit > 247 {
			errs = append(errs, fmt.Errorf("option unit=%d: an RTU slave address is 1..247", p.Unit))
		}
		if cfg.Baud < 0 {
			errs = append(errs, fmt.Errorf("baud %d is negative", cfg.Baud))
		}
	default:
		if _, _, err := net.SplitHostPort(tcpAddr(cfg.Address)); err != nil {
			errs = append(errs, fmt.Errorf("address %q: want host:port", cfg.Address))
		}
		if _, ok := cfg.Options["parity"]; ok {
			errs = append(errs, errors.New("option parity: only for modbus-rtu"))
		}
		if _, ok := cfg.Options["stop_bits"]; ok {
			errs = append(errs, errors.New("option stop_bits: only for modbus-rtu"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("device %s: %w", cfg.ID, err)
	}
	return nil
}

// tcpAddr adds Modbus's port 502 to an address without a port.
func tcpAddr(a string) string {
	if _, _, err := net.SplitHostPort(a); err == nil {
		return a
	}
	return net.JoinHostPort(strings.Trim(a, "[]"), "502")
}
