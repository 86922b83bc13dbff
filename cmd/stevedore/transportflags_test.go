package main

import (
	"reflect"
	"testing"

	"github.com/spf13/pflag"
)

// copy and sync take --authfile, --creds and --tls-verify for both sides;
// a side's own flag wins.
func TestTransportFlagsBoth(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		src, dst map[string]string
	}{
		{nil, map[string]string{"flag-prefix": "src-"}, map[string]string{"flag-prefix": "dest-"}},
		{[]string{"--tls-verify=false", "--creds", "u:p", "--authfile", "a.json"},
			map[string]string{"tls-verify": "false", "creds": "u:p", "authfile": "a.json", "flag-prefix": "src-"},
			map[string]string{"tls-verify": "false", "creds": "u:p", "authfile": "a.json", "flag-prefix": "dest-"}},
		{[]string{"--tls-verify=false", "--dest-tls-verify=true", "--creds", "u:p", "--src-creds", "s:q", "--dest-no-creds"},
			map[string]string{"tls-verify": "false", "creds": "s:q", "flag-prefix": "src-"},
			map[string]string{"tls-verify": "true", "no-creds": "true", "flag-prefix": "dest-"}},
		{[]string{"--creds", "u:p", "--dest-registry-token", "tok"},
			map[string]string{"creds": "u:p", "flag-prefix": "src-"},
			map[string]string{"registry-token": "tok", "flag-prefix": "dest-"}},
	} {
		var src, dst, global transportFlags
		fs := pflag.NewFlagSet("copy", pflag.ContinueOnError)
		src.register(fs, "src-", "source")
		dst.register(fs, "dest-", "destination")
		global.registerBoth(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := src.options(fs, "src-", &global); !reflect.DeepEqual(got, tc.src) {
			t.Errorf("%v: source options %v, want %v", tc.args, got, tc.src)
		}
		if got := dst.options(fs, "dest-", &global); !reflect.DeepEqual(got, tc.dst) {
			t.Errorf("%v: destination options %v, want %v", tc.args, got, tc.dst)
		}
	}
}
