package sbom

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	packageurl "github.com/package-url/packageurl-go"
	spdxcommon "github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// ErrTooLarge is returned by [Validate] for a document over its size limit.
var ErrTooLarge = errors.New("sbom: document too large")

// ErrInvalid wraps every reason [Validate] refuses a document.
var ErrInvalid = errors.New("sbom: invalid document")

// Document is an SBOM that passed [Validate].
type Document struct {
	// Format is FormatSPDXJSON or FormatCycloneDXJSON.
	Format Format
	// SpecVersion is "SPDX-2.3", or the CycloneDX version ("1.4" ... "1.7").
	SpecVersion string
	// Name is the SPDX document name or the CycloneDX metadata.component
	// name ("" when absent).
	Name string
	// Packages counts SPDX packages or CycloneDX components (nested ones
	// included).
	Packages int
	// Subjects are the digests ("sha256:<hex>", lower case, sorted) of what
	// the document says it describes: for SPDX the checksums of the packages
	// DOCUMENT DESCRIBES (and their versionInfo or pkg:oci purl version when
	// digest-shaped); for CycloneDX the hashes of metadata.component (and
	// likewise its version or pkg:oci purl).
	Subjects []string
	// Raw is the document as read (at most the maxBytes passed to Validate),
	// for storing it once accepted.
	Raw []byte
}

// PredicateType returns the in-toto predicate type for the document.
func (d *Document) PredicateType() string { return d.Format.PredicateType() }

