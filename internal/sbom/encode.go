package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/uuid"
	packageurl "github.com/package-url/packageurl-go"
	spdxcommon "github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// EncodeOptions tune [Inventory.Encode].
type EncodeOptions struct {
	// Created is the document's creation time. Output is byte-for-byte
	// deterministic for a fixed Created; the zero value means now.
	Created time.Time
	// ToolName and ToolVersion name the generator (default "custody", "").
	ToolName    string
	ToolVersion string
	// NamespaceBase prefixes the SPDX documentNamespace (default
	// "https://custody.dev/spdx/"); the rest is derived from the content, so
	// the namespace is stable for the same inventory and time.
	NamespaceBase string
}

// ErrUnknownFormat is returned for a Format other than FormatSPDXJSON and
// FormatCycloneDXJSON.
var ErrUnknownFormat = errors.New(`sbom: unknown format; use "spdx-json" or "cyclonedx-json"`)

// Encode writes the inventory as an SBOM in format f (SPDX 2.3 JSON or
// CycloneDX 1.6 JSON). Packages, files and every list inside them are
// sorted, identifiers and the SPDX namespace / CycloneDX serial number are
// derived from the content, so the output depends only on the inventory and
// opts.
func (inv *Inventory) Encode(w io.Writer, f Format, opts EncodeOptions) error {
	if opts.Created.IsZero() {
		opts.Created = time.Now()
	}
	opts.Created = opts.Created.UTC().Truncate(time.Second)
	if opts.ToolName == "" {
		opts.ToolName = "custody"
	}
	if opts.NamespaceBase == "" {
		opts.NamespaceBase = "https://custody.dev/spdx/"
	}
	switch f {
	case FormatSPDXJSON:
		doc := inv.spdxDocument(opts)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(doc); err != nil {
			return fmt.Errorf("sbom: encode SPDX: %w", err)
		}
		return nil
	case FormatCycloneDXJSON:
		bom := inv.cyclonedxBOM(opts)
		if err := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false).EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
			return fmt.Errorf("sbom: encode CycloneDX: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w (got %q)", ErrUnknownFormat, f)
}

// fingerprint is a stable digest of the inventory and creation time, from
// which document identity is derived.
func (inv *Inventory) fingerprint(opts EncodeOptions) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", inv.Subject.Name, inv.Subject.Digest, inv.Subject.Kind, opts.Created.Format(time.RFC3339))
	if inv.OS != nil {
		fmt.Fprintf(h, "%s\x00%s\x00", inv.OS.ID, inv.OS.VersionID)
	}
	for _, p := range inv.Packages {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", p.Type, p.Name, p.Version, p.PURL)
		for _, l := range p.Locations {
			fmt.Fprintf(h, "%s\x00", l)
		}
	}
	for _, f := range inv.Files {
		fmt.Fprintf(h, "%s\x00%s\x00", f.Path, f.SHA256)
	}
	return h.Sum(nil)
}

var spdxIDUnsafe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^A-Za-z0-9.-]+`) })

// elementID makes an SPDX/CycloneDX identifier: a readable prefix and a
// short digest of key, which makes it unique.
func elementID(prefix, readable, key string) string {
	sum := sha256.Sum256([]byte(key))
	r := strings.Trim(spdxIDUnsafe().ReplaceAllString(readable, "-"), "-")
	if len(r) > 64 {
		r = r[:64]
	}
	if r == "" {
		return prefix + "-" + hex.EncodeToString(sum[:8])
	}
	return prefix + "-" + r + "-" + hex.EncodeToString(sum[:8])
}

func packageKey(p Package) string {
	return string(p.Type) + "\x00" + p.Name + "\x00" + p.Version + "\x00" + p.PURL + "\x00" + strings.Join(p.Locations, "\x00")
}

var licenseToken = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\(*)([A-Za-z0-9.+:-]+)(\)*)$`) })

