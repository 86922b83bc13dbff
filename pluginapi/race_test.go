//go:build race

package pluginapi

// raceEnabled makes TestMain build the test plugin with -race too, so races in
// the plugin side of the adapters are caught.
const raceEnabled = true
