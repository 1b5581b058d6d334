package feed

import "strings"

// EntryEscapes reports whether an archive entry's path (a tarball's or a
// zip's, '/'-separated) could lead out of the directory it is unpacked in:
// empty, absolute, with a '\\' or NUL, or with a ".." component anywhere.
// Clients unpack without the first folder (npm strips "package/") and
// follow links made by earlier entries, so "package/../x" or a chain of
// links each harmless alone can escape; packing tools never write "..",
// so every path must only lead down. Every package protocol that inspects
// archives refuses such entries through it.
func EntryEscapes(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return true
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// LinkEscapes reports whether a link entry called name, pointing at
// target, could reach outside the directory the archive is unpacked in.
// The target is held to EntryEscapes' rule whatever the link's kind (a
// symbolic link's "../x" escapes once a client unpacks one level up or
// follows a chain of links), so name and symlink only name the entry.
func LinkEscapes(name, target string, symlink bool) bool {
	_, _ = name, symlink
	return EntryEscapes(target)
}