// knownLicenses are the SPDX license and exception identifiers SPDX output
// trusts in licenseDeclared: the common ones. An SPDX 2.3 document must not
// use an identifier outside the SPDX license list, and this package does not
// embed the whole list, so a package with any other license gets
// NOASSERTION and its licenses in licenseComments instead.
var knownLicenses = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, id := range strings.Fields(`0BSD AFL-2.1 AFL-3.0 AGPL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0
		Artistic-1.0 Artistic-1.0-Perl Artistic-2.0 BSD-1-Clause BSD-2-Clause BSD-2-Clause-Patent BSD-3-Clause
		BSD-3-Clause-Clear BSD-4-Clause BSL-1.0 BlueOak-1.0.0 bzip2-1.0.6 CC-BY-3.0 CC-BY-4.0 CC-BY-SA-3.0
		CC-BY-SA-4.0 CC0-1.0 CDDL-1.0 CDDL-1.1 curl EPL-1.0 EPL-2.0 EUPL-1.1 EUPL-1.2 FTL GFDL-1.2-only
		GFDL-1.2-or-later GFDL-1.3-only GFDL-1.3-or-later GPL-1.0-or-later GPL-2.0 GPL-2.0+ GPL-2.0-only
		GPL-2.0-or-later GPL-3.0 GPL-3.0+ GPL-3.0-only GPL-3.0-or-later HPND ICU IJG Info-ZIP ISC LGPL-2.0
		LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1 LGPL-2.1+ LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0 LGPL-3.0+
		LGPL-3.0-only LGPL-3.0-or-later libpng-2.0 Libpng libtiff MIT MIT-0 MPL-1.1 MPL-2.0 MS-PL NCSA
		OFL-1.1 OpenSSL OpenSSL-standalone PHP-3.01 PostgreSQL PSF-2.0 Python-2.0 Ruby SSLeay-standalone
		Unicode-3.0 Unicode-DFS-2016 Unlicense UPL-1.0 Vim W3C WTFPL X11 Zlib ZPL-2.1
		Autoconf-exception-3.0 Bison-exception-2.2 Classpath-exception-2.0 GCC-exception-3.1 LLVM-exception
		OpenSSL-exception`) {
		m[strings.ToLower(id)] = true
	}
	return m
})

// licenseExpression joins declared licenses into one SPDX expression, or
// returns "" when any of them is not expression-shaped (free text,
// "custom"). With strict, every identifier must also be in knownLicenses.
func licenseExpression(lics []string, strict bool) string {
	if len(lics) == 0 {
		return ""
	}
	var parts []string
	for _, l := range lics {
		l = strings.TrimSpace(l)
		toks := strings.Fields(l)
		if len(toks) == 0 {
			return ""
		}
		for _, t := range toks {
			switch strings.ToUpper(t) {
			case "AND", "OR", "WITH":
				continue
			}
			m := licenseToken().FindStringSubmatch(t)
			if m == nil {
				return ""
			}
			switch strings.ToLower(m[2]) {
			case "custom", "unknown", "other", "none", "noassertion", "public-domain", "and", "or", "with":
				return ""
			}
			if strict && !knownLicenses()[strings.ToLower(m[2])] {
				return ""
			}
		}
		if len(toks) > 1 && len(lics) > 1 {
			l = "(" + l + ")"
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, " AND ")
}

// subjectPURL returns pkg:oci/<name>@<digest>?repository_url=<repo> for an
// image reference, or "".
func subjectPURL(s Subject) string {
	if s.Kind != KindImage || s.Digest == "" || s.Name == "" {
		return ""
	}
	repo := s.Name
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	name := repo
	if i := strings.LastIndex(repo, "/"); i >= 0 {
		name = repo[i+1:]
	}
	q := packageurl.Qualifiers{}
	if repo != name {
		q = packageurl.QualifiersFromMap(map[string]string{"repository_url": repo})
	}
	return packageurl.NewPackageURL("oci", "", strings.ToLower(name), s.Digest, q, "").ToString()
}

// digestParts splits "sha256:<hex>" into algorithm and hex.
func digestParts(d string) (string, string, bool) {
	alg, hx, ok := strings.Cut(d, ":")
	if !ok {
		return "", "", false
	}
	want := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128, "sha1": 40}[strings.ToLower(alg)]
	if want == 0 || len(hx) != want {
		return "", "", false
	}
	if _, err := hex.DecodeString(hx); err != nil {
		return "", "", false
	}
	return strings.ToLower(alg), strings.ToLower(hx), true
}

