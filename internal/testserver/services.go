// Services: the PostgreSQL and MinIO servers scripts/test.sh starts, as
// tests of the replicated backends use them.

package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// NeedEnv returns the variable or skips the test; under CI, where
// scripts/test.sh starts the services, it fails instead.
func NeedEnv(t testing.TB, name, script string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not set under CI: scripts/%s must start the service (scripts/test.sh runs it)", name, script)
	}
	t.Skipf("%s is not set; run `eval \"$(bash scripts/%s start)\"` to run this test", name, script)
	return ""
}

// FreshDatabase creates an empty database on the CUSTODY_TEST_POSTGRES
// server, dropped when the test ends, and returns its URL.
func FreshDatabase(t testing.TB, prefix string) string {
	t.Helper()
	base := NeedEnv(t, "CUSTODY_TEST_POSTGRES", "postgres.sh")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(ctx)
	name := prefix + "_" + strings.ToLower(rand.Text())
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("connect to drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("CUSTODY_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// S3Target is a fresh prefix in the CUSTODY_TEST_S3 bucket.
type S3Target struct {
	Endpoint, Access, Secret, Bucket, Prefix string
}

// FreshS3 returns a new prefix (starting with prefix) in the test bucket.
func FreshS3(t testing.TB, prefix string) S3Target {
	t.Helper()
	raw := NeedEnv(t, "CUSTODY_TEST_S3", "minio.sh")
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User == nil {
		t.Fatalf("CUSTODY_TEST_S3 must be http(s)://ACCESS:SECRET@HOST:PORT/BUCKET (%v)", err)
	}
	pass, _ := u.User.Password()
	var b [8]byte
	rand.Read(b[:])
	return S3Target{
		Endpoint: u.Scheme + "://" + u.Host,
		Access:   u.User.Username(),
		Secret:   pass,
		Bucket:   strings.Trim(u.Path, "/"),
		Prefix:   prefix + "-" + hex.EncodeToString(b[:]),
	}
}

// Replicated is a PostgreSQL + S3 store: its configuration file for
// `custody migrate` and the environment a `custody serve` on it needs.
type Replicated struct {
	Data, Config string
	DB           string
	S3           S3Target
}

// NewReplicated creates an empty PostgreSQL + S3 store (names starting
// with prefix), removed when the test ends.
func NewReplicated(t testing.TB, prefix string) Replicated {
	t.Helper()
	r := Replicated{Data: t.TempDir(), DB: FreshDatabase(t, prefix), S3: FreshS3(t, prefix)}
	r.Config = filepath.Join(t.TempDir(), "custody.yaml")
	yaml := fmt.Sprintf("data: %q\nmetadata: %q\nblobs: %q\ns3:\n  endpoint: %q\n",
		r.Data, r.DB, "s3://"+r.S3.Bucket+"/"+r.S3.Prefix, r.S3.Endpoint)
	if err := os.WriteFile(r.Config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// Env is what a server or migrate process on the store needs.
func (r Replicated) Env() []string {
	return []string{
		"CUSTODY_METADATA=" + r.DB,
		"CUSTODY_BLOBS=s3://" + r.S3.Bucket + "/" + r.S3.Prefix,
		"CUSTODY_S3_ENDPOINT=" + r.S3.Endpoint,
		"AWS_ACCESS_KEY_ID=" + r.S3.Access,
		"AWS_SECRET_ACCESS_KEY=" + r.S3.Secret,
	}
}

// CredEnv is only the S3 credentials (the rest is in the config file).
func (r Replicated) CredEnv() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + r.S3.Access, "AWS_SECRET_ACCESS_KEY=" + r.S3.Secret}
}
