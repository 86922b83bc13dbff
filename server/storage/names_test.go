package storage

import (
	"errors"
	"fmt"
	"testing"

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
