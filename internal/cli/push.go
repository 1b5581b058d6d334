package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/custody-dev/custody/internal/artifact"
)

// Output formats accepted by -o/--output.
const (
	outputText = "text"
	outputJSON = "json"
)

// transferFlags are the registry-connection and output flags shared by push
// and pull.
type transferFlags struct {
	insecure  bool
	plainHTTP bool
	output    string
}

func (f *transferFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "talk to the registry over plain HTTP (always allowed for localhost, loopback and private addresses)")
	fs.BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and skip TLS certificate verification")
	fs.StringVarP(&f.output, "output", "o", outputText, "output format: text or json")
}

// options validates the flags and turns them into artifact options. A
// progress bar is drawn on stderr when it is a terminal and the output is
// not JSON; call the returned function when the transfer is over.
func (f *transferFlags) options(cmd *cobra.Command, verb string) (artifact.Options, func(), error) {
	switch f.output {
	case outputText, outputJSON:
	default:
		return artifact.Options{}, nil, fmt.Errorf("invalid --output %q: use text or json", f.output)
	}
	opts := artifact.Options{
		PlainHTTP: f.plainHTTP,
		Insecure:  f.insecure,
		UserAgent: "custody/" + Version,
		Keychain:  keychain(),
		Transport: registryTransport,
	}
	stderr := cmd.ErrOrStderr()
	if f.output == outputJSON || !isTerminal(stderr) {
		return opts, func() {}, nil
	}
	bar := newProgressBar(stderr, verb)
	opts.Progress = func(p artifact.Progress) {
		if p.Total > 0 && bar.GetMax64() != p.Total {
			bar.ChangeMax64(p.Total)
		}
		_ = bar.Set64(p.Complete)
	}
	return opts, func() { _ = bar.Clear() }, nil
}

// newProgressBar returns a byte-counting progress bar drawn on w.
func newProgressBar(w io.Writer, verb string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(verb),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// plural returns "1 file" or "N files".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func newPushCmd() *cobra.Command {
	var (
		tf           transferFlags
		artifactType string
		mediaType    string
		annotations  []string
	)
	cmd := &cobra.Command{
		Use:   "push FILE... REF",
		Short: "Push files to a registry as an OCI artifact",
		Long: `Push uploads one or more files as a single OCI 1.1 artifact: an image
manifest with an artifactType, the empty config and one layer per file, titled
with the file's base name. oras and other OCI tools can pull it too.

Files are streamed from disk, never loaded into memory.`,
		Example: `  custody push report.pdf data.csv 127.0.0.1:5000/team/reports:2024-06
  custody push --annotation org.opencontainers.image.source=https://example.com/repo \
      --artifact-type application/vnd.example.bundle.v1 app.tar.gz 127.0.0.1:5000/app:v1
  custody push -o json build.zip 127.0.0.1:5000/builds:42`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ann, err := parseAnnotations(annotations)
			if err != nil {
				return err
			}
			opts, done, err := tf.options(cmd, "pushing")
			if err != nil {
				return err
			}
			files, ref := args[:len(args)-1], args[len(args)-1]
			res, err := artifact.Push(cmd.Context(), ref, files, artifact.PushOptions{
				Options:      opts,
				ArtifactType: artifactType,
				MediaType:    mediaType,
				Annotations:  ann,
			})
			done()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if tf.output == outputJSON {
				return writeJSON(out, res)
			}
			_, err = fmt.Fprintf(out, "pushed %s (%s, %s)\n", pinned(res.Reference, res.Digest),
				plural(len(res.Files), "file"), humanBytes(res.Size))
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&artifactType, "artifact-type", artifact.DefaultArtifactType, "artifactType of the manifest")
	fs.StringVar(&mediaType, "media-type", artifact.DefaultFileMediaType, "media type of every file layer")
	fs.StringArrayVarP(&annotations, "annotation", "a", nil, "manifest annotation as key=value (repeatable)")
	tf.register(fs)
	return cmd
}

// parseAnnotations parses key=value pairs.
func parseAnnotations(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("invalid --annotation %q: use key=value, e.g. org.opencontainers.image.source=https://example.com", kv)
		}
		m[k] = v
	}
	return m, nil
}

// pinned returns ref@digest, or ref alone when it already names a digest.
func pinned(ref, digest string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	return ref + "@" + digest
}

// humanBytes formats n as "N bytes", adding a readable size when large.
func humanBytes(n int64) string {
	if n < 1024 {
		return plural(int(n), "byte")
	}
	return fmt.Sprintf("%d bytes, %s", n, humanize.IBytes(uint64(n)))
}
