package server

import (
	"context"

	"github.com/custody-dev/custody/internal/meta/postgres"
	"github.com/custody-dev/custody/internal/store"
)

// metaStore is everything the server asks of a metadata backend (see
// internal/store).
type metaStore = store.Meta

// rawBlobs is the blob backend before the retention guard (see
// internal/store).
type rawBlobs = store.Blobs

// leader elects one replica for a periodic job (PostgreSQL advisory locks).
type leader interface {
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
}

var _ leader = (*postgres.Store)(nil)
