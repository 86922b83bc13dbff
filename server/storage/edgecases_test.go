package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
)

// Reading repositories that do not exist (anonymous pulls of ever new
// names, a scan) remembers nothing: the map of repositories grew by one
// entry a name, never freed.
func TestReadsOfUnknownRepositoriesAreNotRemembered(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("x")
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("scan/n%d", i)
		if _, err := st.Resolve(name, "latest"); !errors.Is(err, ErrNameUnknown) {
			t.Fatalf("Resolve: %v", err)
		}
		if _, err := st.Tags(name); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("Tags: %v", err)
		}
		if rs, err := st.Referrers(name, d); err != nil || len(rs) != 0 {
			t.Fatalf("Referrers: %v %v", rs, err)
		}
		if st.Exists(name) {
			t.Fatal("Exists")
		}
	}
	n := 0
	st.repos.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d repositories remembered after reading 100 unknown names", n)
	}
}

// An upload session keeps no file open between requests: sessions opened
// and left (they live for the upload TTL) held a descriptor each, and a few
// thousand POSTs exhausted the server's.
func TestUploadSessionsHoldNoFileBetweenRequests(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	before := fds()
	var us []*Upload
	for i := 0; i < 50; i++ {
		u, err := st.NewUpload("app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(context.Background(), strings.NewReader("some bytes"), -1); err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	if n := fds() - before; n > 5 {
		t.Fatalf("50 idle upload sessions hold %d more open files", n)
	}
	// They still work: resumed at their offset, and committed.
	data := "some bytes, and more"
	for _, u := range us {
		if _, err := u.Write(context.Background(), strings.NewReader(data[10:]), 10); err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(context.Background(), digest.FromString(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	d := digest.SHA512.FromString(data)
	u, _ := st.NewUpload("app")
	if _, err := u.Write(context.Background(), strings.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(context.Background(), d, -1); err != nil {
		t.Fatalf("sha512 commit: %v", err)
	}
	if size, err := st.StatBlob("app", d); err != nil || size != int64(len(data)) {
		t.Fatalf("blob after commit: %d %v", size, err)
	}
}

// A gc dry run reports the stale upload sessions the real run removes
// (it reported none).
func TestGCDryRunCountsStaleUploads(t *testing.T) {
	root := t.TempDir()
	st, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.NewUpload("app")
	if err != nil {
		t.Fatal(err)
	}
	// Left by an earlier process: not open in this one, idle for 2 days.
	st.uploadsMu.Lock()
	delete(st.uploads, u.ID())
	st.uploadsMu.Unlock()
	dir := filepath.Join(root, uploadsDirName, u.ID())
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "state.json"), old, old); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		rep, err := st.GC(context.Background(), GCOptions{DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		_, serr := os.Stat(dir)
		if rep.UploadsRemoved != 1 || dry != (serr == nil) {
			t.Fatalf("gc (dry run %v): %+v, session directory: %v", dry, rep, serr)
		}
	}
}
