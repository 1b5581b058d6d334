// Package store opens the metadata and blob backends a configuration
// names: SQLite and the filesystem under the data directory by default
// (the embedded store), PostgreSQL (metadata: postgres://...) and S3
// (blobs: s3://bucket/prefix) for replicas. The server, gc, scrub and
// migrate all open stores here, so every command reaches every backend
// the same way.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/blob/s3"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/postgres"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/scrub"
	"github.com/custody-dev/custody/internal/tlog"
)

// Meta is everything custody asks of a metadata backend. SQLite and
// PostgreSQL both provide it; each interface has its own conformance
// suite in internal/meta/metatest.
type Meta interface {
	meta.Store
	retention.Store
	policy.Store
	builds.Index
	gc.Store
	tlog.Store
	account.Store
	// SigningLog is the storage of the transparency log for signing
	// events (internal/rekor): another tlog.Store, on its own tables.
	SigningLog() tlog.Store
}

// Blobs is what custody asks of a blob backend beyond blob.Store: blob
// ages for GC's grace period and a digest check for verification on read.
// The filesystem and S3 backends both provide them.
type Blobs interface {
	blob.Store
	gc.Ager
	registry.Verifier
}

var (
	_ Meta  = (*sqlite.Store)(nil)
	_ Meta  = (*postgres.Store)(nil)
	_ Blobs = (*fs.Store)(nil)
	_ Blobs = (*s3.Store)(nil)
)

// Set is an opened store: its metadata and blob backends. Close releases
// them.
type Set struct {
	// Meta is the metadata backend.
	Meta Meta
	// Blobs is the blob backend.
	Blobs Blobs
	// Scrub lists every blob link, manifest record and tag (for scrub and
	// migrate).
	Scrub scrub.Store
	// Embedded is true when state lives in the data directory's database
	// or blob files, which one process at a time may own; Open then holds
	// the data directory's lock.
	Embedded bool
	// Desc names the backends, e.g. "metadata=postgres blobs=s3://b/p".
	Desc string

	lock *os.File
}

// Close closes the metadata backend and releases the data directory's
// lock.
func (s *Set) Close() error {
	err := s.Meta.Close()
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// embedded reports whether cfg keeps any state in the data directory's
// database or blob files.
func embedded(cfg config.Config) bool {
	return cfg.Metadata == "" || cfg.Metadata == "sqlite" || cfg.Blobs == "" || cfg.Blobs == "fs"
}

// Open opens the backends cfg names for reading and writing, creating
// the data directory if absent. For an embedded store it first takes the
// data directory's lock, and fails with ErrInUse while a server or
// another tool holds it; with PostgreSQL and S3 replicas
// share the store and no lock is taken.
func Open(ctx context.Context, cfg config.Config) (_ *Set, err error) {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", cfg.Data, err)
	}
	st := &Set{Embedded: embedded(cfg)}
	if st.Embedded {
		if st.lock, err = lockDir(cfg.Data); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				st.lock.Close()
			}
		}()
	}
	var descs []string
	switch m := cfg.Metadata; {
	case m == "" || m == "sqlite":
		md, err := sqlite.Open(filepath.Join(cfg.Data, "meta.db"))
		if err != nil {
			return nil, fmt.Errorf("opening metadata store in %s: %w", cfg.Data, err)
		}
		st.Meta, st.Scrub = md, md.ScrubView()
		descs = append(descs, "metadata=sqlite")
	case isPostgres(m):
		md, err := openPostgres(ctx, cfg)
		if err != nil {
			return nil, err
		}
		st.Meta, st.Scrub = md, md
		descs = append(descs, "metadata=postgres")
	default:
		return nil, badMetadata(m)
	}
	bs, desc, err := openBlobs(cfg)
	if err != nil {
		st.Meta.Close()
		return nil, err
	}
	st.Blobs = bs
	st.Desc = strings.Join(append(descs, desc), " ")
	return st, nil
}

// View is a store opened for reading only, for scrub. Close releases it.
type View struct {
	// Blobs is the blob backend.
	Blobs Blobs
	// Scrub lists every blob link, manifest record and tag.
	Scrub scrub.Store
	// Desc names the backends, as Set.Desc.
	Desc string

	close func() error
}

// Close closes the metadata backend.
func (v *View) Close() error { return v.close() }

