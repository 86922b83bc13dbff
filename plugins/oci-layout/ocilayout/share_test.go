package ocilayout

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Endpoints of one layout share its Store (what one writes the other reads
// without parsing index.json again), however the location is spelled, and
// the plugin forgets it once the last endpoint is closed.
func TestEndpointsOfOneLayoutShareTheStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "l")
	p := New()
	w, err := p.Open(ctx, pluginapi.OpenRequest{Transport: TransportName, Location: dir, Mode: pluginapi.ModeWrite})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Open(ctx, pluginapi.OpenRequest{Transport: TransportName, Location: dir + "/./", Mode: pluginapi.ModeRead})
	if err != nil {
		t.Fatal(err)
	}
	other, err := p.Open(ctx, pluginapi.OpenRequest{Transport: TransportName, Location: filepath.Join(t.TempDir(), "m"), Mode: pluginapi.ModeWrite})
	if err != nil {
		t.Fatal(err)
	}
	if w.(*writeEndpoint).store != r.(*readEndpoint).store || other.(*writeEndpoint).store == w.(*writeEndpoint).store {
		t.Fatal("endpoints of one layout hold different Stores, or of two layouts one")
	}
	for _, e := range []pluginapi.Endpoint{w, r, r, other} { // a second Close is harmless
		if err := e.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.stores) != 0 {
		t.Fatalf("%d Stores kept after every endpoint closed", len(p.stores))
	}
}
