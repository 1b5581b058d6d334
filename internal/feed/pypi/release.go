package pypi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/vuln"
)

// fileRole is what a file is within its release, as installers choose
// between a release's files: "sdist" (PyPI keeps one per release), or a
// wheel's build and compatibility tags, case-folded
// ("py3-none-any"). Two files of one release with one role are the
// same choice to pip, which then takes whichever the index lists first.
func fileRole(filetype, filename string) string {
	if filetype != "bdist_wheel" {
		return "sdist"
	}
	parts := strings.Split(strings.TrimSuffix(filename, ".whl"), "-")
	if len(parts) < 5 {
		return "wheel " + strings.ToLower(filename)
	}
	return "wheel " + strings.ToLower(strings.Join(parts[2:], "-"))
}

// sameVersion reports whether two versions as uploaded are one version to
// installers: PEP 440 equal ("1.0" and "1.0.0", "01.0", "1.0.0.0",
// "1.0RC1" and "1.0rc1"), or, when either does not parse, equal but for
// case and the separators '_' and '-'.
func sameVersion(a, b string) bool {
	if c, err := vuln.Compare("PyPI", a, b); err == nil {
		return c == 0
	}
	fold := strings.NewReplacer("_", "-")
	return strings.EqualFold(fold.Replace(a), fold.Replace(b))
}

// shadowing returns the name of a stored file of repo that u's file, under
// another spelling of the project name or version, would stand beside as
// the same file of the same release ("" when none). File names are
// sealed, but pip reads "Custody_Demo-1.0.0-..." and
// "custody_demo-1.0.0.0-..." as the files of custody-demo 1.0.0 just as
// "custody_demo-1.0.0-..." is; accepting them would let new bytes be
// installed as a published version.
func (h *Handler) shadowing(ctx context.Context, repo string, u *Upload) (string, error) {
	tagged, err := h.Store.Tagged(ctx, repo)
	if errors.Is(err, meta.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("list files: %w", err)
	}
	role := fileRole(u.Filetype, u.Filename)
	public, _, local := strings.Cut(u.Version, "+")
	for _, t := range tagged {
		name, ok := feed.TagVersion(t.Tag)
		if !ok || name == u.Filename || t.Manifest.ArtifactType != ArtifactType {
			continue
		}
		ann := t.Manifest.Annotations
		v := ann[feed.AnnotationVersion]
		if fileRole(ann[annotationFiletype], name) == role && sameVersion(v, u.Version) {
			return name, nil
		}
		// PEP 440: "==1.0.0" ignores local labels and pip takes the
		// highest match, so 1.0.0+x would be installed for a
		// published 1.0.0.
		if local && !strings.Contains(v, "+") && sameVersion(v, public) {
			return "", &localShadowError{version: u.Version, public: v, file: name}
		}
	}
	return "", nil
}

// localShadowError refuses a local version (1.0.0+x) of a public version
// that has files: installers would take it for that version.
type localShadowError struct{ version, public, file string }

func (e *localShadowError) Error() string {
	return "version " + e.version + " would be installed for ==" + e.public + " (pip ignores the local label and takes the highest match), whose files (" +
		e.file + ") are published; publish a new version"
}
