package main

import (
	"strings"
	"testing"
)

// Conflicting platform flags are refused before anything is opened, and the
// error names the flags the user typed.
func TestCopyPlatformFlagConflicts(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		// Both used to be taken, making an index of the two platforms.
		{[]string{"--override-arch", "arm64", "--platform", "linux/amd64"}, "--override-arch and --platform exclude each other"},
		{[]string{"--platform", "linux/amd64", "--override-os", "windows"}, "--override-os and --platform exclude each other"},
		{[]string{"--all", "--platform", "linux/amd64"}, "--all and --platform exclude each other"},
		{[]string{"--all", "--override-arch", "arm64"}, "--all and --override-arch exclude each other"},
		{[]string{"--multi-arch", "all", "--override-arch", "arm64"}, "--multi-arch all and --override-arch exclude each other"},
	} {
		root := newRootCmd()
		root.SetArgs(append(append([]string{"copy"}, tc.args...), "oci:/nonexistent/src:v1", "oci:/nonexistent/dst:v1"))
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("copy %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// sync took --override-arch and --platform together as two platforms too.
func TestSyncPlatformFlagConflicts(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"sync", "--override-arch", "arm64", "--platform", "linux/amd64", "oci:/nonexistent/src", "oci:/nonexistent/dst"})
	err := root.Execute()
	if want := "--override-os/--override-arch and --platform exclude each other"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("sync: %v, want an error saying %q", err, want)
	}
}
