package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/veto"
)

// newLockStore returns a Store under a fresh prefix of the Object Lock test
// bucket. When the test ends it lifts legal holds, waits (at most 5s) for
// the retention periods it set to pass, and removes every object version
// with a governance bypass; what still refuses is only logged: MinIO keeps
// it until its (short) retention ends.
func newLockStore(t *testing.T) *Store {
	t.Helper()
	s := newStore(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var vs []minio.ObjectInfo
		latest := time.Now()
		for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true, WithVersions: true}) {
			if obj.Err != nil {
				t.Logf("cleanup: listing %s: %v", s.prefix, obj.Err)
				return
			}
			vs = append(vs, obj)
			if obj.IsDeleteMarker {
				continue
			}
			off := minio.LegalHoldDisabled
			_ = s.c.PutObjectLegalHold(ctx, s.bucket, obj.Key, minio.PutObjectLegalHoldOptions{VersionID: obj.VersionID, Status: &off})
			if _, until, err := s.c.GetObjectRetention(ctx, s.bucket, obj.Key, obj.VersionID); err == nil && until != nil && until.After(latest) {
				latest = *until
			}
		}
		if wait := time.Until(latest); wait > 0 && wait < 5*time.Second {
			time.Sleep(wait + 100*time.Millisecond)
		}
		for _, v := range vs {
			err := s.c.RemoveObject(ctx, s.bucket, v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: true})
			if err != nil {
				t.Logf("cleanup: %s version %s stays until its retention ends: %v", v.Key, v.VersionID, err)
			}
		}
	})
	return s
}

// putBlob stores content and returns its digest.
func putBlob(t *testing.T, s *Store, content string) digest.Digest {
	t.Helper()
	d := digest.SHA256.FromString(content)
	if _, err := s.Put(t.Context(), d, int64(len(content)), strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	return d
}

// readBlob returns blob d's content through Open.
func readBlob(t *testing.T, s *Store, d digest.Digest) string {
	t.Helper()
	rc, _, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// versionIDs returns the version IDs (delete markers included) of blob d's key.
func versionIDs(t *testing.T, s *Store, d digest.Digest) []string {
	t.Helper()
	vs, err := s.versions(t.Context(), s.blobKey(d))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.VersionID
		if v.IsDeleteMarker {
			ids[i] += "(delete marker)"
		}
	}
	return ids
}

// wantLocked fails unless err wraps ErrObjectLocked and veto.ErrDenied.
func wantLocked(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrObjectLocked) || !errors.Is(err, veto.ErrDenied) {
		t.Fatalf("%s = %v, want ErrObjectLocked and veto.ErrDenied", what, err)
	}
	t.Logf("%s refused: %v", what, err)
}

// wantUnchanged checks that blob d still holds content with the versions
// it had.
func wantUnchanged(t *testing.T, s *Store, d digest.Digest, content string, versions []string) {
	t.Helper()
	if got := readBlob(t, s, d); got != content {
		t.Fatalf("content = %q, want %q", got, content)
	}
	if got := versionIDs(t, s, d); strings.Join(got, ",") != strings.Join(versions, ",") {
		t.Fatalf("versions = %v, want %v", got, versions)
	}
}

func TestObjectLockEnabled(t *testing.T) {
	s := newLockStore(t)
	on, err := s.ObjectLockEnabled(t.Context())
	if err != nil || !on {
		t.Fatalf("ObjectLockEnabled = %v, %v; want true", on, err)
	}
}

// plainBucket creates a bucket without versioning or Object Lock, removed
// with its objects when t ends, and returns its name.
func plainBucket(t *testing.T) string {
	t.Helper()
	s := newStore(t)
	var b [6]byte
	rand.Read(b[:])
	bucket := "custody-plain-" + hex.EncodeToString(b[:])
	if err := s.c.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		objs := s.c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for err := range s.c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
			t.Errorf("cleanup: %v", err.Err)
		}
		if err := s.c.RemoveBucket(ctx, bucket); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return bucket
}

