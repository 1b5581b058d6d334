package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/artifact"
)

func newPullCmd() *cobra.Command {
	var (
		tf  transferFlags
		dir string
	)
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Pull the files of an OCI artifact from a registry",
		Long: `Pull downloads every layer of the artifact REF into a directory, naming each
file after its org.opencontainers.image.title annotation (or its digest when it
has none). Content is verified against its digest while it streams to disk and
only then moved into place; existing files of the same name are replaced.

Names that are not plain file names (path separators, "..", absolute paths)
are refused before anything is written.`,
		Example: `  custody pull 127.0.0.1:5000/team/reports:2024-06
  custody pull -d ./out 127.0.0.1:5000/app@sha256:...
  custody pull 127.0.0.1:5000/team/reports:2024-06 -o ./reports
  custody pull -o json 127.0.0.1:5000/builds:42`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// "-o DIR" names the destination, as in 'custody pull REF -o DIR';
			// "-o json" and "-o text" keep choosing the output format.
			if tf.output != outputText && tf.output != outputJSON {
				if cmd.Flags().Changed("dir") {
					return fmt.Errorf("-o %q is not an output format (text or json) and --dir is set too: give the directory once, with -d", tf.output)
				}
				dir, tf.output = tf.output, outputText
			}
			opts, done, err := tf.options(cmd, "pulling")
			if err != nil {
				return err
			}
			res, err := artifact.Pull(cmd.Context(), args[0], dir, artifact.PullOptions{Options: opts})
			done()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if tf.output == outputJSON {
				return writeJSON(out, res)
			}
			for _, f := range res.Files {
				if _, err := fmt.Fprintf(out, "%s\t%s\t%s\n", f.Path, f.Digest, humanBytes(f.Size)); err != nil {
					return err
				}
			}
			_, err = fmt.Fprintf(out, "pulled %s (%s, %s) into %s\n", pinned(res.Reference, res.Digest),
				plural(len(res.Files), "file"), humanBytes(res.Size), res.Dir)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&dir, "dir", "d", ".", "directory to write the files to (created if missing)")
	tf.register(fs)
	fs.Lookup("output").Usage = "output format (text or json); any other value is the directory to write to, like -d"
	return cmd
}
