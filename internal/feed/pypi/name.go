package pypi

import (
	"errors"
	"fmt"
	"strings"
)

// maxName caps project names, so the repository <feed>/<name> fits in
// the 255 bytes an OCI repository name may have.
const maxName = 200

// ValidName reports whether s is a project name PEP 508 allows: ASCII
// letters and digits, with '.', '_' and '-' inside (not at either end).
func ValidName(s string) bool {
	if s == "" || len(s) > maxName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum {
			continue
		}
		if (c == '.' || c == '_' || c == '-') && i > 0 && i < len(s)-1 {
			continue
		}
		return false
	}
	return true
}

// Normalize is PEP 503's normalised form of a valid project name:
// lowercase, each run of '.', '_' and '-' one '-'. The result is one
// component of the OCI name grammar (lowercase letters and digits
// separated by single '-'), so it names the project's repository as is.
func Normalize(s string) string {
	var b strings.Builder
	sep := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' || c == '_' || c == '-' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ParseName checks a project name and returns its normalised form.
func ParseName(s string) (string, error) {
	if !ValidName(s) {
		return "", fmt.Errorf("invalid project name %q: ASCII letters and digits, with '.', '_' or '-' between them", s)
	}
	return Normalize(s), nil
}

// errFilename is the refusal of a file name that does not belong to the
// project and version it is uploaded as.
var errFilename = errors.New("the file name must be <name>-<version>.tar.gz (or .zip) for an sdist, <name>-<version>-<tags>.whl for a wheel")

// checkFilename checks that file, of filetype, is a file of project
// (normalised) at version: a wheel named
// {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl, or an sdist
// {name}-{version}.tar.gz or .zip, where the name normalises to project.
// Other characters (path separators, "..") never pass: the name parts are
// project names and the version is compared as written.
func checkFilename(file, filetype, project, version string) error {
	switch filetype {
	case "bdist_wheel":
		base, ok := strings.CutSuffix(file, ".whl")
		if !ok {
			return errors.New("a bdist_wheel file must end in .whl")
		}
		parts := strings.Split(base, "-")
		if len(parts) != 5 && len(parts) != 6 {
			return errFilename
		}
		if !ValidName(parts[0]) || Normalize(parts[0]) != project {
			return fmt.Errorf("the wheel %q is not a file of project %s", file, project)
		}
		// Wheels write '-' in versions as '_'.
		if strings.ReplaceAll(parts[1], "_", "-") != strings.ReplaceAll(version, "_", "-") {
			return fmt.Errorf("the wheel %q is not a file of version %s", file, version)
		}
		for _, p := range parts[2:] {
			if !validTagPart(p) {
				return errFilename
			}
		}
		return nil
	case "sdist":
		base, ok := strings.CutSuffix(file, ".tar.gz")
		if !ok {
			base, ok = strings.CutSuffix(file, ".zip")
		}
		if !ok {
			return errors.New("an sdist must end in .tar.gz or .zip")
		}
		name, ok := strings.CutSuffix(base, "-"+version)
		if !ok {
			return fmt.Errorf("the sdist %q is not a file of version %s", file, version)
		}
		if !ValidName(name) || Normalize(name) != project {
			return fmt.Errorf("the sdist %q is not a file of project %s", file, project)
		}
		return nil
	}
	return fmt.Errorf("filetype %q is not accepted: use sdist or bdist_wheel", filetype)
}

// validTagPart: a wheel's build or compatibility tag (letters, digits,
// '_' and '.').
func validTagPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validVersion: a version as uploaded (PEP 440 in spirit): letters,
// digits, '.', '+', '!', '_' and '-', starting with a letter or digit,
// at most 64 bytes.
func validVersion(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || (i > 0 && (c == '.' || c == '+' || c == '!' || c == '_' || c == '-')) {
			continue
		}
		return false
	}
	return !strings.Contains(v, "..")
}
