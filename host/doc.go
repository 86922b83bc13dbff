// Package host is Stevedore's embeddable Go API: it discovers transport
// plugins, launches only those a call needs, and runs the engines (copy,
// inspect, tag listing, delete) over them. The CLI is a thin layer on top.
//
// host owns every plugin process it starts: they are killed when the Host is
// closed, when a call fails, and (through the SDK's parent watch and the
// kernel's parent-death signal) when the host process dies.
//
// host may import pluginapi and core; it must never import cmd or plugins.
package host
