package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
)

func newServeCmd() *cobra.Command {
	var (
		configPath string
		addr       string
		data       string
		logFormat  string
		logLevel   string
		uploadTTL  time.Duration
		authMode   string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the custody registry",
		Long: `Run the custody registry.

With no configuration it serves the embedded store (blobs on the local
filesystem, metadata in SQLite) from ./custody-data on 127.0.0.1:5000.

Settings come from, in increasing precedence: built-in defaults, the YAML
file given by --config (or CUSTODY_CONFIG), CUSTODY_* environment variables,
and flags.

Environment variables:
` + envHelp() + `
Endpoints: / (the web interface for browsers: repositories, artifacts,
environments, audit, evidence, administration; docs/ui.md), /v2/ (OCI
distribution API), /api/v1/ (management API:
policies, retention, legal holds; see docs/retention.md), /metrics
(Prometheus), /healthz, /readyz, POST /api/v1/gc (garbage collection, as
'custody gc --server' calls it), /api/v1/audit/ (the tamper-evident audit
log: checkpoints, entries, proofs; see docs/audit.md and 'custody audit').
The log's signing key is created in <data>/log-key on first start, its
public key in <data>/log-key.pub. Also: /auth/token (the Docker token
flow), /api/v1/whoami|tokens|users|grants (accounts, docs/security.md),
/api/v1/keys (the trust root, public), /api/v2/signingCert and
/api/v2/trustBundle (the workload certificate authority, Fulcio's API, when
ca.key and ca.certificate are set; its certificates embed signed
certificate timestamps of the CT log when ca.ctlog.key is set),
/api/v1/trust/trusted_root.json and /api/v1/trust/signing_config.json
(Sigstore's trust documents, public; docs/keyless.md), /api/v1/provenance (platform SLSA
provenance), /api/v1/source (signed-commit verification against
promotion.allowedSigners and promotion.openpgpKeyring, docs/signing.md),
/api/v1/promotions|gate|rollback|revocations|environments
(docs/promotion.md), /api/v1/vulndb|violations|scan, /api/v1/scrub, and
/admission/<environment> (the Kubernetes admission webhook,
docs/admission.md).

Backends: metadata: postgres://... and blobs: s3://bucket/prefix (with
s3.endpoint and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) run replicas on
shared engines (docs/deploy.md); tls.certFile/keyFile serve HTTPS. gc.schedule and scrub.schedule in the
config file run garbage collection and scrub periodically (scrub also
re-verifies stored signatures and attestations against the key ring's
archived trust root); see docs/maintenance.md.

Repository policies and retention come from the config file's 'policies:'
list and the /api/v1/policies API. With none, version-like tags (v1.2.3,
1.2.3-rc.1, 1.2.3_build) are immutable in every repository. Bypassing
governance retention (with X-Custody-Bypass-Governance: <reason>, audited)
needs the governance-bypass role, which no other role includes, admin
neither; with --auth=none, 'retention.allowGovernanceBypass: true' gives it
to every client instead (with authentication on, that key is an error).

Authentication is on by default (docs/security.md). The first start creates
the account admin with a random password in <data>/admin-password (mode
0600), removed once that password is changed; sign in with 'custody login
-u admin'. Every file serve creates in the data directory is readable by
its owner only (directories 0700, files 0600). Clients use the Docker
token flow (/auth/token), Basic credentials, API tokens ('custody token create')
or OIDC workload-identity tokens of the issuers in auth.oidc. Roles (reader,
writer, promoter, maintainer, admin, auditor, governance-bypass) are
granted with 'custody grant' or auth.grants in the config file. Failed
sign-ins lock out the account name tried (auth.loginFailures) and throttle
the client address (auth.loginAddressFailures); behind a reverse proxy, list
it in proxy.trusted (CUSTODY_TRUSTED_PROXIES) so its X-Forwarded-For (or
Forwarded, proxy.header) names the client. --auth=none turns all of it off
and is refused unless --addr is a loopback address.

The limits section bounds what clients and engines can make the server
wait for (docs/registry.md): header, idle and request-body time (a body
must deliver limits.bodyMinBytes per limits.bodyWindow), connections per
client address (limits.maxConnsPerClient, loopback included), and calls to
PostgreSQL and S3 (limits.backendTimeout); /readyz answers 503 naming a
backend that does not answer. With the embedded stores, uploads are
refused with 507 while the data directory has less than limits.diskReserve
free; deletes and garbage collection go on.

SIGINT or SIGTERM shut down gracefully.`,
		Example: `  custody serve
  custody serve --addr 127.0.0.1:5001 --data /srv/custody --log-format json
  custody serve --auth=none      # a throwaway registry on loopback, no accounts
  CUSTODY_CONFIG=/etc/custody.yaml custody serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				configPath = os.Getenv("CUSTODY_CONFIG")
			}
			cfg, err := config.Load(configPath, os.Environ())
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("addr") {
				cfg.Addr = addr
			}
			if f.Changed("data") {
				cfg.Data = data
			}
			if f.Changed("log-format") {
				cfg.Log.Format = logFormat
			}
			if f.Changed("log-level") {
				cfg.Log.Level = logLevel
			}
			if f.Changed("upload-ttl") {
				cfg.Uploads.TTL = config.Duration(uploadTTL)
			}
			if f.Changed("auth") {
				cfg.Auth.Mode = authMode
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Log)
			srv, err := server.New(cfg, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return srv.Run(ctx, func(a net.Addr) {
				if p := os.Getenv("CUSTODY_READY_FILE"); p != "" {
					// Lets tests and scripts learn the bound port (for --addr :0).
					_ = os.WriteFile(p, []byte(a.String()), 0o600)
				}
			})
		},
	}
	d := config.Default()
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file")
	f.StringVar(&addr, "addr", d.Addr, "listen address (host:port)")
	f.StringVar(&data, "data", d.Data, "data directory of the embedded store")
	f.StringVar(&logFormat, "log-format", d.Log.Format, "log format: text or json")
	f.StringVar(&logLevel, "log-level", d.Log.Level, "log level: debug, info, warn or error")
	f.DurationVar(&uploadTTL, "upload-ttl", time.Duration(d.Uploads.TTL), "purge upload sessions idle for longer than this")
	f.StringVar(&authMode, "auth", d.Auth.Mode, "authentication: builtin (accounts, tokens, OIDC) or none (loopback addresses only)")
	return cmd
}

func envHelp() string {
	var b strings.Builder
	for _, e := range config.Env {
		fmt.Fprintf(&b, "  %-28s %s\n", e.Name, e.Help)
	}
	return b.String()
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
