// Package cli holds custody's command-line interface: one cobra command per
// file, wired together by NewRoot.
package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Build information, set by the linker (-ldflags "-X ...").
var (
	Version = "dev"
	Commit  = "unknown"
)

// NewRoot returns the custody command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "custody",
		Short: "custody: an immutable, signed, audit-ready artifact repository",
		Long: `custody stores container images, binaries, archives and packages by digest,
speaks the OCI distribution API (docker, crane, oras, skopeo and cosign work
unchanged) and keeps every artifact immutable and traceable.

Run 'custody serve' to start a registry on 127.0.0.1:5000 with an embedded
store in ./custody-data. Client commands talk to the server named by their
--server flag, else by CUSTODY_SERVER, else the one of the last 'custody
login', else http://127.0.0.1:5000.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCmd(),
		newServeCmd(),
		newPushCmd(),
		newPullCmd(),
		newGCCmd(),
		newScrubCmd(),
		newBuildsCmd(),
		newVersionsCmd(),
		newTagCmd(),
		newRetentionCmd(),
		newHoldCmd(),
		newAuditCmd(),
		newExportCmd(),
		newImportCmd(),
		newKeyCmd(),
		newCACmd(),
		newRekorCmd(),
		newLoginCmd(),
		newLogoutCmd(),
		newWhoamiCmd(),
		newTokenCmd(),
		newMFACmd(),
		newUserCmd(),
		newGrantCmd(),
		newSignCmd(),
		newAttestCmd(),
		newVerifyCmd(),
		newSBOMCmd(),
		newPromoteCmd(),
		newRollbackCmd(),
		newRevokeCmd(),
		newEnvCmd(),
		newHistoryCmd(),
		newDrillCmd(),
		newGateCmd(),
		newPolicyCmd(), // deprecated alias of gate test
		newVulnDBCmd(),
		newViolationsCmd(),
		newScanCmd(),
		newMigrateCmd(),
		newAssessCmd(),
		newGomodCmd(),
		newFirewallCmd(),
		newDependenciesCmd(),
	)
	return root
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "custody: %v\n", err)
		return 1
	}
	return 0
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the custody version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "custody %s (commit %s)\n", Version, Commit)
			return nil
		},
	}
}

// isTerminal reports whether w is an interactive terminal (for progress bars).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
