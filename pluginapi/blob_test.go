package pluginapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

func TestBlobRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 1 << 20, 1<<20 + 7, 64 << 20}
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			if got, want := rp.UsesDataPlane(), pl.opts == nil; got != want {
				t.Fatalf("UsesDataPlane = %v, want %v", got, want)
			}
			ctx := testCtx(t)
			w := open(t, rp, "rt", ModeWrite, nil)
			r := open(t, rp, "rt", ModeRead, nil)
			for i, size := range sizes {
				data, desc := randomBlob(size, uint64(i))
				if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
					t.Fatalf("put %d bytes: %v", size, err)
				}
				if ok, err := w.HasBlob(ctx, desc); err != nil || !ok {
					t.Fatalf("HasBlob after put = %v, %v", ok, err)
				}
				got, n := readDigest(t, ctx, r, desc, 0)
				if got != desc.Digest || n != int64(size) {
					t.Fatalf("get %d bytes: got %d bytes, digest %s, want %s", size, n, got, desc.Digest)
				}
				if size > 1000 {
					got, n := readDigest(t, ctx, r, desc, 1000)
					if want := digest.FromBytes(data[1000:]); got != want || n != int64(size-1000) {
						t.Fatalf("get %d bytes at offset 1000: got %d bytes, digest %s, want %s", size, n, got, want)
					}
				}
			}
		})
	}
}

// readDigest reads a whole blob through GetBlob and digests it.
func readDigest(t *testing.T, ctx context.Context, ep *RemoteEndpoint, desc ocispec.Descriptor, offset int64) (digest.Digest, int64) {
	t.Helper()
	rc, err := ep.GetBlob(ctx, desc, offset)
	if err != nil {
		t.Fatalf("GetBlob %s: %v", desc.Digest, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, rc, make([]byte, 256<<10))
	if err != nil {
		t.Fatalf("read blob %s: %v", desc.Digest, err)
	}
	return digest.NewDigest(digest.SHA256, h), n
}

func TestPutBlobErrors(t *testing.T) {
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			ctx := testCtx(t)
			w := open(t, rp, "errs", ModeWrite, nil)
			data, desc := randomBlob(3<<20, 1)
			other, _ := randomBlob(3<<20, 2)

			// The plugin detects the wrong content; the host gets its
			// message and the digests.
			err := w.PutBlob(ctx, desc, bytes.NewReader(other))
			var dm *core.DigestMismatchError
			if !errors.As(err, &dm) || !errors.Is(err, core.ErrDigestMismatch) {
				t.Fatalf("put wrong content: err = %v, want a *core.DigestMismatchError", err)
			}
			if dm.Expected != desc.Digest || dm.Actual != digest.FromBytes(other) {
				t.Fatalf("mismatch = %s/%s, want %s/%s", dm.Expected, dm.Actual, desc.Digest, digest.FromBytes(other))
			}
			if want := "mem:errs: put blob " + desc.Digest.String() + ": digest mismatch"; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("message %q does not start with the plugin's %q", err, want)
			}

			// The host refuses a reader that is too short or too long.
			for _, body := range [][]byte{data[:len(data)-1], append(bytes.Clone(data), 'x')} {
				err = w.PutBlob(ctx, desc, bytes.NewReader(body))
				var sm *core.SizeMismatchError
				if !errors.As(err, &sm) || sm.Expected != desc.Size || sm.Actual != int64(len(body)) {
					t.Fatalf("put %d of %d bytes: err = %v, want a size mismatch", len(body), desc.Size, err)
				}
			}
			// A failing reader: its error, and nothing stored.
			boom := errors.New("boom")
			err = w.PutBlob(ctx, desc, io.MultiReader(bytes.NewReader(data[:2<<20]), errReader{boom}))
			if !errors.Is(err, boom) {
				t.Fatalf("put from failing reader: err = %v, want boom", err)
			}
			if ok, err := w.HasBlob(ctx, desc); err != nil || ok {
				t.Fatalf("HasBlob after failed puts = %v, %v; want false", ok, err)
			}
			// The endpoint still works after all that.
			if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
				t.Fatalf("put after failures: %v", err)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestGetBlobNotFound(t *testing.T) {
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			r := open(t, rp, "nf", ModeRead, nil)
			_, desc := randomBlob(10, 3)
			rc, err := r.GetBlob(testCtx(t), desc, 0)
			if err == nil {
				rc.Close()
				t.Fatal("GetBlob of a missing blob succeeded")
			}
			want := "mem:nf: blob " + desc.Digest.String() + ": not found"
			if !errors.Is(err, core.ErrNotFound) || err.Error() != want {
				t.Fatalf("err = %q, want %q wrapping core.ErrNotFound", err, want)
			}
		})
	}
}

// A source that fails half way must reach the host as that failure, never as
// a short blob that ends in io.EOF.
func TestGetBlobSourceFailsMidStream(t *testing.T) {
	const size, failAt = 8 << 20, 3<<20 + 5
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			ctx := testCtx(t)
			data, desc := randomBlob(size, 4)
			w := open(t, rp, "mid", ModeWrite, nil)
			if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			r := open(t, rp, "mid", ModeRead, map[string]string{"fail-after": strconv.Itoa(failAt)})
			rc, err := r.GetBlob(ctx, desc, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err == nil {
				t.Fatalf("read %d of %d bytes without error", len(got), size)
			}
			if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "simulated read failure") {
				t.Fatalf("err = %v, want the plugin's simulated failure", err)
			}
			if len(got) != failAt || !bytes.Equal(got, data[:failAt]) {
				t.Fatalf("got %d bytes before the error, want the first %d", len(got), failAt)
			}
		})
	}
}

