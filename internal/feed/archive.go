package feed

import (
	"path"
	"strings"
)

// EntryEscapes reports whether an archive entry's path (a tarball's or a
// zip's, '/'-separated) leaves the directory it is unpacked in: empty,
// absolute, with a '\\' or NUL, or ".." after cleaning. Every package
// protocol that inspects archives refuses such entries through it.
func EntryEscapes(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return true
	}
	c := path.Clean(name)
	return c == ".." || strings.HasPrefix(c, "../")
}

// LinkEscapes reports whether a link entry called name, pointing at
// target, reaches outside the directory the archive is unpacked in: a
// symbolic link's relative target is read from name's directory, a hard
// link's from the archive's root.
func LinkEscapes(name, target string, symlink bool) bool {
	if symlink && !strings.HasPrefix(target, "/") {
		target = path.Join(path.Dir(name), target)
	}
	return EntryEscapes(target)
}
