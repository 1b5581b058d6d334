package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/veto"
)

// Retention modes, as custody (internal/retention) names them.
const (
	ModeGovernance = "governance"
	ModeCompliance = "compliance"
)

var (
	// ErrObjectLocked: the bucket's Object Lock (a running retention period
	// or a legal hold on the blob's object) refuses the change, or the
	// change would shorten or weaken a retention. It is always wrapped
	// together with veto.ErrDenied. The blob stays as it was.
	ErrObjectLocked = errors.New("refused by the bucket's object lock")
	// ErrNoObjectLock: the bucket was not created with Object Lock, so it
	// cannot hold retention or legal holds. S3 cannot enable it on an
	// existing bucket in every provider; create the bucket with Object Lock.
	ErrNoObjectLock = errors.New("bucket has no object lock configuration")
	// ErrInvalidRetention: the mode is not governance or compliance, or the
	// retain-until date is not in the future.
	ErrInvalidRetention = errors.New("invalid retention")
)

// lockedf returns an error wrapping veto.ErrDenied and ErrObjectLocked.
func lockedf(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", veto.ErrDenied, ErrObjectLocked, fmt.Sprintf(format, args...))
}

// S3 error codes for a missing lock configuration.
const (
	codeNoBucketLock = "ObjectLockConfigurationNotFoundError"
	codeNoObjectLock = "NoSuchObjectLockConfiguration"
)

// ObjectLockEnabled reports whether the bucket has Object Lock enabled, so
// that SetRetention and SetLegalHold can work. Object Lock cannot be
// switched off once on.
func (s *Store) ObjectLockEnabled(ctx context.Context) (bool, error) {
	status, _, _, _, err := s.c.GetObjectLockConfig(ctx, s.bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == codeNoBucketLock {
			return false, nil
		}
		return false, fmt.Errorf("object lock configuration of bucket %s: %w", s.bucket, err)
	}
	return status == "Enabled", nil
}

// current returns the key and current version ID ("" on an unversioned
// bucket) of blob d, or an error wrapping blob.ErrNotFound.
func (s *Store) current(ctx context.Context, d digest.Digest) (key, version string, err error) {
	if err := checkDigest(d); err != nil {
		return "", "", err
	}
	key = s.blobKey(d)
	info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return "", "", notFound(d, err)
	}
	return key, info.VersionID, nil
}

// lockState reads the retention and legal hold of one object version.
// A version without retention reports mode "", without a hold false.
func (s *Store) lockState(ctx context.Context, key, version string) (mode string, until time.Time, hold bool, err error) {
	m, u, err := s.c.GetObjectRetention(ctx, s.bucket, key, version)
	switch {
	case err == nil:
		if m != nil {
			mode = fromMinioMode(*m)
		}
		if u != nil {
			until = u.UTC()
		}
	case minio.ToErrorResponse(err).Code == codeNoObjectLock:
	default:
		return "", time.Time{}, false, err
	}
	h, err := s.c.GetObjectLegalHold(ctx, s.bucket, key, minio.GetObjectLegalHoldOptions{VersionID: version})
	switch {
	case err == nil:
		hold = h != nil && *h == minio.LegalHoldEnabled
	case minio.ToErrorResponse(err).Code == codeNoObjectLock:
	default:
		return "", time.Time{}, false, err
	}
	return mode, until, hold, nil
}

func fromMinioMode(m minio.RetentionMode) string {
	switch m {
	case minio.Governance:
		return ModeGovernance
	case minio.Compliance:
		return ModeCompliance
	}
	return string(m)
}

// BucketLock returns what the bucket enforces on blob d's current object
// version: its retention mode ("governance", "compliance", or "" when none
// was ever set), retain-until date (as stored, also when it has passed) and
// legal hold. Scrub compares it with custody's own record. It returns an
// error wrapping blob.ErrNotFound for a missing blob and ErrNoObjectLock on
// a bucket without Object Lock.
func (s *Store) BucketLock(ctx context.Context, d digest.Digest) (mode string, until time.Time, hold bool, err error) {
	key, version, err := s.current(ctx, d)
	if err != nil {
		return "", time.Time{}, false, err
	}
	mode, until, hold, err = s.lockState(ctx, key, version)
	if err != nil {
		return "", time.Time{}, false, s.refused(ctx, "read object lock of", d, "", "", err)
	}
	return mode, until, hold, nil
}

