// Package policy holds repository policies: immutable tag patterns,
// deletion bans, allowed media types, a maximum artifact size and a default
// retention lock, per repository pattern.
//
// Policies come from the configuration file and from the /api/v1/policies
// API. Every PUT stores a new version; old versions stay readable. For a
// repository, the most specific matching pattern wins (patterns mean what
// internal/repopattern says; see Specificity for the order):
// its immutable tags, deletion ban, media types and size apply. The default
// retention is inherited separately: it comes from the most specific
// matching policy that sets one, so a narrower policy can never switch
// retention off for repositories a broader one covers. A stored policy
// takes precedence over a configured one with the same pattern.
//
// With no matching policy, tags that look like versions (v1.2.3,
// 1.2.3-rc.1, 1.2.3+build or 1.2.3_build) are immutable and everything
// else is allowed.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Retention modes.
const (
	ModeGovernance = "governance"
	ModeCompliance = "compliance"
)

// Policy is the policy of the repositories matching one pattern.
type Policy struct {
	// ImmutableTags are tag patterns that may not move or be deleted once
	// set: globs (path.Match syntax, e.g. "v*") or, when they start with
	// '^', regular expressions. nil selects DefaultImmutableTags; an empty
	// list makes no tag immutable.
	ImmutableTags []string `json:"immutableTags"`
	// NoDelete refuses every manifest, tag and blob deletion.
	NoDelete bool `json:"noDelete,omitempty"`
	// AllowedMediaTypes, when not empty, lists the manifest, config and
	// layer media types accepted.
	AllowedMediaTypes []string `json:"allowedMediaTypes,omitempty"`
	// MaxArtifactSize, when positive, caps the sum of config and layer sizes.
	MaxArtifactSize int64 `json:"maxArtifactSize,omitempty"`
	// Retention, when set, locks each new manifest for Period in Mode.
	Retention *DefaultRetention `json:"retention,omitempty"`
}

// DefaultRetention is a repository's default retention lock.
type DefaultRetention struct {
	Mode   string   `json:"mode"`
	Period Duration `json:"period"`
}

// Duration is a time.Duration written as a string ("720h") in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("duration must be a string such as \"720h\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 720h; the longest is %s, about 292 years)", s, time.Duration(math.MaxInt64))
	}
	*d = Duration(v)
	return nil
}

// VersionTagPattern matches semver-like tags; '_' stands for '+', which
// OCI tags cannot contain (the docker convention).
const VersionTagPattern = `^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:[+_][0-9A-Za-z.-]+)?$`

// DefaultRuleName names the default immutable-tag rule in refusals.
const DefaultRuleName = "default version tags"

var versionTag = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(VersionTagPattern) })

// Validate checks a policy and says what to fix.
func (p Policy) Validate() error {
	for _, t := range p.ImmutableTags {
		if _, err := compileTag(t); err != nil {
			return err
		}
	}
	if p.MaxArtifactSize < 0 {
		return errors.New("maxArtifactSize must not be negative")
	}
	if r := p.Retention; r != nil {
		if r.Mode != ModeGovernance && r.Mode != ModeCompliance {
			return fmt.Errorf("retention.mode %q: use governance or compliance", r.Mode)
		}
		if r.Period <= 0 {
			return errors.New("retention.period must be positive")
		}
	}
	return nil
}

type tagRule struct {
	pattern string
	re      *regexp.Regexp // nil for a glob
}

func compileTag(t string) (tagRule, error) {
	if strings.HasPrefix(t, "^") {
		re, err := regexp.Compile(t)
		if err != nil {
			return tagRule{}, fmt.Errorf("immutable tag regex %q: %v", t, err)
		}
		return tagRule{pattern: t, re: re}, nil
	}
	if _, err := path.Match(t, ""); err != nil || t == "" {
		return tagRule{}, fmt.Errorf("immutable tag glob %q is malformed", t)
	}
	return tagRule{pattern: t}, nil
}

func (r tagRule) match(tag string) bool {
	if r.re != nil {
		return r.re.MatchString(tag)
	}
	ok, _ := path.Match(r.pattern, tag)
	return ok
}

// Specificity orders patterns: more literal characters win, then fewer
// wildcards. "team/app" beats "team/*", which beats "**".
func Specificity(pattern string) (literal, wildcards int) {
	for _, c := range pattern {
		if c == '*' {
			wildcards++
		} else {
			literal++
		}
	}
	return literal, wildcards
}

func moreSpecific(a, b string) bool {
	la, wa := Specificity(a)
	lb, wb := Specificity(b)
	if la != lb {
		return la > lb
	}
	if wa != wb {
		return wa < wb
	}
	return a < b
}

// Record is one stored version of a policy.
type Record struct {
	Pattern string
	Version int
	Created time.Time
	Body    []byte // the Policy as JSON
}

// Store keeps policy versions. It is implemented by the metadata backend
// (internal/meta/sqlite).
type Store interface {
	// PutPolicy stores body as the next version of pattern's policy and
	// returns its version (1 for the first). check runs inside the same
	// transaction with the current body (nil when none) and may refuse;
	// its error is returned unchanged.
	PutPolicy(ctx context.Context, pattern string, body []byte, now time.Time, check func(current []byte) error) (int, error)
	// GetPolicy returns version of pattern's policy, the latest when
	// version is 0, or an error wrapping ErrNotFound.
	GetPolicy(ctx context.Context, pattern string, version int) (Record, error)
	// CurrentPolicies returns the latest version of every pattern.
	CurrentPolicies(ctx context.Context) ([]Record, error)
}

// ErrNotFound: no such policy or version.
var ErrNotFound = errors.New("policy not found")

// ErrInvalid: the policy or pattern is malformed.
var ErrInvalid = errors.New("invalid policy")

// ErrConflict: the change would switch retention off.
var ErrConflict = errors.New("conflict")
