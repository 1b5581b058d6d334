package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta"
)

// Users, grants and API tokens (account.Store): auth_users, auth_grants,
// auth_tokens and auth_generation (migration 3), with the semantics of the
// SQLite backend (internal/meta/sqlite/auth.go).
//
// Every write adds one to auth_generation.gen in its transaction. The
// UPDATE takes the row's lock and, at READ COMMITTED, re-reads the value a
// concurrent writer committed, so replicas writing at once never lose an
// increment: the generation grows with every committed write, which is how
// internal/auth on every replica notices the others' changes. AuthState
// reads the generation and the tables in one REPEATABLE READ snapshot, so
// the state it returns is the one its generation names.

var _ account.Store = (*Store)(nil)

// bumpAuth adds one to the generation, in tx.
func bumpAuth(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `UPDATE auth_generation SET gen = gen + 1`); err != nil {
		return fmt.Errorf("bump generation: %w", err)
	}
	return nil
}

// AuthGeneration implements account.Store.
func (s *Store) AuthGeneration(ctx context.Context) (int64, error) {
	var g int64
	if err := s.pool.QueryRow(ctx, `SELECT gen FROM auth_generation`).Scan(&g); err != nil {
		return 0, fmt.Errorf("postgres: auth generation: %w", err)
	}
	return g, nil
}

// AuthState implements account.Store: users by name, grants by subject,
// role and repository, tokens by creation time and ID, all from one
// snapshot.
func (s *Store) AuthState(ctx context.Context) (account.State, error) {
	var st account.State
	err := s.read(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT gen FROM auth_generation`).Scan(&st.Generation); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT name, password_hash, groups, created, disabled FROM auth_users ORDER BY name`)
		if err != nil {
			return err
		}
		if st.Users, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (account.User, error) {
			var (
				u        account.User
				groups   []byte
				created  int64
				disabled *int64
			)
			if err := row.Scan(&u.Name, &u.PasswordHash, &groups, &created, &disabled); err != nil {
				return u, err
			}
			if err := json.Unmarshal(groups, &u.Groups); err != nil {
				return u, fmt.Errorf("user %s: groups: %w", u.Name, err)
			}
			u.Created = meta.FromMicros(created)
			if disabled != nil {
				u.Disabled = meta.FromMicros(*disabled)
			}
			return u, nil
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT subject, role, repository FROM auth_grants ORDER BY subject, role, repository`)
		if err != nil {
			return err
		}
		if st.Grants, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (account.Grant, error) {
			g := account.Grant{Source: "api"}
			err := row.Scan(&g.Subject, &g.Role, &g.Repository)
			return g, err
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id, hash, owner, name, scopes, created, expires, revoked, sign_in FROM auth_tokens ORDER BY created, id`)
		if err != nil {
			return err
		}
		st.Tokens, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (account.Token, error) {
			var (
				t                account.Token
				scopes           []byte
				created, expires int64
				revoked          *int64
			)
			if err := row.Scan(&t.ID, &t.Hash, &t.Owner, &t.Name, &scopes, &created, &expires, &revoked, &t.SignIn); err != nil {
				return t, err
			}
			if err := json.Unmarshal(scopes, &t.Scopes); err != nil {
				return t, fmt.Errorf("token %s: scopes: %w", t.ID, err)
			}
			t.Created = meta.FromMicros(created)
			t.Expires = meta.FromMicros(expires)
			if revoked != nil {
				t.Revoked = meta.FromMicros(*revoked)
			}
			return t, nil
		})
		return err
	})
	if err != nil {
		return account.State{}, fmt.Errorf("postgres: auth state: %w", err)
	}
	// CollectRows returns empty, not nil, slices; SQLite leaves them nil.
	if len(st.Users) == 0 {
		st.Users = nil
	}
	if len(st.Grants) == 0 {
		st.Grants = nil
	}
	if len(st.Tokens) == 0 {
		st.Tokens = nil
	}
	return st, nil
}

