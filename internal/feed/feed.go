// Package feed is what every package feed (npm, and the ecosystems after
// it) builds on: the feeds' configuration, the one storage model of a
// package version, and the reversible mapping of package names and
// versions onto OCI repository names and tags.
//
// A package version is an ordinary OCI artifact, stored as generic files
// are (Store): repository <feed>/<package path>, tag VersionTag(version),
// artifactType ArtifactType(ecosystem), the ecosystem's metadata of the
// version as the config, one layer per file titled with its name and
// annotated with the ecosystem's own hashes of it. Grants, policies,
// retention, legal holds, signing, garbage collection, replication and the
// audit log therefore apply to packages unchanged; there is no second
// package store. Metadata documents (an npm packument, say) are generated
// from a repository's tags and manifests, the one source of truth.
//
// A version is sealed once published: Store.Seal never moves a tag. Labels
// that do move (npm's dist-tags) are kept as an append-only log of tags
// (see Labels), so moving one is creating a tag, which a writer may do,
// and its history stays in the registry and the audit log.
//
// A virtual feed stores nothing: Router hands each request addressed to
// it to its members' URLs, in order, served by the protocol's own handler,
// so any member (hosted, proxy) is served as at its own URL, under its own
// grants; the first member holding a package answers for it (shadowing),
// writes go to the first hosted member. A request served through a virtual
// feed carries its name in the context (WithVirtual): Protocol.Admit then
// asks the firewall about both feeds, and URLs in documents name the
// virtual feed (Addressed).
//
// docs/feeds.md describes feeds for users.
package feed

import (
	"strings"

	"github.com/custody-dev/custody/internal/config"
)

// Ecosystems and kinds of feeds, as the configuration names them.
const (
	EcosystemNPM  = config.FeedEcosystemNPM
	EcosystemPyPI = config.FeedEcosystemPyPI
	EcosystemGo   = config.FeedEcosystemGo
	KindHosted    = config.FeedKindHosted
	KindProxy     = config.FeedKindProxy
)

// ArtifactType is the artifactType of the versions of an ecosystem's
// feeds: application/vnd.custody.feed.<ecosystem>.v1.
func ArtifactType(ecosystem string) string {
	return "application/vnd.custody.feed." + ecosystem + ".v1"
}

// Feeds returns the configured feeds of one ecosystem, by name.
func Feeds(all []config.Feed, ecosystem string) map[string]config.Feed {
	out := map[string]config.Feed{}
	for _, f := range all {
		if f.Ecosystem == ecosystem {
			out[f.Name] = f
		}
	}
	return out
}

// ValidFilename reports whether name may be stored as a file name: 1 to
// 255 bytes, no '/', '\\', NUL or other control character, not "." or "..",
// and no leading '.' (no hidden files, no traversal).
func ValidFilename(name string) bool {
	if name == "" || len(name) > 255 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return false
		}
	}
	return !strings.Contains(name, "..")
}
