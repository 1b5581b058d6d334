package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/auth"
)

func newWhoamiCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who the server thinks you are, your groups and roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.call(cmd, http.MethodGet, "/api/v1/whoami", nil, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var w auth.Whoami
				if err := json.Unmarshal(b, &w); err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "%s (signed in with %s)\n", w.Subject, w.Method)
				if len(w.Groups) > 0 {
					fmt.Fprintf(out, "groups: %s\n", strings.Join(w.Groups, ", "))
				}
				if w.TokenID != "" {
					fmt.Fprintf(out, "API token %s may (within %s's grants below):\n", w.TokenID, w.Subject)
					for _, g := range w.TokenScopes {
						fmt.Fprintf(out, "  %-10s on %s\n", g.Role, strings.Join(g.Repositories, ", "))
					}
					fmt.Fprintf(out, "%s's grants:\n", w.Subject)
				}
				for _, g := range w.Grants {
					fmt.Fprintf(out, "%-10s on %s\n", g.Role, strings.Join(g.Repositories, ", "))
				}
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Long: `API tokens let scripts and CI jobs sign in without a password. A token
holds a role on repository patterns, never more than its owner holds, and
expires. Its secret is shown once, at creation; the server keeps only its
SHA-256. Use it as the password of 'custody login', docker login or crane
auth login, or put it in CUSTODY_TOKEN for custody's commands.`,
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

func newTokenCreateCmd() *cobra.Command {
	var (
		f       apiFlags
		tname   string
		role    string
		repos   []string
		expires string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --role ROLE --repo PATTERN...",
		Short: "Create an API token (its secret is printed once)",
		Example: `  custody token create --name ci-push --role writer --repo 'apps/*' --expires 90d
  custody token create --name reader --role reader --repo '**' -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(repos) == 0 {
				return fmt.Errorf("no repositories: give patterns with --repo (e.g. --repo 'team/*', or --repo '**' for all)")
			}
			life, err := parsePeriod(expires)
			if err != nil {
				return fmt.Errorf("invalid --expires: %w; use a duration such as 12h, 90d or 1y (the server allows at most a year)", err)
			}
			req := auth.TokenRequest{Name: tname, Scopes: []auth.Scope{{Role: auth.Role(role), Repositories: repos}}, ExpiresIn: life.String()}
			b, err := f.call(cmd, http.MethodPost, "/api/v1/tokens", req, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var t auth.CreatedToken
				if err := json.Unmarshal(b, &t); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), t.Secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s (%s): %s on %s, expires %s\nThis is the only time the secret is shown; store it now.\n",
					t.ID, t.Name, role, strings.Join(repos, ", "), t.Expires.Format(time.RFC3339))
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&tname, "name", "", "what the token is for (required)")
	fl.StringVar(&role, "role", "reader", "role the token holds: reader, writer, promoter, maintainer, admin, auditor, governance-bypass")
	fl.StringSliceVar(&repos, "repo", nil, "repository pattern (repeatable): 'team/*' one level, 'team/**' team and all below, '**' all")
	fl.StringVar(&expires, "expires", "30d", "lifetime, e.g. 12h, 90d or 1y; the server refuses more than a year (366d)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newTokenListCmd() *cobra.Command {
	var (
		f   apiFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List your API tokens (--all: everyone's, for admins)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/tokens"
			if all {
				path += "?all=true"
			}
			b, err := f.call(cmd, http.MethodGet, path, nil, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var ts []auth.Token
				if err := json.Unmarshal(b, &ts); err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tOWNER\tSCOPES\tEXPIRES\tSTATE")
				now := time.Now()
				for _, t := range ts {
					var sc []string
					for _, s := range t.Scopes {
						sc = append(sc, string(s.Role)+" on "+strings.Join(s.Repositories, ","))
					}
					state := "valid"
					switch {
					case !t.Revoked.IsZero():
						state = "revoked " + t.Revoked.Format(time.RFC3339)
					case !now.Before(t.Expires):
						state = "expired"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Owner, strings.Join(sc, "; "), t.Expires.Format(time.RFC3339), state)
				}
				return tw.Flush()
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&all, "all", false, "list every user's tokens (admin)")
	return cmd
}

func newTokenRevokeCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token; it stops working on the next request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := f.call(cmd, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %s\n", args[0])
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage local accounts (admin)",
	}
	cmd.AddCommand(newUserCreateCmd(), newUserListCmd(), newUserSetCmd(), newUserDeleteCmd(),
		newUserDisableCmd(true), newUserDisableCmd(false))
	return cmd
}

func newUserCreateCmd() *cobra.Command {
	var (
		f             apiFlags
		groups        []string
		passwordStdin bool
	)
	cmd := &cobra.Command{
		Use:     "create NAME [--groups G1,G2] [--password-stdin]",
		Short:   "Create an account (without a password it signs in with tokens only)",
		Example: `  pwgen -s 24 1 | tee alice.pw | custody user create alice --groups dev --password-stdin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := auth.UserRequest{Name: args[0], Groups: &groups}
			if passwordStdin {
				pw, err := readLine(cmd)
				if err != nil {
					return err
				}
				req.Password = pw
			}
			b, err := f.call(cmd, http.MethodPost, "/api/v1/users", req, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				fmt.Fprintf(cmd.OutOrStdout(), "created user %s (groups: %s); grant it roles with 'custody grant add user:%s ROLE PATTERN'\n", args[0], strings.Join(groups, ", "), args[0])
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&groups, "groups", nil, "groups of the user")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read a password (12 to 72 characters) from standard input")
	return cmd
}

func readLine(cmd *cobra.Command) (string, error) {
	var sb strings.Builder
	buf := make([]byte, 1)
	for sb.Len() < 4096 {
		n, err := cmd.InOrStdin().Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				break
			}
			sb.WriteByte(buf[0])
		}
		if err != nil {
			break
		}
	}
	return strings.TrimRight(sb.String(), "\r"), nil
}

func newUserListCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.call(cmd, http.MethodGet, "/api/v1/users", nil, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var us []auth.UserEntry
				if err := json.Unmarshal(b, &us); err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tGROUPS\tMFA\tCREATED\tDISABLED")
				for _, u := range us {
					mfa := strings.Join(u.MFA, ",")
					if mfa == "" {
						mfa = "-"
					}
					disabled := "-"
					if !u.Disabled.IsZero() {
						disabled = u.Disabled.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Groups, ","), mfa, u.Created.Format(time.RFC3339), disabled)
				}
				return tw.Flush()
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newUserSetCmd() *cobra.Command {
	var (
		f             apiFlags
		groups        []string
		passwordStdin bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME [--groups G1,G2] [--password-stdin]",
		Short: "Change an account's groups (admin) or password (admin, or the user itself)",
		Long: `Change an account's groups (admin) or password (admin, or the user itself).
Group changes take effect on the user's next request, also for tokens
already issued. --groups "" removes every group.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req auth.UserRequest
			if cmd.Flags().Changed("groups") {
				req.Groups = &groups
			}
			if passwordStdin {
				pw, err := readLine(cmd)
				if err != nil {
					return err
				}
				req.Password = pw
			}
			if req.Groups == nil && req.Password == "" {
				return fmt.Errorf("nothing to change: give --groups or --password-stdin")
			}
			b, err := f.call(cmd, http.MethodPut, "/api/v1/users/"+url.PathEscape(args[0]), req, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				fmt.Fprintf(cmd.OutOrStdout(), "updated user %s\n", args[0])
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&groups, "groups", nil, "the user's groups (replaces them)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read a new password from standard input")
	return cmd
}

func newUserDeleteCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an account; its tokens stop working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := f.call(cmd, http.MethodDelete, "/api/v1/users/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// newUserDisableCmd is custody user disable (disable true) or enable.
func newUserDisableCmd(disable bool) *cobra.Command {
	var f apiFlags
	verb, short := "enable", "Enable a disabled account again (admin)"
	if disable {
		verb, short = "disable", "Disable an account (admin): its password, API tokens and browser sessions stop working, its sessions end"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Long: short + `.
A disabled account keeps its groups, grants and tokens: 'custody user
enable NAME' lets it sign in again (its ended browser sessions stay
ended). You cannot disable your own account.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := f.call(cmd, http.MethodPost, "/api/v1/users/"+url.PathEscape(args[0])+"/"+verb, nil, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				fmt.Fprintf(cmd.OutOrStdout(), "%sd user %s\n", verb, args[0])
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newGrantCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "grant",
		Short: "Bind roles to users, groups or everyone on repository patterns (admin)",
		Long: `Bind roles to subjects on repository patterns (admin).

Subjects: user:NAME (an account, or an OIDC identity's name), group:NAME,
authenticated (everyone signed in), anonymous (everyone: opt-in anonymous
read, e.g. 'custody grant add anonymous reader public/**').
Roles: reader (pull), writer (push new content, create tags), promoter (also
move existing tags), maintainer (also delete, policies, retention, holds),
admin (everything else), auditor (the audit log), governance-bypass
(bypass governance-mode retention with a stated reason; no other role, admin
included, may; grant it on "**").
Patterns: '*' within one path segment, '**' any number ("team/*", "**").`,
	}
	cmd.AddCommand(newGrantAddCmd(), newGrantListCmd(), newGrantRemoveCmd())
	return cmd
}

func newGrantAddCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:     "add SUBJECT ROLE PATTERN",
		Short:   "Grant a role",
		Example: `  custody grant add group:ci writer 'apps/**'`,
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			g := auth.Grant{Subject: args[0], Role: auth.Role(args[1]), Repository: args[2]}
			b, err := f.call(cmd, http.MethodPost, "/api/v1/grants", g, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				fmt.Fprintf(cmd.OutOrStdout(), "granted %s to %s on %s\n", args[1], args[0], args[2])
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newGrantListCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List grants (from the config file and the API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.call(cmd, http.MethodGet, "/api/v1/grants", nil, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var gs []auth.Grant
				if err := json.Unmarshal(b, &gs); err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SUBJECT\tROLE\tREPOSITORIES\tSOURCE")
				for _, g := range gs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Subject, g.Role, g.Repository, g.Source)
				}
				return tw.Flush()
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newGrantRemoveCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "remove SUBJECT ROLE PATTERN",
		Short: "Remove a stored grant; it stops applying on the next request",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"subject": {args[0]}, "role": {args[1]}, "repository": {args[2]}}
			if _, err := f.call(cmd, http.MethodDelete, "/api/v1/grants?"+q.Encode(), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s from %s on %s\n", args[1], args[0], args[2])
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}
