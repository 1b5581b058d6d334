package cli

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/promotion"
)

func newEnvCmd() *cobra.Command {
	var (
		f       apiFlags
		project string
		at      string
	)
	cmd := &cobra.Command{
		Use:   "env ENV [REPOSITORY] [--project P] [--at TIME]",
		Short: "Show what an environment runs (or ran at a time), and the signed record that proves it",
		Long: `Show what environment ENV runs in REPOSITORY, every promotion into it,
and the signed promotion or rollback record that proves what runs (with its
audit-log entry). Without REPOSITORY, every repository of the project (the
only one, or --project P: a project's name or repositories pattern) that
ENV ever held something of, and what each runs.

--at TIME answers for an instant instead of now: RFC 3339
(2026-03-03T14:00:00Z, 2026-03-03T15:00:00+01:00), or "2026-03-03 14:00"
or 2026-03-03 in UTC. The answer comes from the signed promotion and
rollback records that count (by the server's own keys), never from the
tag alone. Needs pull on the repositories.`,
		Example: `  custody env prod apps/web
  custody env prod --at "2026-03-03 14:00"
  custody env prod --project shop --at 2026-03-03T14:00:00Z -o json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"environment": {args[0]}}
			if at != "" {
				t, err := promotion.ParseTime(at)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				q.Set("at", t.Format(time.RFC3339Nano))
			}
			if len(args) == 2 {
				if project != "" {
					return errors.New("give REPOSITORY or --project, not both")
				}
				q.Set("repository", args[1])
			} else if project != "" {
				q.Set("project", project)
			}
			b, err := f.call(cmd, http.MethodGet, "/api/v1/environments?"+q.Encode(), nil, nil)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				b = withLastDrill(cmd, &f, b)
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				w := cmd.OutOrStdout()
				if len(args) == 2 {
					return printEnvironment(w, b, at != "")
				}
				if err := printProjectEnvironment(w, b); err != nil {
					return err
				}
				printLastDrill(w, b)
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&project, "project", "", "project (name or repositories pattern) when there are several and no REPOSITORY is given")
	cmd.Flags().StringVar(&at, "at", "", `instant to answer for: RFC 3339, or "2026-03-03 14:00" (UTC); default now`)
	return cmd
}

// printEnvironment prints one repository's environment answer.
func printEnvironment(w io.Writer, b []byte, past bool) error {
	var st struct {
		Repository  string
		Environment string
		Current     string
		At          time.Time
		History     []struct {
			Digest string
			At     time.Time
		}
		Deployment *promotion.Deployment
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	if past {
		dep := cmp.Or(st.Deployment, &promotion.Deployment{})
		fmt.Fprintf(w, "at %s %s of %s ran %s\n", st.At.Format(time.RFC3339), st.Environment, st.Repository, orNothing(dep.Digest))
		printProof(w, dep)
		return nil
	}
	fmt.Fprintf(w, "%s of %s runs %s\n", st.Environment, st.Repository, orNothing(st.Current))
	if st.Deployment != nil {
		printProof(w, st.Deployment)
	}
	for _, h := range st.History {
		fmt.Fprintf(w, "  %s  %s\n", h.At.Format(time.RFC3339), h.Digest)
	}
	return nil
}

// printProof names the record that proves a deployment.
func printProof(w io.Writer, d *promotion.Deployment) {
	if d.Record == nil {
		fmt.Fprintln(w, "  no promotion record that counts proves anything ran")
		return
	}
	what := "promotion"
	if d.Record.Rollback {
		what = "rollback"
	}
	fmt.Fprintf(w, "  proven by the signed %s record of %s by %s (audit entry %s)\n", what, d.Since.Format(time.RFC3339), d.Record.By, auditIndex(d.AuditIndex))
}

func auditIndex(i *uint64) string {
	if i == nil {
		return "none"
	}
	return strconv.FormatUint(*i, 10)
}

// printProjectEnvironment prints a project-wide environment answer.
func printProjectEnvironment(w io.Writer, b []byte) error {
	var st struct {
		Project     string
		Environment string
		At          time.Time
		Deployments []promotion.Deployment
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s of project %s at %s:\n", st.Environment, st.Project, st.At.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tDIGEST\tSINCE\tRECORD\tAUDIT")
	for _, d := range st.Deployments {
		since, rec := "-", "-"
		if d.Record != nil {
			since, rec = d.Since.Format(time.RFC3339), "promotion by "+d.Record.By
			if d.Record.Rollback {
				rec = "rollback by " + d.Record.By
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Repository, orNothing(d.Digest), since, rec, auditIndex(d.AuditIndex))
	}
	return tw.Flush()
}

func newHistoryCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "history REF",
		Short: "List every event about one artifact digest, in order, with its audit-log index",
		Long: `List every event the audit log records about the artifact
(REGISTRY/REPOSITORY@DIGEST), oldest first: its push, tag moves, the
signatures and attestations stored about it, promotions, approvals,
rollbacks, deploy-time verifications (custody verify --env), admission
decisions, legal holds, retention and revocations. Each line gives the
audit-log index, which custody audit proves. Needs the audit permission
(the auditor role), as reading the audit log does.`,
		Example: `  custody history 127.0.0.1:5000/apps/web@sha256:...`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, dgst, err := splitRef(args[0])
			if err != nil {
				return err
			}
			q := url.Values{"repository": {repo}, "digest": {dgst}}
			b, err := f.call(cmd, http.MethodGet, "/api/v1/history?"+q.Encode(), nil, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var h promotion.History
				if err := json.Unmarshal(b, &h); err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%s@%s:\n", h.Repository, h.Digest)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "INDEX\tTIME\tKIND\tACTION\tRESULT\tACTOR\tDETAIL")
				for _, e := range h.Events {
					detail := e.Reason
					if e.Tag != "" {
						detail = e.Tag
						if e.Reason != "" {
							detail += ": " + e.Reason
						}
					}
					if e.PredicateType != "" {
						detail = e.PredicateType
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.AuditIndex, e.Time.Format(time.RFC3339), e.Kind, e.Action, e.Result, e.Actor, detail)
				}
				return tw.Flush()
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}
