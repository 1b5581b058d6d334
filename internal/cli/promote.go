package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/promotion"
)

// splitRef turns REPO@DIGEST or HOST/REPO@DIGEST (or :TAG, resolved by the
// caller) into repository and digest.
func splitRef(ref string) (repo, dgst string, err error) {
	d, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		return "", "", fmt.Errorf("%s: give the artifact by digest, REGISTRY/REPOSITORY@sha256:... (%v)", ref, err)
	}
	return d.Context().RepositoryStr(), d.DigestStr(), nil
}

// gateReport prints a gate result.
func gateReport(w io.Writer, res gate.Result) {
	for _, r := range res.Rules {
		mark := "ok  "
		if !r.Pass {
			mark = "FAIL"
		}
		line := fmt.Sprintf("  %s %s: %s", mark, r.Name, r.Message)
		if r.Error != "" {
			line += " (" + r.Error + ")"
		}
		fmt.Fprintln(w, line)
	}
}

func newPromoteCmd() *cobra.Command {
	var (
		f      apiFlags
		to     string
		reason string
	)
	cmd := &cobra.Command{
		Use:   "promote REF --to ENV",
		Short: "Promote an artifact digest to an environment, if its gate passes",
		Long: `Promote the artifact (by digest) to environment ENV of its project: the
server evaluates ENV's gate over the artifact's verified signatures and
attestations, vulnerability findings and prior promotions; on success it
records a signed promotion attestation and points the environment tag
(REPOSITORY:ENV) at the digest. Nothing is copied or rebuilt. On failure
nothing changes and the failed rules are printed. Environments that need
several approvers record this call as one approval until enough distinct
promoters have approved. Needs the promoter role.`,
		Example: `  custody promote 127.0.0.1:5000/apps/web@sha256:... --to test --reason "QA passed"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("give the environment with --to (e.g. --to prod)")
			}
			repo, dgst, err := splitRef(args[0])
			if err != nil {
				return err
			}
			b, err := f.callRaw(cmd, http.MethodPost, "/api/v1/promotions", promotion.Request{Repository: repo, Digest: dgst, Environment: to, Reason: reason})
			var out promotion.Outcome
			var refused struct {
				Detail  string            `json:"detail"`
				Outcome promotion.Outcome `json:"outcome"`
			}
			if err != nil {
				if json.Unmarshal(b, &refused) == nil && len(refused.Outcome.Gate.Rules) > 0 {
					if f.output == outputJSON {
						_, _ = cmd.OutOrStdout().Write(b)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "promotion of %s@%s to %s refused:\n", repo, dgst, to)
						gateReport(cmd.OutOrStdout(), refused.Outcome.Gate)
					}
					return fmt.Errorf("promotion refused: %s", refused.Detail)
				}
				return err
			}
			if err := json.Unmarshal(b, &out); err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				w := cmd.OutOrStdout()
				if out.Pending {
					fmt.Fprintf(w, "approval recorded: %d of %d distinct approvers for %s (%s)\n", len(out.Approvers), out.Needed, to, strings.Join(out.Approvers, ", "))
					return nil
				}
				fmt.Fprintf(w, "promoted %s@%s to %s (was %s)\n", repo, dgst, to, orNothing(out.Previous))
				gateReport(w, out.Gate)
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&to, "to", "", "environment to promote to")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the promotion and the audit log)")
	return cmd
}

func orNothing(s string) string {
	if s == "" {
		return "empty"
	}
	return s
}

func newRollbackCmd() *cobra.Command {
	var (
		f      apiFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:     "rollback ENV REPOSITORY",
		Short:   "Point an environment back at the digest it held before (recorded like a promotion)",
		Example: `  custody rollback prod apps/web --reason "error rate after 1.4.3"`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := f.call(cmd, http.MethodPost, "/api/v1/rollback", map[string]string{"repository": args[1], "environment": args[0], "reason": reason}, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var rec evidence.Record
				if err := json.Unmarshal(b, &rec); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rolled %s of %s back to %s (from %s)\n", args[0], args[1], rec.Digest, rec.Previous)
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&reason, "reason", "", "why")
	return cmd
}

func newRevokeCmd() *cobra.Command {
	var (
		f      apiFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:   "revoke REF --reason TEXT",
		Short: "Revoke an artifact: every later verify, gate, promotion and rollback to it fails",
		Long: `Revoke the artifact (REGISTRY/REPOSITORY@DIGEST): the server attaches a
signed revocation, after which custody verify, every gate, promotion,
rollback and the admission webhook refuse it. Needs the maintainer role.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return errors.New("give --reason: a revocation says why")
			}
			repo, dgst, err := splitRef(args[0])
			if err != nil {
				return err
			}
			if _, err := f.call(cmd, http.MethodPost, "/api/v1/revocations", map[string]string{"repository": repo, "digest": dgst, "reason": reason}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s@%s\n", repo, dgst)
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	return cmd
}

// newGateCmd is 'custody gate': promotion gates, evaluated by the server.
func newGateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "gate", Short: "Evaluate promotion gates"}
	cmd.AddCommand(newGateTestCmd())
	return cmd
}