// TestPlainBucket runs the lock methods and Delete on a bucket without
// Object Lock or versioning.
func TestPlainBucket(t *testing.T) {
	opts := testOptions(t)
	opts.Bucket = plainBucket(t)
	s := newStoreWith(t, opts)
	ctx := t.Context()
	if on, err := s.ObjectLockEnabled(ctx); err != nil || on {
		t.Fatalf("ObjectLockEnabled = %v, %v; want false", on, err)
	}
	d := putBlob(t, s, "plain")
	if err := s.SetRetention(ctx, d, ModeGovernance, time.Now().Add(time.Minute), false); !errors.Is(err, ErrNoObjectLock) {
		t.Fatalf("SetRetention = %v, want ErrNoObjectLock", err)
	}
	if err := s.SetLegalHold(ctx, d, true); !errors.Is(err, ErrNoObjectLock) {
		t.Fatalf("SetLegalHold = %v, want ErrNoObjectLock", err)
	}
	if _, _, _, err := s.BucketLock(ctx, d); !errors.Is(err, ErrNoObjectLock) {
		t.Fatalf("BucketLock = %v, want ErrNoObjectLock", err)
	}
	// A re-upload writes the marker; Delete removes both.
	putBlob(t, s, "plain")
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v, want ErrNotFound", err)
	}
	if ks := keys(t, s); len(ks) != 0 {
		t.Fatalf("keys after Delete = %v, want none", ks)
	}
}

func TestSetRetentionInvalid(t *testing.T) {
	s := newLockStore(t)
	ctx := t.Context()
	d := putBlob(t, s, "invalid")
	for _, c := range []struct {
		mode  string
		until time.Time
	}{
		{"GOVERNANCE", time.Now().Add(time.Minute)},
		{"", time.Now().Add(time.Minute)},
		{ModeCompliance, time.Now().Add(-time.Second)},
		{ModeGovernance, time.Time{}},
	} {
		if err := s.SetRetention(ctx, d, c.mode, c.until, false); !errors.Is(err, ErrInvalidRetention) {
			t.Errorf("SetRetention(%q, %s) = %v, want ErrInvalidRetention", c.mode, c.until, err)
		}
	}
	missing := digest.SHA256.FromString("missing")
	if err := s.SetRetention(ctx, missing, ModeGovernance, time.Now().Add(time.Minute), false); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("SetRetention(missing) = %v, want ErrNotFound", err)
	}
	if err := s.SetLegalHold(ctx, missing, true); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("SetLegalHold(missing) = %v, want ErrNotFound", err)
	}
	if _, _, _, err := s.BucketLock(ctx, missing); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("BucketLock(missing) = %v, want ErrNotFound", err)
	}
	if mode, until, hold, err := s.BucketLock(ctx, d); err != nil || mode != "" || !until.IsZero() || hold {
		t.Errorf("BucketLock(unlocked) = %q, %s, %v, %v; want nothing", mode, until, hold, err)
	}
}

func TestGovernance(t *testing.T) {
	s := newLockStore(t)
	ctx := t.Context()
	const content = "governed"
	d := putBlob(t, s, content)
	until := time.Now().Add(2 * time.Second)
	if err := s.SetRetention(ctx, d, ModeGovernance, until, false); err != nil {
		t.Fatal(err)
	}
	mode, got, hold, err := s.BucketLock(ctx, d)
	if err != nil || mode != ModeGovernance || got.Before(until) || got.After(until.Add(time.Second)) || hold {
		t.Fatalf("BucketLock = %q, %s, %v, %v; want governance until %s", mode, got, hold, err, until)
	}
	// Extend.
	later := until.Add(time.Second)
	if err := s.SetRetention(ctx, d, ModeGovernance, later, false); err != nil {
		t.Fatalf("extending: %v", err)
	}
	if _, got, _, err := s.BucketLock(ctx, d); err != nil || got.Before(later) {
		t.Fatalf("after extending: until %s, %v; want %s or later", got, err, later)
	}
	// custody never shortens, bypass or not.
	for _, bypass := range []bool{false, true} {
		wantLocked(t, "shortening governance", s.SetRetention(ctx, d, ModeGovernance, until, bypass))
	}
	if _, got, _, _ := s.BucketLock(ctx, d); got.Before(later) {
		t.Fatalf("after refused shortening: until %s, want %s or later", got, later)
	}
	versions := versionIDs(t, s, d)
	wantLocked(t, "Delete under governance", s.Delete(ctx, d))
	wantUnchanged(t, s, d, content, versions)
	if err := s.Verify(ctx, d); err != nil {
		t.Fatalf("Verify after refused Delete: %v", err)
	}
	if err := s.DeleteBypassGovernance(ctx, d); err != nil {
		t.Fatalf("DeleteBypassGovernance: %v", err)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after bypass delete = %v, want ErrNotFound", err)
	}
	if vs := versionIDs(t, s, d); len(vs) != 0 {
		t.Fatalf("versions after bypass delete = %v, want none (no bytes hidden behind a delete marker)", vs)
	}
}

