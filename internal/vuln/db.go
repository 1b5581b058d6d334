package vuln

import (
	"archive/zip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver

	metasqlite "github.com/custody-dev/custody/internal/meta/sqlite"
)

// Import limits.
const (
	// MaxAdvisorySize is the largest OSV record Import reads, in bytes.
	MaxAdvisorySize = 4 << 20
	// MaxAdvisories is the most records one Import reads; an import that
	// holds more fails and changes nothing.
	MaxAdvisories = 1 << 20
	// maxImportErrors is how many per-record errors Stats keeps.
	maxImportErrors = 20
)

// maxAdvisories is MaxAdvisories, a variable so tests can lower it.
var maxAdvisories = MaxAdvisories

// busyTimeout is how long a connection waits for a lock held by another
// connection or process. A variable so tests can shorten it.
var busyTimeout = 10 * time.Second

// DB is an offline vulnerability database in one SQLite file. It is safe
// for concurrent use, and several processes may open the same file: writes
// are serialised by SQLite, and Revision and UpdatedAt read the file.
type DB struct {
	w *sql.DB // one read-write connection; transactions BEGIN IMMEDIATE
	r *sql.DB // read-only connections
}

// Open opens the vulnerability database at path, creating the file (not
// its directory) if it does not exist. The database runs in WAL mode with
// one writer connection, like the metadata store.
func Open(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("vuln: %w", err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("vuln: open %s: the directory %s does not exist; create it first", path, filepath.Dir(abs))
	}
	if err := metasqlite.PrivateFile(abs); err != nil {
		return nil, fmt.Errorf("vuln: %w", err)
	}
	base := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	busy := fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())
	wq := url.Values{}
	wq.Set("_txlock", "immediate")
	wq.Add("_pragma", busy)
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous(FULL)")
	wq.Add("_pragma", "foreign_keys(1)")
	w, err := sql.Open("sqlite", base+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("vuln: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(context.Background(), w); err != nil {
		w.Close()
		return nil, fmt.Errorf("vuln: open %s: %w", path, err)
	}
	rq := url.Values{}
	rq.Set("mode", "ro")
	rq.Add("_pragma", busy)
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", base+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("vuln: open %s read-only: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.Ping(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("vuln: open %s read-only: %w", path, err)
	}
	return &DB{w: w, r: r}, nil
}

// Close closes the database.
func (db *DB) Close() error { return errors.Join(db.r.Close(), db.w.Close()) }

const schemaVersion = 1