// policyDeprecation is the notice 'custody policy test' prints: the command
// evaluates promotion gates, while "policy" names repository policies
// (internal/policy, /api/v1/policies). It stays for one release.
const policyDeprecation = `use "custody gate test" (promotion gates); "policy" names repository policies`

// newPolicyCmd is the deprecated alias 'custody policy test' of 'custody
// gate test': the same command, hidden from help, printing policyDeprecation
// on stderr when it runs.
func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Evaluate promotion gates (deprecated: use custody gate)", Deprecated: policyDeprecation}
	test := newGateTestCmd()
	test.Deprecated = policyDeprecation
	cmd.AddCommand(test)
	return cmd
}

// newGateTestCmd is 'gate test REF --env ENV'.
func newGateTestCmd() *cobra.Command {
	var (
		f   apiFlags
		env string
	)
	test := &cobra.Command{
		Use:   "test REF --env ENV",
		Short: "Evaluate ENV's gate on a stored artifact without promoting it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return errors.New("give --env")
			}
			repo, dgst, err := splitRef(args[0])
			if err != nil {
				return err
			}
			b, err := f.call(cmd, http.MethodPost, "/api/v1/gate", promotion.Request{Repository: repo, Digest: dgst, Environment: env}, nil)
			if err != nil {
				return err
			}
			var res struct {
				Gate gate.Result `json:"gate"`
			}
			if err := json.Unmarshal(b, &res); err != nil {
				return err
			}
			err = printJSONOrText(cmd, f.output, b, func() error {
				fmt.Fprintf(cmd.OutOrStdout(), "gate of %s for %s@%s:\n", env, repo, dgst)
				gateReport(cmd.OutOrStdout(), res.Gate)
				return nil
			})
			if err == nil && !res.Gate.Pass {
				err = fmt.Errorf("the gate of %s would refuse %s@%s", env, repo, dgst)
			}
			return err
		},
	}
	f.register(test.Flags())
	test.Flags().StringVar(&env, "env", "", "environment whose gate to evaluate")
	return test
}

func newAttestTestResultCmd() *cobra.Command {
	var (
		f      signerFlags
		result string
		suite  string
		runURL string
		passed []string
		failed []string
		envOut string
	)
	cmd := &cobra.Command{
		Use:     "test-result REF --result PASSED|FAILED",
		Short:   "Attach a signed in-toto test-result attestation (QA evidence for promotion gates)",
		Example: `  custody attest test-result REF --result PASSED --suite qa --url https://ci.example.org/runs/42`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch result {
			case gate.TestPassed, gate.TestWarned, gate.TestFailed:
			default:
				return fmt.Errorf("invalid --result %q: use PASSED, WARNED or FAILED", result)
			}
			pred := map[string]any{"result": result, "passedTests": nonEmpty(passed), "failedTests": nonEmpty(failed), "warnedTests": []string{}}
			if suite != "" {
				pred["configuration"] = []map[string]string{{"name": suite, "uri": "custody:test-suite/" + suite}}
			}
			if runURL != "" {
				pred["url"] = runURL
			}
			b, err := json.Marshal(pred)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			d, err := resolve(ctx, args[0], f.plainHTTP, remoteOpts(ctx))
			if err != nil {
				return err
			}
			return attach(cmd, &f, d, attest.PredicateTestResult, b, envOut)
		},
	}
	f.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&result, "result", "", "PASSED, WARNED or FAILED")
	fl.StringVar(&suite, "suite", "qa", "name of the test suite (configuration)")
	fl.StringVar(&runURL, "url", "", "link to the test run")
	fl.StringSliceVar(&passed, "passed", nil, "tests that passed")
	fl.StringSliceVar(&failed, "failed", nil, "tests that failed")
	fl.StringVar(&envOut, "envelope", "", "also write the signed DSSE envelope to this file")
	return cmd
}

func nonEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
