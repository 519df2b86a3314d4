// SPDX-License-Identifier: Apache-2.0

package serialtest

import "errors"

// Pair is two ptys joined by a Line: what a client writes to A.Path, a
// client of B.Path reads, at the Line's pace and with its faults.
type Pair struct {
	A, B *PTY
	*Line
}

// NewPair opens two ptys and connects their masters with a Line.
func NewPair(cfg Config) (*Pair, error) {
	a, err := OpenPTY()
	if err != nil {
		return nil, err
	}
	b, err := OpenPTY()
	if err != nil {
		a.Close()
		return nil, err
	}
	return &Pair{A: a, B: b, Line: Connect(a, b, cfg)}, nil
}

// Close stops the line and closes both ptys.
func (p *Pair) Close() error {
	p.Line.Close()
	return errors.Join(p.A.Close(), p.B.Close())
}
