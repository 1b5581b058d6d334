// Package origin says where a build's dependencies came from: for each
// resolved dependency of its SLSA provenance, whether a custody feed
// served it (the same ecosystem, name and version stored in the feed, AND
// one of the provenance's digests equal to the stored file's: the layer's
// sha256, or the ecosystem hashes kept as layer annotations, npm's
// sha512/sha1 and Go's h1), and which feed; or why not.
package origin

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/ecosystem"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/feed/gomod"
	"github.com/custody-dev/custody/internal/feed/npm"
	"github.com/custody-dev/custody/internal/feed/pypi"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/provenance"
)

// Dependency is one resolved dependency and where it came from.
type Dependency struct {
	// URI is the dependency's URI in the provenance (a purl for packages).
	URI string `json:"uri"`
	// Type, Name and Version are read from a purl URI.
	Type    string `json:"type,omitempty"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// ThroughCustody is true when a feed holds this version with a
	// digest the provenance names.
	ThroughCustody bool `json:"throughCustody"`
	// Feed, Repository and Manifest name the stored version that
	// matched; Matched is the digest algorithm that matched ("sha512",
	// "sha256", "h1").
	Feed       string `json:"feed,omitempty"`
	Repository string `json:"repository,omitempty"`
	Manifest   string `json:"manifest,omitempty"`
	Matched    string `json:"matched,omitempty"`
	// Reason says why a dependency did not come through custody.
	Reason string `json:"reason,omitempty"`
}

// Report is the answer for one build.
type Report struct {
	// Subject names the build, when the report was made for a stored one.
	Subject string `json:"subject,omitempty"`
	// Through and Outside count the dependencies that did and did not
	// come through custody.
	Through      int          `json:"through"`
	Outside      int          `json:"outside"`
	Dependencies []Dependency `json:"dependencies"`
}

// feedEcosystems maps purl types to feed ecosystems.
var feedEcosystems = map[string]string{
	ecosystem.TypeNPM: config.FeedEcosystemNPM, ecosystem.TypePyPI: config.FeedEcosystemPyPI,
	ecosystem.TypeGolang: config.FeedEcosystemGo, ecosystem.TypeMaven: config.FeedEcosystemMaven,
}

// Of reports on deps with the versions stored in feeds (hosted and proxy
// feeds: a virtual feed stores nothing itself, its members do).
//
// canRead says whether the caller may read a repository; versions in
// repositories it may not read count as not found (nil: all may be read).
func Of(ctx context.Context, store *feed.Store, feeds []config.Feed, deps []provenance.ResourceDescriptor, canRead func(context.Context, string) bool) (Report, error) {
	rep := Report{Dependencies: []Dependency{}}
	for _, d := range deps {
		dep, err := one(ctx, store, feeds, d, canRead)
		if err != nil {
			return Report{}, err
		}
		if dep.ThroughCustody {
			rep.Through++
		} else {
			rep.Outside++
		}
		rep.Dependencies = append(rep.Dependencies, dep)
	}
	return rep, nil
}

func one(ctx context.Context, store *feed.Store, feeds []config.Feed, d provenance.ResourceDescriptor, canRead func(context.Context, string) bool) (Dependency, error) {
	dep := Dependency{URI: d.URI}
	p, err := packageurl.FromString(d.URI)
	if err != nil || !strings.HasPrefix(d.URI, "pkg:") {
		dep.Reason = "not a package (no purl): custody feeds serve packages"
		return dep, nil
	}
	dep.Type, dep.Version = p.Type, p.Version
	dep.Name = p.Name
	if p.Namespace != "" {
		sep := "/"
		if p.Type == ecosystem.TypeMaven {
			sep = ":"
		}
		dep.Name = p.Namespace + sep + p.Name
	}
	eco := feedEcosystems[p.Type]
	if eco == "" {
		dep.Reason = "no custody feed serves " + p.Type + " packages"
		return dep, nil
	}
	want := digests(d)
	if len(want) == 0 {
		dep.Reason = "the provenance records no digest of it, so where it came from cannot be checked"
		return dep, nil
	}
	var mismatched []string
	searched := 0
	for _, f := range feeds {
		if f.Ecosystem != eco || f.Kind == config.FeedKindVirtual {
			continue
		}
		searched++
		files, repo, err := stored(ctx, store, f.Name, eco, dep.Name, dep.Version)
		if err != nil {
			return dep, fmt.Errorf("feed %s, %s: %w", f.Name, d.URI, err)
		}
		if files == nil || (canRead != nil && !canRead(ctx, repo)) {
			continue
		}
		for _, sf := range files {
			if alg, ok := match(want, sf); ok {
				dep.ThroughCustody, dep.Feed, dep.Repository, dep.Manifest, dep.Matched = true, f.Name, repo, sf.manifest, alg
				return dep, nil
			}
		}
		mismatched = append(mismatched, f.Name)
	}
	switch {
	case searched == 0:
		dep.Reason = "no " + eco + " feed is configured"
	case len(mismatched) > 0:
		dep.Reason = "feed " + strings.Join(mismatched, ", ") + " holds " + dep.Name + "@" + dep.Version + " with other content: the build's copy did not come from custody"
	default:
		dep.Reason = "no feed holds " + dep.Name + "@" + dep.Version
	}
	return dep, nil
}

// digests are the provenance's digests of d, lowercase hex by algorithm
// ("sha256", "sha512", "sha1", "h1" as its hex), plus PyPI's per-file
// hashes ("hashes": ["sha256:..."] annotations).
func digests(d provenance.ResourceDescriptor) map[string][]string {
	out := map[string][]string{}
	for alg, v := range d.Digest {
		alg = strings.ToLower(alg)
		if alg == "dirhash" {
			alg = "h1"
		}
		out[alg] = append(out[alg], strings.ToLower(v))
	}
	var ann struct {
		Hashes []string `json:"hashes"`
	}
	if len(d.Annotations) > 0 && json.Unmarshal(d.Annotations, &ann) == nil {
		for _, h := range ann.Hashes {
			if alg, v, ok := strings.Cut(h, ":"); ok {
				out[strings.ToLower(alg)] = append(out[strings.ToLower(alg)], strings.ToLower(v))
			}
		}
	}
	return out
}

// storedFile is the hashes of one stored file, lowercase hex by
// algorithm.
type storedFile struct {
	manifest string
	hashes   map[string]string
}

func match(want map[string][]string, f storedFile) (string, bool) {
	for _, alg := range []string{"sha512", "sha256", "h1", "sha384", "sha1"} {
		have := f.hashes[alg]
		if have == "" {
			continue
		}
		for _, w := range want[alg] {
			if w == have {
				return alg, true
			}
		}
	}
	return "", false
}

// stored returns the files of version of package name in the feed (nil
// when the feed does not hold it), with their hashes.
func stored(ctx context.Context, store *feed.Store, feedName, eco, name, version string) ([]storedFile, string, error) {
	var repo string
	var err error
	switch eco {
	case config.FeedEcosystemNPM:
		var n npm.Name
		if n, err = npm.ParseName(name); err == nil {
			repo, err = n.Repository(feedName)
		}
	case config.FeedEcosystemPyPI:
		repo, err = feed.Repository(feedName, pypi.Normalize(name))
	case config.FeedEcosystemGo:
		repo, err = gomod.ModuleRepository(feedName, name)
	default:
		return nil, "", nil // no protocol stores this ecosystem yet
	}
	if err != nil {
		return nil, "", nil // a name no feed can hold
	}
	var versions []feed.Version
	if eco == config.FeedEcosystemPyPI {
		// A release is the files whose manifests name its version.
		tagged, err := store.Tagged(ctx, repo)
		if errors.Is(err, meta.ErrNotFound) {
			return nil, repo, nil
		} else if err != nil {
			return nil, repo, err
		}
		for _, t := range tagged {
			if t.Manifest.Annotations[feed.AnnotationVersion] != version {
				continue
			}
			v, err := store.VersionAt(ctx, repo, t.Manifest.Digest)
			if err != nil {
				return nil, repo, err
			}
			versions = append(versions, v)
		}
	} else {
		tag, err := feed.VersionTag(version)
		if err != nil {
			return nil, repo, nil
		}
		v, err := store.Version(ctx, repo, tag)
		if errors.Is(err, meta.ErrNotFound) {
			return nil, repo, nil
		} else if err != nil {
			return nil, repo, err
		}
		versions = append(versions, v)
	}
	var out []storedFile
	for _, v := range versions {
		for _, f := range v.Files {
			h := map[string]string{}
			if f.Digest.Algorithm() == "sha256" {
				h["sha256"] = f.Digest.Encoded()
			}
			for alg, ann := range map[string]string{"sha512": feed.AnnotationSHA512, "sha1": feed.AnnotationSHA1} {
				if x := f.Annotations[ann]; x != "" {
					h[alg] = strings.ToLower(x)
				}
			}
			if x, ok := strings.CutPrefix(f.Annotations[gomod.AnnotationH1], "h1:"); ok && strings.HasSuffix(f.Name, ".zip") {
				if raw, err := base64.StdEncoding.DecodeString(x); err == nil {
					h["h1"] = hex.EncodeToString(raw)
				}
			}
			out = append(out, storedFile{manifest: v.Manifest.Digest.String(), hashes: h})
		}
	}
	if len(versions) == 0 {
		return nil, repo, nil
	}
	return out, repo, nil
}
