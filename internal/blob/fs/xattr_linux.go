package fs

import (
	"errors"
	"syscall"
)

// verifiedAttr is the extended attribute recording that a blob file's
// content was verified: "<digest> <size> <mtime ns>".
const verifiedAttr = "user.custody.verified"

func setAttr(path, value string) {
	// Best effort: file systems without user xattrs fall back to hashing
	// on the first read after a restart.
	_ = syscall.Setxattr(path, verifiedAttr, []byte(value), 0)
}

func getAttr(path string) (string, bool) {
	buf := make([]byte, 256)
	n, err := syscall.Getxattr(path, verifiedAttr, buf)
	if err != nil || n <= 0 || errors.Is(err, syscall.ERANGE) {
		return "", false
	}
	return string(buf[:n]), true
}
