// SPDX-License-Identifier: Apache-2.0

// Package modbus is the driver for field devices updated over Modbus TCP
// ("modbus-tcp") and Modbus RTU on a serial line ("modbus-rtu"): PLCs, RTUs
// and I/O modules that take a firmware image as file records.
//
// Modbus has no standard firmware procedure, so the device's register map
// is a per-device Profile read from devices.Config.Options (see Profile for
// every key and its default). Registers and coils go through
// github.com/simonvetter/modbus; Write File Record (0x15), Read File Record
// (0x14) and Read Device Identification (0x2B/0x0E), which that library
// lacks, go through the PDU layer in package pdu over a connection of our
// own (MBAP on TCP; RTU framing with CRC-16/Modbus and t3.5 inter-frame
// silence on serial). Each device step opens the connection or port it
// needs and closes it at its end, one client at a time, so an RTU port is
// never opened twice and a device that resets during Activate is simply
// reconnected.
//
// Every request carries a deadline (the profile's timeout, or the
// caller's context if sooner). Errors are devices.Error values classified in
// one place (classify): timeouts, CRC errors and "busy" exceptions are
// transient; other exception responses and protocol violations are
// permanent.
package modbus