func migrate(ctx context.Context, w *sql.DB) error {
	var v int
	if err := w.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("the database has schema version %d, newer than this custody understands (%d); upgrade custody", v, schemaVersion)
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS state (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS advisories (
			id        TEXT PRIMARY KEY,
			modified  INTEGER NOT NULL, -- Unix nanoseconds
			withdrawn INTEGER NOT NULL, -- 0 or 1
			revision  INTEGER NOT NULL, -- database revision that stored it
			doc       BLOB NOT NULL     -- the kept part of the OSV record, JSON
		)`,
		`CREATE TABLE IF NOT EXISTS affected (
			advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
			ecosystem   TEXT NOT NULL,
			name        TEXT NOT NULL,
			PRIMARY KEY (ecosystem, name, advisory_id)
		) WITHOUT ROWID`,
		`CREATE INDEX IF NOT EXISTS affected_advisory ON affected(advisory_id)`,
		`INSERT OR IGNORE INTO state(key, value) VALUES ('revision', '0'), ('updated_at', '')`,
		fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion),
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return tx.Commit()
}

// Revision returns the database revision: 0 for an empty database, and
// one more after every Import that changed something. It never decreases.
func (db *DB) Revision(ctx context.Context) (int64, error) {
	var s string
	if err := db.r.QueryRowContext(ctx, `SELECT value FROM state WHERE key = 'revision'`).Scan(&s); err != nil {
		return 0, fmt.Errorf("vuln: read revision: %w", err)
	}
	return strconv.ParseInt(s, 10, 64)
}

// UpdatedAt returns when an Import last changed the database (UTC), or the
// zero time if none has.
func (db *DB) UpdatedAt(ctx context.Context) (time.Time, error) {
	var s string
	if err := db.r.QueryRowContext(ctx, `SELECT value FROM state WHERE key = 'updated_at'`).Scan(&s); err != nil {
		return time.Time{}, fmt.Errorf("vuln: read update time: %w", err)
	}
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Stats says what one Import did.
type Stats struct {
	// Read is the number of records read (valid or not).
	Read int `json:"read"`
	// Added, Updated and Unchanged count the valid records that were new,
	// replaced an older version (by "modified"), or were not newer than
	// the stored version.
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	// Invalid counts records that were skipped: oversized, not JSON, or
	// not valid OSV. Errors holds the first few reasons.
	Invalid int      `json:"invalid"`
	Errors  []string `json:"errors,omitempty"`
	// Revision is the database revision after the import.
	Revision int64 `json:"revision"`
}

// Import reads OSV advisories from path and stores them: path is one
// ".json" record, a directory (every "*.json" file below it, recursively),
// or a zip archive (by its ".zip" name or its content) of records such as
// osv.dev's per-ecosystem "all.zip" export; its "*.json" entries are read
// one at a time, other entries are ignored.
//
// A record replaces the stored record with the same ID only when its
// "modified" time is later. Records larger than MaxAdvisorySize and
// records that are not valid OSV are skipped and counted in Stats.Invalid,
// except when path is a single file, where they fail the import. The
// import runs in one transaction: it fails as a whole (more than
// MaxAdvisories records, a read error, a cancelled ctx) or is applied as a
// whole, and a change bumps the revision by one.
func (db *DB) Import(ctx context.Context, path string) (Stats, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Stats{}, fmt.Errorf("vuln: import: %w", err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		if busy(err) {
			return Stats{}, fmt.Errorf("vuln: import: another import into this database is running (waited %s); try again when it has finished: %w", busyTimeout, err)
		}
		return Stats{}, fmt.Errorf("vuln: import: begin: %w", err)
	}
	defer tx.Rollback()
	im := &importer{ctx: ctx, tx: tx}
	if err := im.loadRevision(); err != nil {
		return Stats{}, err
	}
	switch {
	case fi.IsDir():
		err = im.dir(path)
	case strings.EqualFold(filepath.Ext(path), ".zip") || isZip(path):
		err = im.zip(path)
	default:
		err = im.file(path)
	}
	if err != nil {
		return im.stats, fmt.Errorf("vuln: import %s: %w", path, err)
	}
	if im.stats.Added+im.stats.Updated > 0 {
		now := time.Now().UTC().Format(time.RFC3339Nano)
		if _, err := tx.ExecContext(ctx, `UPDATE state SET value = CASE key WHEN 'revision' THEN ? ELSE ? END WHERE key IN ('revision', 'updated_at')`,
			strconv.FormatInt(im.rev, 10), now); err != nil {
			return im.stats, fmt.Errorf("vuln: import %s: %w", path, err)
		}
	} else {
		im.rev--
	}
	if err := tx.Commit(); err != nil {
		return im.stats, fmt.Errorf("vuln: import %s: commit: %w", path, err)
	}
	im.stats.Revision = im.rev
	return im.stats, nil
}

// busy reports whether err is SQLite's SQLITE_BUSY (the file is locked by
// another writer).
func busy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 5
}

type importer struct {
	ctx   context.Context
	tx    *sql.Tx
	rev   int64 // the revision this import writes
	stats Stats
	stmts map[string]*sql.Stmt // prepared statements by query text
}

// stmt returns q prepared on the import's transaction.
func (im *importer) stmt(q string) (*sql.Stmt, error) {
	if st, ok := im.stmts[q]; ok {
		return st, nil
	}
	st, err := im.tx.PrepareContext(im.ctx, q)
	if err != nil {
		return nil, err
	}
	if im.stmts == nil {
		im.stmts = map[string]*sql.Stmt{}
	}
	im.stmts[q] = st
	return st, nil
}

// exec runs the prepared statement q.
func (im *importer) exec(q string, args ...any) error {
	st, err := im.stmt(q)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(im.ctx, args...)
	return err
}

func (im *importer) loadRevision() error {
	var s string
	if err := im.tx.QueryRowContext(im.ctx, `SELECT value FROM state WHERE key = 'revision'`).Scan(&s); err != nil {
		return fmt.Errorf("vuln: import: read revision: %w", err)
	}
	r, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("vuln: import: stored revision %q: %w", s, err)
	}
	im.rev = r + 1
	return nil
}

func (im *importer) invalid(name string, err error) {
	im.stats.Invalid++
	if len(im.stats.Errors) < maxImportErrors {
		im.stats.Errors = append(im.stats.Errors, fmt.Sprintf("%s: %v", name, err))
	}
}

// count registers one more record and fails past MaxAdvisories.
func (im *importer) count() error {
	if err := im.ctx.Err(); err != nil {
		return err
	}
	im.stats.Read++
	if im.stats.Read > maxAdvisories {
		return fmt.Errorf("more than %d advisories; split the import", maxAdvisories)
	}
	return nil
}

func (im *importer) file(path string) error {
	if err := im.count(); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := parseAdvisory(f)
	if err != nil {
		return err
	}
	return im.store(a)
}

func (im *importer) dir(root string) error {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.EqualFold(filepath.Ext(p), ".json") {
			paths = append(paths, p)
			if len(paths) > maxAdvisories {
				return fmt.Errorf("more than %d advisories; split the import", maxAdvisories)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := im.count(); err != nil {
			return err
		}
		a, err := readAdvisoryFile(p)
		if err != nil {
			rel, _ := filepath.Rel(root, p)
			im.invalid(rel, err)
			continue
		}
		if err := im.store(a); err != nil {
			return err
		}
	}
	return nil
}

// isZip reports whether the file at path starts with a zip local file
// header.
func isZip(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "PK\x03\x04"
}

func readAdvisoryFile(p string) (*advisory, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseAdvisory(f)
}

func (im *importer) zip(path string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("not a readable zip archive: %w", err)
	}
	defer zr.Close()
	if len(zr.File) > maxAdvisories {
		return fmt.Errorf("the archive has %d entries, more than %d; split the import", len(zr.File), maxAdvisories)
	}
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() || !strings.EqualFold(filepath.Ext(zf.Name), ".json") {
			continue
		}
		if err := im.count(); err != nil {
			return err
		}
		if zf.UncompressedSize64 > MaxAdvisorySize {
			im.invalid(zf.Name, fmt.Errorf("advisory larger than %d bytes", MaxAdvisorySize))
			continue
		}
		a, err := readZipEntry(zf)
		if err != nil {
			im.invalid(zf.Name, err)
			continue
		}
		if err := im.store(a); err != nil {
			return err
		}
	}
	return nil
}

func readZipEntry(zf *zip.File) (*advisory, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// parseAdvisory stops reading past MaxAdvisorySize, whatever the
	// entry's header claims.
	return parseAdvisory(rc)
}

// store inserts or replaces one advisory.
func (im *importer) store(a *advisory) error {
	var modified int64
	sel, err := im.stmt(`SELECT modified FROM advisories WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("look up %s: %w", a.ID, err)
	}
	err = sel.QueryRowContext(im.ctx, a.ID).Scan(&modified)
	exists := err == nil
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("look up %s: %w", a.ID, err)
	case a.Modified.UnixNano() <= modified:
		im.stats.Unchanged++
		return nil
	}
	doc, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode %s: %w", a.ID, err)
	}
	if exists {
		if err := im.exec(`DELETE FROM affected WHERE advisory_id = ?`, a.ID); err != nil {
			return fmt.Errorf("replace %s: %w", a.ID, err)
		}
	}
	withdrawn := 0
	if a.withdrawn() {
		withdrawn = 1
	}
	if err := im.exec(`INSERT INTO advisories(id, modified, withdrawn, revision, doc) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET modified = excluded.modified, withdrawn = excluded.withdrawn, revision = excluded.revision, doc = excluded.doc`,
		a.ID, a.Modified.UnixNano(), withdrawn, im.rev, doc); err != nil {
		return fmt.Errorf("store %s: %w", a.ID, err)
	}
	seen := map[[2]string]bool{}
	for _, af := range a.Affected {
		if af.Package.Ecosystem == "" {
			continue
		}
		key := [2]string{af.Package.Ecosystem, normalizeName(af.Package.Ecosystem, af.Package.Name)}
		if seen[key] {
			continue
		}
		seen[key] = true
		if err := im.exec(`INSERT INTO affected(advisory_id, ecosystem, name) VALUES (?, ?, ?)`, a.ID, key[0], key[1]); err != nil {
			return fmt.Errorf("store %s: %w", a.ID, err)
		}
	}
	if exists {
		im.stats.Updated++
	} else {
		im.stats.Added++
	}
	return nil
}

// Count returns how many advisories the database holds, withdrawn ones
// included.
func (db *DB) Count(ctx context.Context) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM advisories`).Scan(&n); err != nil {
		return 0, fmt.Errorf("vuln: count: %w", err)
	}
	return n, nil
}
