package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/certidentity"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/notary"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/verification"
)

func newVerifyCmd() *cobra.Command {
	var (
		trustRoot string
		builder   string
		source    string
		require   []string
		output    string
		plainHTTP bool
		env       string
		server    string
		bundleF   string
		fpr       string
		nPolicy   string
		nStore    string
		ident     certidentity.Constraints
	)
	cmd := &cobra.Command{
		Use:   "verify (REF --trust-root FILE | --bundle FILE --trust-root-fingerprint SHA256)",
		Short: "Verify an artifact against a trust root, or an evidence bundle offline",
		Long: `Verify the artifact REF resolves to, using only the trust-root file (from
'custody key export-public --trust-root' or GET /api/v1/keys/trust-root) for
keys: no network access beyond the registry holding the artifact.

Checks:
  - at least one signature (cosign v2 tag or v3 bundle referrer) by a key
    of the trust root, which was valid when it signed (rotated keys keep
    verifying what they signed while valid; revoked keys are not in a trust
    root);
  - every attestation: a valid signature by a trusted key, an in-toto
    statement about this digest, a known predicate type;
  - provenance: the builder ID (--builder) and source repository
    (--source), exactly, when given;
  - --require sbom,provenance: a verified attestation of each kind;
  - with --notation-trust-policy FILE --notation-trust-store DIR: Notary
    Project (Notation) signatures, JWS or COSE, stored as referrers, are
    verified as 'notation verify' does under that trust policy (registry
    scopes, signatureVerification level, trustedIdentities) and trust store
    (x509/ca|signingAuthority|tsa/NAME/); one verified under a level that
    enforces authenticity (strict, permissive) counts as a signature.
    --require notation demands one. --trust-root is then optional;
  - keyless signatures and attestations (made with a short-lived
    certificate: custody sign --keyless, cosign sign with custody's or
    another Fulcio): the certificate chains to a certificate authority of
    the trust root (certificateAuthorities), and a time-stamp by one of its
    time-stamp authorities puts the signing inside the certificate's
    validity. They are relied upon only for a signer the identity
    constraints name, given as cosign's flags: --certificate-identity or
    --certificate-identity-regexp, and --certificate-oidc-issuer or
    --certificate-oidc-issuer-regexp (both required), optionally
    --certificate-github-workflow-repository/-ref/-name/-trigger/-sha, or,
    for any CI platform, --certificate-repository (source repository URI),
    --certificate-ref and --certificate-workflow (the build configuration
    URI). With constraints, one keyless signature meeting them is
    required; one by another identity is reported and not relied upon;
  - --env ENV: the digest is what ENV currently runs, it is not revoked and
    ENV's gate still holds (asks the server; deploy-time verification).

Prints a report and exits non-zero on any failure (-o json for scripts).

With --bundle FILE --trust-root-fingerprint SHA256, verify an evidence bundle
('custody export') with no server and no network. SHA256 is what 'custody key
fingerprint' printed on the server you trust. Checks: every file's SHA-256
against the manifest signed with the audit-log key; the trust root against
the fingerprint; the layout's manifests and blobs; the checkpoint's
signature, every audit entry's inclusion proof and the consistency proof to
the latest checkpoint; each artifact's signatures (by keys valid at signing
time), attestations (signature and subject), promotion, approval and
revocation records, and that the summary claims no more; the promotion
chain of each environment, in the audit log's order. Revocations are
reported. The report first says what the bundle was exported for (the
signed request: check it is what you asked for) and how many layers a
--metadata-only bundle left out (not verified). Each failure names what is
wrong (docs/bundle.md).`,
		Example: `  custody verify 127.0.0.1:5000/apps/web:1.4.2 --trust-root trust-root.json
  custody verify REF --trust-root trust-root.json --require sbom,provenance \
      --builder https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main \
      --source https://github.com/acme/app -o json
  custody verify REF --trust-root trust-root.json \
      --certificate-identity https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main \
      --certificate-oidc-issuer https://token.actions.githubusercontent.com
  custody verify REF --trust-root trust-root.json \
      --certificate-identity-regexp '^https://gitlab\.example/acme/' \
      --certificate-oidc-issuer https://gitlab.example --certificate-ref refs/heads/main
  custody verify REF --notation-trust-policy ~/.config/notation/trustpolicy.oci.json \
      --notation-trust-store ~/.config/notation/truststore --require notation
  custody verify --bundle prod-0303.tar --trust-root-fingerprint 3f9a...c21e`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != outputText && output != outputJSON {
				return fmt.Errorf("invalid --output %q: use text or json", output)
			}
			if bundleF != "" {
				if len(args) > 0 || trustRoot != "" || env != "" {
					return errors.New("--bundle verifies the bundle's artifacts: give no REF, --trust-root or --env")
				}
				return verifyBundle(cmd, bundleF, fpr, output)
			}
			if len(args) != 1 {
				return errors.New("give REF (or --bundle FILE)")
			}
			if (nPolicy == "") != (nStore == "") {
				return errors.New("give both --notation-trust-policy and --notation-trust-store, or neither")
			}
			if trustRoot == "" && nPolicy == "" {
				return errors.New("no --trust-root: give the trust-root file of the keys you trust ('custody key export-public --trust-root')")
			}
			for _, r := range require {
				if r != "sbom" && r != "provenance" && r != "notation" {
					return fmt.Errorf("invalid --require %q: use sbom, provenance and/or notation", r)
				}
				if r == "notation" && nPolicy == "" {
					return errors.New("--require notation needs --notation-trust-policy and --notation-trust-store")
				}
			}
			var tr key.TrustRoot
			if trustRoot != "" {
				b, err := readCapped(trustRoot, 1<<20)
				if err != nil {
					return err
				}
				if tr, err = key.ParseTrustRoot(b); err != nil {
					return err
				}
			}
			var nv *notary.Verifier
			if nPolicy != "" {
				var err error
				if nv, err = notary.LoadVerifier(nPolicy, nStore); err != nil {
					return err
				}
			}
			v, err := verification.NewWithNotation(tr, nv)
			if err != nil {
				return err
			}
			v.Builder, v.Source, v.Require = builder, source, require
			if !ident.IsZero() {
				if err := ident.Check(); err != nil {
					return err
				}
				v.Identity = ident
			}
			ctx := cmd.Context()
			o, err := remoteOpts(ctx).Pulling(ctx)
			if err != nil {
				return err
			}
			d, err := resolve(ctx, args[0], plainHTTP, o)
			if err != nil {
				return err
			}
			rep := v.Run(ctx, args[0], d, o)
			if env != "" {
				if server == "" {
					server = d.Context().Registry.Scheme() + "://" + d.Context().RegistryStr()
				}
				af := apiFlags{server: server, output: outputText}
				q := url.Values{"repository": {d.Context().RepositoryStr()}, "environment": {env}, "digest": {d.DigestStr()}}
				b, err := af.call(cmd, http.MethodGet, "/api/v1/environments?"+q.Encode(), nil, nil)
				if err != nil {
					return fmt.Errorf("checking environment %s: %w", env, err)
				}
				var st struct {
					Check promotion.Check `json:"check"`
				}
				if err := json.Unmarshal(b, &st); err != nil {
					return err
				}
				c := st.Check
				switch {
				case c.Revoked:
					rep.Failures = append(rep.Failures, "revoked")
				case !c.Promoted:
					rep.Failures = append(rep.Failures, fmt.Sprintf("not what %s runs (it runs %s): promote it first", env, orNothing(c.Current)))
				case !c.Gate.Pass:
					for _, r := range c.Gate.Failed() {
						rep.Failures = append(rep.Failures, fmt.Sprintf("the gate of %s no longer holds: %s: %s %s", env, r.Name, r.Message, r.Error))
					}
				}
				rep.OK = len(rep.Failures) == 0
			}
			if output == outputJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printReport(cmd.OutOrStdout(), rep)
			}
			if !rep.OK {
				return fmt.Errorf("verification of %s failed: %d problem(s)", d, len(rep.Failures))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&trustRoot, "trust-root", "", "trust-root file (required unless --notation-trust-policy is given)")
	fl.StringVar(&nPolicy, "notation-trust-policy", "", "Notation trust policy document (trustpolicy.json format): also verify Notary Project signatures")
	fl.StringVar(&nStore, "notation-trust-store", "", "Notation trust store directory (holding x509/ca/NAME/, x509/signingAuthority/NAME/, x509/tsa/NAME/)")
	fl.StringVar(&builder, "builder", "", "required provenance builder ID")
	fl.StringVar(&source, "source", "", "required provenance source repository URI")
	fl.StringSliceVar(&require, "require", nil, "required evidence: sbom, provenance (attestations), notation (a Notation signature)")
	fl.StringVarP(&output, "output", "o", outputText, "output format: text or json")
	fl.BoolVar(&plainHTTP, "plain-http", false, "talk plain HTTP to a registry that is not on loopback or a private address")
	fl.StringVar(&env, "env", "", "also require the digest to be what this environment runs, with its gate still holding (asks the server)")
	fl.StringVar(&server, "server", "", "custody server URL for --env (default: the registry of REF)")
	fl.StringVar(&bundleF, "bundle", "", "verify this evidence bundle offline (custody export)")
	fl.StringVar(&ident.Identity, "certificate-identity", "", "keyless: the signer's identity (certificate subject), exactly")
	fl.StringVar(&ident.IdentityRegexp, "certificate-identity-regexp", "", "keyless: a regular expression (RE2, unanchored) the signer's identity matches")
	fl.StringVar(&ident.Issuer, "certificate-oidc-issuer", "", "keyless: the OIDC issuer that vouched for the signer, exactly")
	fl.StringVar(&ident.IssuerRegexp, "certificate-oidc-issuer-regexp", "", "keyless: a regular expression the OIDC issuer matches")
	fl.StringVar(&ident.GitHubWorkflowRepository, "certificate-github-workflow-repository", "", "keyless: GitHub workflow repository (OWNER/REPO)")
	fl.StringVar(&ident.GitHubWorkflowRef, "certificate-github-workflow-ref", "", "keyless: GitHub workflow ref (refs/heads/main)")
	fl.StringVar(&ident.GitHubWorkflowName, "certificate-github-workflow-name", "", "keyless: GitHub workflow name")
	fl.StringVar(&ident.GitHubWorkflowTrigger, "certificate-github-workflow-trigger", "", "keyless: GitHub event that triggered the workflow (push)")
	fl.StringVar(&ident.GitHubWorkflowSHA, "certificate-github-workflow-sha", "", "keyless: GitHub commit the workflow ran on")
	fl.StringVar(&ident.Repository, "certificate-repository", "", "keyless: source repository URI (https://github.com/acme/app), any CI platform")
	fl.StringVar(&ident.Ref, "certificate-ref", "", "keyless: source ref (refs/heads/main), any CI platform")
	fl.StringVar(&ident.Workflow, "certificate-workflow", "", "keyless: build configuration URI (the workflow file at its ref), any CI platform")
	fl.StringVar(&fpr, "trust-root-fingerprint", "", "SHA-256 of the trusted trust.json, for --bundle ('custody key fingerprint')")
	return cmd
}

