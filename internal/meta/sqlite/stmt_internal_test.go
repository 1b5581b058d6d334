package sqlite

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/meta"
)

// TestHotPathsPrepared: the metadata work of a manifest put (verified,
// with references, build annotations and a tag move), manifest and blob
// reads, blob links and an upload session runs statements prepared when
// the Store opened, never parsing a query of its own (see "Statements
// prepared once"), under meta.FlushLater as without it; and the results
// are those of the statements as written.
func TestHotPathsPrepared(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, deferred := range []bool{false, true} {
		ctx := t.Context()
		wctx := ctx
		if deferred {
			wctx = meta.FlushLater(ctx)
		}
		repo := "hot/plain"
		if deferred {
			repo = "hot/deferred"
		}
		before := s.stmtMisses.Load()

		layer, child := digest.FromString("layer"), digest.FromString("child")
		if err := s.LinkBlob(wctx, repo, layer, 5); err != nil {
			t.Fatal(err)
		}
		if n, err := s.BlobSize(ctx, repo, layer); err != nil || n != 5 {
			t.Fatalf("BlobSize = %d, %v", n, err)
		}
		if err := s.PutManifestVerified(wctx, meta.Manifest{Repo: repo, Digest: child, MediaType: "m", Size: 2, Blobs: []digest.Digest{layer}}, nil, nil); err != nil {
			t.Fatal(err)
		}
		m := meta.Manifest{
			Repo: repo, Digest: digest.FromString("index"), MediaType: "i", Size: 3,
			Manifests:   []digest.Digest{child},
			Annotations: map[string]string{builds.Keys[0]: "abc"},
		}
		for range 2 { // the second put moves nothing
			if err := s.PutManifestVerified(wctx, m, []string{"v1"}, func(string, digest.Digest, digest.Digest) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if d, err := s.ResolveTag(ctx, repo, "v1"); err != nil || d != m.Digest {
			t.Fatalf("ResolveTag = %s, %v", d, err)
		}
		got, err := s.GetManifest(ctx, repo, m.Digest)
		if err != nil || len(got.Manifests) != 1 || got.Manifests[0] != child || got.Annotations[builds.Keys[0]] != "abc" {
			t.Fatalf("GetManifest = %+v, %v", got, err)
		}
		if err := s.PutManifestVerified(wctx, meta.Manifest{Repo: repo, Digest: digest.FromString("gone"), MediaType: "m", Blobs: []digest.Digest{digest.FromString("nope")}}, nil, nil); !errors.Is(err, meta.ErrReferenceGone) {
			t.Fatalf("PutManifestVerified of a manifest naming an unlinked blob: %v", err)
		}

		id := "up-" + repo[4:]
		if err := s.CreateUpload(wctx, meta.Upload{ID: id, Repo: repo}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateUpload(wctx, id, 7); err != nil {
			t.Fatal(err)
		}
		if u, err := s.GetUpload(ctx, id); err != nil || u.Offset != 7 || u.Repo != repo {
			t.Fatalf("GetUpload = %+v, %v", u, err)
		}
		if err := s.DeleteUpload(wctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUpload(ctx, id); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("GetUpload after DeleteUpload: %v", err)
		}
		if err := s.DeleteTag(wctx, repo, "v1"); err != nil {
			t.Fatal(err)
		}
		if err := s.UnlinkBlob(wctx, repo, digest.FromString("never linked")); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("UnlinkBlob of a blob never linked: %v", err)
		}
		if n := s.stmtMisses.Load() - before; n != 0 {
			t.Errorf("deferred=%v: %d queries of the hot paths were parsed, not prepared once", deferred, n)
		}
	}
}

// TestHotPathsTakeNotTheLazyCachesLock: prepared (TlogAppend's first
// call) holds the lock of s.stmts while it waits for the write connection.
// A write transaction, which holds that connection, must therefore never
// wait for that lock to take a statement, or the two deadlock (an audited
// closing PUT and the audit log's first append did, under load): the hot
// paths' statements live in caches of their own.
func TestHotPathsTakeNotTheLazyCachesLock(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	done := make(chan error, 1)
	s.stmts.mu.Lock() // as prepared does while it waits for the connection
	go func() {
		d := digest.FromString("blob")
		err := errors.Join(
			s.CreateUpload(ctx, meta.Upload{ID: "u", Repo: "r"}),
			s.UpdateUpload(meta.FlushLater(ctx), "u", 4),
			s.LinkBlob(meta.FlushLater(ctx), "r", d, 4),
			s.PutManifestVerified(meta.FlushLater(ctx), meta.Manifest{Repo: "r", Digest: digest.FromString("m"), MediaType: "m", Blobs: []digest.Digest{d}}, []string{"t"}, nil),
			s.DeleteUpload(ctx, "u"),
		)
		if _, err2 := s.GetManifest(ctx, "r", digest.FromString("m")); err2 != nil {
			err = errors.Join(err, err2)
		}
		done <- err
	}()
	select {
	case err := <-done:
		s.stmts.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		s.stmts.mu.Unlock()
		t.Fatal("the hot paths waited for the lock of the statements prepared on first use")
	}
}
