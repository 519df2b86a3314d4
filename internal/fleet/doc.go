// SPDX-License-Identifier: Apache-2.0

// Package fleet holds the fleet harness, a test and a measurement, not a
// library: `make fleet` starts N real fieldgated processes (FLEET_N,
// default 200), each with its own state directory, configuration and two
// simulated Modbus TCP devices served by a few fieldgate-sim processes,
// against one repository served by Debian's nginx and one mosquitto
// broker, all on loopback. It measures from outside what a gateway costs
// when idle (nginx's access log, mosquitto's $SYS counters, /proc), how
// the fleet's polling is spread after a restart, and how long the fleet
// takes to see a new target, and prints one results table.
//
// The package has no code outside its tests, which are the fleet's system
// tests and measurements: TestFleet (the harness), TestInteropBridge (a
// site broker bridged to the centre) and BenchmarkSerial32 (many devices
// on one gateway). TestFleet is skipped unless FIELDGATE_FLEET=1; it runs
// for about half an hour at the default intervals and stops every process
// it started.
package fleet
