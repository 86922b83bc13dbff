package pluginapi

import "github.com/stevedore-oci/stevedore/pluginapi/handshake"

// MkdirSockets makes a private (0700) directory for unix sockets, named
// prefix followed by random characters: under $XDG_RUNTIME_DIR when it is
// set and usable, else under the temporary directory, else under /tmp
// (handshake.MkdirSockets).
func MkdirSockets(prefix string) (string, error) { return handshake.MkdirSockets(prefix) }
