package migrate_test

import (
	"context"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/migrate"
)

// TestSecondFactorsCopied: a user's TOTP secret with its recovery codes
// and security keys with their counters reach the target, so an enrolled
// account does not sign in there with its password alone; a resumed run
// finds them copied.
func TestSecondFactorsCopied(t *testing.T) {
	ctx := context.Background()
	open := func() migrate.Store {
		cfg := config.Default()
		cfg.Data = t.TempDir()
		return openStore(t, cfg)
	}
	src, dst := open(), open()
	now := time.Now().UTC().Truncate(time.Second)
	if err := src.Meta.PutUser(ctx, account.User{Name: "alice", PasswordHash: "$2a$10$abcdefghijklmnopqrstuv"}); err != nil {
		t.Fatal(err)
	}
	factors := account.Factors{User: "alice", TOTPSecret: "JBSWY3DPEHPK3PXP", TOTPConfirmed: true, RecoveryHashes: []string{"aa", "bb"}, Updated: now}
	if err := src.Meta.PutFactors(ctx, factors); err != nil {
		t.Fatal(err)
	}
	key := account.WebAuthnKey{User: "alice", ID: "a2V5LTE", Name: "YubiKey", Record: []byte(`{"id":"x"}`), SignCount: 42, Created: now}
	if err := src.Meta.PutWebAuthnKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	sum, err := migrate.Run(ctx, src, dst, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Factors.Copied != 1 {
		t.Fatalf("summary: %+v", sum.Factors)
	}
	f, err := dst.Meta.GetFactors(ctx, "alice")
	if err != nil || f.TOTPSecret != factors.TOTPSecret || !f.TOTPConfirmed || len(f.RecoveryHashes) != 2 {
		t.Fatalf("the target's factors: %+v, %v", f, err)
	}
	keys, err := dst.Meta.WebAuthnKeys(ctx, "alice")
	if err != nil || len(keys) != 1 || keys[0].ID != key.ID || keys[0].SignCount != 42 || string(keys[0].Record) != string(key.Record) {
		t.Fatalf("the target's keys: %+v, %v", keys, err)
	}
	again, err := migrate.Run(ctx, src, dst, migrate.Options{Resume: true})
	if err != nil || again.Factors.Copied != 0 || again.Factors.Skipped != 1 {
		t.Fatalf("resume: %+v, %v", again, err)
	}
}
