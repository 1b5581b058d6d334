// Package vuln is custody's offline vulnerability database and matcher.
//
// A [DB] is one SQLite file holding OSV advisories
// (https://ossf.github.io/osv-schema/), loaded with [DB.Import] from a
// record, a directory or an osv.dev "all.zip" export, and versioned by a
// revision that grows with every import that changes something.
// [DB.Match] finds the advisories that affect installed packages, named by
// package URL, evaluating OSV ranges with each ecosystem's version order
// ([Compare]: SemVer for Go and npm, PEP 440 for PyPI, ComparableVersion
// for Maven, dpkg for Debian and Ubuntu, apk for Alpine) and rating
// severity from CVSS v3 vectors ([CVSS3BaseScore]).
//
// [ApplyWaivers] sets aside findings that OpenVEX documents ([ParseVEX])
// declare not_affected or fixed, until the waiver's custody_expires time.
// [Unpinned] reports dependencies that are not pinned to one immutable
// version.
package vuln
