// SPDX-License-Identifier: Apache-2.0

package xmodem

// OpenSerial is the driver's go.bug.st/serial port, for the benchmark.
var OpenSerial = func(path string, baud int) (Port, func() error, error) {
	p, err := openSerial(path, baud)
	if err != nil {
		return nil, nil, err
	}
	return p, p.Close, nil
}
