package retention

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
)

// BlobChecker decides whether a blob's bytes may be deleted. *Checker
// implements it.
type BlobChecker interface {
	BlobDeletable(ctx context.Context, d digest.Digest) error
}

// GuardBlobs wraps store so that Delete refuses, with an error wrapping
// ErrLocked and veto.ErrDenied, any blob a locked or held artifact in
// any repository references. Every other method passes through.
func GuardBlobs(store blob.Store, checker BlobChecker) blob.Store {
	return &guarded{Store: store, check: checker}
}

type guarded struct {
	blob.Store
	check BlobChecker
}

func (g *guarded) Delete(ctx context.Context, d digest.Digest) error {
	if err := g.check.BlobDeletable(ctx, d); err != nil {
		return err
	}
	return g.Store.Delete(ctx, d)
}
