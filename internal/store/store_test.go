package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/testserver"
)

// TestOpenEmbeddedLocks: an embedded store is opened by one process at a
// time, while a read-only view opens beside it and never creates one.
func TestOpenEmbeddedLocks(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Data = filepath.Join(t.TempDir(), "data")

	if _, err := store.OpenView(ctx, cfg); err == nil || !strings.Contains(err.Error(), "no custody store") {
		t.Fatalf("OpenView of a missing store: %v", err)
	}
	if _, err := os.Stat(cfg.Data); !os.IsNotExist(err) {
		t.Fatalf("OpenView created the data directory: %v", err)
	}

	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Embedded || st.Desc != "metadata=sqlite blobs=fs" {
		t.Fatalf("embedded store: embedded %v, desc %q", st.Embedded, st.Desc)
	}
	if _, err := store.Open(ctx, cfg); !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), cfg.Data) {
		t.Fatalf("second Open of an embedded store: %v", err)
	}
	v, err := store.OpenView(ctx, cfg)
	if err != nil {
		t.Fatalf("OpenView beside a writer: %v", err)
	}
	v.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	st.Close()
}

// TestOpenRefusesUnknownBackends: unknown schemes are named, and a
// database password never appears in a message.
func TestOpenRefusesUnknownBackends(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Metadata = "mysql://u:secret@db/x"
	for _, open := range []func() error{
		func() error { _, err := store.Open(ctx, cfg); return err },
		func() error { _, err := store.OpenView(ctx, cfg); return err },
	} {
		err := open()
		if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "postgres://") {
			t.Fatalf("unknown metadata: %v", err)
		}
	}
	cfg = config.Default()
	cfg.Data = t.TempDir()
	cfg.Blobs = "gcs://bucket"
	if _, err := store.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "s3://") {
		t.Fatalf("unknown blobs: %v", err)
	}
	// The failed Open released the lock and the database.
	st, err := store.Open(ctx, config.Config{Data: cfg.Data})
	if err != nil {
		t.Fatalf("Open after a failed Open: %v", err)
	}
	st.Close()
}

// TestOpenReplicated: PostgreSQL + S3 is not embedded, takes no lock (two
// replicas open it at once) and offers the scrub listings.
func TestOpenReplicated(t *testing.T) {
	rep := testserver.NewReplicated(t, "store")
	for _, kv := range rep.CredEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.Load(rep.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("second replica: %v", err)
	}
	defer b.Close()
	if a.Embedded || !strings.HasPrefix(a.Desc, "metadata=postgres blobs=s3://") || a.Scrub == nil {
		t.Fatalf("replicated store: %+v", a)
	}
	v, err := store.OpenView(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Scrub.ScrubTags(ctx, func(string, string, digest.Digest) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
