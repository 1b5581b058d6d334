package sbom

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
)

// PackageRef is a package an SBOM lists, as vulnerability matching needs
// it.
type PackageRef struct {
	Name    string
	Version string
	PURL    string
	// Licenses are the licences the SBOM declares for the package
	// (SPDX licenseConcluded/licenseDeclared, CycloneDX licenses), as
	// written; none when it declares none.
	Licenses []string `json:",omitempty"`
}

// spdxLicences are the licences an SPDX package declares, leaving out
// the NOASSERTION and NONE placeholders.
func spdxLicences(concluded, declared string) []string {
	var out []string
	for _, l := range []string{declared, concluded} {
		if l != "" && l != "NOASSERTION" && l != "NONE" && (len(out) == 0 || out[0] != l) {
			out = append(out, l)
		}
	}
	return out
}

// Packages lists the packages of an SPDX 2.3 or CycloneDX JSON document
// (for instance the predicate of an SBOM attestation), with their purls;
// packages without a purl are left out. Documents over maxBytes are
// refused.
func Packages(doc []byte, maxBytes int) ([]PackageRef, error) {
	if len(doc) > maxBytes {
		return nil, fmt.Errorf("%w: SBOM of %d bytes (limit %d)", ErrTooLarge, len(doc), maxBytes)
	}
	var probe struct {
		SPDXVersion string `json:"spdxVersion"`
		BOMFormat   string `json:"bomFormat"`
	}
	if err := json.Unmarshal(doc, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case probe.SPDXVersion != "":
		var d struct {
			Packages []struct {
				Name             string `json:"name"`
				VersionInfo      string `json:"versionInfo"`
				LicenseConcluded string `json:"licenseConcluded"`
				LicenseDeclared  string `json:"licenseDeclared"`
				ExternalRefs     []struct {
					ReferenceType    string `json:"referenceType"`
					ReferenceLocator string `json:"referenceLocator"`
				} `json:"externalRefs"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(doc, &d); err != nil {
			return nil, fmt.Errorf("%w: SPDX: %v", ErrInvalid, err)
		}
		var out []PackageRef
		for _, p := range d.Packages {
			for _, r := range p.ExternalRefs {
				if r.ReferenceType == "purl" {
					out = append(out, PackageRef{Name: p.Name, Version: p.VersionInfo, PURL: r.ReferenceLocator,
						Licenses: spdxLicences(p.LicenseConcluded, p.LicenseDeclared)})
					break
				}
			}
		}
		return out, nil
	case probe.BOMFormat == "CycloneDX":
		type component struct {
			Name       string            `json:"name"`
			Version    string            `json:"version"`
			PURL       string            `json:"purl"`
			Components []json.RawMessage `json:"components"`
			Licenses   []struct {
				License struct {
					ID   string `json:"id"`
					Name string `json:"name"`
				} `json:"license"`
				Expression string `json:"expression"`
			} `json:"licenses"`
		}
		var d struct {
			Components []json.RawMessage `json:"components"`
		}
		if err := json.Unmarshal(doc, &d); err != nil {
			return nil, fmt.Errorf("%w: CycloneDX: %v", ErrInvalid, err)
		}
		var out []PackageRef
		queue := d.Components
		for len(queue) > 0 && len(out) < 1_000_000 {
			var c component
			if err := json.NewDecoder(bytes.NewReader(queue[0])).Decode(&c); err != nil {
				return nil, fmt.Errorf("%w: CycloneDX component: %v", ErrInvalid, err)
			}
			queue = append(queue[1:], c.Components...)
			if c.PURL != "" {
				ref := PackageRef{Name: c.Name, Version: c.Version, PURL: c.PURL}
				for _, l := range c.Licenses {
					if v := cmp.Or(l.Expression, l.License.ID, l.License.Name); v != "" {
						ref.Licenses = append(ref.Licenses, v)
					}
				}
				out = append(out, ref)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: neither SPDX nor CycloneDX JSON", ErrUnknownFormat)
}
