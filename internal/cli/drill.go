package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/bundle"
	"github.com/custody-dev/custody/internal/drill"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/promotion"
)

// DrillReportFile is the report a drill writes next to its deployment
// manifests.
const DrillReportFile = "drill-report.json"

func newDrillCmd() *cobra.Command {
	var (
		f          apiFlags
		project    string
		at         string
		into       string
		manifests  string
		trustRoots []string
		noRecord   bool
		from       string
		fpr        string
		sourceHost string
	)
	cmd := &cobra.Command{
		Use:   "drill ENV [--from FILE] --into (DIR | REGISTRY)",
		Short: "Rebuild an environment's exact artifact set elsewhere and prove it complete",
		Long: `Restoration drill: rebuild what environment ENV of a project ran (now, or at
--at TIME: RFC 3339 or "2026-03-03 14:00", UTC) from the server's store into an
empty OCI image layout directory or another registry, then prove the copy
complete:

  - every artifact's digest, with its cosign signature and attestation
    images and its OCI referrers, copied by digest;
  - every manifest and blob of the copy re-hashed against its digest;
  - every signature and attestation verified again (internal/evidence: keys
    valid when they signed, attestations about this digest);
  - every dependency the artifacts' SBOMs and provenance pin by digest and
    that this server stores (base images, generic files) read back whole;
  - deployment manifests pinned by digest: kubernetes.yaml (a Deployment per
    image) and compose.yaml, in --manifests DIR (default DIR/deploy for a
    layout), with drill-report.json.

The drill runs here, in the CLI, with your credentials for both sides
(custody login to each); the server answers which digests ran, and records
the report: it signs a drill-report attestation (predicate
https://custody.dev/attestation/drill/v1) onto every drilled artifact and
writes an audit entry per artifact (--no-record: do not). Recording needs the
promoter role on the project's repositories.

--into is a directory when it is an absolute path, starts with ./ or ../,
exists as a directory or has no host (no '.' or ':' in its first element);
otherwise a registry, HOST[:PORT][/PREFIX], that receives the repositories
under their names.

Trust: the server's own keys (GET /api/v1/keys) plus every --trust-root
file (the CI keys that sign your artifacts). Exits non-zero when anything is
missing; -o json prints the report.

--from FILE rebuilds from an evidence bundle ('custody export') instead, with
no server and no network to the source: the bundle is opened against
--trust-root-fingerprint and its trust root decides what counts; the
environment's artifacts are those the bundle says ran in ENV. Dependencies
are looked for in the bundle when they name --source-host (the exporting
registry). The report is written, not recorded.`,
		Example: `  custody drill prod --into ./restore --trust-root ci-trust-root.json
  custody drill prod --project shop --at "2026-03-03 14:00" --into 10.0.0.9:5000/restore \
      --manifests ./restore-manifests --trust-root ci-trust-root.json -o json
  custody drill prod --from prod-0303.tar --trust-root-fingerprint 3f9a...c21e --into ./restore`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env := args[0]
			if from != "" {
				if project != "" || at != "" || len(trustRoots) > 0 {
					return errors.New("--from drills what the bundle holds: give no --project, --at or --trust-root (its trust root is checked against --trust-root-fingerprint)")
				}
				return drillFromBundle(cmd, f.output, env, from, fpr, sourceHost, into, manifests)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			q := url.Values{"environment": {env}}
			if project != "" {
				q.Set("project", project)
			}
			if at != "" {
				t, err := promotion.ParseTime(at)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				q.Set("at", t.Format(time.RFC3339Nano))
			}
			b, err := f.callRaw(cmd, http.MethodGet, "/api/v1/environments?"+q.Encode(), nil)
			if err != nil {
				return fmt.Errorf("asking what %s ran: %w", env, err)
			}
			var pe struct {
				Project     string                 `json:"project"`
				At          time.Time              `json:"at"`
				Deployments []promotion.Deployment `json:"deployments"`
			}
			if err := json.Unmarshal(b, &pe); err != nil {
				return fmt.Errorf("reading what %s ran: %w", env, err)
			}
			trust, err := drillTrust(cmd, &f, trustRoots)
			if err != nil {
				return err
			}
			host, err := serverHost(c.Base())
			if err != nil {
				return err
			}
			o := remoteOpts(cmd.Context())
			opts := drill.Options{Project: pe.Project, Environment: env, At: pe.At, Source: o.Remote, SourceHost: host,
				Into: into, Target: o.Remote, Manifests: manifests, Trust: trust}
			for _, d := range pe.Deployments {
				if d.Digest != "" {
					opts.Artifacts = append(opts.Artifacts, drill.Artifact{Repository: d.Repository, Digest: d.Digest})
				}
			}
			rep, err := drill.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if err := writeDrillReport(rep); err != nil {
				return err
			}
			var recorded any
			var recErr error
			if !noRecord && len(rep.Artifacts) > 0 {
				rb, err := f.callRaw(cmd, http.MethodPost, "/api/v1/drills", rep)
				if err != nil {
					recErr = fmt.Errorf("recording the drill report: %w", err)
				} else {
					recorded = json.RawMessage(rb)
				}
			}
			return errors.Join(printDrill(cmd, f.output, rep, recorded), recErr)
		},
	}
	f.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&project, "project", "", "project (its name or repositories pattern; default: the only one)")
	fl.StringVar(&at, "at", "", `rebuild what ran at this instant (RFC 3339 or "2026-03-03 14:00", UTC; default now)`)
	fl.StringVar(&into, "into", "", "empty directory (OCI image layout) or registry HOST[:PORT][/PREFIX] to rebuild into (required)")
	fl.StringVar(&manifests, "manifests", "", "directory for kubernetes.yaml, compose.yaml and drill-report.json (default: DIR/deploy; required with a registry)")
	fl.StringArrayVar(&trustRoots, "trust-root", nil, "trust-root file of further keys whose signatures count (repeatable)")
	fl.BoolVar(&noRecord, "no-record", false, "do not record the drill report on the server")
	fl.StringVar(&from, "from", "", "rebuild from this evidence bundle (custody export) instead of the server: no server, no network")
	fl.StringVar(&fpr, "trust-root-fingerprint", "", "with --from: the SHA-256 'custody key fingerprint' printed on the exporting server")
	fl.StringVar(&sourceHost, "source-host", "", "with --from: the exporting registry's host, so dependencies its artifacts pin there are looked for in the bundle")
	_ = cmd.MarkFlagRequired("into")
	return cmd
}

