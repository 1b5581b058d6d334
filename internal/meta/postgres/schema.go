package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema versions, in order. Version i+1 is
// migrations[i]. Applied migrations must never be edited: append a new one.
//
// Repository names, tags and digests are COLLATE "C" so that listings sort
// by bytes whatever the database's default collation is. Times are unix
// nanoseconds, as in the SQLite backend, so they round-trip exactly.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE repositories (
	name TEXT COLLATE "C" NOT NULL PRIMARY KEY
);

CREATE TABLE blob_links (
	repo   TEXT COLLATE "C" NOT NULL REFERENCES repositories(name),
	digest TEXT COLLATE "C" NOT NULL,
	size   BIGINT NOT NULL,
	PRIMARY KEY (repo, digest)
);
CREATE INDEX blob_links_digest ON blob_links(digest);

CREATE TABLE manifests (
	repo          TEXT COLLATE "C" NOT NULL REFERENCES repositories(name),
	digest        TEXT COLLATE "C" NOT NULL,
	media_type    TEXT   NOT NULL,
	size          BIGINT NOT NULL,
	artifact_type TEXT   NOT NULL DEFAULT '',
	subject       TEXT COLLATE "C",
	annotations   JSONB,
	created       BIGINT NOT NULL,
	PRIMARY KEY (repo, digest)
);
CREATE INDEX manifests_digest ON manifests(digest);
CREATE INDEX manifests_subject ON manifests(repo, subject, digest) WHERE subject IS NOT NULL;

CREATE TABLE manifest_refs (
	repo     TEXT COLLATE "C" NOT NULL,
	manifest TEXT COLLATE "C" NOT NULL,
	kind     TEXT    NOT NULL CHECK (kind IN ('blob', 'manifest')),
	position INTEGER NOT NULL,
	ref      TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (repo, manifest, kind, position),
	FOREIGN KEY (repo, manifest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_refs_ref ON manifest_refs(ref);

CREATE TABLE tags (
	repo    TEXT COLLATE "C" NOT NULL,
	tag     TEXT COLLATE "C" NOT NULL,
	digest  TEXT COLLATE "C" NOT NULL,
	updated BIGINT NOT NULL,
	PRIMARY KEY (repo, tag),
	FOREIGN KEY (repo, digest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
);
CREATE INDEX tags_digest ON tags(repo, digest);

CREATE TABLE uploads (
	id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	repo    TEXT   NOT NULL,
	acked   BIGINT NOT NULL, -- the upload offset: bytes acknowledged to the client
	created BIGINT NOT NULL,
	updated BIGINT NOT NULL
);
CREATE INDEX uploads_updated ON uploads(updated);
`,
}

// migrate brings the schema (the first schema on the connection's
// search_path) up to date in one transaction. A transaction-scoped
// advisory lock keyed on the schema name serialises replicas that start at
// once: the first applies the migrations, the others wait for it and then
// find nothing left to do.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx,
			`SELECT pg_advisory_xact_lock(hashtextextended('custody.meta.migrate.' || current_schema(), 0))`); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER NOT NULL PRIMARY KEY,
	applied BIGINT  NOT NULL
)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this build supports (%d)", current, len(migrations))
		}
		for i := current; i < len(migrations); i++ {
			version := i + 1
			if _, err := tx.Exec(ctx, migrations[i]); err != nil {
				return fmt.Errorf("apply migration %d: %w", version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version, applied) VALUES ($1, $2)`,
				version, time.Now().UTC().UnixNano()); err != nil {
				return fmt.Errorf("record migration %d: %w", version, err)
			}
		}
		return nil
	})
}