// OpenView opens the backends cfg names for reading. It takes no lock,
// so it is safe while a server runs on the same store: an embedded
// store's database is opened read-only (it must exist; nothing is
// created), a PostgreSQL database through the same connection and schema
// check as Open.
func OpenView(ctx context.Context, cfg config.Config) (*View, error) {
	v := &View{}
	var descs []string
	switch m := cfg.Metadata; {
	case m == "" || m == "sqlite":
		path := filepath.Join(cfg.Data, "meta.db")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no custody store in %s: %w", cfg.Data, err)
		}
		md, err := sqlite.OpenReadOnly(path)
		if err != nil {
			return nil, err
		}
		v.Scrub, v.close = md, md.Close
		descs = append(descs, "metadata=sqlite")
	case isPostgres(m):
		md, err := openPostgres(ctx, cfg)
		if err != nil {
			return nil, err
		}
		v.Scrub, v.close = md, md.Close
		descs = append(descs, "metadata=postgres")
	default:
		return nil, badMetadata(m)
	}
	bs, desc, err := openBlobs(cfg)
	if err != nil {
		v.close()
		return nil, err
	}
	v.Blobs = bs
	v.Desc = strings.Join(append(descs, desc), " ")
	return v, nil
}

func isPostgres(m string) bool {
	return strings.HasPrefix(m, "postgres://") || strings.HasPrefix(m, "postgresql://")
}

func badMetadata(m string) error {
	return fmt.Errorf("metadata %q: use sqlite (the default) or a postgres:// URL", redact(m))
}

func openPostgres(ctx context.Context, cfg config.Config) (*postgres.Store, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	md, err := postgres.OpenWith(cctx, cfg.Metadata, postgres.Options{Timeout: time.Duration(cfg.Limits.BackendTimeout)})
	if err != nil {
		return nil, fmt.Errorf("opening the PostgreSQL metadata store %s: %w (is the database running and the URL right?)", redact(cfg.Metadata), err)
	}
	return md, nil
}

// openBlobs opens the blob backend of cfg.Blobs and describes it.
func openBlobs(cfg config.Config) (Blobs, string, error) {
	switch b := cfg.Blobs; {
	case b == "" || b == "fs":
		bs, err := fs.New(cfg.Data)
		if err != nil {
			return nil, "", fmt.Errorf("opening blob store in %s: %w", cfg.Data, err)
		}
		return bs, "blobs=fs", nil
	case strings.HasPrefix(b, "s3://"):
		bs, err := openS3(cfg)
		if err != nil {
			return nil, "", err
		}
		return bs, "blobs=" + b, nil
	default:
		return nil, "", fmt.Errorf("blobs %q: use fs (the default) or s3://BUCKET[/PREFIX]", b)
	}
}

// openS3 opens the S3 blob store of cfg.Blobs (s3://bucket/prefix) with
// the endpoint of cfg.S3 and credentials from the usual variables
// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
func openS3(cfg config.Config) (*s3.Store, error) {
	u, err := url.Parse(cfg.Blobs)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("blobs %q: expected s3://BUCKET[/PREFIX]", cfg.Blobs)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	ep, err := url.Parse(cfg.S3.Endpoint)
	if err != nil || ep.Host == "" || (ep.Scheme != "http" && ep.Scheme != "https") {
		return nil, fmt.Errorf("s3.endpoint %q: expected http(s)://HOST[:PORT] (e.g. https://s3.eu-west-2.amazonaws.com)", cfg.S3.Endpoint)
	}
	access, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if access == "" || secret == "" {
		return nil, errors.New("S3 blobs need credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return s3.New(s3.Options{
		Endpoint:  ep.Host,
		Secure:    ep.Scheme == "https",
		AccessKey: access,
		SecretKey: secret,
		Region:    cfg.S3.Region,
		Bucket:    u.Host,
		Prefix:    prefix,
		Timeout:   time.Duration(cfg.Limits.BackendTimeout),
	})
}

// redact hides a URL's password for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// ErrInUse is wrapped by Open's error when another process holds an
// embedded store's data directory.
var ErrInUse = errors.New("in use by another custody process")

// lockDir takes an exclusive lock on the data directory so two processes
// never share an embedded store.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is %w (stop it or choose another --data)", dir, ErrInUse)
	}
	return f, nil
}
