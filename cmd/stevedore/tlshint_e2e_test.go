package main

import (
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// The hint for a registry that speaks plain HTTP names the flag the verb
// has: --tls-verify for a command with one registry, the side's own flag for
// copy and sync. Every verb used to suggest --src-tls-verify or
// --dest-tls-verify, which inspect, list-tags and delete do not take.
func TestPlainHTTPHintNamesTheVerbsFlag(t *testing.T) {
	needPlugin(t, "docker")
	needPlugin(t, "oci")
	reg := registrytest.Start(t, registrytest.Options{})
	reg.Seed("r", "v1", 1, 100)
	dir := t.TempDir()
	genImage(t, dir+"/src", "v1", 1, 100)
	image := "docker://" + reg.Addr + "/r:v1"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", image}, "use --tls-verify=false)"},
		{[]string{"list-tags", "docker://" + reg.Addr + "/r"}, "use --tls-verify=false)"},
		{[]string{"delete", image}, "use --tls-verify=false)"},
		{[]string{"list-repositories", "docker://" + reg.Addr}, "use --tls-verify=false)"},
		{[]string{"copy", image, "oci:" + dir + "/out:v1"}, "use --src-tls-verify=false)"},
		{[]string{"copy", "oci:" + dir + "/src:v1", image}, "use --dest-tls-verify=false)"},
		{[]string{"sync", "docker://" + reg.Addr + "/r", "oci:" + dir + "/mirror"}, "use --src-tls-verify=false)"},
	} {
		_, errOut, err := runCLI(t, tc.args...)
		msg := strings.TrimSpace(errOut)
		if err == nil || !strings.Contains(msg, "plain HTTP") || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: %v\n%s\nwant a hint saying %q", tc.args, err, msg, tc.want)
		}
		if strings.Contains(tc.want, "--tls-verify") && (strings.Contains(msg, "--src-") || strings.Contains(msg, "--dest-")) {
			t.Errorf("%v names a flag the verb does not have: %s", tc.args, msg)
		}
	}
}
