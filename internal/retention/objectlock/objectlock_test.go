package objectlock_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/retention/objectlock"
)

// bucket is an in-memory Object Lock bucket whose reads wait for gate.
type bucket struct {
	gate chan struct{}
	mu   sync.Mutex
	hold map[digest.Digest]bool
}

func (b *bucket) ObjectLockEnabled(context.Context) (bool, error) { return true, nil }
func (b *bucket) SetRetention(context.Context, digest.Digest, string, time.Time, bool) error {
	return nil
}
func (b *bucket) SetLegalHold(_ context.Context, d digest.Digest, on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hold[d] = on
	return nil
}
func (b *bucket) BucketLock(ctx context.Context, d digest.Digest) (string, time.Time, bool, error) {
	select {
	case <-b.gate:
	case <-ctx.Done():
		return "", time.Time{}, false, ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return "", time.Time{}, b.hold[d], nil
}

// TestFlushWaitsForQueued: Flush returns only once what was queued before
// it is on the bucket, and scrub's Check does the same first, so a hold
// set a moment ago is not reported as missing.
func TestFlushWaitsForQueued(t *testing.T) {
	ctx := context.Background()
	md, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	layer, man := digest.FromString("layer"), digest.FromString("manifest")
	if err := md.LinkBlob(ctx, "r", layer, 5); err != nil {
		t.Fatal(err)
	}
	if err := md.PutManifest(ctx, meta.Manifest{Repo: "r", Digest: man, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, Blobs: []digest.Digest{layer}, Created: time.Now()}, nil, nil); err != nil {
		t.Fatal(err)
	}
	checker := &retention.Checker{Store: md, Meta: md, Now: time.Now}
	if _, err := checker.SetHold(ctx, "r", man, true); err != nil {
		t.Fatal(err)
	}

	b := &bucket{gate: make(chan struct{}), hold: map[digest.Digest]bool{}}
	m, err := objectlock.Open(ctx, objectlock.Options{Bucket: b, Locks: md, Meta: md, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil || m == nil {
		t.Fatal(m, err)
	}
	m.Enqueue(retention.Lock{Repo: "r", Digest: man})

	// The bucket is gated: Flush cannot return before its deadline.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := m.Flush(short); err == nil {
		t.Fatal("Flush returned while the mirror was still waiting for the bucket")
	}

	close(b.gate)
	problems, err := m.Check(ctx, md)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Fatalf("Check reported a hold that was queued: %+v", problems)
	}
	for _, d := range []digest.Digest{man, layer} {
		if _, _, hold, _ := b.BucketLock(ctx, d); !hold {
			t.Fatalf("%s: no hold on the bucket after Flush", d)
		}
	}

	// Behind custody's back: reported.
	_ = b.SetLegalHold(ctx, layer, false)
	problems, err = m.Check(ctx, md)
	if err != nil || len(problems) != 1 || problems[0].Digest != layer {
		t.Fatalf("Check after weakening: %+v %v", problems, err)
	}

	// After Close, Enqueue is a no-op and Flush returns.
	m.Close()
	m.Enqueue(retention.Lock{Repo: "r", Digest: man})
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFlushEnqueueClose: Enqueue, Flush and Close from many goroutines at
// once (run with -race): no send on the closed queue, no Flush left
// waiting, and each Flush that returns before Close saw its own artifact
// mirrored.
func TestFlushEnqueueClose(t *testing.T) {
	ctx := context.Background()
	md, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	man := digest.FromString("manifest")
	if err := md.PutManifest(ctx, meta.Manifest{Repo: "r", Digest: man, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, Created: time.Now()}, nil, nil); err != nil {
		t.Fatal(err)
	}
	checker := &retention.Checker{Store: md, Meta: md, Now: time.Now}
	if _, err := checker.SetHold(ctx, "r", man, true); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	close(gate)
	b := &bucket{gate: gate, hold: map[digest.Digest]bool{}}
	m, err := objectlock.Open(ctx, objectlock.Options{Bucket: b, Locks: md, Meta: md, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil || m == nil {
		t.Fatal(m, err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				m.Enqueue(retention.Lock{Repo: "r", Digest: man})
				if err := m.Flush(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		m.Enqueue(retention.Lock{Repo: "r", Digest: man})
		if err := m.Flush(ctx); err != nil {
			t.Error(err)
		}
		if _, _, hold, _ := b.BucketLock(ctx, man); !hold {
			t.Error("no hold on the bucket after Flush")
		}
		m.Close()
	})
	wg.Wait()
	m.Close()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Flush(cancelled); err != nil {
		t.Fatalf("Flush of a closed mirror with nothing queued = %v", err)
	}
}