func TestCancelUnblocksGetBlob(t *testing.T) {
	const stallAt = 2 << 20
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			data, desc := randomBlob(stallAt+(4<<20), 5)
			w := open(t, rp, "stall", ModeWrite, nil)
			if err := w.PutBlob(testCtx(t), desc, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			r := open(t, rp, "stall", ModeRead, map[string]string{"stall-after": strconv.Itoa(stallAt)})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rc, err := r.GetBlob(ctx, desc, 0)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			var n int64
			go func() {
				var err error
				n, err = io.Copy(io.Discard, rc)
				errc <- err
			}()
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-errc:
				t.Fatalf("read ended before cancel: %v", err)
			default:
			}
			start := time.Now()
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
				if n != stallAt {
					t.Fatalf("read %d bytes before the stall, want %d", n, stallAt)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("cancel did not unblock the read within 3s")
			}
			closeWithin(t, rc, 3*time.Second)
			t.Logf("unblocked after %v", time.Since(start))
		})
	}
}

func TestCancelUnblocksPutBlob(t *testing.T) {
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			w := open(t, rp, "stallput", ModeWrite, map[string]string{"stall-put": "true"})
			// Larger than socket buffers and gRPC flow-control windows, so the
			// host blocks writing.
			data, desc := randomBlob(32<<20, 6)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- w.PutBlob(ctx, desc, bytes.NewReader(data)) }()
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-errc:
				t.Fatalf("put ended before cancel: %v", err)
			default:
			}
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("cancel did not unblock the put within 3s")
			}
		})
	}
}

// A plugin that refuses a blob before reading it ends the transfer at once
// with its error, not a broken-pipe error of the host's writes.
func TestPutBlobRefusedEarly(t *testing.T) {
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			w := open(t, rp, "deny", ModeWrite, map[string]string{"deny-put": "true"})
			data, desc := randomBlob(32<<20, 8)
			errc := make(chan error, 1)
			go func() { errc <- w.PutBlob(testCtx(t), desc, bytes.NewReader(data)) }()
			select {
			case err := <-errc:
				want := "mem:deny: put blob " + desc.Digest.String() + ": simulated refusal: denied"
				if !errors.Is(err, core.ErrDenied) || err.Error() != want {
					t.Fatalf("err = %q, want %q", err, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("put to a refusing plugin did not end within 5s")
			}
		})
	}
}

// Closing a reader before its end must cancel the transfer and return
// promptly, and the plugin must stay usable.
func TestEarlyClose(t *testing.T) {
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			ctx := testCtx(t)
			data, desc := randomBlob(16<<20, 7)
			w := open(t, rp, "early", ModeWrite, nil)
			if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			for range 5 {
				rc, err := w.GetBlob(ctx, desc, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(rc, make([]byte, 100)); err != nil {
					t.Fatal(err)
				}
				closeWithin(t, rc, 3*time.Second)
			}
			if got, _ := readDigest(t, ctx, w, desc, 0); got != desc.Digest {
				t.Fatalf("digest after early closes = %s, want %s", got, desc.Digest)
			}
		})
	}
}

func closeWithin(t *testing.T, c io.Closer, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("Close did not return within %v", d)
	}
}

func TestConcurrentTransfers(t *testing.T) {
	rp := startPlugin(t, nil)
	ctx := testCtx(t)
	w := open(t, rp, "conc", ModeWrite, nil)
	const n = 8
	errc := make(chan error, n)
	for i := range n {
		go func() {
			data, desc := randomBlob(2<<20+i, uint64(100+i))
			if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
				errc <- err
				return
			}
			rc, err := w.GetBlob(ctx, desc, 0)
			if err != nil {
				errc <- err
				return
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("blob %d came back different", i)
			}
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

// Every transfer, finished or abandoned, leaves no goroutine behind in the
// host.
func TestNoGoroutineLeak(t *testing.T) {
	for _, pl := range planes {
		t.Run(pl.name, func(t *testing.T) {
			rp := startPlugin(t, nil, pl.opts...)
			ctx := testCtx(t)
			data, desc := randomBlob(4<<20, 11)
			w := open(t, rp, "leak", ModeWrite, nil)
			stall := open(t, rp, "leak", ModeRead, map[string]string{"stall-after": strconv.Itoa(2 << 20)})
			fail := open(t, rp, "leak", ModeRead, map[string]string{"fail-after": "1000"})
			deny := open(t, rp, "leak", ModeWrite, map[string]string{"deny-put": "true"})
			if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil { // warm up
				t.Fatal(err)
			}
			readDigest(t, ctx, w, desc, 0)
			time.Sleep(100 * time.Millisecond)
			base := runtime.NumGoroutine()

			for range 3 {
				readDigest(t, ctx, w, desc, 0)
				if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
				_ = deny.PutBlob(ctx, desc, bytes.NewReader(data))
				rc, err := w.GetBlob(ctx, desc, 0) // abandoned early
				if err != nil {
					t.Fatal(err)
				}
				_, _ = rc.Read(make([]byte, 10))
				rc.Close()
				// The failure may come from GetBlob or from Read, depending on
				// whether the RPC's status or the connection arrives first.
				if rc, err = fail.GetBlob(ctx, desc, 0); err == nil {
					_, err = io.ReadAll(rc)
					rc.Close()
				}
				if !errors.Is(err, core.ErrUnavailable) {
					t.Fatalf("read with failure: err = %v", err)
				}
				cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				if rc, err = stall.GetBlob(cctx, desc, 0); err == nil {
					_, _ = io.ReadAll(rc)
					rc.Close()
				}
				cancel()
			}
			deadline := time.Now().Add(3 * time.Second)
			for runtime.NumGoroutine() > base {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					t.Fatalf("%d goroutines, %d before the transfers:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
