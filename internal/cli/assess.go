package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/assessment"
)

const outputHTML = "html"

func newAssessCmd() *cobra.Command {
	var (
		f       apiFlags
		output  string
		project string
		after   string
		limit   int
		most    int
	)
	cmd := &cobra.Command{
		Use:   "assess [--project P] [-o text|json|html]",
		Short: "Rate each repository and environment on the maturity model and SLSA build levels, from the stored evidence",
		Long: `Rate every repository (or those of one project) and each environment of its
project on two scales, from the evidence the server stores, not from what the
configuration claims alone:

  - the five-stage artifact-management maturity model (1 ad hoc ... 5
    immutable, signed artifacts with audit-ready storage), and
  - the SLSA build level (0 ... 3): provenance exists; signed by a trusted
    key and naming a hosted build platform; written by the server itself from
    the job's verified OIDC claims (platform mode).

Each criterion shows its evidence (counts, an example digest, the
configuration value that counts) and, when it fails, the exact command (or
setting) that closes the gap. docs/assessment.md lists the criteria with the
sentence of the model each stands for.

A repository is rated on its tagged artifacts: those its environments run,
then the newest, at most 10; an environment on the artifact it runs. The
server assesses at most --limit repositories per request (default 20, at
most 100); this command asks for the following pages until --max
repositories are assessed (default 1000) and says where it stopped.
--project P selects the repositories of the project P (its name or its
repositories pattern). -o html writes one self-contained page (no script, nothing
fetched). Needs the auditor role (the audit permission).`,
		Example: `  custody assess
  custody assess --project 'apps/**' -o html > assessment.html
  custody assess -o json | jq '.repositories[] | {repository, stage, slsaLevel}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case outputText, outputJSON, outputHTML:
			default:
				return fmt.Errorf("invalid --output %q: use text, json or html", output)
			}
			if limit < 0 || limit > assessment.MaxRepositories {
				return fmt.Errorf("--limit %d: give 1 to %d repositories per request", limit, assessment.MaxRepositories)
			}
			if most < 1 {
				return fmt.Errorf("--max %d: give at least 1", most)
			}
			f.output = outputJSON
			var rep assessment.Report
			for first := true; first || (rep.Next != "" && len(rep.Repositories) < most); first = false {
				q := url.Values{}
				if project != "" {
					q.Set("project", project)
				}
				if a := after; !first {
					q.Set("after", rep.Next)
				} else if a != "" {
					q.Set("after", a)
				}
				if n := min(cmpInt(limit, assessment.DefaultRepositories), most-len(rep.Repositories)); n > 0 {
					q.Set("limit", strconv.Itoa(n))
				}
				b, err := f.call(cmd, http.MethodGet, "/api/v1/assessment?"+q.Encode(), nil, nil)
				if err != nil {
					return err
				}
				var page assessment.Report
				if err := json.Unmarshal(b, &page); err != nil {
					return fmt.Errorf("reading the assessment: %w", err)
				}
				if first {
					rep = page
					continue
				}
				rep.Repositories = append(rep.Repositories, page.Repositories...)
				rep.Next = page.Next
			}
			w := cmd.OutOrStdout()
			switch output {
			case outputJSON:
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			case outputHTML:
				return rep.WriteHTML(w)
			}
			return rep.WriteText(w)
		},
	}
	registerServer(cmd.Flags(), &f.server)
	fl := cmd.Flags()
	fl.StringVarP(&output, "output", "o", outputText, "output format: text, json or html")
	fl.StringVar(&project, "project", "", "assess only the repositories of this project (its name or repositories pattern)")
	fl.StringVar(&after, "after", "", "start after this repository (a report's next)")
	fl.IntVar(&limit, "limit", 0, "repositories the server assesses per request (default 20, at most 100)")
	fl.IntVar(&most, "max", 1000, "stop after assessing this many repositories")
	return cmd
}

func cmpInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
