package prestart

import "os"

// executable is the running program's file: on Linux, os.Executable reads
// /proc/self/exe, which names the file itself, symbolic links resolved.
func executable() (string, error) { return os.Executable() }
