package pluginapi

import "io"

// ProgressReader returns r reporting the bytes read through it to report:
// each time step more bytes have passed, and once more when r ends (or
// fails) with bytes not reported yet. Plugins implementing
// FileProgressPutter, BlobFileGetter or BlobCopier wrap what they read with
// it; the host uses it for the bytes it streams.
func ProgressReader(r io.Reader, step int64, report func(n int64)) io.Reader {
	return &progressReader{r: r, step: step, report: report}
}

type progressReader struct {
	r       io.Reader
	step    int64
	n, last int64
	report  func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n-p.last >= p.step || (err != nil && p.n != p.last) {
		p.last = p.n
		p.report(p.n)
	}
	return n, err
}