// PutUser implements account.Store. Replacing a user keeps its creation
// time.
func (s *Store) PutUser(ctx context.Context, u account.User) error {
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	gj, err := json.Marshal(groups)
	if err != nil {
		return fmt.Errorf("postgres: put user %s: %w", u.Name, err)
	}
	created, err := meta.Micros(u.Created)
	if err != nil {
		return fmt.Errorf("postgres: put user %s: created: %w", u.Name, err)
	}
	var disabled *int64
	if !u.Disabled.IsZero() {
		us, err := meta.Micros(u.Disabled)
		if err != nil {
			return fmt.Errorf("postgres: put user %s: disabled: %w", u.Name, err)
		}
		disabled = &us
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO auth_users(name, password_hash, groups, created, disabled) VALUES ($1, $2, $3::jsonb, $4, $5)
			ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, groups = excluded.groups`,
			u.Name, u.PasswordHash, string(gj), created, disabled); err != nil {
			return err
		}
		return bumpAuth(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("postgres: put user %s: %w", u.Name, err)
	}
	return nil
}

// changed runs exec in tx and, when it changed no row, returns an error
// wrapping account.ErrNotFound for what; otherwise it bumps the
// generation.
func changed(ctx context.Context, tx pgx.Tx, what string, sql string, args ...any) error {
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, account.ErrNotFound)
	}
	return bumpAuth(ctx, tx)
}

// DeleteUser implements account.Store. The user's grants and tokens stay.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return changed(ctx, tx, "user "+name, `DELETE FROM auth_users WHERE name = $1`, name)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
	}
	return nil
}

// SetUserDisabled implements account.Store.
func (s *Store) SetUserDisabled(ctx context.Context, name string, at time.Time) error {
	var disabled *int64
	if !at.IsZero() {
		us, err := meta.Micros(at)
		if err != nil {
			return fmt.Errorf("postgres: disable user %s: %w", name, err)
		}
		disabled = &us
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE auth_users SET disabled = CASE WHEN $1::bigint IS NULL THEN NULL ELSE COALESCE(disabled, $1::bigint) END WHERE name = $2`, disabled, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("user %s: %w", name, account.ErrNotFound)
		}
		if disabled != nil {
			if _, err := tx.Exec(ctx, `DELETE FROM auth_sessions WHERE subject = $1`, name); err != nil {
				return err
			}
		}
		return bumpAuth(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("postgres: set user %s disabled: %w", name, err)
	}
	return nil
}

// PutGrant implements account.Store: storing a grant that exists changes
// nothing but the generation.
func (s *Store) PutGrant(ctx context.Context, g account.Grant) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO auth_grants(subject, role, repository) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			g.Subject, string(g.Role), g.Repository); err != nil {
			return err
		}
		return bumpAuth(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("postgres: put grant %s %s on %s: %w", g.Subject, g.Role, g.Repository, err)
	}
	return nil
}

// DeleteGrant implements account.Store.
func (s *Store) DeleteGrant(ctx context.Context, g account.Grant) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return changed(ctx, tx, fmt.Sprintf("grant %s %s on %s", g.Subject, g.Role, g.Repository),
			`DELETE FROM auth_grants WHERE subject = $1 AND role = $2 AND repository = $3`, g.Subject, string(g.Role), g.Repository)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete grant: %w", err)
	}
	return nil
}

// PutToken implements account.Store. A token whose ID or hash is already
// stored is refused.
func (s *Store) PutToken(ctx context.Context, t account.Token) error {
	scopes, err := json.Marshal(t.Scopes)
	if err != nil {
		return fmt.Errorf("postgres: put token %s: %w", t.ID, err)
	}
	created, err := meta.Micros(t.Created)
	if err != nil {
		return fmt.Errorf("postgres: put token %s: created: %w", t.ID, err)
	}
	expires, err := meta.Micros(t.Expires)
	if err != nil {
		return fmt.Errorf("postgres: put token %s: expires: %w", t.ID, err)
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO auth_tokens(id, hash, owner, name, scopes, created, expires, sign_in) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)`,
			t.ID, t.Hash, t.Owner, t.Name, string(scopes), created, expires, t.SignIn); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" {
				return fmt.Errorf("a token with this ID or secret is already stored: %w", err)
			}
			return err
		}
		return bumpAuth(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("postgres: put token %s: %w", t.ID, err)
	}
	return nil
}

// RevokeToken implements account.Store. A token is revoked only once:
// revoking it again returns an error wrapping account.ErrNotFound, as for
// a token that does not exist, and keeps the first revocation time. (A
// NULL column, not a zero time, marks a valid token, so a revocation at
// any time is recorded.)
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	us, err := meta.Micros(at)
	if err != nil {
		return fmt.Errorf("postgres: revoke token %s: %w", id, err)
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		return changed(ctx, tx, "token "+id, `UPDATE auth_tokens SET revoked = $1 WHERE id = $2 AND revoked IS NULL`, us, id)
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke token: %w", err)
	}
	return nil
}