var spdxChecksumAlg = map[string]spdxcommon.ChecksumAlgorithm{
	"sha1": spdxcommon.SHA1, "sha256": spdxcommon.SHA256, "sha384": spdxcommon.SHA384, "sha512": spdxcommon.SHA512,
}

var cdxHashAlg = map[string]cdx.HashAlgorithm{
	"sha1": cdx.HashAlgoSHA1, "sha256": cdx.HashAlgoSHA256, "sha384": cdx.HashAlgoSHA384, "sha512": cdx.HashAlgoSHA512,
}

// packageDigests lists a package's hashes as (algorithm, hex) pairs,
// sorted; a Go h1 checksum counts as its SHA-256 (as syft reports it) when
// no other SHA-256 is known.
func packageDigests(p Package) [][2]string {
	var out [][2]string
	for alg, v := range p.Hashes {
		if _, ok := spdxChecksumAlg[alg]; ok {
			out = append(out, [2]string{alg, v})
		}
	}
	if h1, ok := p.Hashes[HashGoH1]; ok {
		if _, have := p.Hashes[HashSHA256]; !have {
			if hx, ok := h1ToHex(h1); ok {
				out = append(out, [2]string{HashSHA256, hx})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func (inv *Inventory) spdxDocument(opts EncodeOptions) *spdx.Document {
	fp := inv.fingerprint(opts)
	name := inv.Subject.Name
	if name == "" {
		name = "unnamed"
	}
	tool := opts.ToolName
	if opts.ToolVersion != "" {
		tool += "-" + opts.ToolVersion
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: opts.NamespaceBase + strings.Trim(spdxIDUnsafe().ReplaceAllString(name, "-"), "-") + "-" + uuid.NewSHA1(uuid.NameSpaceURL, fp).String(),
		CreationInfo: &spdx.CreationInfo{
			Creators: []spdxcommon.Creator{{CreatorType: "Tool", Creator: tool}},
			Created:  opts.Created.Format(time.RFC3339),
		},
	}
	rootID := spdxcommon.ElementID(elementID("DocumentRoot-"+titleKind(inv.Subject.Kind), name, name+"\x00"+inv.Subject.Digest))
	root := &spdx.Package{
		PackageName:             name,
		PackageSPDXIdentifier:   rootID,
		PackageVersion:          inv.Subject.Digest,
		PackageDownloadLocation: "NOASSERTION",
		PackageLicenseConcluded: "NOASSERTION",
		PackageLicenseDeclared:  "NOASSERTION",
		PackageCopyrightText:    "NOASSERTION",
		PackageSupplier:         &spdxcommon.Supplier{Supplier: "NOASSERTION"},
		PrimaryPackagePurpose:   spdxPurpose(inv.Subject.Kind),
	}
	if alg, hx, ok := digestParts(inv.Subject.Digest); ok {
		root.PackageChecksums = []spdxcommon.Checksum{{Algorithm: spdxChecksumAlg[alg], Value: hx}}
	}
	if pu := subjectPURL(inv.Subject); pu != "" {
		root.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: pu}}
	}
	doc.Packages = append(doc.Packages, root)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA:         spdxcommon.MakeDocElementID("", "DOCUMENT"),
		RefB:         spdxcommon.MakeDocElementID("", string(rootID)),
		Relationship: spdxcommon.TypeRelationshipDescribe,
	})
	contains := func(id spdxcommon.ElementID) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         spdxcommon.MakeDocElementID("", string(rootID)),
			RefB:         spdxcommon.MakeDocElementID("", string(id)),
			Relationship: spdxcommon.TypeRelationshipContains,
		})
	}
	if o := inv.OS; o != nil {
		id := spdxcommon.ElementID(elementID("OperatingSystem", o.ID, o.ID+"\x00"+o.VersionID))
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName:             o.ID,
			PackageSPDXIdentifier:   id,
			PackageVersion:          o.VersionID,
			PackageDownloadLocation: "NOASSERTION",
			PackageLicenseConcluded: "NOASSERTION",
			PackageLicenseDeclared:  "NOASSERTION",
			PackageCopyrightText:    "NOASSERTION",
			PackageDescription:      o.PrettyName,
			PrimaryPackagePurpose:   "OPERATING-SYSTEM",
		})
		contains(id)
	}
	fileIDs := map[string]spdxcommon.ElementID{}
	for _, f := range inv.Files {
		fileIDs[f.Path] = spdxcommon.ElementID(elementID("File", "", f.Path))
	}
	for _, p := range inv.Packages {
		id := spdxcommon.ElementID(elementID("Package-"+string(p.Type), p.Name, packageKey(p)))
		sp := &spdx.Package{
			PackageName:             p.Name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          p.Version,
			PackageDownloadLocation: "NOASSERTION",
			PackageLicenseConcluded: "NOASSERTION",
			PackageLicenseDeclared:  "NOASSERTION",
			PackageCopyrightText:    "NOASSERTION",
			PrimaryPackagePurpose:   "LIBRARY",
		}
		if p.MainModule {
			sp.PrimaryPackagePurpose = "APPLICATION"
		}
		if e := licenseExpression(p.Licenses, true); e != "" {
			sp.PackageLicenseDeclared = e
		} else if len(p.Licenses) > 0 {
			sp.PackageLicenseComments = "declared: " + strings.Join(p.Licenses, "; ")
		}
		if p.PURL != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: p.PURL}}
		}
		for _, d := range packageDigests(p) {
			sp.PackageChecksums = append(sp.PackageChecksums, spdxcommon.Checksum{Algorithm: spdxChecksumAlg[d[0]], Value: d[1]})
		}
		if len(p.Locations) > 0 {
			sp.PackageSourceInfo = "acquired package info from " + strings.Join(p.Locations, ", ")
		}
		doc.Packages = append(doc.Packages, sp)
		contains(id)
		for _, l := range p.Locations {
			if fid, ok := fileIDs[l]; ok {
				doc.Relationships = append(doc.Relationships, &spdx.Relationship{
					RefA:                spdxcommon.MakeDocElementID("", string(id)),
					RefB:                spdxcommon.MakeDocElementID("", string(fid)),
					Relationship:        spdxcommon.TypeRelationshipOther,
					RelationshipComment: "evident-by: the package was found in this file",
				})
			}
		}
	}
	for _, f := range inv.Files {
		id := fileIDs[f.Path]
		doc.Files = append(doc.Files, &spdx.File{
			FileName:           f.Path,
			FileSPDXIdentifier: id,
			Checksums: []spdxcommon.Checksum{
				{Algorithm: spdxcommon.SHA1, Value: f.SHA1},
				{Algorithm: spdxcommon.SHA256, Value: f.SHA256},
			},
			LicenseConcluded:  "NOASSERTION",
			FileCopyrightText: "NOASSERTION",
		})
		contains(id)
	}
	return doc
}

