// SPDX-License-Identifier: Apache-2.0

package xmodem

import (
	"errors"
	"fmt"
	"os"
	"time"

	"go.bug.st/serial"
)

// serialPort adapts a go.bug.st/serial port, which has a read timeout, to
// Port, which has a read deadline. A read that times out returns
// os.ErrDeadlineExceeded instead of serial's (0, nil).
type serialPort struct {
	serial.Port
	deadline time.Time
}

// openSerial opens path at baud, 8N1, and discards stale input.
func openSerial(path string, baud int) (*serialPort, error) {
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	_ = p.ResetInputBuffer()
	return &serialPort{Port: p}, nil
}

func (p *serialPort) SetReadDeadline(t time.Time) error {
	p.deadline = t
	return nil
}

func (p *serialPort) Read(b []byte) (int, error) {
	for {
		d := serial.NoTimeout
		if !p.deadline.IsZero() {
			d = time.Until(p.deadline)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			d = max(d, time.Millisecond)
		}
		if err := p.Port.SetReadTimeout(d); err != nil {
			return 0, err
		}
		n, err := p.Port.Read(b)
		if n > 0 || err != nil {
			var perr *serial.PortError
			if errors.As(err, &perr) && perr.Code() == serial.PortClosed {
				err = fmt.Errorf("%w: %v", os.ErrClosed, err)
			}
			return n, err
		}
	}
}
