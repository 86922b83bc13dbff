package atomicfile

import "golang.org/x/sys/unix"

// startWriteback asks the kernel to start writing a range of fd back
// (sync_file_range, no waiting for the disk).
func startWriteback(fd int, start, length int64) {
	_ = unix.SyncFileRange(fd, start, length, unix.SYNC_FILE_RANGE_WRITE)
}