func titleKind(k SubjectKind) string {
	switch k {
	case KindImage:
		return "Image"
	case KindBinary:
		return "Binary"
	case KindArchive:
		return "Archive"
	case KindDirectory:
		return "Directory"
	}
	return "Unknown"
}

func spdxPurpose(k SubjectKind) string {
	switch k {
	case KindImage:
		return "CONTAINER"
	case KindBinary:
		return "APPLICATION"
	case KindArchive:
		return "ARCHIVE"
	}
	return "OTHER"
}

func cdxType(k SubjectKind) cdx.ComponentType {
	switch k {
	case KindImage:
		return cdx.ComponentTypeContainer
	case KindBinary:
		return cdx.ComponentTypeApplication
	}
	return cdx.ComponentTypeFile
}

func (inv *Inventory) cyclonedxBOM(opts EncodeOptions) *cdx.BOM {
	fp := inv.fingerprint(opts)
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuid.NewSHA1(uuid.NameSpaceURL, fp).String()
	name := inv.Subject.Name
	if name == "" {
		name = "unnamed"
	}
	subject := &cdx.Component{
		BOMRef:     elementID("subject", name, name+"\x00"+inv.Subject.Digest),
		Type:       cdxType(inv.Subject.Kind),
		Name:       name,
		Version:    inv.Subject.Digest,
		PackageURL: subjectPURL(inv.Subject),
	}
	if alg, hx, ok := digestParts(inv.Subject.Digest); ok {
		subject.Hashes = &[]cdx.Hash{{Algorithm: cdxHashAlg[alg], Value: hx}}
	}
	bom.Metadata = &cdx.Metadata{
		Timestamp: opts.Created.Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: opts.ToolName, Version: opts.ToolVersion,
		}}},
		Component: subject,
	}
	var comps []cdx.Component
	if o := inv.OS; o != nil {
		comps = append(comps, cdx.Component{
			BOMRef:      elementID("os", o.ID, o.ID+"\x00"+o.VersionID),
			Type:        cdx.ComponentTypeOS,
			Name:        o.ID,
			Version:     o.VersionID,
			Description: o.PrettyName,
		})
	}
	purlCount := map[string]int{}
	for _, p := range inv.Packages {
		purlCount[p.PURL]++
	}
	for _, p := range inv.Packages {
		c := cdx.Component{
			BOMRef:     p.PURL,
			Type:       cdx.ComponentTypeLibrary,
			Name:       p.Name,
			Version:    p.Version,
			PackageURL: p.PURL,
		}
		if p.PURL == "" || purlCount[p.PURL] > 1 {
			c.BOMRef = elementID("pkg", p.Name, packageKey(p))
		}
		if p.MainModule {
			c.Type = cdx.ComponentTypeApplication
		}
		if p.Type == TypeMaven {
			if g, a, ok := strings.Cut(p.Name, ":"); ok {
				c.Group, c.Name = g, a
			}
		}
		if e := licenseExpression(p.Licenses, false); e != "" {
			c.Licenses = &cdx.Licenses{{Expression: e}}
		} else if len(p.Licenses) > 0 {
			var ls cdx.Licenses
			for _, l := range p.Licenses {
				ls = append(ls, cdx.LicenseChoice{License: &cdx.License{Name: l}})
			}
			c.Licenses = &ls
		}
		if ds := packageDigests(p); len(ds) > 0 {
			var hs []cdx.Hash
			for _, d := range ds {
				hs = append(hs, cdx.Hash{Algorithm: cdxHashAlg[d[0]], Value: d[1]})
			}
			c.Hashes = &hs
		}
		var props []cdx.Property
		props = append(props, cdx.Property{Name: "custody:package:type", Value: string(p.Type)})
		for _, l := range p.Locations {
			props = append(props, cdx.Property{Name: "custody:location", Value: l})
		}
		if p.Arch != "" {
			props = append(props, cdx.Property{Name: "custody:package:arch", Value: p.Arch})
		}
		if p.Upstream != "" {
			props = append(props, cdx.Property{Name: "custody:package:upstream", Value: p.Upstream})
		}
		if h1 := p.Hashes[HashGoH1]; h1 != "" {
			props = append(props, cdx.Property{Name: "custody:golang:h1", Value: h1})
		}
		c.Properties = &props
		comps = append(comps, c)
	}
	for _, f := range inv.Files {
		comps = append(comps, cdx.Component{
			BOMRef: elementID("file", "", f.Path),
			Type:   cdx.ComponentTypeFile,
			Name:   f.Path,
			Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA1, Value: f.SHA1}, {Algorithm: cdx.HashAlgoSHA256, Value: f.SHA256}},
		})
	}
	if len(comps) > 0 {
		bom.Components = &comps
		// The subject contains the OS and the packages (files are listed,
		// not depended on).
		refs := make([]string, 0, len(comps))
		for _, c := range comps {
			if c.Type != cdx.ComponentTypeFile {
				refs = append(refs, c.BOMRef)
			}
		}
		bom.Dependencies = &[]cdx.Dependency{{Ref: subject.BOMRef, Dependencies: &refs}}
	}
	return bom
}
