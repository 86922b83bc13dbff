package host

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"
)

// A run remembers every blob it moved, so what it keeps of each is small:
// a map entry pointing at its repository's shared done flight (235 bytes a
// blob when each kept its flight, channel and boxed key; 68 now, the
// digest string aside).
func TestBlobShareKeepsLittlePerBlob(t *testing.T) {
	const n = 50000
	digs := make([]digest.Digest, n)
	for i := range digs {
		digs[i] = digest.FromString(fmt.Sprint(i))
	}
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newBlobShare()
	for i, d := range digs {
		loc := fmt.Sprintf("reg.example/r%d", i%10)
		key := shareKey{transport: "docker", registry: "reg.example", digest: d}
		if f, ran, err := flightOnce(ctx, s, s.shares, key, loc, func() error { return nil }); !ran || err != nil || f.loc != loc {
			t.Fatalf("first flight of %s: ran %v, err %v, loc %q", d, ran, err, f.loc)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if per := float64(after.HeapAlloc-before.HeapAlloc) / n; per > 150 {
		t.Errorf("%.0f bytes kept per blob, want at most 150", per)
	}
	runtime.KeepAlive(s)

	// A later caller finds the blob where it landed, without running.
	f, ran, err := flightOnce(ctx, s, s.shares, shareKey{transport: "docker", registry: "reg.example", digest: digs[3]}, "reg.example/other",
		func() error { t.Error("a done flight ran again"); return nil })
	if ran || err != nil || f.loc != "reg.example/r3" || f.err != nil {
		t.Errorf("done flight: ran %v, err %v, loc %q, flight err %v", ran, err, f.loc, f.err)
	}
	if len(s.landed) != 10 {
		t.Errorf("%d shared done flights for 10 locations", len(s.landed))
	}
	// A failed flight is forgotten: the next caller runs it.
	key := mountKey{transport: "docker", location: "reg.example/r1", digest: digs[0]}
	boom := errors.New("boom")
	if _, ran, err := flightOnce(ctx, s, s.mounts, key, "reg.example/r1", func() error { return boom }); !ran || !errors.Is(err, boom) {
		t.Fatalf("failing flight: ran %v, err %v", ran, err)
	}
	if _, ran, err := flightOnce(ctx, s, s.mounts, key, "reg.example/r1", func() error { return nil }); !ran || err != nil {
		t.Fatalf("flight after a failure: ran %v, err %v", ran, err)
	}
}
