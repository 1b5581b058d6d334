package postgres_test

import (
	"testing"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta/metatest"
	"github.com/custody-dev/custody/internal/meta/postgres"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/tlog"
)

// replicas opens n stores on one new schema, as n registry replicas
// sharing the database would, each closed when t ends.
func replicas(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	u := freshSchema(t)
	out := make([]*postgres.Store, n)
	for i := range out {
		out[i] = open(t, u)
	}
	return out
}

// as adapts replicas to a suite's store type.
func as[S any](t *testing.T, n int, conv func(*postgres.Store) S) []S {
	t.Helper()
	var out []S
	for _, s := range replicas(t, n) {
		out = append(out, conv(s))
	}
	return out
}

func TestRetentionConformance(t *testing.T) {
	serverURL(t)
	metatest.RunRetention(t, func(t *testing.T, n int) []metatest.RetentionStore {
		return as(t, n, func(s *postgres.Store) metatest.RetentionStore { return s })
	})
}

func TestPolicyConformance(t *testing.T) {
	serverURL(t)
	metatest.RunPolicy(t, func(t *testing.T, n int) []policy.Store {
		return as(t, n, func(s *postgres.Store) policy.Store { return s })
	})
}

func TestBuildsConformance(t *testing.T) {
	serverURL(t)
	metatest.RunBuilds(t, func(t *testing.T, n int) []metatest.BuildsStore {
		return as(t, n, func(s *postgres.Store) metatest.BuildsStore { return s })
	})
}

func TestGCConformance(t *testing.T) {
	serverURL(t)
	metatest.RunGC(t, func(t *testing.T, n int) []metatest.GCStore {
		return as(t, n, func(s *postgres.Store) metatest.GCStore { return s })
	})
}

func TestScrubConformance(t *testing.T) {
	serverURL(t)
	metatest.RunScrub(t, func(t *testing.T, n int) []metatest.ScrubStores {
		return as(t, n, func(s *postgres.Store) metatest.ScrubStores {
			return metatest.ScrubStores{Meta: s, Scrub: s}
		})
	})
}

func TestTlogConformance(t *testing.T) {
	serverURL(t)
	metatest.RunTlog(t, func(t *testing.T, n int) []tlog.Store {
		return as(t, n, func(s *postgres.Store) tlog.Store { return s })
	})
}

// A change's write appends its audit entries in its own transaction.
func TestChangeLogConformance(t *testing.T) {
	serverURL(t)
	metatest.RunChangeLog(t, func(t *testing.T, n int) []metatest.ChangeLogStore {
		return as(t, n, func(s *postgres.Store) metatest.ChangeLogStore { return s })
	})
}

// The signing events' log is the same tlog.Store on other tables.
func TestSigningLogConformance(t *testing.T) {
	serverURL(t)
	metatest.RunTlog(t, func(t *testing.T, n int) []tlog.Store {
		return as(t, n, func(s *postgres.Store) tlog.Store { return s.SigningLog() })
	})
}

func TestAccountsConformance(t *testing.T) {
	serverURL(t)
	metatest.RunAccounts(t, func(t *testing.T, n int) []account.Store {
		return as(t, n, func(s *postgres.Store) account.Store { return s })
	})
}
