//go:build !linux

package atomicfile

// startWriteback has no equivalent here: the fsync writes the whole file.
func startWriteback(fd int, start, length int64) {}
