// Package core holds Stevedore's pure, process-free building blocks: sentinel
// errors shared by every layer, and (in sub-packages) references, manifests,
// platforms, content verification and the OCI image-layout store.
//
// core and its sub-packages must never import host, plugins, cmd or pluginapi,
// start a process, open a socket, or leave a goroutine running after a call.
package core