func TestCompliance(t *testing.T) {
	s := newLockStore(t)
	ctx := t.Context()
	const content = "complied"
	d := putBlob(t, s, content)
	until := time.Now().Add(3 * time.Second)
	if err := s.SetRetention(ctx, d, ModeCompliance, until, false); err != nil {
		t.Fatal(err)
	}
	mode, stored, _, err := s.BucketLock(ctx, d)
	if err != nil || mode != ModeCompliance || stored.Before(until) {
		t.Fatalf("BucketLock = %q, %s, %v; want compliance until %s", mode, stored, err, until)
	}
	wantLocked(t, "shortening compliance", s.SetRetention(ctx, d, ModeCompliance, until.Add(-time.Second), true))
	wantLocked(t, "compliance to governance", s.SetRetention(ctx, d, ModeGovernance, until.Add(time.Second), true))

	// MinIO itself refuses, also with a bypass, whatever custody checks.
	key, version, err := s.current(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	shorter := stored.Add(-time.Second)
	comp, gov := minio.Compliance, minio.Governance
	err = s.c.PutObjectRetention(ctx, s.bucket, key, minio.PutObjectRetentionOptions{
		Mode: &comp, RetainUntilDate: &shorter, VersionID: version, GovernanceBypass: true})
	if err == nil {
		t.Fatal("MinIO let compliance retention be shortened")
	}
	t.Logf("MinIO refuses shortening compliance: %v", err)
	err = s.c.PutObjectRetention(ctx, s.bucket, key, minio.PutObjectRetentionOptions{
		Mode: &gov, RetainUntilDate: &stored, VersionID: version, GovernanceBypass: true})
	if err == nil {
		t.Fatal("MinIO let compliance retention become governance")
	}
	t.Logf("MinIO refuses compliance to governance: %v", err)
	err = s.c.PutObjectRetention(ctx, s.bucket, key, minio.PutObjectRetentionOptions{VersionID: version, GovernanceBypass: true})
	if err == nil {
		t.Fatal("MinIO let compliance retention be removed")
	}
	t.Logf("MinIO refuses removing compliance: %v", err)

	versions := versionIDs(t, s, d)
	wantLocked(t, "Delete under compliance", s.Delete(ctx, d))
	wantLocked(t, "DeleteBypassGovernance under compliance", s.DeleteBypassGovernance(ctx, d))
	err = s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: version, GovernanceBypass: true})
	if err == nil {
		t.Fatal("MinIO deleted a version under compliance retention")
	}
	t.Logf("MinIO refuses deleting the version: %v", err)
	wantUnchanged(t, s, d, content, versions)
	if mode, got, _, err := s.BucketLock(ctx, d); err != nil || mode != ModeCompliance || !got.Equal(stored) {
		t.Fatalf("BucketLock after refusals = %q, %s, %v; want compliance until %s", mode, got, err, stored)
	}

	// Once the period ends, the blob can go.
	time.Sleep(time.Until(stored) + 200*time.Millisecond)
	if err := s.Delete(ctx, d); err != nil {
		t.Fatalf("Delete after compliance ended: %v", err)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v, want ErrNotFound", err)
	}
}

// TestGovernanceToCompliance checks that a running governance retention
// becomes compliance only with a governance bypass.
func TestGovernanceToCompliance(t *testing.T) {
	s := newLockStore(t)
	ctx := t.Context()
	d := putBlob(t, s, "upgraded")
	until := time.Now().Add(2 * time.Second)
	if err := s.SetRetention(ctx, d, ModeGovernance, until, false); err != nil {
		t.Fatal(err)
	}
	// MinIO, like S3, treats a mode change as overriding governance.
	wantLocked(t, "governance to compliance without bypass", s.SetRetention(ctx, d, ModeCompliance, until, false))
	if mode, _, _, err := s.BucketLock(ctx, d); err != nil || mode != ModeGovernance {
		t.Fatalf("BucketLock after refusal = %q, %v; want governance", mode, err)
	}
	if err := s.SetRetention(ctx, d, ModeCompliance, until, true); err != nil {
		t.Fatalf("governance to compliance with bypass: %v", err)
	}
	if mode, _, _, err := s.BucketLock(ctx, d); err != nil || mode != ModeCompliance {
		t.Fatalf("BucketLock = %q, %v; want compliance", mode, err)
	}
}

