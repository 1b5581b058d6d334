package ecosystem

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
)

// requirementLine matches a pinned requirement once markers and options
// are cut off: name, optional extras, "==" or "===", one version.
var requirementLine = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([A-Za-z0-9][A-Za-z0-9.+!_*-]*)\s*$`)
})

// hashOption matches a requirement's --hash options.
var hashOption = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`--hash[=\s]+([A-Za-z0-9]+:[0-9A-Za-z]+)`) })

// ParseRequirements reads a pip requirements file. Only exact pins
// ("name==version", "name===version", with optional extras and an
// environment marker after ";") are dependencies; a wildcard ("==1.*"),
// a compound specifier ("==1.0,<2"), a range, a URL, a path, an option
// line (-r, -e, --index-url) and a comment are not. Backslash
// continuations are joined first. A pin's --hash options (FileHash) go to
// FileHashes, and into Hashes when there is exactly one. Name is as
// written; PURL normalises it.
func ParseRequirements(b []byte) ([]Package, error) {
	var out []Package
	handle := func(l string) {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "-") {
			return
		}
		var hashes []string
		for _, m := range hashOption().FindAllStringSubmatch(l, -1) {
			if h, ok := FileHash(m[1]); ok {
				hashes = append(hashes, h)
			}
		}
		if i := strings.Index(l, ";"); i >= 0 {
			l = l[:i]
		}
		// Per-requirement options such as --hash follow the specifier.
		if i := strings.Index(l, " --"); i >= 0 {
			l = l[:i]
		}
		m := requirementLine().FindStringSubmatch(strings.TrimSpace(l))
		if m == nil || strings.Contains(m[2], "*") {
			return // unpinned, or a wildcard: a range, not a pin
		}
		out = append(out, pythonPackage(m[1], m[2], hashes))
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	var logical strings.Builder
	for sc.Scan() {
		t := strings.TrimRight(sc.Text(), "\r")
		if strings.HasSuffix(t, "\\") {
			logical.WriteString(strings.TrimSuffix(t, "\\"))
			logical.WriteByte(' ')
			if logical.Len() > maxLine {
				return nil, fmt.Errorf("continued line longer than %d bytes", maxLine)
			}
			continue
		}
		logical.WriteString(t)
		handle(logical.String())
		logical.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if logical.Len() > 0 {
		handle(logical.String())
	}
	return out, nil
}

func pythonPackage(name, version string, hashes []string) Package {
	p := Package{Type: TypePyPI, Name: name, Version: version, FileHashes: hashes}
	if len(hashes) == 1 {
		alg, h, _ := strings.Cut(hashes[0], ":")
		p.Hashes = map[string]string{alg: h}
	}
	return p
}

// poetryLock is the part of poetry.lock read: the [[package]] tables and
// their files' hashes (poetry 1.5 and later keep them in the table).
type poetryLock struct {
	Package []struct {
		Name    string `toml:"name"`
		Version string `toml:"version"`
		Files   []struct {
			Hash string `toml:"hash"`
		} `toml:"files"`
	} `toml:"package"`
}

// ParsePoetryLock reads poetry.lock (TOML): one Package per [[package]]
// with a name and a version, its files' hashes as for ParseRequirements.
// A file that is not TOML, or whose keys have unexpected types, is an
// error.
func ParsePoetryLock(b []byte) ([]Package, error) {
	var l poetryLock
	if err := toml.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("not a poetry.lock: %w", err)
	}
	var out []Package
	for _, t := range l.Package {
		if t.Name == "" || t.Version == "" {
			continue
		}
		var hashes []string
		for _, f := range t.Files {
			if h, ok := FileHash(f.Hash); ok {
				hashes = append(hashes, h)
			}
		}
		out = append(out, pythonPackage(t.Name, t.Version, hashes))
	}
	return out, nil
}
