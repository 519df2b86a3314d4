// SPDX-License-Identifier: Apache-2.0

package devices

import "io"

// ProgressReader returns a reader that reports, through progress, how many
// of total bytes have been read from r so far. A nil progress is allowed.
// Drivers whose protocol acknowledges nothing finer than "bytes handed
// over" use it to report transfer progress.
func ProgressReader(r io.Reader, total int64, progress Progress) io.Reader {
	return &progressReader{r: r, total: total, progress: progress}
}

type progressReader struct {
	r        io.Reader
	n, total int64
	progress Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.progress != nil && n > 0 {
		p.progress(p.n, p.total)
	}
	return n, err
}
