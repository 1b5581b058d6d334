package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// TryLock tries to become the one holder, among every Store on this
// database and schema, of the lock called name: leader election for
// periodic jobs such as garbage collection and scrub, so they run on one
// replica at a time. It does not wait.
//
// The lock is a session-level advisory lock (pg_try_advisory_lock) held on
// a connection dedicated to it, outside the pool. ok reports whether it
// was acquired; if so, release unlocks it and closes the connection (it is
// safe to call more than once). If the connection breaks, PostgreSQL
// releases the lock with it; the holder only notices on its next database
// call, so jobs should keep their own writes transactional (they do: every
// GC deletion re-checks its condition in a transaction).
func (s *Store) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.conn.Copy())
	if err != nil {
		return nil, false, fmt.Errorf("postgres: lock %q: connect: %w", name, err)
	}
	const key = `hashtextextended('custody.leader.' || current_schema() || '.' || $1, 0)`
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+key+`)`, name).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return nil, false, fmt.Errorf("postgres: lock %q: %w", name, err)
	}
	if !ok {
		conn.Close(context.Background())
		return func() {}, false, nil
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Closing the session releases the lock anyway; unlocking
			// first makes it free at once even if the close lingers.
			conn.Exec(ctx, `SELECT pg_advisory_unlock(`+key+`)`, name)
			conn.Close(ctx)
		})
	}
	return release, true, nil
}
