package ecosystem

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// maxNPMDepth bounds the nesting of a lockfileVersion 1 file.
const maxNPMDepth = 64

type npmEntry struct {
	Name      string          `json:"name"`
	Version   string          `json:"version"`
	Integrity string          `json:"integrity"`
	Resolved  string          `json:"resolved"`
	License   json.RawMessage `json:"license"`
	Link      bool            `json:"link"`
}

type npmV1Entry struct {
	Version      string                `json:"version"`
	Integrity    string                `json:"integrity"`
	Resolved     string                `json:"resolved"`
	Dependencies map[string]npmV1Entry `json:"dependencies"`
}

// ParsePackageLock reads package-lock.json. With lockfileVersion 2 or 3
// the "packages" map is used: entries under node_modules/ (the root
// project, key "", and workspace folders are not dependencies), links
// skipped, the entry's "name" (an alias's real package) preferred over the
// key. Version 1 files walk the nested "dependencies" tree, skipping
// "file:" and "link:" versions; nesting deeper than 64 is an error. Every
// package has a name and a version; Hashes are the integrity's (ParseSRI).
// The output is in no particular order.
func ParsePackageLock(b []byte) ([]Package, error) {
	var lock struct {
		LockfileVersion int                   `json:"lockfileVersion"`
		Packages        map[string]npmEntry   `json:"packages"`
		Dependencies    map[string]npmV1Entry `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, fmt.Errorf("not a package-lock.json: %w", err)
	}
	var out []Package
	add := func(name string, e npmEntry) {
		if !NPMNameOK(name) || e.Version == "" {
			return
		}
		p := Package{Type: TypeNPM, Name: name, Version: e.Version, Hashes: ParseSRI(e.Integrity), Resolved: e.Resolved}
		if len(e.License) > 0 {
			var s string
			if json.Unmarshal(e.License, &s) == nil {
				p.License = s
			}
		}
		out = append(out, p)
	}
	if len(lock.Packages) > 0 {
		for key, e := range lock.Packages {
			if key == "" || e.Link {
				continue
			}
			i := strings.LastIndex(key, "node_modules/")
			if i < 0 {
				continue // a workspace folder, not an installed package
			}
			name := e.Name
			if name == "" {
				name = key[i+len("node_modules/"):]
			}
			add(name, e)
		}
		return out, nil
	}
	var walk func(map[string]npmV1Entry, int) error
	walk = func(m map[string]npmV1Entry, depth int) error {
		if depth > maxNPMDepth {
			return errors.New("dependencies nested more than 64 deep")
		}
		for name, d := range m {
			if !strings.HasPrefix(d.Version, "file:") && !strings.HasPrefix(d.Version, "link:") {
				add(name, npmEntry{Version: d.Version, Integrity: d.Integrity, Resolved: d.Resolved})
			}
			if err := walk(d.Dependencies, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(lock.Dependencies, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// NPMNameOK reports whether name has the shape of an npm package name,
// NAME or @SCOPE/NAME with neither part empty: a lockfile key such as
// "node_modules/@scope/" names no package (and no package URL).
func NPMNameOK(name string) bool {
	rest := name
	if strings.HasPrefix(name, "@") {
		scope, n, ok := strings.Cut(name[1:], "/")
		if !ok || scope == "" {
			return false
		}
		rest = n
	}
	return rest != "" && !strings.Contains(rest, "/")
}