func printReport(w io.Writer, r verification.Report) {
	mark := func(ok bool) string {
		if ok {
			return "ok  "
		}
		return "FAIL"
	}
	fmt.Fprintf(w, "%s\n  digest %s\n", r.Reference, r.Digest)
	for _, s := range r.Signatures {
		line := fmt.Sprintf("  %s signature (%s) by key %s", mark(s.OK), s.Source, verification.Short(s.KeyID))
		if s.Identity != "" {
			line = fmt.Sprintf("  %s keyless signature (%s) by %s (issuer %s)", mark(s.OK), s.Source, s.Identity, s.Issuer)
		}
		if s.SignedAt != "" {
			line += " at " + s.SignedAt
			if s.TimeSource == "timestamp" {
				line += " (trusted time-stamp)"
			}
		}
		if s.Problem != "" {
			line += ": " + s.Problem
		}
		fmt.Fprintln(w, line)
	}
	for _, n := range r.Notation {
		line := fmt.Sprintf("  %s notation signature (%s) by %q", mark(n.OK), n.Format, n.Identity)
		if n.Policy != "" {
			line += fmt.Sprintf(" under policy %s (%s)", n.Policy, n.Level)
		}
		if n.SignedAt != "" {
			line += " at " + n.SignedAt
		}
		if n.Problem != "" {
			line += ": " + n.Problem
		}
		fmt.Fprintln(w, line)
	}
	for _, a := range r.Attestations {
		if a.Ignored {
			fmt.Fprintf(w, "  --   attestation by a key outside the trust root (ignored)\n")
			continue
		}
		line := fmt.Sprintf("  %s attestation %s", mark(a.OK), verification.OrUnknown(a.PredicateType))
		switch {
		case a.Identity != "":
			line += " by " + a.Identity
		case a.KeyID != "":
			line += " by key " + verification.Short(a.KeyID)
		}
		if a.Builder != "" {
			line += "; builder " + a.Builder
		}
		if a.Source != "" {
			line += "; source " + a.Source
		}
		if a.Problem != "" {
			line += ": " + a.Problem
		}
		fmt.Fprintln(w, line)
	}
	for _, q := range r.Requirements {
		fmt.Fprintf(w, "  %s required %s\n", mark(q.OK), q.Name)
	}
	if r.OK {
		fmt.Fprintln(w, "verified")
		return
	}
	fmt.Fprintln(w, "NOT verified:")
	for _, f := range r.Failures {
		fmt.Fprintln(w, "  - "+strings.TrimSpace(f))
	}
}
