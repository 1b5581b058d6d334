// Package config loads custody's configuration: defaults, then one YAML
// file, then CUSTODY_* environment variables, then command-line flags (the
// caller applies those last). Unknown YAML keys are errors, so a typo never
// silently falls back to a default.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/custody-dev/custody/internal/gate/spec"
	"github.com/custody-dev/custody/internal/proxy"
	"github.com/custody-dev/custody/internal/repopattern"
)

// Config is custody's whole configuration.
type Config struct {
	// Addr is the listen address (default 127.0.0.1:5000).
	Addr string `yaml:"addr"`
	// Data is the data directory of the embedded store (default
	// ./custody-data). It also holds the audit log's and the token
	// service's keys and the first admin password, whatever the backends.
	Data string `yaml:"data"`
	// Metadata selects the metadata backend: "sqlite" (the default, in
	// <data>/meta.db) or a postgres:// URL (replicas; docs/deploy.md).
	Metadata string `yaml:"metadata"`
	// Blobs selects the blob backend: "fs" (the default, under <data>) or
	// s3://BUCKET[/PREFIX] with the s3 section.
	Blobs string `yaml:"blobs"`
	// S3 configures the S3 blob backend; credentials come from
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
	S3 S3 `yaml:"s3"`
	// Log configures structured logging.
	Log Log `yaml:"log"`
	// Uploads configures upload sessions.
	Uploads Uploads `yaml:"uploads"`
	// Limits caps request sizes.
	Limits Limits `yaml:"limits"`
	// ShutdownTimeout bounds how long a graceful shutdown waits for
	// in-flight requests (default 30s); unfinished uploads stay resumable.
	ShutdownTimeout Duration `yaml:"shutdownTimeout"`
	// GC configures garbage collection (see docs/maintenance.md).
	GC GC `yaml:"gc"`
	// Scrub configures scheduled integrity checks.
	Scrub Scrub `yaml:"scrub"`
	// Policies are repository policies (immutable tags, deletion,
	// media types, size, default retention); see docs/retention.md. Policies
	// stored through the API take precedence over these for the same
	// repository pattern.
	Policies []Policy `yaml:"policies"`
	// Retention configures retention locks and legal holds.
	Retention Retention `yaml:"retention"`
	// Audit configures the tamper-evident audit log (docs/audit.md).
	Audit Audit `yaml:"audit"`
	// Auth configures authentication and access control (docs/security.md).
	Auth Auth `yaml:"auth"`
	// Signing configures the server's own signing (docs/signing.md).
	Signing Signing `yaml:"signing"`
	// CA is the certificate authority for workloads (docs/keyless.md).
	CA CA `yaml:"ca"`
	// Rekor is the transparency log for signing events (docs/keyless.md).
	Rekor Rekor `yaml:"rekor"`
	// Projects declare ordered environments per repository pattern and the
	// gate of each (docs/promotion.md).
	Projects []Project `yaml:"projects"`
	// Promotion configures how promotion gates see artifacts.
	Promotion Promotion `yaml:"promotion"`
	// Drills schedules restoration drills of environments (docs/drill.md).
	Drills []Drill `yaml:"drills"`
	// Admission configures the Kubernetes admission webhook.
	Admission Admission `yaml:"admission"`
	// TLS serves HTTPS on addr with this certificate (PEM files); the
	// admission webhook needs HTTPS, here or at a proxy in front.
	TLS TLS `yaml:"tls"`
	// Proxy names the reverse proxies in front of custody whose
	// client-address header is believed.
	Proxy Proxy `yaml:"proxy"`
	// Web configures the web interface's browser sessions (docs/ui.md).
	Web Web `yaml:"web"`
	// Feeds are the package feeds served in their ecosystems' own
	// protocols (docs/feeds.md).
	Feeds []Feed `yaml:"feeds"`
}

// Ecosystems and kinds of package feeds.
const (
	FeedEcosystemNPM   = "npm"
	FeedEcosystemPyPI  = "pypi"
	FeedEcosystemGo    = "go"
	FeedEcosystemMaven = "maven"
	FeedEcosystemOCI   = "oci"
	FeedKindHosted     = "hosted"
	FeedKindProxy      = "proxy"
	FeedKindVirtual    = "virtual"
)

// Feed is one package feed: served at /<ecosystem>/<name>/, its packages
// kept in the repositories <name>/<package path>.
type Feed struct {
	// Name is the feed's name: one lowercase repository-name component.
	Name string `yaml:"name"`
	// Ecosystem is the package protocol: npm, pypi, go (Go modules), maven,
	// or oci (container images, pull-through only).
	Ecosystem string `yaml:"ecosystem"`
	// Kind is hosted (packages are published to custody; the default when
	// empty), proxy (pull-through: versions are fetched from Upstream on
	// first request and kept) or virtual (Members merged under one URL).
	Kind string `yaml:"kind"`
	// Upstream is a proxy feed's upstream: the base URL of the registry it
	// fetches from (https://registry.npmjs.org, https://pypi.org/simple,
	// https://proxy.golang.org, https://repo1.maven.org/maven2,
	// https://registry-1.docker.io).
	Upstream string `yaml:"upstream"`
	// UpstreamAuth are the credentials a proxy feed presents upstream.
	UpstreamAuth FeedUpstreamAuth `yaml:"upstreamAuth"`
	// Members are the feeds of the same ecosystem that a virtual feed
	// merges, in the order they are asked (hosted feeds first).
	Members []string `yaml:"members"`
	// Firewall is the feed's dependency-firewall policy (docs/feeds.md).
	Firewall FeedFirewall `yaml:"firewall"`
}

