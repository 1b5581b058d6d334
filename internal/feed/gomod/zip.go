package gomod

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/custody-dev/custody/internal/feed"
)

// MaxZip caps a published module zip: the go command's own limit
// (golang.org/x/mod/zip.MaxZipFile, 500 MiB).
const MaxZip = modzip.MaxZipFile

// Module is a checked module zip, ready to store.
type Module struct {
	Version module.Version
	// Mod is the version's go.mod: the zip's, or "module <path>" for a
	// module without one (what the go command uses for such versions).
	Mod []byte
	// ZipHash and ModHash are the go.sum hashes ("h1:...") of the zip's
	// files and of Mod.
	ZipHash, ModHash string
}

// CheckModule checks zipFile as the zip of module path at version, as
// the go command checks what it downloads: the version is canonical and
// fits the path's major version suffix, every file is under
// <path>@<version>/ with a clean, valid name (no "..", no absolute
// paths, no case collisions, go.mod only at the root), the sizes are
// within the go command's limits, and go.mod (when there is one) parses
// and declares path. It computes the go.sum hashes. The error says what
// is wrong, for the publisher.
func CheckModule(path, version, zipFile string) (*Module, error) {
	mv := module.Version{Path: path, Version: version}
	// CheckZip lists the zip's directory with no bound of its own.
	if err := checkDirectory(zipFile); err != nil {
		return nil, err
	}
	if _, err := modzip.CheckZip(mv, zipFile); err != nil {
		return nil, fmt.Errorf("the module zip is not valid: %w", err)
	}
	zr, err := zip.OpenReader(zipFile)
	if err != nil {
		return nil, fmt.Errorf("the module zip is not valid: %w", err)
	}
	defer zr.Close()
	m := &Module{Version: mv}
	name := path + "@" + version + "/go.mod"
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("go.mod: %w", err)
		}
		m.Mod, err = io.ReadAll(io.LimitReader(rc, modzip.MaxGoMod+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("go.mod: %w", err)
		}
		if len(m.Mod) > modzip.MaxGoMod {
			return nil, errors.New("go.mod is too large")
		}
		break
	}
	if m.Mod == nil {
		m.Mod = []byte("module " + modfile.AutoQuote(path) + "\n")
	} else {
		mf, err := modfile.ParseLax("go.mod", m.Mod, nil)
		if err != nil {
			return nil, fmt.Errorf("go.mod does not parse: %w", err)
		}
		if mf.Module == nil || mf.Module.Mod.Path != path {
			got := ""
			if mf.Module != nil {
				got = mf.Module.Mod.Path
			}
			return nil, fmt.Errorf("go.mod declares module %q, but the version is published as %q", got, path)
		}
	}
	m.ZipHash, err = dirhash.HashZip(zipFile, dirhash.Hash1)
	if err != nil {
		return nil, fmt.Errorf("the module zip is not valid: %w", err)
	}
	m.ModHash, err = dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(m.Mod)), nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// PublishPath is the URL path a version of module path is published at in
// feed: /go/<feed>/<module>/@v/<version>.zip, case-encoded.
func PublishPath(feedName, path, version string) (string, error) {
	if err := module.Check(path, version); err != nil {
		return "", err
	}
	if module.CanonicalVersion(version) != version {
		return "", fmt.Errorf("version %q is not canonical (%q)", version, module.CanonicalVersion(version))
	}
	ep, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	return Prefix + feedName + "/" + ep + "/@v/" + ev + ".zip", nil
}

// Zip writes the module zip of the module in dir as path at version, as
// the go command would build it (golang.org/x/mod/zip.CreateFromDir: the
// files of the module, without nested modules, vendor directories and
// version-control metadata).
func Zip(w io.Writer, path, version, dir string) error {
	return modzip.CreateFromDir(w, module.Version{Path: path, Version: version}, dir)
}

// checkDirectory refuses a zip whose directory is larger than
// feed.MaxZipDirectory before anything lists it in full.
func checkDirectory(zipFile string) error {
	f, err := os.Open(zipFile)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := feed.OpenZip(f, st.Size()); errors.Is(err, feed.ErrZipDirectory) {
		return fmt.Errorf("the module zip is not valid: %w", err)
	}
	return nil
}
