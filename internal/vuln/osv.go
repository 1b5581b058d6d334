package vuln

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// advisory is the part of an OSV record (https://ossf.github.io/osv-schema/)
// custody keeps: what matching and reporting need. Details, references and
// credits are dropped on import.
type advisory struct {
	SchemaVersion    string          `json:"schema_version,omitempty"`
	ID               string          `json:"id"`
	Modified         time.Time       `json:"modified"`
	Published        *time.Time      `json:"published,omitempty"`
	Withdrawn        *time.Time      `json:"withdrawn,omitempty"`
	Aliases          []string        `json:"aliases,omitempty"`
	Upstream         []string        `json:"upstream,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	Severity         []osvSeverity   `json:"severity,omitempty"`
	Affected         []osvAffected   `json:"affected,omitempty"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

type osvAffected struct {
	Package           osvPackage      `json:"package"`
	Severity          []osvSeverity   `json:"severity,omitempty"`
	Ranges            []osvRange      `json:"ranges,omitempty"`
	Versions          []string        `json:"versions,omitempty"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  json.RawMessage `json:"database_specific,omitempty"`
}

type osvRange struct {
	Type   string     `json:"type"`
	Repo   string     `json:"repo,omitempty"`
	Events []osvEvent `json:"events"`
}

// osvEvent is one range event; exactly one field is set.
type osvEvent struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Limits on what one advisory may hold, beyond MaxAdvisorySize.
const (
	maxAffected = 10000 // affected[] entries per advisory
	maxEvents   = 10000 // events per range
	maxVersions = 100000
)

// parseAdvisory decodes and validates one OSV record read from r, which
// must hold at most MaxAdvisorySize bytes. It returns an error that names
// the advisory (when the ID could be read) and the field at fault.
func parseAdvisory(r io.Reader) (*advisory, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxAdvisorySize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxAdvisorySize {
		return nil, fmt.Errorf("advisory larger than %d bytes", MaxAdvisorySize)
	}
	return parseAdvisoryBytes(data)
}

func parseAdvisoryBytes(data []byte) (*advisory, error) {
	var a advisory
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("not an OSV JSON record: %w%s", err, timeHint(err))
	}
	if dec.More() {
		return nil, errors.New("not an OSV JSON record: trailing data after the JSON object")
	}
	if err := a.validate(); err != nil {
		if a.ID != "" {
			return nil, fmt.Errorf("advisory %q: %w", a.ID, err)
		}
		return nil, err
	}
	return &a, nil
}

func (a *advisory) validate() error {
	if a.ID == "" {
		return errors.New(`OSV record has no "id"`)
	}
	if len(a.ID) > 256 || strings.ContainsAny(a.ID, "\x00\n\r\t ") {
		return errors.New(`OSV "id" is longer than 256 bytes or contains white space`)
	}
	if a.Modified.IsZero() {
		return errors.New(`OSV record has no "modified" time (RFC 3339)`)
	}
	if len(a.Affected) > maxAffected {
		return fmt.Errorf("more than %d affected entries", maxAffected)
	}
	for i, af := range a.Affected {
		if af.Package.Ecosystem == "" || af.Package.Name == "" {
			// Records for git repositories carry no package; they cannot
			// match a package and are kept only for their aliases.
			if af.Package.Ecosystem != "" || af.Package.Name != "" {
				return fmt.Errorf("affected[%d].package needs both ecosystem and name", i)
			}
		}
		if len(af.Versions) > maxVersions {
			return fmt.Errorf("affected[%d] lists more than %d versions", i, maxVersions)
		}
		for j, rg := range af.Ranges {
			switch rg.Type {
			case "SEMVER", "ECOSYSTEM", "GIT":
			default:
				return fmt.Errorf("affected[%d].ranges[%d]: unknown range type %q (want SEMVER, ECOSYSTEM or GIT)", i, j, rg.Type)
			}
			if len(rg.Events) == 0 {
				return fmt.Errorf("affected[%d].ranges[%d] has no events", i, j)
			}
			if len(rg.Events) > maxEvents {
				return fmt.Errorf("affected[%d].ranges[%d] has more than %d events", i, j, maxEvents)
			}
			for k, e := range rg.Events {
				n := 0
				for _, v := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
					if v != "" {
						n++
					}
				}
				if n != 1 {
					return fmt.Errorf("affected[%d].ranges[%d].events[%d] must set exactly one of introduced, fixed, last_affected, limit", i, j, k)
				}
			}
		}
	}
	return nil
}

// withdrawn reports whether the advisory has been withdrawn.
func (a *advisory) withdrawn() bool { return a.Withdrawn != nil && !a.Withdrawn.IsZero() }

// timeHint explains a time that failed to parse.
func timeHint(err error) string {
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return " (times must be RFC 3339, such as 2024-01-31T12:00:00Z)"
	}
	return ""
}
