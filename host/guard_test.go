package host

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stevedore-oci/stevedore/core"
)

func TestWatchdog(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWatchdog(cancel)
	// Re-armed more often than its duration: never fires.
	for range 10 {
		w.arm(50*time.Millisecond, "x", true)
		time.Sleep(10 * time.Millisecond)
	}
	// Disarmed for longer than its duration: never fires.
	w.disarm()
	time.Sleep(80 * time.Millisecond)
	if ctx.Err() != nil || w.firedError() != nil {
		t.Fatal("watchdog fired while progress was being made or while disarmed")
	}
	w.arm(30*time.Millisecond, "get blob b", true)
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("armed watchdog did not fire")
	}
	te := w.firedError()
	if te == nil || te.Call != "get blob b" || !te.Idle {
		t.Fatalf("fired with %+v", te)
	}
	if !errors.Is(te, context.DeadlineExceeded) || !errors.Is(te, core.ErrUnavailable) {
		t.Fatalf("%v does not match DeadlineExceeded and ErrUnavailable", te)
	}
	if !strings.Contains(te.Error(), EnvIdleTimeout) {
		t.Fatalf("message does not say how to raise the timeout: %s", te)
	}
}

func TestTimeoutSetting(t *testing.T) {
	for _, tt := range []struct {
		opt  time.Duration
		env  string
		want time.Duration
		bad  bool
	}{
		{0, "", time.Minute, false},
		{5 * time.Second, "7s", 5 * time.Second, false},
		{-1, "", -1, false},
		{0, "90s", 90 * time.Second, false},
		{0, "2.5", 2500 * time.Millisecond, false},
		{0, "off", -1, false},
		{0, "0", -1, false},
		{0, "soon", 0, true},
		{0, "-3s", 0, true},
	} {
		t.Setenv("STEVEDORE_TEST_TIMEOUT", tt.env)
		got, err := timeoutSetting(tt.opt, "STEVEDORE_TEST_TIMEOUT", time.Minute)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("timeoutSetting(%s, %q) = %s, %v", tt.opt, tt.env, got, err)
		}
	}
}
