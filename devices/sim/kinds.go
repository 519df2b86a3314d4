// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"context"
	"log/slog"
)

// The kinds whose constructors bind their socket or pty in advance, or
// expose an Open that does, are adapted here to Device: ready is called
// once the device accepts connections.

type opener interface {
	Open() (string, error)
	Run(ctx context.Context) error
}

type runner interface {
	Run(ctx context.Context) error
}

// boundDevice is a device whose constructor already bound its address.
type boundDevice struct{ r runner }

func (b boundDevice) Run(ctx context.Context, ready func()) error {
	ready()
	return b.r.Run(ctx)
}

// openedDevice binds with Open before it reports ready.
type openedDevice struct{ o opener }

func (o openedDevice) Run(ctx context.Context, ready func()) error {
	if _, err := o.o.Open(); err != nil {
		return err
	}
	ready()
	return o.o.Run(ctx)
}

func bound[T runner](newFn func(Spec, *slog.Logger) (T, error)) Constructor {
	return func(s Spec, log *slog.Logger) (Device, error) {
		d, err := newFn(s, log)
		if err != nil {
			return nil, err
		}
		return boundDevice{d}, nil
	}
}

func opened[T opener](newFn func(Spec, *slog.Logger) (T, error)) Constructor {
	return func(s Spec, log *slog.Logger) (Device, error) {
		d, err := newFn(s, log)
		if err != nil {
			return nil, err
		}
		return openedDevice{d}, nil
	}
}
