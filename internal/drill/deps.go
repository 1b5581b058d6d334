package drill

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/package-url/packageurl-go"
)

// sbomDependencies returns what an SBOM (SPDX or CycloneDX JSON) pins by
// SHA-256: package URLs of OCI images (pkg:oci, pkg:docker) with a digest
// version, and downloadable files (SPDX downloadLocation, CycloneDX
// distribution references) with a SHA-256 checksum.
func sbomDependencies(of string, predicate []byte) []Dependency {
	var doc any
	if json.Unmarshal(predicate, &doc) != nil {
		return nil
	}
	var out []Dependency
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			sum := checksum(x)
			for _, k := range []string{"purl", "referenceLocator"} {
				if s, ok := x[k].(string); ok {
					if d := purlDigest(s); d != "" {
						out = append(out, Dependency{Of: of, From: "sbom", URI: s, Digest: d})
					}
				}
			}
			if sum != "" {
				if s, ok := x["downloadLocation"].(string); ok && strings.HasPrefix(s, "http") {
					out = append(out, Dependency{Of: of, From: "sbom", URI: s, Digest: sum})
				}
				if refs, ok := x["externalReferences"].([]any); ok {
					for _, r := range refs {
						if m, ok := r.(map[string]any); ok && m["type"] == "distribution" {
							if s, ok := m["url"].(string); ok {
								out = append(out, Dependency{Of: of, From: "sbom", URI: s, Digest: sum})
							}
						}
					}
				}
			}
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return out
}

// checksum returns the SHA-256 an SPDX package (checksums) or CycloneDX
// component (hashes) declares, as sha256:<hex>, or "".
func checksum(m map[string]any) string {
	for _, k := range []string{"checksums", "hashes"} {
		list, _ := m[k].([]any)
		for _, e := range list {
			c, _ := e.(map[string]any)
			alg, _ := c["algorithm"].(string)
			if alg == "" {
				alg, _ = c["alg"].(string)
			}
			val, _ := c["checksumValue"].(string)
			if val == "" {
				val, _ = c["content"].(string)
			}
			if (alg == "SHA256" || alg == "SHA-256") && len(val) == 64 {
				return "sha256:" + strings.ToLower(val)
			}
		}
	}
	return ""
}

// purlDigest returns the digest version of an OCI or Docker package URL.
func purlDigest(s string) string {
	p, err := packageurl.FromString(s)
	if err != nil || (p.Type != "oci" && p.Type != "docker") {
		return ""
	}
	if strings.HasPrefix(p.Version, "sha256:") && len(p.Version) == len("sha256:")+64 {
		return strings.ToLower(p.Version)
	}
	return ""
}

// location is where the source stores a dependency: an OCI manifest, or a
// blob (a generic file) of repository repo.
type location struct {
	repo string
	blob bool
}

// locate tells whether uri names the source host, and where.
func locate(uri, host string) (location, bool) {
	if strings.HasPrefix(uri, "pkg:") {
		p, err := packageurl.FromString(uri)
		if err != nil {
			return location{}, false
		}
		ru := p.Qualifiers.Map()["repository_url"]
		switch p.Type {
		case "oci":
			// repository_url is the full repository: HOST/PATH/NAME.
			h, path, ok := strings.Cut(ru, "/")
			if path = strings.Trim(path, "/"); ok && h == host && path != "" {
				return location{repo: path}, true
			}
		case "docker":
			if repo := strings.Trim(p.Namespace+"/"+p.Name, "/"); ru == host && repo != "" {
				return location{repo: repo}, true
			}
		}
		return location{}, false
	}
	if u, err := url.Parse(uri); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if u.Host != host || !strings.HasPrefix(u.Path, "/generic/") {
			return location{}, false
		}
		// /generic/<repo>/<name>/<version>/<file>: OCI repository <repo>/<name>.
		parts := strings.Split(strings.TrimPrefix(u.Path, "/generic/"), "/")
		if len(parts) < 4 || slices.Contains(parts, "") {
			return location{}, false
		}
		return location{repo: strings.Join(parts[:len(parts)-2], "/"), blob: true}, true
	}
	rest := uri
	for _, scheme := range []string{"oci://", "docker://"} {
		rest = strings.TrimPrefix(rest, scheme)
	}
	ref, err := name.ParseReference(rest, name.Insecure)
	if err != nil || ref.Context().RegistryStr() != host {
		return location{}, false
	}
	return location{repo: ref.Context().RepositoryStr()}, true
}

// checkDependency fills Stored and, for what the source stores,
// Retrievable: the manifest and everything it references re-hash, or the
// blob (a generic file) reads back whole with its digest.
func checkDependency(ctx context.Context, o Options, d *Dependency) {
	loc, ok := locate(d.URI, o.SourceHost)
	for _, alias := range o.SourceAliases {
		if !ok && alias != "" {
			loc, ok = locate(d.URI, alias)
		}
	}
	if !ok {
		return
	}
	d.Stored = true
	rp, err := name.NewRepository(o.SourceHost+"/"+loc.repo, name.Insecure)
	if err != nil {
		d.Problem = err.Error()
		return
	}
	r := registryReader{rp: rp, opts: o.Source}
	if loc.blob {
		rc, err := r.blob(ctx, d.Digest)
		if err == nil {
			err = drain(rc)
		}
		if err != nil {
			d.Problem = "not retrievable: " + err.Error()
			return
		}
		d.Retrievable = true
		return
	}
	if _, _, err := verifyTree(ctx, r, d.Digest); err != nil {
		d.Problem = "not retrievable: " + err.Error()
		return
	}
	d.Retrievable = true
}

func drain(rc io.ReadCloser) error {
	defer rc.Close()
	_, err := io.Copy(io.Discard, rc)
	return err
}
