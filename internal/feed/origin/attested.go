package origin

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/sign"
)

// Errors of Handler.Provenance besides ErrNoProvenance.
var (
	ErrBadReference = errors.New("not a repository and a digest")
	ErrNoBuild      = errors.New("no such build")
)

// Attested returns Handler.Provenance over the registry reached with
// opts at host: the predicates of the trusted SLSA v1 provenance
// attestations of a stored build, judged with trust as promotion gates
// judge them.
func Attested(md meta.Store, trust *evidence.Trust, host string, opts []remote.Option) func(context.Context, string, string) ([]*provenance.Predicate, error) {
	return func(ctx context.Context, repo, dgst string) ([]*provenance.Predicate, error) {
		d, err := digest.Parse(dgst)
		if err != nil || !registry.ValidName(repo) {
			return nil, fmt.Errorf("%s@%s: %w", repo, dgst, ErrBadReference)
		}
		if _, err := md.GetManifest(ctx, repo, d); errors.Is(err, meta.ErrNotFound) {
			return nil, fmt.Errorf("%s@%s: %w", repo, dgst, ErrNoBuild)
		} else if err != nil {
			return nil, err
		}
		ref, err := name.NewDigest(host+"/"+repo+"@"+dgst, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("reference: %w", err)
		}
		set := evidence.CollectAttestations(ctx, ref, trust, sign.Options{Remote: append(append([]remote.Option{}, opts...), remote.WithContext(ctx))})
		if set.AttestationErr != nil {
			return nil, set.AttestationErr
		}
		var out []*provenance.Predicate
		for _, a := range set.Attestations {
			if a.Trusted() && a.Provenance != nil {
				out = append(out, a.Provenance)
			}
		}
		if len(out) == 0 {
			return nil, ErrNoProvenance
		}
		return out, nil
	}
}
