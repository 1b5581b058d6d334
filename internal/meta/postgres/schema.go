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
// microseconds (nanoseconds before migration 4), as in the SQLite backend
// (see meta.Micros).
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
	// 2: what the SQLite backend's migrations 2 to 4 add: repository
	// policies (versioned), artifact retention, the build metadata index
	// with tag history (backfilled from the existing manifests and tags),
	// and the tamper-evident audit log (see tlog.go and docs/audit.md).
	`
CREATE TABLE policies (
	pattern TEXT COLLATE "C" NOT NULL,
	version INTEGER NOT NULL,
	body    TEXT    NOT NULL, -- JSON of policy.Policy
	created BIGINT  NOT NULL,
	PRIMARY KEY (pattern, version)
);

CREATE TABLE retention (
	repo         TEXT COLLATE "C" NOT NULL,
	digest       TEXT COLLATE "C" NOT NULL,
	mode         TEXT    NOT NULL DEFAULT '' CHECK (mode IN ('', 'governance', 'compliance')),
	retain_until BIGINT  NOT NULL DEFAULT 0, -- unix nanoseconds; 0: none
	legal_hold   BOOLEAN NOT NULL DEFAULT false,
	updated      BIGINT  NOT NULL,
	PRIMARY KEY (repo, digest)
);
CREATE INDEX retention_digest ON retention(digest);

CREATE TABLE build_meta (
	repo         TEXT COLLATE "C" NOT NULL,
	digest       TEXT COLLATE "C" NOT NULL,
	revision     TEXT,
	source       TEXT,
	version      TEXT,
	created      TEXT,
	build_number TEXT,
	pipeline_run TEXT,
	PRIMARY KEY (repo, digest),
	FOREIGN KEY (repo, digest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
);
CREATE INDEX build_meta_revision ON build_meta(revision) WHERE revision IS NOT NULL;
CREATE INDEX build_meta_version ON build_meta(repo, version) WHERE version IS NOT NULL;

INSERT INTO build_meta(repo, digest, revision, source, version, created, build_number, pipeline_run)
SELECT repo, digest, r, s, v, c, b, p FROM (
	SELECT repo, digest,
		annotations->>'org.opencontainers.image.revision' AS r,
		annotations->>'org.opencontainers.image.source' AS s,
		annotations->>'org.opencontainers.image.version' AS v,
		annotations->>'org.opencontainers.image.created' AS c,
		annotations->>'dev.custody.build.number' AS b,
		annotations->>'dev.custody.pipeline.run' AS p
	FROM manifests WHERE jsonb_typeof(annotations) = 'object'
) a WHERE COALESCE(r, s, v, c, b, p) IS NOT NULL;

-- id orders the history of a tag: the transaction that moves a tag holds
-- the tag's row lock while it inserts here, so ids follow commit order.
CREATE TABLE tag_history (
	id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	repo   TEXT COLLATE "C" NOT NULL,
	tag    TEXT COLLATE "C" NOT NULL,
	digest TEXT COLLATE "C" NOT NULL,
	at     BIGINT NOT NULL
);
CREATE INDEX tag_history_tag ON tag_history(repo, tag, id);

INSERT INTO tag_history(repo, tag, digest, at)
SELECT repo, tag, digest, updated FROM tags ORDER BY updated, repo, tag;

CREATE TABLE tlog_leaves (
	idx       BIGINT NOT NULL PRIMARY KEY, -- leaf index, from 0
	entry     TEXT   NOT NULL,             -- canonical JSON of tlog.Entry, byte for byte
	leaf_hash BYTEA  NOT NULL,             -- SHA-256(0x00 || entry)
	doc       JSONB                        -- entry parsed, for search; NULL if not JSON
);
CREATE INDEX tlog_leaves_hash ON tlog_leaves(leaf_hash);
CREATE INDEX tlog_leaves_doc ON tlog_leaves USING GIN (doc jsonb_path_ops);

-- The log's size. Appends lock this one row, so replicas sharing the
-- database append one sequence: an append that does not start at the
-- current size fails and writes nothing.
CREATE TABLE tlog_head (
	one  BOOLEAN NOT NULL PRIMARY KEY DEFAULT true CHECK (one),
	size BIGINT  NOT NULL
);
INSERT INTO tlog_head(one, size) VALUES (true, 0);

-- Nodes of the Merkle tree as appended: roots of perfect subtrees (level 0:
-- leaf hashes). Proofs are built from these alone.
CREATE TABLE tlog_nodes (
	level INTEGER NOT NULL,
	idx   BIGINT  NOT NULL,
	hash  BYTEA   NOT NULL,
	PRIMARY KEY (level, idx)
);

CREATE TABLE tlog_checkpoints (
	size    BIGINT NOT NULL PRIMARY KEY,
	root    BYTEA  NOT NULL,
	note    TEXT   NOT NULL, -- the signed note
	created BIGINT NOT NULL
);
`,
	// 3: what the SQLite backend's migration 5 adds: users, grants and API
	// tokens (account.Store, see accounts.go).
	`
CREATE TABLE auth_users (
	name          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	password_hash TEXT   NOT NULL,
	groups        JSONB  NOT NULL, -- JSON array of group names
	created       BIGINT NOT NULL
);

CREATE TABLE auth_grants (
	subject    TEXT COLLATE "C" NOT NULL,
	role       TEXT COLLATE "C" NOT NULL,
	repository TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (subject, role, repository)
);

CREATE TABLE auth_tokens (
	id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	hash    TEXT   NOT NULL UNIQUE, -- hex SHA-256 of the secret
	owner   TEXT   NOT NULL,
	name    TEXT   NOT NULL,
	scopes  JSONB  NOT NULL,        -- JSON of []account.Scope
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	revoked BIGINT                  -- unix nanoseconds; NULL: not revoked
);

-- The generation: every write adds one under this row's lock, so
-- concurrent writers (replicas) never lose an increment and readers see it
-- grow with every change.
CREATE TABLE auth_generation (
	one BOOLEAN NOT NULL PRIMARY KEY DEFAULT true CHECK (one),
	gen BIGINT  NOT NULL
);
INSERT INTO auth_generation(one, gen) VALUES (true, 0);
`,
	// 4: what the SQLite backend's migration 6 does: instants were unix
	// nanoseconds, which overflow a BIGINT after 2262-04-11 (a retention
	// date of 2300 wrapped around to 1715). Every stored instant becomes
	// unix microseconds (see meta.Micros), which cannot overflow. A
	// negative retain_until can only be such a wrapped date (a retention
	// date is in the future when set); it is restored to the date asked
	// for by adding 2^64 ns, exact for dates up to 2846.
	`
UPDATE manifests SET created = created / 1000;
UPDATE tags SET updated = updated / 1000;
UPDATE uploads SET created = created / 1000, updated = updated / 1000;
UPDATE policies SET created = created / 1000;
UPDATE retention SET
	retain_until = CASE
		WHEN retain_until >= 0 THEN retain_until / 1000
		ELSE floor((retain_until::numeric + 18446744073709551616) / 1000)::bigint
	END,
	updated = updated / 1000;
UPDATE tag_history SET at = at / 1000;
UPDATE tlog_checkpoints SET created = created / 1000;
UPDATE auth_users SET created = created / 1000;
UPDATE auth_tokens SET created = created / 1000, expires = expires / 1000, revoked = revoked / 1000;
UPDATE schema_migrations SET applied = applied / 1000;
`,
	// 5: browser sessions of the web interface (see sessions.go), as the
	// SQLite backend's migration 7.
	`
CREATE TABLE IF NOT EXISTS auth_sessions (
	hash      TEXT COLLATE "C" NOT NULL PRIMARY KEY, -- hex SHA-256 of the secret
	subject   TEXT   NOT NULL,
	method    TEXT   NOT NULL,
	groups    JSONB  NOT NULL,
	scopes    JSONB  NOT NULL,
	csrf      TEXT   NOT NULL,
	created   BIGINT NOT NULL, -- unix microseconds
	last_seen BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_sessions_last_seen ON auth_sessions(last_seen);
CREATE INDEX IF NOT EXISTS auth_sessions_created ON auth_sessions(created);
`,
	// 6: the audit log searched by time (TlogSearch's since/until, the
	// Audit page's time range) reads an index instead of every entry, as
	// the SQLite backend's migration 8. Searches by repository, digest,
	// actor and action already use the GIN index on doc (migration 2).
	// The expression and collation are TlogSearch's, or PostgreSQL would
	// not use it.
	`
CREATE INDEX IF NOT EXISTS tlog_leaves_time ON tlog_leaves (((doc->>'time') COLLATE "C"), idx);
`,
	// 7: the repositories an environment tag ever named
	// (TaggedRepositories), off an index by tag, as the SQLite backend's
	// migration 9.
	`
CREATE INDEX IF NOT EXISTS tag_history_by_tag ON tag_history(tag, repo);
`,
	// 8: disabled accounts (SetUserDisabled), as the SQLite backend's
	// migration 10: unix microseconds, NULL while enabled.
	`
ALTER TABLE auth_users ADD COLUMN IF NOT EXISTS disabled BIGINT;
`,
	// 9: second factors, as the SQLite backend's migration 9 (see
	// factors.go).
	`
CREATE TABLE IF NOT EXISTS auth_factors (
	name           TEXT    NOT NULL PRIMARY KEY,
	totp_secret    TEXT    NOT NULL,
	totp_confirmed BOOLEAN NOT NULL,
	totp_last_step BIGINT  NOT NULL,
	updated        BIGINT  NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_recovery_codes (
	name TEXT NOT NULL,
	hash TEXT NOT NULL,
	PRIMARY KEY (name, hash)
);
ALTER TABLE auth_sessions ADD COLUMN IF NOT EXISTS factor TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_sessions ADD COLUMN IF NOT EXISTS factor_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_tokens ADD COLUMN IF NOT EXISTS sign_in BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE IF NOT EXISTS auth_webauthn (
	id         TEXT   NOT NULL PRIMARY KEY,
	name       TEXT   NOT NULL,
	label      TEXT   NOT NULL,
	record     BYTEA  NOT NULL,
	sign_count BIGINT NOT NULL,
	created    BIGINT NOT NULL,
	last_used  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_webauthn_name ON auth_webauthn(name, created);
`,
	// The transparency log for signing events (internal/rekor): the audit
	// log's tables again, for a second tlog.Store (SigningLog).
	`
CREATE TABLE IF NOT EXISTS signlog_leaves (
	idx       BIGINT NOT NULL PRIMARY KEY,
	entry     TEXT   NOT NULL, -- the canonicalized entry body
	leaf_hash BYTEA  NOT NULL,
	doc       JSONB
);
CREATE INDEX IF NOT EXISTS signlog_leaves_hash ON signlog_leaves(leaf_hash);
CREATE TABLE IF NOT EXISTS signlog_head (
	one  BOOLEAN NOT NULL PRIMARY KEY DEFAULT true CHECK (one),
	size BIGINT  NOT NULL
);
INSERT INTO signlog_head(one, size) VALUES (true, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS signlog_nodes (
	level INTEGER NOT NULL,
	idx   BIGINT  NOT NULL,
	hash  BYTEA   NOT NULL,
	PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS signlog_checkpoints (
	size    BIGINT NOT NULL PRIMARY KEY,
	root    BYTEA  NOT NULL,
	note    TEXT   NOT NULL,
	created BIGINT NOT NULL
);
`,
	// 11: started sign-in ceremonies, as the SQLite backend's migration
	// 13 (see challenges.go).
	`
CREATE TABLE IF NOT EXISTS auth_challenges (
	kind    TEXT   NOT NULL,
	key     TEXT   NOT NULL,
	name    TEXT   NOT NULL,
	data    BYTEA  NOT NULL,
	expires BIGINT NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS auth_challenges_expires ON auth_challenges(expires);
`,
	// 12: the logs' search fields move out of the append (see tlog.go,
	// "Storage layout"), as the SQLite backend's migration 14: an append
	// inserts only the leaf (the primary key's index), and tlog_search,
	// with the indexes that searches read, is filled behind the appends
	// by the search indexer (tlogsearch.go). custody_jsonb parses an
	// entry for search, NULL where PostgreSQL's jsonb does not take it
	// (an entry edited into something else, or holding \u0000). It
	// catches jsonb's error in an EXCEPTION block, a subtransaction,
	// which a parallel worker cannot start: PARALLEL UNSAFE keeps the
	// statements that call it out of parallel plans, which PostgreSQL
	// may choose by itself for a large table.
	// custody_search_fields keeps the fields searches filter on, so the
	// GIN index holds 5 keys per entry instead of every field's. The
	// time index holds the time's first 64 characters, so that an entry
	// whose time is too long for a B-tree row (written behind the
	// server's back) does not stop the indexer; compared with a time of
	// fewer characters in the "C" collation, they compare as the whole
	// time does. The leaves' doc column stays, no longer written
	// (earlier migrations name it): the backfill reads it where it is
	// set and parses the entry where not, so that run again (the tests
	// rewind schema_migrations) it does not file the leaves appended
	// since as indexed with nothing to find. The signing log's tables
	// get the same.
	`
CREATE OR REPLACE FUNCTION custody_jsonb(t TEXT) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
	RETURN t::jsonb;
EXCEPTION WHEN others THEN
	RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION custody_search_fields(d JSONB) RETURNS JSONB
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN jsonb_typeof(d) = 'object' THEN jsonb_strip_nulls(jsonb_build_object(
	'repo', d->'repo', 'digest', d->'digest', 'actor', d->'actor', 'action', d->'action', 'time', d->'time'))
	ELSE d END
$$;
CREATE TABLE IF NOT EXISTS tlog_search (
	idx       BIGINT NOT NULL PRIMARY KEY, -- the leaf's index
	leaf_hash BYTEA  NOT NULL,             -- the leaf's hash when indexed
	doc       JSONB                        -- custody_search_fields(custody_jsonb(entry))
);
INSERT INTO tlog_search(idx, leaf_hash, doc) SELECT idx, leaf_hash, custody_search_fields(COALESCE(doc, custody_jsonb(entry))) FROM tlog_leaves ON CONFLICT DO NOTHING;
CREATE INDEX IF NOT EXISTS tlog_search_hash ON tlog_search(leaf_hash);
CREATE INDEX IF NOT EXISTS tlog_search_doc ON tlog_search USING GIN (doc jsonb_path_ops);
CREATE INDEX IF NOT EXISTS tlog_search_time ON tlog_search ((left(doc->>'time', 64) COLLATE "C"), idx);
DROP INDEX IF EXISTS tlog_leaves_hash, tlog_leaves_doc, tlog_leaves_time;
CREATE TABLE IF NOT EXISTS signlog_search (
	idx       BIGINT NOT NULL PRIMARY KEY, -- the leaf's index
	leaf_hash BYTEA  NOT NULL,             -- the leaf's hash when indexed
	doc       JSONB                        -- custody_search_fields(custody_jsonb(entry))
);
INSERT INTO signlog_search(idx, leaf_hash, doc) SELECT idx, leaf_hash, custody_search_fields(COALESCE(doc, custody_jsonb(entry))) FROM signlog_leaves ON CONFLICT DO NOTHING;
CREATE INDEX IF NOT EXISTS signlog_search_hash ON signlog_search(leaf_hash);
CREATE INDEX IF NOT EXISTS signlog_search_doc ON signlog_search USING GIN (doc jsonb_path_ops);
CREATE INDEX IF NOT EXISTS signlog_search_time ON signlog_search ((left(doc->>'time', 64) COLLATE "C"), idx);
DROP INDEX IF EXISTS signlog_leaves_hash, signlog_leaves_doc, signlog_leaves_time;
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
				version, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("record migration %d: %w", version, err)
			}
		}
		return nil
	})
}