// DescribesDigest reports whether the document says it describes the
// artifact with digest dgst ("sha256:<hex>"; compared case-insensitively).
func (d *Document) DescribesDigest(dgst string) bool {
	alg, hx, ok := digestParts(strings.TrimSpace(dgst))
	if !ok {
		return false
	}
	want := alg + ":" + hx
	for _, s := range d.Subjects {
		if s == want {
			return true
		}
	}
	return false
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate reads an SBOM a client uploaded, at most maxBytes of it (a
// larger one is refused with ErrTooLarge before it is parsed), detects
// whether it is SPDX 2.3 JSON or CycloneDX JSON, parses it with the
// format's library, and checks the fields consumers rely on:
//
//   - SPDX: spdxVersion "SPDX-2.3", dataLicense "CC0-1.0", SPDXID
//     "SPDXRef-DOCUMENT", a name, an absolute documentNamespace URI,
//     creationInfo with an RFC 3339 "created" and at least one creator;
//     every package with a name and a unique SPDXID; checksums in hex of
//     the right length.
//   - CycloneDX: bomFormat "CycloneDX", specVersion 1.4 or later; every
//     component (nested ones too) with a known type and a name, unique
//     bom-refs, a parseable purl if any, hashes in hex of the right length.
//
// Every refusal wraps ErrInvalid (or ErrTooLarge) and says which field is
// wrong.
func Validate(r io.Reader, maxBytes int64) (*Document, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("sbom: Validate: maxBytes must be positive, got %d", maxBytes)
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("sbom: read document: %w", err)
	}
	if int64(len(raw)) > maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes; split the SBOM or raise the server's SBOM size limit", ErrTooLarge, maxBytes)
	}
	var probe struct {
		SPDXVersion *string         `json:"spdxVersion"`
		BOMFormat   *string         `json:"bomFormat"`
		Context     json.RawMessage `json:"@context"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, invalidf("not a JSON object: %v (only SPDX 2.3 JSON and CycloneDX JSON are accepted)", err)
	}
	switch {
	case probe.SPDXVersion != nil:
		if *probe.SPDXVersion != spdx.Version {
			return nil, invalidf("spdxVersion is %q; only %q is accepted", *probe.SPDXVersion, spdx.Version)
		}
		return validateSPDX(raw)
	case probe.BOMFormat != nil:
		return validateCycloneDX(raw)
	case len(probe.Context) > 0:
		return nil, invalidf("SPDX 3 JSON-LD is not accepted; upload SPDX 2.3 JSON or CycloneDX JSON")
	}
	return nil, invalidf("neither SPDX (no spdxVersion) nor CycloneDX (no bomFormat)")
}

func validateSPDX(raw []byte) (doc *Document, err error) {
	var d spdx.Document
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, invalidf("SPDX: %v", err)
	}
	if d.DataLicense != spdx.DataLicense {
		return nil, invalidf("SPDX: dataLicense is %q, must be %q", d.DataLicense, spdx.DataLicense)
	}
	if d.SPDXIdentifier != "DOCUMENT" {
		return nil, invalidf("SPDX: SPDXID is %q, must be \"SPDXRef-DOCUMENT\"", "SPDXRef-"+string(d.SPDXIdentifier))
	}
	if strings.TrimSpace(d.DocumentName) == "" {
		return nil, invalidf("SPDX: name is missing")
	}
	if d.DocumentNamespace == "" {
		return nil, invalidf("SPDX: documentNamespace is missing")
	}
	if u, err := url.Parse(d.DocumentNamespace); err != nil || !u.IsAbs() || strings.Contains(d.DocumentNamespace, "#") {
		return nil, invalidf("SPDX: documentNamespace %q is not an absolute URI without a fragment", truncate(d.DocumentNamespace, 100))
	}
	if d.CreationInfo == nil {
		return nil, invalidf("SPDX: creationInfo is missing")
	}
	if _, err := time.Parse(time.RFC3339, d.CreationInfo.Created); err != nil {
		return nil, invalidf("SPDX: creationInfo.created %q is not an RFC 3339 time", truncate(d.CreationInfo.Created, 60))
	}
	if len(d.CreationInfo.Creators) == 0 {
		return nil, invalidf("SPDX: creationInfo.creators is empty")
	}
	for _, c := range d.CreationInfo.Creators {
		switch c.CreatorType {
		case "Person", "Organization", "Tool":
		default:
			return nil, invalidf("SPDX: creator type %q is not Person, Organization or Tool", truncate(c.CreatorType, 40))
		}
	}
	ids := map[spdxcommon.ElementID]*spdx.Package{}
	for i, p := range d.Packages {
		if p == nil {
			return nil, invalidf("SPDX: packages[%d] is null", i)
		}
		if strings.TrimSpace(p.PackageName) == "" {
			return nil, invalidf("SPDX: packages[%d] has no name", i)
		}
		if p.PackageSPDXIdentifier == "" {
			return nil, invalidf("SPDX: packages[%d] (%s) has no SPDXID", i, truncate(p.PackageName, 60))
		}
		if _, dup := ids[p.PackageSPDXIdentifier]; dup {
			return nil, invalidf("SPDX: SPDXID %q is used twice", "SPDXRef-"+string(p.PackageSPDXIdentifier))
		}
		ids[p.PackageSPDXIdentifier] = p
		for _, c := range p.PackageChecksums {
			if err := checkHex(string(c.Algorithm), c.Value); err != nil {
				return nil, invalidf("SPDX: package %s: %v", truncate(p.PackageName, 60), err)
			}
		}
	}
	out := &Document{Format: FormatSPDXJSON, SpecVersion: d.SPDXVersion, Name: d.DocumentName, Packages: len(d.Packages), Raw: raw}
	subjects := map[string]bool{}
	for _, r := range d.Relationships {
		if r == nil || r.Relationship != spdxcommon.TypeRelationshipDescribe || r.RefA.ElementRefID != "DOCUMENT" || r.RefA.DocumentRefID != "" || r.RefB.DocumentRefID != "" {
			continue
		}
		p := ids[r.RefB.ElementRefID]
		if p == nil {
			continue
		}
		for _, c := range p.PackageChecksums {
			addDigest(subjects, string(c.Algorithm), c.Value)
		}
		addDigestString(subjects, p.PackageVersion)
		for _, ref := range p.PackageExternalReferences {
			if ref != nil && ref.RefType == "purl" {
				addOCIPurl(subjects, ref.Locator)
			}
		}
	}
	out.Subjects = sortedKeys(subjects)
	return out, nil
}

var cdxComponentTypes = map[cdx.ComponentType]bool{
	cdx.ComponentTypeApplication: true, cdx.ComponentTypeContainer: true, cdx.ComponentTypeCryptographicAsset: true,
	cdx.ComponentTypeData: true, cdx.ComponentTypeDevice: true, cdx.ComponentTypeDeviceDriver: true,
	cdx.ComponentTypeFile: true, cdx.ComponentTypeFirmware: true, cdx.ComponentTypeFramework: true,
	cdx.ComponentTypeLibrary: true, cdx.ComponentTypeMachineLearningModel: true, cdx.ComponentTypeOS: true,
	cdx.ComponentTypePlatform: true,
}

func validateCycloneDX(raw []byte) (*Document, error) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(raw), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, invalidf("CycloneDX: %v", err)
	}
	if bom.BOMFormat != cdx.BOMFormat {
		return nil, invalidf("CycloneDX: bomFormat is %q, must be %q", truncate(bom.BOMFormat, 40), cdx.BOMFormat)
	}
	if bom.SpecVersion < cdx.SpecVersion1_4 {
		return nil, invalidf("CycloneDX: specVersion %q is too old or missing; 1.4 or later is required", bom.SpecVersion.String())
	}
	out := &Document{Format: FormatCycloneDXJSON, SpecVersion: bom.SpecVersion.String(), Raw: raw}
	refs := map[string]bool{}
	var check func(where string, c *cdx.Component, depth int) error
	check = func(where string, c *cdx.Component, depth int) error {
		if depth > 64 {
			return invalidf("CycloneDX: %s: components nested more than 64 deep", where)
		}
		if !cdxComponentTypes[c.Type] {
			return invalidf("CycloneDX: %s: type %q is not a CycloneDX component type", where, truncate(string(c.Type), 40))
		}
		if strings.TrimSpace(c.Name) == "" {
			return invalidf("CycloneDX: %s: name is missing", where)
		}
		if c.BOMRef != "" {
			if refs[c.BOMRef] {
				return invalidf("CycloneDX: %s: bom-ref %q is used twice", where, truncate(c.BOMRef, 100))
			}
			refs[c.BOMRef] = true
		}
		if c.PackageURL != "" {
			if _, err := packageurl.FromString(c.PackageURL); err != nil {
				return invalidf("CycloneDX: %s: purl %q: %v", where, truncate(c.PackageURL, 100), err)
			}
		}
		if c.Hashes != nil {
			for _, h := range *c.Hashes {
				if err := checkHex(string(h.Algorithm), h.Value); err != nil {
					return invalidf("CycloneDX: %s: %v", where, err)
				}
			}
		}
		if c.Components != nil {
			for i := range *c.Components {
				out.Packages++
				if err := check(fmt.Sprintf("%s.components[%d]", where, i), &(*c.Components)[i], depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	subjects := map[string]bool{}
	if bom.Metadata != nil && bom.Metadata.Component != nil {
		mc := bom.Metadata.Component
		if err := check("metadata.component", mc, 0); err != nil {
			return nil, err
		}
		out.Name = mc.Name
		if mc.Hashes != nil {
			for _, h := range *mc.Hashes {
				addDigest(subjects, string(h.Algorithm), h.Value)
			}
		}
		addDigestString(subjects, mc.Version)
		addOCIPurl(subjects, mc.PackageURL)
	}
	if bom.Components != nil {
		for i := range *bom.Components {
			out.Packages++
			if err := check(fmt.Sprintf("components[%d]", i), &(*bom.Components)[i], 0); err != nil {
				return nil, err
			}
		}
	}
	out.Subjects = sortedKeys(subjects)
	return out, nil
}

// hashAlgs maps a checksum algorithm, upper-cased without "-" or "_" (so
// SPDX "SHA256" and CycloneDX "SHA-256" meet), to our digest key ("" when
// the algorithm cannot name an OCI digest) and its hex length.
var hashAlgs = map[string]struct {
	key string
	n   int
}{
	"SHA1": {"sha1", 40}, "SHA224": {"", 56}, "SHA256": {"sha256", 64}, "SHA384": {"sha384", 96}, "SHA512": {"sha512", 128},
	"SHA3256": {"", 64}, "SHA3384": {"", 96}, "SHA3512": {"", 128},
	"BLAKE2B256": {"", 64}, "BLAKE2B384": {"", 96}, "BLAKE2B512": {"", 128},
	"MD2": {"", 32}, "MD4": {"", 32}, "MD5": {"", 32},
}

func hashLen(alg string) (string, int) {
	a := hashAlgs[strings.NewReplacer("-", "", "_", "").Replace(strings.ToUpper(alg))]
	return a.key, a.n
}

// checkHex checks a checksum value is hex of the length its algorithm has.
func checkHex(alg, v string) error {
	_, n := hashLen(alg)
	if n == 0 {
		return nil // BLAKE3, ADLER32, MD6...: variable or odd lengths
	}
	if len(v) != n {
		return fmt.Errorf("%s checksum %q is not %d hex digits", alg, truncate(v, 140), n)
	}
	if _, err := hex.DecodeString(v); err != nil {
		return fmt.Errorf("%s checksum %q is not hex", alg, truncate(v, 140))
	}
	return nil
}

func addDigest(set map[string]bool, alg, v string) {
	key, n := hashLen(alg)
	if key == "" || len(v) != n {
		return
	}
	if _, err := hex.DecodeString(v); err != nil {
		return
	}
	set[key+":"+strings.ToLower(v)] = true
}

func addDigestString(set map[string]bool, s string) {
	if alg, hx, ok := digestParts(strings.TrimSpace(s)); ok {
		set[alg+":"+hx] = true
	}
}

// addOCIPurl adds the digest of a pkg:oci purl (its version).
func addOCIPurl(set map[string]bool, s string) {
	if !strings.HasPrefix(s, "pkg:oci/") {
		return
	}
	p, err := packageurl.FromString(s)
	if err != nil {
		return
	}
	addDigestString(set, p.Version)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
