// Package layer reads tar streams and layer blobs safely: a tar reader that
// refuses entries which could write outside a target directory (`..`,
// absolute names, links that escape, device nodes, absurd sizes), an index of
// the entries of an uncompressed tar for reading members in place, a safe
// extractor, and detection and decompression of gzip and zstd streams
// (github.com/klauspost/compress, which is faster than the standard
// library's gzip and provides zstd).
//
// layer is part of core: it must never import host, plugins, cmd or
// pluginapi, start a process, open a socket, or leave a goroutine running
// after a call returns.
package layer