// FeedUpstreamAuth are a proxy feed's upstream credentials: HTTP Basic
// with Username and the password (or token) read from the environment
// variable PasswordEnv, or a Bearer token from TokenEnv. The secrets
// themselves never appear in the configuration file.
type FeedUpstreamAuth struct {
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"passwordEnv"`
	TokenEnv    string `yaml:"tokenEnv"`
}

// FeedFirewall is one feed's dependency-firewall policy: which versions
// may be served, judged against the offline vulnerability database.
type FeedFirewall struct {
	// BlockSeverity blocks versions with an advisory at or above this
	// severity: low, medium, high or critical. Empty: nothing is blocked
	// for its advisories.
	BlockSeverity string `yaml:"blockSeverity"`
	// BlockUnpinned refuses requests that ask for a version by range or
	// moving label (npm dist-tag, Go @latest, Maven LATEST/RELEASE or a
	// version range) instead of one exact version.
	BlockUnpinned bool `yaml:"blockUnpinned"`
	// Allow lists packages ("name") or versions ("name@version") served
	// whatever their advisories.
	Allow []string `yaml:"allow"`
}

// Web configures the web interface.
type Web struct {
	Session WebSession `yaml:"session"`
	// URL is the web interface's external URL as browsers see it
	// ("https://registry.example.com"): WebAuthn's relying party ID (its
	// host) and origin come from it. Empty (the default): security keys
	// and passkeys are not offered.
	URL string `yaml:"url"`
}

// WebSession bounds browser sessions: one ends after Idle without a
// request (default 30m) and Absolute after signing in (default 12h),
// whichever comes first.
type WebSession struct {
	Idle     Duration `yaml:"idle"`
	Absolute Duration `yaml:"absolute"`
}

// Proxy configures trusted reverse proxies. A request whose peer is in
// Trusted has its client address taken from Header (the rightmost entry
// that is not itself a trusted proxy); from anyone else the header is
// ignored. The address is what sign-in throttling, logs and the audit log
// see.
type Proxy struct {
	// Trusted lists the proxies' addresses or CIDR ranges
	// ("10.0.0.0/8", "192.0.2.7", "fd00::/8"). Empty (the default): no
	// header is believed.
	Trusted []string `yaml:"trusted"`
	// Header is the header the proxies set: X-Forwarded-For (the
	// default) or Forwarded (RFC 7239). Only that one is read: a proxy
	// passes the other through from the client unchanged.
	Header string `yaml:"header"`
}

// Admission configures the validating admission webhook served at
// /admission/<environment> (docs/admission.md).
type Admission struct {
	// Registries are the host[:port] names clients use for this
	// registry: images of other hosts are refused.
	Registries []string `yaml:"registries"`
}

// TLS names the server certificate and key.
type TLS struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Project is a repository pattern and its environments in promotion order.
type Project struct {
	// Name names the project in custody env --project and the
	// environments API (default: the repositories pattern).
	Name         string        `yaml:"name"`
	Repositories string        `yaml:"repositories"`
	Environments []Environment `yaml:"environments"`
}

// Drill schedules a restoration drill: every Interval the server rebuilds
// what Environment of Project runs into a fresh OCI layout under Dir
// (default <data>/drills; only the latest run is kept), verifies it,
// records the signed report, and alerts through the log and metrics when
// anything is missing.
type Drill struct {
	// Project is a project's name or repositories pattern ("": the only
	// one).
	Project     string   `yaml:"project"`
	Environment string   `yaml:"environment"`
	Interval    Duration `yaml:"interval"`
	Dir         string   `yaml:"dir"`
}

// MinDrillInterval is the shortest drills[].interval.
const MinDrillInterval = time.Second

// Environment is one stage of a project: its name (also the tag that
// points at what it runs), its gate, and the approvals a promotion needs.
type Environment struct {
	Name      string    `yaml:"name"`
	Gate      spec.Gate `yaml:"gate"`
	Approvals int       `yaml:"approvals"`
	// Protected makes promotions to the environment need a recent second
	// factor (step-up) even without approvals; approvals >= 1 implies it.
	Protected bool `yaml:"protected"`
}

// Promotion configures promotion gates.
type Promotion struct {
	// TrustRoot is a trust-root file of further keys whose signatures and
	// attestations gates count (e.g. CI signing keys), beside the server's
	// own key ring.
	TrustRoot string `yaml:"trustRoot"`
	// AllowedSigners is an SSH allowed-signers file (git's
	// gpg.ssh.allowedSignersFile format) and OpenPGPKeyring a file of
	// OpenPGP public keys (armored or binary): the signers whose git
	// commits POST /api/v1/source verifies (docs/signing.md).
	AllowedSigners string `yaml:"allowedSigners"`
	OpenPGPKeyring string `yaml:"openpgpKeyring"`
	// Notation makes gates and admission count Notary Project
	// signatures verified under a Notation trust policy and trust store.
	Notation Notation `yaml:"notation"`
}

// Notation is a Notation trust policy and trust store (docs/signing.md,
// "Notary Project signatures").
type Notation struct {
	// TrustPolicy is a Notation trust policy document
	// (trustpolicy.json format); empty: Notation signatures count for
	// nothing.
	TrustPolicy string `yaml:"trustPolicy"`
	// TrustStore is a Notation trust store directory, holding
	// x509/ca/NAME/, x509/signingAuthority/NAME/ and x509/tsa/NAME/.
	TrustStore string `yaml:"trustStore"`
	// Registry is the registry host[:port] the policy's registryScopes
	// name this server by; default the first admission.registries entry
	// (else only "*" scopes apply).
	Registry string `yaml:"registry"`
}

// CA configures the certificate authority that issues short-lived
// code-signing certificates to workloads with an OIDC token of a trusted
// issuer (auth.oidc), served at Fulcio's API (docs/keyless.md). Off unless
// Key is set.
type CA struct {
	// Key is the CA's private key: an encrypted key file ('custody ca
	// create') or a pkcs11: URI of a key on a PKCS #11 token.
	Key string `yaml:"key"`
	// Certificate is the CA's certificate chain (PEM, its own first).
	Certificate string `yaml:"certificate"`
	// PassphraseFile holds the key file's passphrase; default: the
	// CUSTODY_CA_PASSWORD variable.
	PassphraseFile string `yaml:"passphraseFile"`
	// Validity of the certificates issued (default 10m, at most 24h).
	Validity Duration `yaml:"validity"`
	// CTLog signs the certificate timestamps embedded in every
	// certificate issued; off unless its key is set.
	CTLog CTLog `yaml:"ctlog"`
	// Retired lists earlier CA certificates: trusted_root.json keeps them
	// with a window closed at Until, so what they issued keeps verifying.
	Retired []RetiredCA `yaml:"retired"`
	// URL is the server's external base URL (https://custody.example) in
	// signing_config.json and trusted_root.json; default: the scheme and
	// host a request for them came by.
	URL string `yaml:"url"`
}

// CTLog configures the certificate transparency log whose signed
// certificate timestamps the CA embeds (docs/keyless.md).
type CTLog struct {
	// Key is the log's private key: an encrypted key file ('custody ca
	// ctlog create', the CA's passphrase) or a pkcs11: URI.
	Key string `yaml:"key"`
	// Start is when the log began signing, the start of its window in
	// trusted_root.json; default: the CA certificate's notBefore.
	Start time.Time `yaml:"start"`
	// Retired lists earlier log keys, kept in trusted_root.json with
	// their closed windows.
	Retired []RetiredCTLog `yaml:"retired"`
}

// RetiredCA is a CA certificate no longer issuing.
type RetiredCA struct {
	// Certificate is its chain (PEM, its own first).
	Certificate string `yaml:"certificate"`
	// Until is when it stopped issuing (its window starts at its notBefore).
	Until time.Time `yaml:"until"`
}

// RetiredCTLog is a CT log key no longer signing.
type RetiredCTLog struct {
	// PublicKey is its PEM public key ('custody ca ctlog create' prints it).
	PublicKey string `yaml:"publicKey"`
	// Start and Until bound when it signed.
	Start time.Time `yaml:"start"`
	Until time.Time `yaml:"until"`
}

// Rekor configures the transparency log for signing events, served at
// Rekor v2's API (docs/keyless.md). Off unless Key is set.
type Rekor struct {
	// Key is the log's ECDSA P-256 key: an encrypted key file ('custody
	// rekor create') or a pkcs11: URI of a key on a PKCS #11 token.
	Key string `yaml:"key"`
	// PassphraseFile holds the key file's passphrase; default: the
	// CUSTODY_REKOR_PASSWORD variable.
	PassphraseFile string `yaml:"passphraseFile"`
	// URL is the server's base URL as signers and verifiers reach it
	// (default ca.url; trusted_root.json gives verifiers the server's
	// base URL, whose host name must be this one's). Its host name is the
	// origin of the log's checkpoints, as sigstore-go expects: keep it
	// once entries are logged.
	URL string `yaml:"url"`
}

// Signing configures the server's signing key ring and what it signs.
type Signing struct {
	// Keys is the key ring directory (default <data>/keys, where 'custody
	// key create' puts it). Its trust root is served at /api/v1/keys.
	Keys string `yaml:"keys"`
	// PassphraseFile holds the active key's passphrase; default: the
	// CUSTODY_KEY_PASSWORD variable. Without one the server signs nothing.
	PassphraseFile string `yaml:"passphraseFile"`
	// OnPush lists repository patterns (internal/repopattern) whose
	// artifacts the server signs when a client sets a tag on them.
	OnPush []string `yaml:"onPush"`
	// BuilderID names the server as the builder in the SLSA provenance it
	// writes from OIDC claims (platform mode).
	BuilderID string `yaml:"builderID"`
	// SBOMOnPush also generates an SBOM (SPDX 2.3) of every image signed
	// on push and attaches it as an attestation signed by the server.
	SBOMOnPush bool `yaml:"sbomOnPush"`
	// Timestamp configures the key ring's RFC 3161 time-stamp authority,
	// served at /api/v1/timestamp when the ring has one ('custody key tsa
	// create'; docs/signing.md, "Trusted time").
	Timestamp Timestamping `yaml:"timestamp"`
}

// Timestamping configures the time-stamp authority's tokens.
type Timestamping struct {
	// Policy is the TSA policy OID (dotted) every token names; default
	// internal/timestamp.DefaultPolicy.
	Policy string `yaml:"policy"`
	// Accuracy is the accuracy every token claims; default 1s.
	Accuracy Duration `yaml:"accuracy"`
}

// Auth configures authentication and access control.
type Auth struct {
	// Mode is "builtin" (the default: accounts, tokens, OIDC) or "none"
	// (no authentication: every request may do everything; refused unless
	// addr is a loopback address).
	Mode string `yaml:"mode"`
	// Service is the Docker token flow's service name and the issuer and
	// audience of the tokens custody issues (default "custody").
	Service string `yaml:"service"`
	// Realm is the token endpoint's external URL announced in
	// WWW-Authenticate; default: the request's scheme and host + /auth/token.
	Realm string `yaml:"realm"`
	// TokenTTL is the lifetime of the tokens the token endpoint issues
	// (default 5m).
	TokenTTL Duration `yaml:"tokenTTL"`
	// LoginFailures is how many failed password sign-ins for one account
	// name within LoginWindow lock that name (and only it) out until the
	// window has passed (defaults 10 and 1m).
	LoginFailures int      `yaml:"loginFailures"`
	LoginWindow   Duration `yaml:"loginWindow"`
	// LoginAddressFailures is how many failed sign-ins from one client
	// address within LoginWindow make its further failures 429 (default
	// 100: everyone behind one NAT shares the address). A correct password
	// of an account that is not locked itself still signs in.
	LoginAddressFailures int `yaml:"loginAddressFailures"`
	// Grants bind roles to subjects on repository patterns, next to the
	// grants stored through the API.
	Grants []Grant `yaml:"grants"`
	// OIDC lists the trusted OIDC issuers (e.g. a CI system's workload
	// identity tokens).
	OIDC []OIDCIssuer `yaml:"oidc"`
	// MFA is the multi-factor sign-in policy of local accounts.
	MFA MFA `yaml:"mfa"`
}

// MFA is the multi-factor policy (docs/security.md, "Multi-factor
// sign-in").
type MFA struct {
	// Roles are the roles whose holders must sign in with a second factor
	// (default admin and promoter; [] for none). A holder without one may
	// sign in only to enrol.
	Roles []string `yaml:"roles"`
	// StepUp is how recent a second factor dangerous actions need
	// (default 5m).
	StepUp Duration `yaml:"stepUp"`
	// OTPFailures wrong one-time codes for one account within
	// auth.loginWindow lock its codes out for the rest of it (default 5).
	OTPFailures int `yaml:"otpFailures"`
}

// Grant binds Role to each of Subjects ("user:NAME", "group:NAME",
// "anonymous", "authenticated") on each of Repositories (patterns).
type Grant struct {
	Subjects     []string `yaml:"subjects"`
	Role         string   `yaml:"role"`
	Repositories []string `yaml:"repositories"`
}

// OIDCIssuer is a trusted OIDC issuer and the rules that map its tokens'
// claims to identities.
type OIDCIssuer struct {
	// Issuer is the issuer URL (the tokens' iss claim).
	Issuer string `yaml:"issuer"`
	// Audience is the audience the tokens must carry (default: auth.service).
	Audience string `yaml:"audience"`
	// JWKSURL is where the issuer's keys are fetched; default: from the
	// issuer's /.well-known/openid-configuration.
	JWKSURL string `yaml:"jwksURL"`
	// Rules map claims to identities; the first matching rule wins, and a
	// token no rule matches is refused.
	Rules []OIDCRule `yaml:"rules"`
	// ClientID, with RedirectURL, offers browser sign-in with this issuer
	// on the web interface (authorization code flow with PKCE); its ID
	// tokens carry ClientID as their audience.
	ClientID string `yaml:"clientID"`
	// ClientSecretFile holds the client's secret, if the issuer gave it
	// one (a public client with PKCE has none).
	ClientSecretFile string `yaml:"clientSecretFile"`
	// RedirectURL is the sign-in callback as the issuer knows it:
	// https://custody.example.com/signin/oidc/callback.
	RedirectURL string `yaml:"redirectURL"`
	// Name is what the sign-in button says ("Sign in with NAME");
	// default: the issuer's host.
	Name string `yaml:"name"`
}

// OIDCRule maps tokens whose claims match to an identity.
type OIDCRule struct {
	// Claims: claim name -> glob ('*' any run of characters) every one of
	// which must match the claim's string value.
	Claims map[string]string `yaml:"claims"`
	// Subject is the identity's name, with {claim} replaced by claim values
	// (e.g. "github:{repository}@{ref}").
	Subject string `yaml:"subject"`
	// Groups the identity belongs to (grants to group:NAME apply).
	Groups []string `yaml:"groups"`
	// Grants are roles the identity holds directly.
	Grants []RoleGrant `yaml:"grants"`
}

// RoleGrant is a role on repository patterns.
type RoleGrant struct {
	Role         string   `yaml:"role"`
	Repositories []string `yaml:"repositories"`
}

// S3 configures the S3-compatible object store of the blob backend.
type S3 struct {
	// Endpoint is the store's URL: https://s3.eu-west-2.amazonaws.com,
	// http://minio.internal:9000, ...
	Endpoint string `yaml:"endpoint"`
	// Region is the bucket's region; empty lets the client look it up.
	Region string `yaml:"region"`
	// Redirect answers blob downloads with a 307 to a presigned URL of the
	// object store, which then serves the bytes (clients must reach it).
	Redirect bool `yaml:"redirect"`
	// RedirectExpiry is the presigned URLs' lifetime (default 5m).
	RedirectExpiry Duration `yaml:"redirectExpiry"`
}

// Audit configures the tamper-evident audit log.
type Audit struct {
	// CheckpointInterval is how often a checkpoint is signed when the log
	// has grown (default 10s).
	CheckpointInterval Duration `yaml:"checkpointInterval"`
	// Origin names the log in its checkpoints and key (default
	// "custody/audit"). It is fixed when the key is created.
	Origin string `yaml:"origin"`
	// DisableUnsafe stops appending events to the tamper-evident log (they
	// still reach the structured log). It exists to measure the log's cost
	// (bench/cmd/custody-bench -peer custody-audit-off); never set it in
	// production: changes would leave no verifiable trace.
	DisableUnsafe bool `yaml:"disableUnsafe"`
}

// Policy is one repository policy.
type Policy struct {
	// Repository is a repository pattern (internal/repopattern): '*'
	// matches within one path segment, '**' any number of segments, none
	// included (e.g. "team/*", "team/**", "**").
	Repository string `yaml:"repository"`
	// ImmutableTags are tag patterns that may not move or be deleted once
	// set: globs ("v*") or, when starting with '^', regular expressions.
	// Absent: the default semver-like version tags; [] disables.
	ImmutableTags []string `yaml:"immutableTags"`
	// NoDelete refuses every manifest, tag and blob deletion.
	NoDelete bool `yaml:"noDelete"`
	// AllowedMediaTypes, when not empty, lists the manifest, config and
	// layer media types accepted.
	AllowedMediaTypes []string `yaml:"allowedMediaTypes"`
	// MaxArtifactSize, when positive, caps the sum of config and layer sizes.
	MaxArtifactSize int64 `yaml:"maxArtifactSize"`
	// Retention, when set, locks every new manifest for Period in Mode.
	Retention *DefaultRetention `yaml:"retention"`
}

// DefaultRetention is a repository's default retention lock.
type DefaultRetention struct {
	Mode   string   `yaml:"mode"` // "governance" or "compliance"
	Period Duration `yaml:"period"`
}

// Retention configures retention enforcement.
type Retention struct {
	// AllowGovernanceBypass grants every client the permission to bypass
	// governance-mode retention (with the X-Custody-Bypass-Governance
	// header) when authentication is off (auth mode none), where there
	// are no accounts to grant it to. With authentication on, the
	// permission comes only from the governance-bypass role and setting
	// this is an error. Default false.
	AllowGovernanceBypass bool `yaml:"allowGovernanceBypass"`
}

// GC configures garbage collection.
type GC struct {
	// Schedule runs GC inside serve every Schedule (e.g. 24h); 0, the
	// default, disables it.
	Schedule Duration `yaml:"schedule"`
	// Grace: blobs written and manifests created less than Grace ago are
	// never collected (default 1h).
	Grace Duration `yaml:"grace"`
	// UntaggedManifests are the repository patterns where untagged,
	// unreferenced manifests are collected: '*' within one path segment,
	// "prefix/**" prefix and everything below it, "**" everywhere
	// (internal/repopattern). Default: none.
	UntaggedManifests []string `yaml:"untaggedManifests"`
}

// Scrub configures scheduled integrity checks.
type Scrub struct {
	// Schedule runs a scrub inside serve every Schedule; 0, the default,
	// disables it.
	Schedule Duration `yaml:"schedule"`
	// Buckets splits blob re-hashing over this many runs: each run hashes
	// the next of Buckets digest buckets (restic's --read-data-subset
	// n/t), references are always checked. Default 1: hash everything.
	Buckets int `yaml:"buckets"`
}

// Log configures log/slog output.
type Log struct {
	Format string `yaml:"format"` // "text" (default) or "json"
	Level  string `yaml:"level"`  // "debug", "info" (default), "warn", "error"
}

// Uploads configures upload sessions.
type Uploads struct {
	// TTL is how long an idle upload session is kept before it is purged
	// (default 24h).
	TTL Duration `yaml:"ttl"`
}

// Limits caps request sizes and bounds what one client can make the
// server hold (connections, time), what a frozen backend can make it wait,
// and the disk space kept free.
type Limits struct {
	// MaxManifestBytes caps manifest bodies (default 4 MiB).
	MaxManifestBytes int64 `yaml:"maxManifestBytes"`
	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout Duration `yaml:"readHeaderTimeout"`
	// IdleTimeout closes a keep-alive connection idle for this long
	// (default 120s).
	IdleTimeout Duration `yaml:"idleTimeout"`
	// BodyWindow and BodyMinBytes bound how slowly a request body may
	// arrive: every BodyWindow (default 30s) at least BodyMinBytes (default
	// 32768) must arrive, or the body is complete, or the connection is
	// closed. A large upload at any useful speed is unaffected; a client
	// trickling bytes is cut off within one window.
	BodyWindow   Duration `yaml:"bodyWindow"`
	BodyMinBytes int64    `yaml:"bodyMinBytes"`
	// MaxConnsPerClient caps the open connections from one client IP
	// address, loopback included (default 256; 0: no cap). Behind a reverse
	// proxy every client shares the proxy's address: raise or disable the
	// cap there and limit clients at the proxy.
	MaxConnsPerClient int `yaml:"maxConnsPerClient"`
	// BackendTimeout bounds how long a call to PostgreSQL or the object
	// store may go without progress (default 30s): every read and write on
	// their connections must complete within it, so a frozen engine fails
	// requests instead of hanging them. An S3 request is tried at most
	// twice.
	BackendTimeout Duration `yaml:"backendTimeout"`
	// DiskReserve is the free space, in bytes, kept on the data directory's
	// file system (default 1 GiB; 0 disables): below it uploads and pushes
	// are refused (507), while deletes and garbage collection go on. The
	// embedded stores only (SQLite or fs blobs).
	DiskReserve int64 `yaml:"diskReserve"`
}

// Duration is a time.Duration written as "30s", "24h" in YAML and env.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 30s, 24h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default returns the built-in configuration: the embedded store on loopback.
func Default() Config {
	return Config{
		Addr:    "127.0.0.1:5000",
		Data:    "./custody-data",
		Log:     Log{Format: "text", Level: "info"},
		Uploads: Uploads{TTL: Duration(24 * time.Hour)},
		Limits: Limits{
			MaxManifestBytes:  4 << 20,
			ReadHeaderTimeout: Duration(10 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			BodyWindow:        Duration(30 * time.Second),
			BodyMinBytes:      32 << 10,
			MaxConnsPerClient: 256,
			BackendTimeout:    Duration(30 * time.Second),
			DiskReserve:       1 << 30,
		},
		ShutdownTimeout: Duration(30 * time.Second),
		GC:              GC{Grace: Duration(time.Hour)},
		Scrub:           Scrub{Buckets: 1},
		Audit:           Audit{CheckpointInterval: Duration(10 * time.Second), Origin: "custody/audit"},
		Auth: Auth{Mode: "builtin", Service: "custody", TokenTTL: Duration(5 * time.Minute), LoginFailures: 10, LoginAddressFailures: 100, LoginWindow: Duration(time.Minute),
			MFA: MFA{Roles: []string{"admin", "promoter"}, StepUp: Duration(5 * time.Minute), OTPFailures: 5}},
		Proxy: Proxy{Header: "X-Forwarded-For"},
		Web:   Web{Session: WebSession{Idle: Duration(30 * time.Minute), Absolute: Duration(12 * time.Hour)}},
	}
}

// Load returns the defaults overlaid with the YAML file at path (if path is
// not empty) and then with CUSTODY_* variables from environ.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("reading config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := c.applyEnv(environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Env lists the environment variables the server reads, for 'serve
// --help' (internal/cli's TestServeHelpNamesEveryVariable keeps it
// complete). The last two are secrets the server reads itself, never from
// the configuration file.
var Env = []struct{ Name, Help string }{
	{"CUSTODY_CONFIG", "path of the YAML configuration file"},
	{"CUSTODY_ADDR", "listen address"},
	{"CUSTODY_DATA", "data directory of the embedded store"},
	{"CUSTODY_METADATA", "metadata backend: sqlite (default) or a postgres:// URL"},
	{"CUSTODY_BLOBS", "blob backend: fs (default) or s3://BUCKET[/PREFIX]"},
	{"CUSTODY_S3_ENDPOINT", "S3 endpoint URL (with CUSTODY_BLOBS=s3://...)"},
	{"CUSTODY_S3_REGION", "S3 region"},
	{"CUSTODY_LOG_FORMAT", "text or json"},
	{"CUSTODY_LOG_LEVEL", "debug, info, warn or error"},
	{"CUSTODY_UPLOAD_TTL", "idle upload sessions are purged after this duration"},
	{"CUSTODY_MAX_MANIFEST_BYTES", "largest manifest accepted"},
	{"CUSTODY_READ_HEADER_TIMEOUT", "longest time to read a request's headers"},
	{"CUSTODY_IDLE_TIMEOUT", "idle keep-alive connections are closed after this duration"},
	{"CUSTODY_BODY_WINDOW", "a request body must deliver CUSTODY_BODY_MIN_BYTES per window"},
	{"CUSTODY_BODY_MIN_BYTES", "least bytes of a request body per CUSTODY_BODY_WINDOW"},
	{"CUSTODY_MAX_CONNS_PER_CLIENT", "open connections allowed per client address (0: no cap)"},
	{"CUSTODY_BACKEND_TIMEOUT", "longest a PostgreSQL or S3 call may go without progress"},
	{"CUSTODY_DISK_RESERVE", "free bytes kept on the data directory; uploads refused below"},
	{"CUSTODY_SHUTDOWN_TIMEOUT", "how long shutdown waits for in-flight requests"},
	{"CUSTODY_READY_FILE", "write the bound address to this file once listening"},
	{"CUSTODY_AUTH", "builtin (default) or none (loopback addresses only)"},
	{"CUSTODY_AUDIT_DISABLE_UNSAFE", "true stops the tamper-evident audit log (benchmarks only)"},
	{"CUSTODY_TRUSTED_PROXIES", "comma-separated addresses or CIDRs of reverse proxies whose client-address header is believed"},
	{"CUSTODY_PROXY_HEADER", "the header those proxies set: X-Forwarded-For (default) or Forwarded"},
	{"CUSTODY_MFA_ROLES", "comma-separated roles that must sign in with a second factor (default admin,promoter; none for none)"},
	{"CUSTODY_MFA_STEP_UP", "how recent a second factor dangerous actions need (default 5m)"},
	{"CUSTODY_WEB_URL", "the web interface's external URL as browsers see it (https://registry.example.com); security keys and passkeys (WebAuthn) need it"},
	{"CUSTODY_WEB_SESSION_IDLE", "a web interface session ends after this long without a request (default 30m)"},
	{"CUSTODY_WEB_SESSION_ABSOLUTE", "a web interface session ends this long after signing in (default 12h)"},
	{"CUSTODY_KEY_PASSWORD", "passphrase of the server's signing key (signing on push, promotions); signing.passphraseFile replaces it"},
	{"CUSTODY_PKCS11_PIN", "PIN of the PKCS #11 token holding the server's signing key, unless its URI carries one"},
	{"CUSTODY_CA_PASSWORD", "passphrase of the workload certificate authority's key file (ca.key); ca.passphraseFile replaces it"},
	{"CUSTODY_REKOR_PASSWORD", "passphrase of the transparency log's key file (rekor.key); rekor.passphraseFile replaces it"},
}

func (c *Config) applyEnv(environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CUSTODY_") {
			env[k] = v
		}
	}
	for k, v := range env {
		var err error
		switch k {
		case "CUSTODY_CONFIG", "CUSTODY_READY_FILE":
			// Read by the serve command itself.
		case "CUSTODY_ADDR":
			c.Addr = v
		case "CUSTODY_DATA":
			c.Data = v
		case "CUSTODY_METADATA":
			c.Metadata = v
		case "CUSTODY_BLOBS":
			c.Blobs = v
		case "CUSTODY_S3_ENDPOINT":
			c.S3.Endpoint = v
		case "CUSTODY_S3_REGION":
			c.S3.Region = v
		case "CUSTODY_LOG_FORMAT":
			c.Log.Format = v
		case "CUSTODY_LOG_LEVEL":
			c.Log.Level = v
		case "CUSTODY_MFA_ROLES":
			c.Auth.MFA.Roles = []string{}
			if v != "none" && v != "" {
				c.Auth.MFA.Roles = strings.Split(v, ",")
			}
		case "CUSTODY_MFA_STEP_UP":
			err = setDuration(&c.Auth.MFA.StepUp, v)
		case "CUSTODY_UPLOAD_TTL":
			err = setDuration(&c.Uploads.TTL, v)
		case "CUSTODY_SHUTDOWN_TIMEOUT":
			err = setDuration(&c.ShutdownTimeout, v)
		case "CUSTODY_MAX_MANIFEST_BYTES":
			c.Limits.MaxManifestBytes, err = strconv.ParseInt(v, 10, 64)
		case "CUSTODY_READ_HEADER_TIMEOUT":
			err = setDuration(&c.Limits.ReadHeaderTimeout, v)
		case "CUSTODY_IDLE_TIMEOUT":
			err = setDuration(&c.Limits.IdleTimeout, v)
		case "CUSTODY_BODY_WINDOW":
			err = setDuration(&c.Limits.BodyWindow, v)
		case "CUSTODY_BODY_MIN_BYTES":
			c.Limits.BodyMinBytes, err = strconv.ParseInt(v, 10, 64)
		case "CUSTODY_MAX_CONNS_PER_CLIENT":
			c.Limits.MaxConnsPerClient, err = strconv.Atoi(v)
		case "CUSTODY_BACKEND_TIMEOUT":
			err = setDuration(&c.Limits.BackendTimeout, v)
		case "CUSTODY_DISK_RESERVE":
			c.Limits.DiskReserve, err = strconv.ParseInt(v, 10, 64)
		case "CUSTODY_AUTH":
			c.Auth.Mode = v
		case "CUSTODY_AUDIT_DISABLE_UNSAFE":
			c.Audit.DisableUnsafe, err = strconv.ParseBool(v)
		case "CUSTODY_TRUSTED_PROXIES":
			c.Proxy.Trusted = nil
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					c.Proxy.Trusted = append(c.Proxy.Trusted, p)
				}
			}
		case "CUSTODY_PROXY_HEADER":
			c.Proxy.Header = v
		case "CUSTODY_WEB_URL":
			c.Web.URL = v
		case "CUSTODY_WEB_SESSION_IDLE":
			err = setDuration(&c.Web.Session.Idle, v)
		case "CUSTODY_WEB_SESSION_ABSOLUTE":
			err = setDuration(&c.Web.Session.Absolute, v)
		default:
			// Other CUSTODY_* variables belong to client commands.
		}
		if err != nil {
			return fmt.Errorf("%s=%q: %v", k, v, err)
		}
	}
	return nil
}

func setDuration(d *Duration, v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("not a duration (use e.g. 30s, 24h)")
	}
	*d = Duration(x)
	return nil
}

// Validate checks the configuration and says what to fix.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q is not host:port (e.g. 127.0.0.1:5000)", c.Addr)
	}
	if c.Data == "" {
		return errors.New("data directory is empty: set data, CUSTODY_DATA or --data")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q: use text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Uploads.TTL <= 0 {
		return errors.New("uploads.ttl must be positive")
	}
	if c.Limits.MaxManifestBytes < 4<<20 {
		return fmt.Errorf("limits.maxManifestBytes %d is below the 4 MiB the OCI spec requires", c.Limits.MaxManifestBytes)
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if c.Audit.CheckpointInterval < 0 {
		return errors.New("audit.checkpointInterval must not be negative")
	}
	if c.ShutdownTimeout < 0 {
		return errors.New("shutdownTimeout must not be negative")
	}
	if c.GC.Schedule < 0 || c.Scrub.Schedule < 0 {
		return errors.New("gc.schedule and scrub.schedule must not be negative (0 disables)")
	}
	if c.GC.Grace < 0 {
		return errors.New("gc.grace must not be negative")
	}
	if c.Scrub.Buckets < 1 {
		return errors.New("scrub.buckets must be at least 1")
	}
	if c.Rekor.Key == "" && c.Rekor.URL != "" {
		return errors.New("rekor.url without rekor.key")
	}
	if c.Rekor.Key != "" && c.Rekor.URL == "" && c.CA.URL == "" {
		return errors.New("rekor needs url (or ca.url): its host name is the origin of the log's checkpoints")
	}
	if (c.CA.Key == "") != (c.CA.Certificate == "") {
		return errors.New("ca needs both key and certificate")
	}
	if c.CA.Validity < 0 || time.Duration(c.CA.Validity) > 24*time.Hour {
		return errors.New("ca.validity must be positive and at most 24h")
	}
	if c.CA.CTLog.Key != "" && c.CA.Key == "" {
		return errors.New("ca.ctlog needs the CA (ca.key and ca.certificate)")
	}
	for i, r := range c.CA.Retired {
		if r.Certificate == "" || r.Until.IsZero() {
			return fmt.Errorf("ca.retired[%d] needs certificate and until", i)
		}
	}
	for i, r := range c.CA.CTLog.Retired {
		if r.PublicKey == "" || r.Start.IsZero() || r.Until.IsZero() || r.Until.Before(r.Start) {
			return fmt.Errorf("ca.ctlog.retired[%d] needs publicKey, start and until (not before start)", i)
		}
	}
	if u := c.CA.URL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return fmt.Errorf("ca.url %q must be an http(s) URL", u)
	}
	if _, err := proxy.Parse(c.Proxy.Trusted, c.Proxy.Header); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if err := c.Auth.validate(c.Addr); err != nil {
		return err
	}
	if s := c.Web.Session; s.Idle <= 0 || s.Absolute <= 0 || s.Idle > s.Absolute {
		return fmt.Errorf("web.session.idle (%s) and web.session.absolute (%s) must be positive, idle at most absolute",
			time.Duration(s.Idle), time.Duration(s.Absolute))
	}
	if err := validateWebURL(c.Web.URL); err != nil {
		return err
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls needs both certFile and keyFile")
	}
	if err := repopattern.ValidateAll(c.GC.UntaggedManifests); err != nil {
		return fmt.Errorf("gc.untaggedManifests: %w", err)
	}
	if err := repopattern.ValidateAll(c.Signing.OnPush); err != nil {
		return fmt.Errorf("signing.onPush: %w", err)
	}
	projects := map[string]bool{}
	for i, p := range c.Projects {
		if p.Repositories == "" || len(p.Environments) == 0 {
			return fmt.Errorf("projects[%d] needs repositories and environments", i)
		}
		for _, n := range slices.Compact([]string{p.Repositories, cmp.Or(p.Name, p.Repositories)}) {
			if projects[n] {
				return fmt.Errorf("projects[%d]: %q names another project too: give each project its own name", i, n)
			}
			projects[n] = true
		}
		if err := repopattern.Validate(p.Repositories); err != nil {
			return fmt.Errorf("projects[%d].repositories: %w", i, err)
		}
		seen := map[string]bool{}
		for j, e := range p.Environments {
			if e.Name == "" || seen[e.Name] || strings.ContainsAny(e.Name, " /:@") {
				return fmt.Errorf("projects[%d].environments[%d]: name %q must be a unique tag-like word", i, j, e.Name)
			}
			seen[e.Name] = true
			if e.Approvals < 0 {
				return fmt.Errorf("projects[%d].environments[%d].approvals must not be negative", i, j)
			}
		}
	}
	for i, d := range c.Drills {
		if len(c.Projects) == 0 {
			return fmt.Errorf("drills[%d]: drills rebuild environments: declare projects first", i)
		}
		if d.Environment == "" {
			return fmt.Errorf("drills[%d].environment is empty", i)
		}
		if time.Duration(d.Interval) < MinDrillInterval {
			return fmt.Errorf("drills[%d].interval %s: give at least %s", i, time.Duration(d.Interval), MinDrillInterval)
		}
	}
	if err := validateFeeds(c.Feeds); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, p := range c.Policies {
		if p.Repository == "" {
			return fmt.Errorf("policies[%d].repository is empty (use e.g. \"team/*\" or \"**\")", i)
		}
		if err := repopattern.Validate(p.Repository); err != nil {
			return fmt.Errorf("policies[%d].repository: %w", i, err)
		}
		if seen[p.Repository] {
			return fmt.Errorf("policies[%d]: repository %q appears twice", i, p.Repository)
		}
		seen[p.Repository] = true
		if p.MaxArtifactSize < 0 {
			return fmt.Errorf("policies[%d].maxArtifactSize must not be negative", i)
		}
		if r := p.Retention; r != nil {
			if r.Mode != "governance" && r.Mode != "compliance" {
				return fmt.Errorf("policies[%d].retention.mode %q: use governance or compliance", i, r.Mode)
			}
			if r.Period <= 0 {
				return fmt.Errorf("policies[%d].retention.period must be positive", i)
			}
		}
	}
	return nil
}

// validateFeeds checks the feeds: each has a feed name (feedName), unique
// among them, an ecosystem and kind this version serves, an http(s)
// upstream when it is a proxy, and members when it is virtual: other
// feeds of its ecosystem that are not virtual themselves.
func validateFeeds(feeds []Feed) error {
	byName := map[string]Feed{}
	for i, f := range feeds {
		if !feedName(f.Name) {
			return fmt.Errorf("feeds[%d].name %q must be lowercase letters and digits, words joined by single '-' or '.' (e.g. npm-internal)", i, f.Name)
		}
		if _, taken := byName[f.Name]; taken {
			return fmt.Errorf("feeds[%d]: the name %q is taken by another feed", i, f.Name)
		}
		byName[f.Name] = f
		switch f.Ecosystem {
		case FeedEcosystemNPM, FeedEcosystemPyPI, FeedEcosystemGo, FeedEcosystemMaven, FeedEcosystemOCI:
		default:
			return fmt.Errorf("feeds[%d] (%s): ecosystem %q: use npm, pypi, go, maven or oci", i, f.Name, f.Ecosystem)
		}
		switch f.Kind {
		case "", FeedKindHosted:
			if f.Ecosystem == FeedEcosystemOCI {
				return fmt.Errorf("feeds[%d] (%s): an oci feed is a proxy (kind: proxy); images are pushed to /v2/ as usual", i, f.Name)
			}
		case FeedKindProxy, FeedKindVirtual:
		default:
			return fmt.Errorf("feeds[%d] (%s): kind %q: use hosted, proxy or virtual", i, f.Name, f.Kind)
		}
		if (f.Kind == FeedKindProxy) != (f.Upstream != "") {
			return fmt.Errorf("feeds[%d] (%s): upstream is required for a proxy feed and only allowed there", i, f.Name)
		}
		if f.Upstream != "" {
			u, err := url.Parse(f.Upstream)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				return fmt.Errorf("feeds[%d] (%s): upstream %q must be an http(s) URL without credentials, query or fragment (credentials go in upstreamAuth)", i, f.Name, f.Upstream)
			}
		}
		if a := f.UpstreamAuth; a != (FeedUpstreamAuth{}) {
			if f.Kind != FeedKindProxy {
				return fmt.Errorf("feeds[%d] (%s): upstreamAuth is only for proxy feeds", i, f.Name)
			}
			if (a.Username != "") != (a.PasswordEnv != "") || (a.PasswordEnv != "" && a.TokenEnv != "") {
				return fmt.Errorf("feeds[%d] (%s): upstreamAuth takes username with passwordEnv, or tokenEnv alone", i, f.Name)
			}
		}
		if (f.Kind == FeedKindVirtual) != (len(f.Members) > 0) {
			return fmt.Errorf("feeds[%d] (%s): members are required for a virtual feed and only allowed there", i, f.Name)
		}
		switch f.Firewall.BlockSeverity {
		case "", "low", "medium", "high", "critical":
		default:
			return fmt.Errorf("feeds[%d] (%s): firewall.blockSeverity %q: use low, medium, high or critical", i, f.Name, f.Firewall.BlockSeverity)
		}
	}
	for i, f := range feeds {
		seen, sawProxy := map[string]bool{}, false
		for _, m := range f.Members {
			mf, ok := byName[m]
			switch {
			case !ok:
				return fmt.Errorf("feeds[%d] (%s): member %q is not a feed", i, f.Name, m)
			case mf.Ecosystem != f.Ecosystem:
				return fmt.Errorf("feeds[%d] (%s): member %q is a %s feed, not %s", i, f.Name, m, mf.Ecosystem, f.Ecosystem)
			case mf.Kind == FeedKindVirtual:
				return fmt.Errorf("feeds[%d] (%s): member %q is virtual; members are hosted or proxy feeds", i, f.Name, m)
			case seen[m]:
				return fmt.Errorf("feeds[%d] (%s): member %q is listed twice", i, f.Name, m)
			case mf.Kind != FeedKindProxy && sawProxy:
				// An earlier member's name shadows a later one's: a proxy
				// before a hosted feed would let a public package take a
				// private package's name (dependency confusion).
				return fmt.Errorf("feeds[%d] (%s): hosted member %q comes after a proxy member; list hosted feeds first, so their names shadow the upstream's", i, f.Name, m)
			}
			seen[m] = true
			sawProxy = sawProxy || mf.Kind == FeedKindProxy
		}
	}
	return nil
}

func (l Limits) validate() error {
	if l.ReadHeaderTimeout <= 0 || l.IdleTimeout <= 0 || l.BodyWindow <= 0 || l.BackendTimeout <= 0 {
		return errors.New("limits.readHeaderTimeout, idleTimeout, bodyWindow and backendTimeout must be positive")
	}
	if l.BodyMinBytes < 1 {
		return errors.New("limits.bodyMinBytes must be at least 1")
	}
	if l.MaxConnsPerClient < 0 || l.DiskReserve < 0 {
		return errors.New("limits.maxConnsPerClient and limits.diskReserve must not be negative (0 disables)")
	}
	return nil
}

func (a Auth) validate(addr string) error {
	switch a.Mode {
	case "builtin":
	case "none":
		if !loopback(addr) {
			return fmt.Errorf("auth mode none on %s would let anyone on the network change and delete content: "+
				"it is only allowed on a loopback address (e.g. --addr 127.0.0.1:5000); remove --auth=none to use accounts and tokens", addr)
		}
	default:
		return fmt.Errorf("auth.mode %q: use builtin or none", a.Mode)
	}
	if a.Service == "" || strings.ContainsAny(a.Service, "\"\\ ") {
		return fmt.Errorf("auth.service %q must be a non-empty word", a.Service)
	}
	if a.TokenTTL <= 0 || a.TokenTTL > Duration(24*time.Hour) {
		return errors.New("auth.tokenTTL must be between 1s and 24h")
	}
	if a.LoginFailures < 1 || a.LoginWindow <= 0 {
		return errors.New("auth.loginFailures must be at least 1 and auth.loginWindow positive")
	}
	if a.MFA.StepUp <= 0 || a.MFA.StepUp > Duration(24*time.Hour) || a.MFA.OTPFailures < 1 {
		return errors.New("auth.mfa.stepUp must be between 1s and 24h and auth.mfa.otpFailures at least 1")
	}
	if a.LoginAddressFailures < a.LoginFailures {
		return fmt.Errorf("auth.loginAddressFailures (%d) must be at least auth.loginFailures (%d): many users may share one address",
			a.LoginAddressFailures, a.LoginFailures)
	}
	for i, g := range a.Grants {
		if len(g.Subjects) == 0 || g.Role == "" || len(g.Repositories) == 0 {
			return fmt.Errorf("auth.grants[%d] needs subjects, role and repositories", i)
		}
		if err := repopattern.ValidateAll(g.Repositories); err != nil {
			return fmt.Errorf("auth.grants[%d].repositories: %w", i, err)
		}
	}
	for i, o := range a.OIDC {
		if !strings.HasPrefix(o.Issuer, "https://") && !strings.HasPrefix(o.Issuer, "http://") {
			return fmt.Errorf("auth.oidc[%d].issuer %q must be an http(s) URL", i, o.Issuer)
		}
		if len(o.Rules) == 0 {
			return fmt.Errorf("auth.oidc[%d] (%s) has no rules: without one every token of the issuer is refused", i, o.Issuer)
		}
		if (o.ClientID == "") != (o.RedirectURL == "") || (o.ClientSecretFile != "" && o.ClientID == "") {
			return fmt.Errorf("auth.oidc[%d] (%s): browser sign-in needs both clientID and redirectURL (clientSecretFile only with them)", i, o.Issuer)
		}
		if o.RedirectURL != "" && !strings.HasPrefix(o.RedirectURL, "https://") && !strings.HasPrefix(o.RedirectURL, "http://") {
			return fmt.Errorf("auth.oidc[%d].redirectURL %q must be an http(s) URL", i, o.RedirectURL)
		}
		for j, r := range o.Rules {
			if r.Subject == "" {
				return fmt.Errorf("auth.oidc[%d].rules[%d].subject is empty (e.g. \"github:{repository}\")", i, j)
			}
			// Local user names have no ':', so a subject with a fixed
			// prefix holding one can never be taken for a local user,
			// whatever the token's claims say.
			if prefix, _, _ := strings.Cut(r.Subject, "{"); !strings.Contains(prefix, ":") {
				return fmt.Errorf("auth.oidc[%d].rules[%d].subject %q must start with a fixed prefix holding ':' before any {claim} (e.g. \"github:{repository}\"), so no token is named like a local user", i, j, r.Subject)
			}
		}
	}
	return nil
}

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateWebURL checks web.url: empty, or an origin (http or https, a
// host name, an optional port, no path, query or credentials). WebAuthn
// needs a host name: browsers refuse an IP address as relying party ID.
func validateWebURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("web.url %q must be an origin such as https://registry.example.com (scheme, host, optional port)", raw)
	}
	if net.ParseIP(u.Hostname()) != nil {
		return fmt.Errorf("web.url %q: WebAuthn needs a host name, not an IP address (browsers refuse it as relying party ID)", raw)
	}
	return nil
}

// feedName reports whether name may name a feed: at most 64 lowercase
// letters and digits, words joined by single '-' or '.'. Every such name
// is one valid repository name component (the feed's packages live in
// repositories under it), and the rule needs no registry code here.
func feedName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	prev := byte('-')
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
		case c == '-' || c == '.':
			if prev == '-' || prev == '.' {
				return false
			}
		default:
			return false
		}
		prev = c
	}
	return prev != '-' && prev != '.'
}
