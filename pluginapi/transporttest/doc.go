// Package transporttest is the conformance kit for Stevedore transports. A
// transport, ours or a third party's, proves it honours the pluginapi
// contract by calling Run from its own tests:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Harness{
//			Plugin:      mytransport.New(),
//			Transport:   "mine",
//			NewLocation: func(t *testing.T) string { return filepath.Join(t.TempDir(), "x") },
//		})
//	}
//
// The Plugin may be the transport in-process or a *pluginapi.RemotePlugin
// talking to the plugin binary over gRPC; the kit only uses the Plugin
// interface, and reads capabilities from Capabilities() when the endpoint
// has that method (the gRPC adapter implements every interface and
// advertises what the plugin really supports).
//
// It also exports deterministic test-image generators (RandomImage,
// RandomIndex, RandomReferrer) that produce real gzip'd tar layers and
// valid configs, accepted by skopeo and umoci.
//
// transporttest depends only on pluginapi, core, go-digest, image-spec and
// the standard library (including testing).
package transporttest