func TestLegalHold(t *testing.T) {
	s := newLockStore(t)
	ctx := t.Context()
	const content = "held"
	d := putBlob(t, s, content)
	if err := s.SetLegalHold(ctx, d, true); err != nil {
		t.Fatal(err)
	}
	if mode, _, hold, err := s.BucketLock(ctx, d); err != nil || !hold || mode != "" {
		t.Fatalf("BucketLock = %q, %v, %v; want a hold and no retention", mode, hold, err)
	}
	versions := versionIDs(t, s, d)
	wantLocked(t, "Delete under legal hold", s.Delete(ctx, d))
	wantLocked(t, "DeleteBypassGovernance under legal hold", s.DeleteBypassGovernance(ctx, d))
	wantUnchanged(t, s, d, content, versions)
	if err := s.SetLegalHold(ctx, d, false); err != nil {
		t.Fatal(err)
	}
	if _, _, hold, err := s.BucketLock(ctx, d); err != nil || hold {
		t.Fatalf("BucketLock after release = %v, %v; want no hold", hold, err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatalf("Delete after release: %v", err)
	}
	if vs := versionIDs(t, s, d); len(vs) != 0 {
		t.Fatalf("versions after Delete = %v, want none", vs)
	}
}

// TestDeleteAllVersions checks that Delete removes older versions too (a
// stray second write of the key), and that a lock on the current version
// refuses before any version is touched.
func TestDeleteAllVersions(t *testing.T) {
	s := newLockStore(t)
	ctx := t.Context()
	const content = "versions"
	d := putBlob(t, s, content)
	if _, err := s.c.PutObject(ctx, s.bucket, s.blobKey(d), strings.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	versions := versionIDs(t, s, d)
	if len(versions) != 2 {
		t.Fatalf("versions = %v, want 2", versions)
	}
	if err := s.SetLegalHold(ctx, d, true); err != nil {
		t.Fatal(err)
	}
	wantLocked(t, "Delete with a held current version", s.Delete(ctx, d))
	wantUnchanged(t, s, d, content, versions)
	if err := s.SetLegalHold(ctx, d, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if vs := versionIDs(t, s, d); len(vs) != 0 {
		t.Fatalf("versions after Delete = %v, want none", vs)
	}
	if err := s.Delete(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
}

func TestPresignGet(t *testing.T) {
	s := newLockStore(t)
	ctx := t.Context()
	content := bytes.Repeat([]byte("presigned "), 10000)
	d := digest.SHA256.FromBytes(content)
	if _, err := s.Put(ctx, d, -1, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	get := func(u string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	u, err := s.PresignGet(ctx, d, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, b := get(u.String()); code != http.StatusOK || !bytes.Equal(b, content) {
		t.Fatalf("GET presigned URL: %d, %d bytes; want 200 and the blob's %d bytes", code, len(b), len(content))
	}
	// The signature covers the key: another blob's key is refused.
	other := strings.Replace(u.String(), d.Encoded(), digest.SHA256.FromString("x").Encoded(), 1)
	if code, _ := get(other); code != http.StatusForbidden {
		t.Fatalf("GET with the key changed: %d, want 403", code)
	}
	missing := digest.SHA256.FromString("missing")
	mu, err := s.PresignGet(ctx, missing, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(mu.String()); code != http.StatusNotFound {
		t.Fatalf("GET presigned URL of a missing blob: %d, want 404", code)
	}
	short, err := s.PresignGet(ctx, d, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if code, _ := get(short.String()); code != http.StatusForbidden {
		t.Fatalf("GET expired presigned URL: %d, want 403", code)
	}
	for _, e := range []time.Duration{0, time.Millisecond, 8 * 24 * time.Hour} {
		if _, err := s.PresignGet(ctx, d, e); err == nil {
			t.Errorf("PresignGet(expiry %s) succeeded", e)
		}
	}
	if _, err := s.PresignGet(ctx, "sha256:nothex", time.Minute); err == nil {
		t.Error("PresignGet(invalid digest) succeeded")
	}
}
