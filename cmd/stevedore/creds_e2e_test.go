package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// --creds USER asks the password on the terminal, as skopeo does; without a
// terminal it is refused, naming the flag. (That it is not echoed cannot be
// seen here: script(1) feeds the password before the prompt turns echo off.)
func TestCredsAskPassword(t *testing.T) {
	needPlugin(t, "docker")
	needPlugin(t, "oci")
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	img := reg.Seed("app", "v1", 1, 1000)
	dir := t.TempDir()
	src := "docker://" + reg.Ref("app") + ":v1"

	_, stderr, err := runCLI(t, "copy", "--src-tls-verify=false", "--src-creds", registrytest.Username, src, "oci:"+dir+"/a:v1")
	if err == nil || !strings.Contains(stderr, "--src-creds "+registrytest.Username+" gives no password") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("--src-creds USER without a terminal: %v %q", err, stderr)
	}

	script, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("script (util-linux) is needed for a terminal")
		}
		t.Skip("no script(1) to give the command a terminal")
	}
	line := strings.Join([]string{filepath.Join(binDir, "stevedore"), "copy", "--src-tls-verify=false", "--src-creds", registrytest.Username, src, "oci:" + dir + "/b:v1"}, " ")
	cmd := exec.Command(script, "-qec", line, "/dev/null")
	cmd.Env = append(os.Environ(), "STEVEDORE_PLUGIN_PATH="+binDir)
	cmd.Stdin = strings.NewReader(registrytest.Password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Password for "+registrytest.Username+" (--src-creds): ") || !strings.Contains(string(out), img.Manifest.Digest.String()) {
		t.Fatalf("--src-creds USER on a terminal: %v\n%s", err, out)
	}
}
