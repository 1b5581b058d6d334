package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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

// metaStore is everything the server asks of a metadata backend. SQLite
// and PostgreSQL both provide it; each interface has its own conformance
// suite in internal/meta/metatest.
type metaStore interface {
	meta.Store
	retention.Store
	policy.Store
	builds.Index
	gc.Store
	tlog.Store
	account.Store
}

// rawBlobs is what the server asks of a blob backend beyond blob.Store:
// blob ages for GC's grace period and a digest check for verification on
// read. The filesystem and S3 backends both provide them.
type rawBlobs interface {
	blob.Store
	gc.Ager
	registry.Verifier
}

// leader elects one replica for a periodic job (PostgreSQL advisory locks).
type leader interface {
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
}

var (
	_ metaStore = (*sqlite.Store)(nil)
	_ metaStore = (*postgres.Store)(nil)
	_ rawBlobs  = (*fs.Store)(nil)
	_ rawBlobs  = (*s3.Store)(nil)
	_ leader    = (*postgres.Store)(nil)
)

// stores are the opened backends.
type stores struct {
	meta  metaStore
	blobs rawBlobs
	// scrub reads every record for integrity checks.
	scrub scrub.Store
	// embedded is true when any state lives in the data directory's
	// database or blob files, which one process at a time may own.
	embedded bool
	desc     string
}

// openStores opens the metadata and blob backends the configuration names:
// SQLite and the filesystem under the data directory by default,
// PostgreSQL (metadata: postgres://...) and S3 (blobs: s3://bucket/prefix)
// for replicas.
func openStores(ctx context.Context, cfg config.Config) (*stores, error) {
	st := &stores{}
	var descs []string
	switch m := cfg.Metadata; {
	case m == "" || m == "sqlite":
		md, err := sqlite.Open(filepath.Join(cfg.Data, "meta.db"))
		if err != nil {
			return nil, fmt.Errorf("opening metadata store in %s: %w", cfg.Data, err)
		}
		st.meta, st.scrub, st.embedded = md, md.ScrubView(), true
		descs = append(descs, "metadata=sqlite")
	case strings.HasPrefix(m, "postgres://") || strings.HasPrefix(m, "postgresql://"):
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		md, err := postgres.OpenWith(cctx, m, postgres.Options{Timeout: time.Duration(cfg.Limits.BackendTimeout)})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("opening the PostgreSQL metadata store %s: %w (is the database running and the URL right?)", redact(m), err)
		}
		st.meta, st.scrub = md, md
		descs = append(descs, "metadata=postgres")
	default:
		return nil, fmt.Errorf("metadata %q: use sqlite (the default) or a postgres:// URL", redact(m))
	}
	switch b := cfg.Blobs; {
	case b == "" || b == "fs":
		bs, err := fs.New(cfg.Data)
		if err != nil {
			st.meta.Close()
			return nil, fmt.Errorf("opening blob store in %s: %w", cfg.Data, err)
		}
		st.blobs, st.embedded = bs, true
		descs = append(descs, "blobs=fs")
	case strings.HasPrefix(b, "s3://"):
		bs, err := openS3(cfg)
		if err != nil {
			st.meta.Close()
			return nil, err
		}
		st.blobs = bs
		descs = append(descs, "blobs="+b)
	default:
		st.meta.Close()
		return nil, fmt.Errorf("blobs %q: use fs (the default) or s3://BUCKET[/PREFIX]", b)
	}
	st.desc = strings.Join(descs, " ")
	return st, nil
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

// MetaStore is everything the server asks of a metadata backend (SQLite
// or PostgreSQL).
type MetaStore = metaStore

// Stores are the backends a configuration names, opened exactly as the
// server opens them, for tools that work on a whole store (custody
// migrate). Close releases them.
type Stores struct {
	// Meta is the metadata backend.
	Meta MetaStore
	// Blobs is the blob backend.
	Blobs blob.Store
	// Scrub lists every blob link, manifest record and tag.
	Scrub scrub.Store
	// Embedded is true when state lives in the data directory's database
	// or blob files; OpenStores then holds the data directory's lock, so
	// no server runs on it meanwhile.
	Embedded bool
	// Desc names the backends, e.g. "metadata=postgres blobs=s3://b/p".
	Desc string

	lock *os.File
}

// OpenStores opens the metadata and blob backends cfg names, as `custody
// serve` does. For an embedded store it takes the data directory's lock
// and fails while a server or another tool holds it.
func OpenStores(ctx context.Context, cfg config.Config) (*Stores, error) {
	var lock *os.File
	if cfg.Metadata == "" || cfg.Metadata == "sqlite" || cfg.Blobs == "" || cfg.Blobs == "fs" {
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
		l, err := lockDir(cfg.Data)
		if err != nil {
			return nil, err
		}
		lock = l
	}
	st, err := openStores(ctx, cfg)
	if err != nil {
		closeLock(lock)
		return nil, err
	}
	return &Stores{Meta: st.meta, Blobs: st.blobs, Scrub: st.scrub, Embedded: st.embedded, Desc: st.desc, lock: lock}, nil
}

// Close closes the metadata store and releases the data directory's lock.
func (s *Stores) Close() error {
	err := s.Meta.Close()
	closeLock(s.lock)
	return err
}