// drillFromBundle rebuilds env from an evidence bundle, served in process
// (bundle.Transport): the bundle is opened against the fingerprint, and
// its trust root (the exporting server's keys, and the keys it trusted)
// decides which evidence counts. The report is written next to the
// manifests, not recorded: the artifacts need not exist on any server.
func drillFromBundle(cmd *cobra.Command, output, env, file, fpr, sourceHost, into, manifests string) error {
	if output != outputText && output != outputJSON {
		return fmt.Errorf("invalid --output %q: use text or json", output)
	}
	if fpr == "" {
		return errors.New("--from needs --trust-root-fingerprint: the SHA-256 'custody key fingerprint' printed on the exporting server")
	}
	b, err := bundle.Open(filepath.Clean(file), fpr)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer b.Close()
	tr := b.Trust()
	trust, err := evidence.NewTrust(tr.TrustRoot)
	if err != nil {
		return err
	}
	trust.RecordsOnlyBy(tr.Recorders...)
	m := b.Manifest()
	if m.Request.MetadataOnly {
		return errors.New(file + " was exported with --metadata-only: a drill needs every layer")
	}
	opts := drill.Options{Project: m.Request.Project, Environment: env, At: m.Request.At,
		Source: []remote.Option{remote.WithTransport(b.Transport())}, SourceHost: bundle.Host, SourceAliases: []string{sourceHost},
		Into: into, Target: remoteOpts(cmd.Context()).Remote, Manifests: manifests, Trust: trust}
	for _, a := range b.Summary().Artifacts {
		in := m.Request.Environment == env
		for _, e := range a.Environments {
			in = in || e.Environment == env
		}
		if in {
			opts.Artifacts = append(opts.Artifacts, drill.Artifact{Repository: a.Repository, Digest: a.Digest})
		}
	}
	rep, err := drill.Run(cmd.Context(), opts)
	if err != nil {
		return err
	}
	rep.Source = "bundle " + file
	if err := writeDrillReport(rep); err != nil {
		return err
	}
	return printDrill(cmd, output, rep, nil)
}

