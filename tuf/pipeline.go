// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// Pipeline buffers: 8 × 256 KiB, the whole memory a transfer uses.
const (
	chunkSize = 256 << 10
	numChunks = 8
)

type chunk struct {
	buf  []byte
	refs *atomic.Int32
}

// copyParallel copies src to every writer in dsts, each writer in its own
// goroutine, so that reading the network, hashing with each algorithm and
// writing the file overlap instead of adding up. Memory is bounded by
// numChunks buffers. It returns the bytes read from src and the first error.
// onChunk, if not nil, is called with the running total after each read.
func copyParallel(ctx context.Context, dsts []io.Writer, src io.Reader, onChunk func(int64)) (int64, error) {
	if len(dsts) == 0 {
		dsts = []io.Writer{io.Discard}
	}
	free := make(chan []byte, numChunks)
	for range numChunks {
		free <- make([]byte, chunkSize)
	}
	var (
		wg       sync.WaitGroup
		failOnce sync.Once
		failed   = make(chan struct{})
		errs     = make([]error, len(dsts))
		queues   = make([]chan chunk, len(dsts))
	)
	for i, w := range dsts {
		queues[i] = make(chan chunk, numChunks)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range queues[i] {
				if errs[i] == nil {
					if _, err := w.Write(c.buf); err != nil {
						errs[i] = err
						failOnce.Do(func() { close(failed) })
					}
				}
				if c.refs.Add(-1) == 0 {
					free <- c.buf[:cap(c.buf)]
				}
			}
		}()
	}
	var (
		total   int64
		readErr error
	)
loop:
	for {
		var buf []byte
		select {
		case buf = <-free:
		case <-failed:
			break loop
		case <-ctx.Done():
			readErr = ctx.Err()
			break loop
		}
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			total += int64(n)
			refs := new(atomic.Int32)
			refs.Store(int32(len(dsts)))
			for _, q := range queues {
				q <- chunk{buf: buf[:n], refs: refs}
			}
			if onChunk != nil {
				onChunk(total)
			}
		} else {
			free <- buf
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	if readErr != nil {
		return total, readErr
	}
	return total, errors.Join(errs...)
}
