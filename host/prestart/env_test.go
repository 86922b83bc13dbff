package prestart

import (
	"slices"
	"testing"
)

// A plugin sees the allow-listed variables (the Go runtime's bounds
// included), every STEVEDORE_* one and its socket directory; nothing else.
func TestEnv(t *testing.T) {
	t.Setenv("GOMAXPROCS", "1")
	t.Setenv("GOMEMLIMIT", "64MiB")
	t.Setenv("STEVEDORE_TEST_SETTING", "on")
	t.Setenv("SOME_CLOUD_SECRET", "do-not-pass")
	env := Env("/tmp/sock")
	for _, want := range []string{"GOMAXPROCS=1", "GOMEMLIMIT=64MiB", "STEVEDORE_TEST_SETTING=on", "PLUGIN_UNIX_SOCKET_DIR=/tmp/sock"} {
		if !slices.Contains(env, want) {
			t.Errorf("plugin environment lacks %s: %v", want, env)
		}
	}
	for _, kv := range env {
		if kv == "SOME_CLOUD_SECRET=do-not-pass" {
			t.Errorf("plugin environment has %s", kv)
		}
	}
}