// SetRetention makes the bucket retain blob d's current object version in
// mode ("governance" or "compliance") until until, which is rounded up to
// the second and must be in the future. It only ever extends: when a
// running retention ends later than until, or is compliance and mode is
// governance, it refuses with an error wrapping ErrObjectLocked (and
// veto.ErrDenied) and changes nothing; S3 itself refuses to shorten or
// weaken compliance. A running governance retention is switched to
// compliance only with bypassGovernance, which sends S3's
// x-amz-bypass-governance-retention header (the credentials need
// s3:BypassGovernanceRetention); the caller decides who may bypass.
// An expired retention is replaced.
func (s *Store) SetRetention(ctx context.Context, d digest.Digest, mode string, until time.Time, bypassGovernance bool) error {
	var m minio.RetentionMode
	switch mode {
	case ModeGovernance:
		m = minio.Governance
	case ModeCompliance:
		m = minio.Compliance
	default:
		return fmt.Errorf("%w: mode %q: use %q or %q", ErrInvalidRetention, mode, ModeGovernance, ModeCompliance)
	}
	until = ceilSecond(until)
	if now := time.Now(); !until.After(now) {
		return fmt.Errorf("%w: retain-until %s is not in the future (now %s)", ErrInvalidRetention,
			until.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	key, version, err := s.current(ctx, d)
	if err != nil {
		return err
	}
	curMode, curUntil, _, err := s.lockState(ctx, key, version)
	if err != nil {
		return s.refused(ctx, "read object lock of", d, "", "", err)
	}
	if curMode != "" && curUntil.After(time.Now()) {
		if until.Before(curUntil) {
			return lockedf("blob %s: %s retention until %s cannot be shortened to %s",
				d, curMode, curUntil.Format(time.RFC3339), until.Format(time.RFC3339))
		}
		if curMode == ModeCompliance && mode == ModeGovernance {
			return lockedf("blob %s: compliance retention until %s cannot be changed to governance",
				d, curUntil.Format(time.RFC3339))
		}
	}
	err = s.c.PutObjectRetention(ctx, s.bucket, key, minio.PutObjectRetentionOptions{
		Mode:             &m,
		RetainUntilDate:  &until,
		VersionID:        version,
		GovernanceBypass: bypassGovernance,
	})
	if err != nil {
		return s.refused(ctx, "set retention of", d, key, version, err)
	}
	return nil
}

// ceilSecond rounds t up to a whole second in UTC, so that the stored
// date, which S3 may keep to the second, is never earlier than asked.
func ceilSecond(t time.Time) time.Time {
	t = t.UTC()
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// SetLegalHold places (on) or removes a legal hold on blob d's current
// object version. A hold has no period, is independent of retention and
// blocks deletion, also with a governance bypass, until removed.
func (s *Store) SetLegalHold(ctx context.Context, d digest.Digest, on bool) error {
	key, version, err := s.current(ctx, d)
	if err != nil {
		return err
	}
	st := minio.LegalHoldDisabled
	if on {
		st = minio.LegalHoldEnabled
	}
	err = s.c.PutObjectLegalHold(ctx, s.bucket, key, minio.PutObjectLegalHoldOptions{Status: &st, VersionID: version})
	if err != nil {
		return s.refused(ctx, "set legal hold of", d, key, version, err)
	}
	return nil
}

// refused explains err, from a request about one version of blob d's
// object (key and version; key "" for none): on a bucket without Object
// Lock it wraps ErrNoObjectLock; when the version is under a running
// retention or a legal hold, ErrObjectLocked and veto.ErrDenied. S3
// answers such refusals with 403 AccessDenied, MinIO with 400
// InvalidRequest "Object is WORM protected and cannot be overwritten", so
// the lock state is read back rather than the error code trusted.
func (s *Store) refused(ctx context.Context, what string, d digest.Digest, key, version string, err error) error {
	plain := fmt.Errorf("%s %s: %w", what, d, err)
	if st := minio.ToErrorResponse(err).StatusCode; st != http.StatusBadRequest && st != http.StatusForbidden || ctx.Err() != nil {
		return plain
	}
	if on, lerr := s.ObjectLockEnabled(ctx); lerr == nil && !on {
		return fmt.Errorf("%s %s: %w: bucket %s; create the bucket with Object Lock enabled (S3: %v)",
			what, d, ErrNoObjectLock, s.bucket, err)
	}
	if key == "" {
		return plain
	}
	mode, until, hold, lerr := s.lockState(ctx, key, version)
	switch {
	case lerr != nil:
	case hold:
		return lockedf("%s %s: the object is under a legal hold, which a governance bypass never lifts (S3: %v)", what, d, err)
	case mode == ModeGovernance && until.After(time.Now()):
		return lockedf("%s %s: the object is under governance retention until %s, which only a governance bypass overrides (S3: %v)",
			what, d, until.Format(time.RFC3339), err)
	case mode != "" && until.After(time.Now()):
		return lockedf("%s %s: the object is under %s retention until %s (S3: %v)", what, d, mode, until.Format(time.RFC3339), err)
	}
	return plain
}

// DeleteBypassGovernance deletes blob d like Delete, but sends S3's
// governance bypass header, so a running governance retention does not
// refuse it (the credentials need s3:BypassGovernanceRetention). Compliance
// retention and legal holds still refuse it. The caller must have checked
// that the request holds custody's bypass permission and audited it.
func (s *Store) DeleteBypassGovernance(ctx context.Context, d digest.Digest) error {
	return s.delete(ctx, d, true)
}

// Delete implements blob.Store. On a versioned bucket (every bucket with
// Object Lock) it deletes every version of the blob's object, the current
// one first, so no bytes stay behind hidden by a delete marker. When the
// bucket's Object Lock refuses the current version's deletion, nothing
// changes and the error wraps ErrObjectLocked and veto.ErrDenied. (Should
// an older version, left by a second write of the key, refuse after the
// current one went, it stays and becomes current: the same verified
// content, so the blob is still whole, and the error is returned.)
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	return s.delete(ctx, d, false)
}

func (s *Store) delete(ctx context.Context, d digest.Digest, bypass bool) error {
	key, version, err := s.current(ctx, d)
	if err != nil {
		return err
	}
	s.forget(d)
	if version == "" { // unversioned: no Object Lock, one object
		if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("delete %s: %w", d, err)
		}
		_ = s.removeVersions(ctx, s.touchKey(d))
		return nil
	}
	versions, err := s.versions(ctx, key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", d, err)
	}
	// The current version first: if the lock refuses it, nothing changed.
	slices.SortStableFunc(versions, func(a, b minio.ObjectInfo) int {
		switch {
		case a.VersionID == version:
			return -1
		case b.VersionID == version:
			return 1
		}
		return b.LastModified.Compare(a.LastModified)
	})
	if len(versions) == 0 || versions[0].VersionID != version {
		versions = append([]minio.ObjectInfo{{Key: key, VersionID: version}}, versions...)
	}
	for _, v := range versions {
		err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: bypass})
		if err == nil || isNotFound(err) {
			continue
		}
		return s.refused(ctx, "delete", d, key, v.VersionID, err)
	}
	_ = s.removeVersions(ctx, s.touchKey(d))
	return nil
}

// versions lists every version and delete marker of exactly key.
func (s *Store) versions(ctx context.Context, key string) ([]minio.ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var vs []minio.ObjectInfo
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if obj.Err != nil {
			return nil, obj.Err
		}
		if obj.Key == key {
			vs = append(vs, obj)
		}
	}
	return vs, nil
}
