package ecosystem

import (
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

type cargoLock struct {
	Package []struct {
		Name     string `toml:"name"`
		Version  string `toml:"version"`
		Source   string `toml:"source"`
		Checksum string `toml:"checksum"`
	} `toml:"package"`
}

// ParseCargoLock reads Cargo.lock (TOML): one Package per [[package]]
// with a name and a version, including the workspace's own crates (empty
// Source); a 64-hex "checksum" becomes Hashes["sha256"]. A file that is
// not TOML, or whose keys have unexpected types, is an error.
func ParseCargoLock(b []byte) ([]Package, error) {
	var l cargoLock
	if err := toml.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("not a Cargo.lock: %w", err)
	}
	var out []Package
	for _, t := range l.Package {
		if t.Name == "" || t.Version == "" {
			continue
		}
		p := Package{Type: TypeCargo, Name: t.Name, Version: t.Version, Source: t.Source}
		if c := strings.ToLower(t.Checksum); len(c) == 64 && isHex(c) {
			p.Hashes = map[string]string{"sha256": c}
		}
		out = append(out, p)
	}
	return out, nil
}
