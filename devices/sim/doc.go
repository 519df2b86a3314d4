// SPDX-License-Identifier: Apache-2.0

// Package sim holds the simulated field devices behind fieldgate-sim. Each
// kind speaks its real protocol over a real transport (a pseudo-terminal for
// serial kinds, UDP/TCP on loopback for network kinds), keeps its firmware
// state across restarts, and can inject faults. Together they are the
// staging environment of the patch process and the peers of the end-to-end
// tests.
package sim