// drillTrust trusts the server's keys (the only ones whose records
// count) and the keys of the trust-root files.
func drillTrust(cmd *cobra.Command, f *apiFlags, files []string) (*evidence.Trust, error) {
	b, err := f.callRaw(cmd, http.MethodGet, "/api/v1/keys", nil)
	if err != nil {
		return nil, fmt.Errorf("reading the server's keys: %w", err)
	}
	tr, err := key.ParseTrustRoot(b)
	if err != nil {
		return nil, fmt.Errorf("the server's keys: %w", err)
	}
	var own []string
	for _, k := range tr.Keys {
		own = append(own, k.ID)
	}
	for _, p := range files {
		b, err := readCapped(p, 1<<20)
		if err != nil {
			return nil, err
		}
		more, err := key.ParseTrustRoot(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		tr.Keys = append(tr.Keys, more.Keys...)
	}
	t, err := evidence.NewTrust(tr)
	if err != nil {
		return nil, err
	}
	return t.RecordsOnlyBy(own...), nil
}

// writeDrillReport writes the report next to the deployment manifests.
func writeDrillReport(rep *drill.Report) error {
	if len(rep.Manifests) == 0 {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(filepath.Dir(rep.Manifests[0]), DrillReportFile)
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return err
	}
	rep.Manifests = append(rep.Manifests, p)
	return nil
}

func printDrill(cmd *cobra.Command, output string, rep *drill.Report, recorded any) error {
	if output == outputJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			*drill.Report
			Recorded any `json:"recorded,omitempty"`
		}{rep, recorded}); err != nil {
			return err
		}
	} else {
		printDrillText(cmd.OutOrStdout(), rep, recorded != nil)
	}
	if !rep.OK {
		return fmt.Errorf("drill of %s: %d thing(s) missing", rep.Environment, len(rep.Missing))
	}
	return nil
}

func printDrillText(w io.Writer, rep *drill.Report, recorded bool) {
	when := "now"
	if !rep.At.IsZero() {
		when = rep.At.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "drill of %s (project %s, as at %s) from %s into %s\n", rep.Environment, orNothing(rep.Project), when, rep.Source, rep.Into)
	for _, a := range rep.Artifacts {
		mark := "ok  "
		if len(a.Problems) > 0 {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s@%s: %d manifest(s), %d blob(s) re-hashed (%d bytes), %d signature(s), %d attestation(s)\n",
			mark, a.Repository, a.Digest, a.Manifests, a.Blobs, a.Bytes, a.Signatures, a.Attestations)
		fmt.Fprintf(w, "       now at %s\n", a.Reference)
	}
	for _, d := range rep.Dependencies {
		switch {
		case !d.Stored:
			fmt.Fprintf(w, "  --   dependency %s (%s): not stored here, not checked\n", d.URI, d.Digest)
		case d.Retrievable:
			fmt.Fprintf(w, "  ok   dependency %s (%s) retrievable\n", d.URI, d.Digest)
		default:
			fmt.Fprintf(w, "  FAIL dependency %s (%s): %s\n", d.URI, d.Digest, d.Problem)
		}
	}
	for _, m := range rep.Manifests {
		fmt.Fprintf(w, "  wrote %s\n", m)
	}
	fmt.Fprintf(w, "took %.1fs\n", rep.Seconds)
	if recorded {
		fmt.Fprintln(w, "recorded: signed drill report attached, audit entries written")
	}
	if rep.OK {
		fmt.Fprintln(w, "complete")
		return
	}
	fmt.Fprintln(w, "INCOMPLETE:")
	for _, m := range rep.Missing {
		fmt.Fprintln(w, "  - "+strings.TrimSpace(m))
	}
}

// withLastDrill adds "drill" (GET /api/v1/drills: the environment's last
// drill and last successful one) to a project-wide environment answer;
// the answer is unchanged when the server knows no drills (no projects,
// an older server).
func withLastDrill(cmd *cobra.Command, f *apiFlags, b []byte) []byte {
	var st map[string]json.RawMessage
	var pe struct{ Project, Environment string }
	if json.Unmarshal(b, &st) != nil || json.Unmarshal(b, &pe) != nil {
		return b
	}
	q := url.Values{"environment": {pe.Environment}, "project": {pe.Project}}
	d, err := f.callRaw(cmd, http.MethodGet, "/api/v1/drills?"+q.Encode(), nil)
	if err != nil {
		return b
	}
	st["drill"] = d
	out, err := json.Marshal(st)
	if err != nil {
		return b
	}
	return out
}

// printLastDrill prints the time since the environment's last successful
// drill, from withLastDrill's field.
func printLastDrill(w io.Writer, b []byte) {
	var st struct {
		Drill *struct {
			Last        time.Time `json:"last"`
			LastOK      bool      `json:"lastOK"`
			LastSuccess time.Time `json:"lastSuccess"`
		} `json:"drill"`
	}
	if json.Unmarshal(b, &st) != nil || st.Drill == nil {
		return
	}
	d := st.Drill
	switch {
	case d.LastSuccess.IsZero():
		fmt.Fprintln(w, "last successful drill: never (custody drill)")
	default:
		fmt.Fprintf(w, "last successful drill: %s (%s ago)\n", d.LastSuccess.Format(time.RFC3339), time.Since(d.LastSuccess).Round(time.Second))
	}
	if !d.Last.IsZero() && !d.LastOK {
		fmt.Fprintf(w, "last drill %s FAILED\n", d.Last.Format(time.RFC3339))
	}
}
