package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are the schema versions, in order. Version i+1 is
// migrations[i]. Applied migrations must never be edited: append a new one.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE repositories (
	name TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE blob_links (
	repo   TEXT    NOT NULL REFERENCES repositories(name),
	digest TEXT    NOT NULL,
	size   INTEGER NOT NULL,
	PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX blob_links_digest ON blob_links(digest);

CREATE TABLE manifests (
	repo          TEXT    NOT NULL REFERENCES repositories(name),
	digest        TEXT    NOT NULL,
	media_type    TEXT    NOT NULL,
	size          INTEGER NOT NULL,
	artifact_type TEXT    NOT NULL DEFAULT '',
	subject       TEXT,
	annotations   TEXT,
	created       INTEGER NOT NULL,
	PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX manifests_digest ON manifests(digest);
CREATE INDEX manifests_subject ON manifests(repo, subject, digest) WHERE subject IS NOT NULL;

CREATE TABLE manifest_refs (
	repo     TEXT    NOT NULL,
	manifest TEXT    NOT NULL,
	kind     TEXT    NOT NULL CHECK (kind IN ('blob', 'manifest')),
	position INTEGER NOT NULL,
	ref      TEXT    NOT NULL,
	PRIMARY KEY (repo, manifest, kind, position),
	FOREIGN KEY (repo, manifest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_refs_ref ON manifest_refs(ref);

CREATE TABLE tags (
	repo    TEXT    NOT NULL,
	tag     TEXT    NOT NULL,
	digest  TEXT    NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (repo, tag),
	FOREIGN KEY (repo, digest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_digest ON tags(repo, digest);

CREATE TABLE uploads (
	id      TEXT    NOT NULL PRIMARY KEY,
	repo    TEXT    NOT NULL,
	acked   INTEGER NOT NULL, -- the upload offset: bytes acknowledged to the client
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_updated ON uploads(updated);
`,
	// 2: repository policies (versioned) and artifact retention.
	`
CREATE TABLE policies (
	pattern TEXT    NOT NULL,
	version INTEGER NOT NULL,
	body    TEXT    NOT NULL, -- JSON of policy.Policy
	created INTEGER NOT NULL,
	PRIMARY KEY (pattern, version)
) WITHOUT ROWID;

CREATE TABLE retention (
	repo         TEXT    NOT NULL,
	digest       TEXT    NOT NULL,
	mode         TEXT    NOT NULL DEFAULT '' CHECK (mode IN ('', 'governance', 'compliance')),
	retain_until INTEGER NOT NULL DEFAULT 0, -- unix nanoseconds; 0: none
	legal_hold   INTEGER NOT NULL DEFAULT 0,
	updated      INTEGER NOT NULL,
	PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX retention_digest ON retention(digest);
`,
	// 3: build metadata index and tag history (see builds.go).
	`
CREATE TABLE build_meta (
	repo         TEXT NOT NULL,
	digest       TEXT NOT NULL,
	revision     TEXT,
	source       TEXT,
	version      TEXT,
	created      TEXT,
	build_number TEXT,
	pipeline_run TEXT,
	PRIMARY KEY (repo, digest),
	FOREIGN KEY (repo, digest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX build_meta_revision ON build_meta(revision) WHERE revision IS NOT NULL;
CREATE INDEX build_meta_version ON build_meta(repo, version) WHERE version IS NOT NULL;

INSERT INTO build_meta(repo, digest, revision, source, version, created, build_number, pipeline_run)
SELECT repo, digest, r, s, v, c, b, p FROM (
	SELECT repo, digest,
		json_extract(annotations, '$."org.opencontainers.image.revision"') AS r,
		json_extract(annotations, '$."org.opencontainers.image.source"') AS s,
		json_extract(annotations, '$."org.opencontainers.image.version"') AS v,
		json_extract(annotations, '$."org.opencontainers.image.created"') AS c,
		json_extract(annotations, '$."dev.custody.build.number"') AS b,
		json_extract(annotations, '$."dev.custody.pipeline.run"') AS p
	FROM manifests WHERE annotations IS NOT NULL AND json_valid(annotations)
) WHERE COALESCE(r, s, v, c, b, p) IS NOT NULL;

CREATE TABLE tag_history (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	repo   TEXT    NOT NULL,
	tag    TEXT    NOT NULL,
	digest TEXT    NOT NULL,
	at     INTEGER NOT NULL
);
CREATE INDEX tag_history_tag ON tag_history(repo, tag, id);

INSERT INTO tag_history(repo, tag, digest, at) SELECT repo, tag, digest, updated FROM tags ORDER BY updated, repo, tag;
`,
	// 4: the tamper-evident audit log (see tlog.go and docs/audit.md).
	`
CREATE TABLE tlog_leaves (
	idx       INTEGER NOT NULL PRIMARY KEY, -- leaf index, from 0
	entry     TEXT    NOT NULL,             -- canonical JSON of tlog.Entry
	leaf_hash BLOB    NOT NULL              -- SHA-256(0x00 || entry)
);
CREATE INDEX tlog_leaves_hash ON tlog_leaves(leaf_hash);

-- Nodes of the Merkle tree as appended: roots of perfect subtrees (level 0:
-- leaf hashes). Proofs are built from these alone.
CREATE TABLE tlog_nodes (
	level INTEGER NOT NULL,
	idx   INTEGER NOT NULL,
	hash  BLOB    NOT NULL,
	PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE tlog_checkpoints (
	size    INTEGER NOT NULL PRIMARY KEY,
	root    BLOB    NOT NULL,
	note    TEXT    NOT NULL, -- the signed note
	created INTEGER NOT NULL
);
`,
	// 5: users, grants and API tokens (internal/auth; see auth.go).
	`
CREATE TABLE auth_users (
	name          TEXT    NOT NULL PRIMARY KEY,
	password_hash TEXT    NOT NULL,
	groups_json   TEXT    NOT NULL,
	created       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE auth_grants (
	subject    TEXT NOT NULL,
	role       TEXT NOT NULL,
	repository TEXT NOT NULL,
	PRIMARY KEY (subject, role, repository)
) WITHOUT ROWID;

CREATE TABLE auth_tokens (
	id          TEXT    NOT NULL PRIMARY KEY,
	hash        TEXT    NOT NULL UNIQUE,
	owner       TEXT    NOT NULL,
	name        TEXT    NOT NULL,
	scopes_json TEXT    NOT NULL,
	created     INTEGER NOT NULL,
	expires     INTEGER NOT NULL,
	revoked     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE auth_generation (
	id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	gen INTEGER NOT NULL
);
INSERT INTO auth_generation(id, gen) VALUES (1, 0);
`,
	// 6: instants were unix nanoseconds, which overflow an int64 after
	// 2262-04-11: a retention date of 2300 wrapped around to 1715. Every
	// stored instant becomes unix microseconds (see meta.Micros), which
	// cannot overflow. A negative retain_until can only be such a wrapped
	// date (a retention date is in the future when set); it is restored
	// to the date asked for by adding 2^64 ns, exact for dates up to 2846.
	// 18446744073709551 is (2^64 - 616) / 1000.
	migrationMicros,
	// 7: browser sessions of the web interface (see sessions.go).
	`
CREATE TABLE IF NOT EXISTS auth_sessions (
	hash        TEXT    NOT NULL PRIMARY KEY,
	subject     TEXT    NOT NULL,
	method      TEXT    NOT NULL,
	groups_json TEXT    NOT NULL,
	scopes_json TEXT    NOT NULL,
	csrf        TEXT    NOT NULL,
	created     INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS auth_sessions_last_seen ON auth_sessions(last_seen);
CREATE INDEX IF NOT EXISTS auth_sessions_created ON auth_sessions(created);
`,
	// 8: the audit log searched by its fields (TlogSearch: the Audit page's
	// filters, an artifact's history by repository and digest) reads an
	// index instead of every entry's JSON. Each index ends in idx, so the
	// newest matches come off its end; the expressions are TlogSearch's,
	// character for character, or SQLite would not use them.
	`
CREATE INDEX IF NOT EXISTS tlog_leaves_repo ON tlog_leaves(json_extract(entry, '$.repo'), idx);
CREATE INDEX IF NOT EXISTS tlog_leaves_digest ON tlog_leaves(json_extract(entry, '$.digest'), idx);
CREATE INDEX IF NOT EXISTS tlog_leaves_actor ON tlog_leaves(json_extract(entry, '$.actor'), idx);
CREATE INDEX IF NOT EXISTS tlog_leaves_action ON tlog_leaves(json_extract(entry, '$.action'), idx);
CREATE INDEX IF NOT EXISTS tlog_leaves_time ON tlog_leaves(json_extract(entry, '$.time'), idx);
`,
	// 9: the repositories an environment tag ever named
	// (TaggedRepositories: the Environments overview's candidates) come
	// off an index by tag instead of one history lookup per repository.
	`
CREATE INDEX IF NOT EXISTS tag_history_by_tag ON tag_history(tag, repo);
`,
	// 10: disabled accounts (SetUserDisabled): unix microseconds of the
	// disabling, NULL while the account is enabled.
	`
ALTER TABLE auth_users ADD COLUMN disabled INTEGER;
`,
	// 11: second factors (see factors.go): a local user's TOTP secret and
	// the last time step used (codes work once), its hashed recovery
	// codes, the factor a session's caller last presented, and which API
	// tokens stand for a sign-in (custody login), and WebAuthn keys
	// (security keys, passkeys) with their signature counters.
	`
CREATE TABLE IF NOT EXISTS auth_factors (
	name           TEXT    NOT NULL PRIMARY KEY,
	totp_secret    TEXT    NOT NULL,
	totp_confirmed INTEGER NOT NULL,
	totp_last_step INTEGER NOT NULL,
	updated        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS auth_recovery_codes (
	name TEXT NOT NULL,
	hash TEXT NOT NULL,
	PRIMARY KEY (name, hash)
) WITHOUT ROWID;
ALTER TABLE auth_sessions ADD COLUMN factor TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_sessions ADD COLUMN factor_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE auth_tokens ADD COLUMN sign_in INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS auth_webauthn (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	label      TEXT    NOT NULL,
	record     BLOB    NOT NULL,
	sign_count INTEGER NOT NULL,
	created    INTEGER NOT NULL,
	last_used  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS auth_webauthn_name ON auth_webauthn(name, created);
`,
	// 12: the transparency log for signing events (internal/rekor): the audit
	// log's tables again, for a second tlog.Store (SigningLog). Its entries
	// are Rekor v2 entry bodies, not audit entries, so it has no search
	// indexes.
	`
CREATE TABLE IF NOT EXISTS signlog_leaves (
	idx       INTEGER NOT NULL PRIMARY KEY, -- leaf index, from 0
	entry     TEXT    NOT NULL,             -- the canonicalized entry body
	leaf_hash BLOB    NOT NULL              -- SHA-256(0x00 || entry)
);
CREATE INDEX IF NOT EXISTS signlog_leaves_hash ON signlog_leaves(leaf_hash);
CREATE TABLE IF NOT EXISTS signlog_nodes (
	level INTEGER NOT NULL,
	idx   INTEGER NOT NULL,
	hash  BLOB    NOT NULL,
	PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signlog_checkpoints (
	size    INTEGER NOT NULL PRIMARY KEY,
	root    BLOB    NOT NULL,
	note    TEXT    NOT NULL,
	created INTEGER NOT NULL
);
`,
	// 13: started sign-in ceremonies (see challenges.go): WebAuthn
	// registrations and sign-ins awaiting the browser's answer, and TOTP
	// re-enrolments' pending secrets, so any replica finishes what
	// another started. Rows expire within minutes.
	`
CREATE TABLE IF NOT EXISTS auth_challenges (
	kind    TEXT    NOT NULL,
	key     TEXT    NOT NULL,
	name    TEXT    NOT NULL,
	data    BLOB    NOT NULL,
	expires INTEGER NOT NULL,
	PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS auth_challenges_expires ON auth_challenges(expires);
`,
	// 14: the logs' tree nodes and search (see tlog.go, "Storage layout").
	// A change's entries are stored in the change's own transaction, so
	// every page they touch is written to the WAL at each commit: the
	// nodes table keyed by (level, idx) touched a page per level and the
	// search indexes (migration 8) and leaf-hash index a page each, where
	// the change itself touches a handful. Nodes are now keyed by their
	// place in post-order, so the nodes of one append are neighbours, and
	// the search fields and leaf hashes live in a table that an indexer
	// fills behind the appends in batches (the search indexer); searches read
	// it and scan the few leaves it has not reached yet.
	migrationLogStorage,
}

// migrationLogStorage is migration 14: for both logs (the audit log's
// tlog_ tables and the signing log's signlog_ tables), the tree nodes by
// post-order position instead of (level, idx), and the search table in
// place of the leaves' indexes. A node (level, idx) completes when the
// log reaches n = (idx+1)<<level leaves, after the 2(n-1) - popcount(n-1)
// nodes completed before, and after the nodes of the lower levels
// completed with it: treePos in tlog.go, here in SQL, with popcount
// summed bit pairs, nibbles and bytes at a time (a recursive CTE over the
// 63 bits took seven times as long: 18 s for the 400,000 nodes of 200,000
// entries, where the upgrade holds the database). The search tables
// start empty: the Store's search indexer fills them from the leaves after
// Open, and until it has, searches read the leaves not indexed yet (see
// tlog.go, "Storage layout"). The signing log's entries are Rekor bodies,
// which no search filters, so only its leaf hashes are indexed.
const migrationLogStorage = `
CREATE TABLE tlog_tree (
	pos  INTEGER NOT NULL PRIMARY KEY, -- the node's place in post-order (treePos)
	hash BLOB    NOT NULL
);
INSERT INTO tlog_tree(pos, hash)
SELECT 2 * m - ((b + (b >> 8) + (b >> 16) + (b >> 24) + (b >> 32) + (b >> 40) + (b >> 48) + (b >> 56)) & 127) + level, hash
FROM (SELECT m, level, hash, (n + (n >> 4)) & 0x0F0F0F0F0F0F0F0F AS b -- bits set per byte of m
FROM (SELECT m, level, hash, (p & 0x3333333333333333) + ((p >> 2) & 0x3333333333333333) AS n -- per nibble
FROM (SELECT m, level, hash, m - ((m >> 1) & 0x5555555555555555) AS p -- per bit pair
FROM (SELECT ((idx + 1) << level) - 1 AS m, level, hash FROM tlog_nodes))));
DROP TABLE tlog_nodes;
DROP INDEX IF EXISTS tlog_leaves_hash;
CREATE TABLE tlog_search (
	idx       INTEGER NOT NULL PRIMARY KEY, -- the leaf's index
	leaf_hash BLOB    NOT NULL,
	repo      TEXT,                         -- the entry's fields; NULL if absent
	digest    TEXT,
	actor     TEXT,
	action    TEXT,
	time      TEXT
);
CREATE INDEX tlog_search_hash ON tlog_search(leaf_hash);
DROP INDEX IF EXISTS tlog_leaves_repo;
DROP INDEX IF EXISTS tlog_leaves_digest;
DROP INDEX IF EXISTS tlog_leaves_actor;
DROP INDEX IF EXISTS tlog_leaves_action;
DROP INDEX IF EXISTS tlog_leaves_time;
CREATE INDEX tlog_search_repo ON tlog_search(repo, idx);
CREATE INDEX tlog_search_digest ON tlog_search(digest, idx);
CREATE INDEX tlog_search_actor ON tlog_search(actor, idx);
CREATE INDEX tlog_search_action ON tlog_search(action, idx);
CREATE INDEX tlog_search_time ON tlog_search(time, idx);
CREATE TABLE signlog_tree (
	pos  INTEGER NOT NULL PRIMARY KEY, -- the node's place in post-order (treePos)
	hash BLOB    NOT NULL
);
INSERT INTO signlog_tree(pos, hash)
SELECT 2 * m - ((b + (b >> 8) + (b >> 16) + (b >> 24) + (b >> 32) + (b >> 40) + (b >> 48) + (b >> 56)) & 127) + level, hash
FROM (SELECT m, level, hash, (n + (n >> 4)) & 0x0F0F0F0F0F0F0F0F AS b -- bits set per byte of m
FROM (SELECT m, level, hash, (p & 0x3333333333333333) + ((p >> 2) & 0x3333333333333333) AS n -- per nibble
FROM (SELECT m, level, hash, m - ((m >> 1) & 0x5555555555555555) AS p -- per bit pair
FROM (SELECT ((idx + 1) << level) - 1 AS m, level, hash FROM signlog_nodes))));
DROP TABLE signlog_nodes;
DROP INDEX IF EXISTS signlog_leaves_hash;
CREATE TABLE signlog_search (
	idx       INTEGER NOT NULL PRIMARY KEY, -- the leaf's index
	leaf_hash BLOB    NOT NULL,
	repo      TEXT,                         -- the entry's fields; NULL if absent
	digest    TEXT,
	actor     TEXT,
	action    TEXT,
	time      TEXT
);
CREATE INDEX signlog_search_hash ON signlog_search(leaf_hash);
`

// migrationMicros is migration 6; see above.
const migrationMicros = `
UPDATE manifests SET created = created / 1000;
UPDATE tags SET updated = updated / 1000;
UPDATE uploads SET created = created / 1000, updated = updated / 1000;
UPDATE policies SET created = created / 1000;
UPDATE retention SET
	retain_until = CASE
		WHEN retain_until >= 0 THEN retain_until / 1000
		WHEN retain_until + 616 >= 0 THEN 18446744073709551 + (retain_until + 616) / 1000
		ELSE 18446744073709551 + (retain_until + 616 - 999) / 1000
	END,
	updated = updated / 1000;
UPDATE tag_history SET at = at / 1000;
UPDATE tlog_checkpoints SET created = created / 1000;
UPDATE auth_users SET created = created / 1000;
UPDATE auth_tokens SET created = created / 1000, expires = expires / 1000, revoked = revoked / 1000;
UPDATE schema_migrations SET applied = applied / 1000;
`

// migrate brings the schema up to date in one transaction on db.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER NOT NULL PRIMARY KEY,
	applied INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this build supports (%d)", current, len(migrations))
	}
	for i := current; i < len(migrations); i++ {
		version := i + 1
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("apply migration %d: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied) VALUES (?, ?)`,
			version, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("record migration %d: %w", version, err)
		}
	}
	return tx.Commit()
}
