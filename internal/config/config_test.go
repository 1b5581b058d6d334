package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:5000" || c.Data != "./custody-data" {
		t.Fatalf("defaults = %+v", c)
	}
	if time.Duration(c.Uploads.TTL) != 24*time.Hour || c.Limits.MaxManifestBytes != 4<<20 {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "addr: 127.0.0.1:6000\ndata: /srv/a\nlog:\n  format: json\nuploads:\n  ttl: 2h\n"
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, []string{"CUSTODY_DATA=/srv/b", "PATH=/bin", "CUSTODY_UPLOAD_TTL=90m"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:6000" {
		t.Errorf("addr from file = %q", c.Addr)
	}
	if c.Data != "/srv/b" {
		t.Errorf("env must override the file: data = %q", c.Data)
	}
	if c.Log.Format != "json" {
		t.Errorf("log format = %q", c.Log.Format)
	}
	if time.Duration(c.Uploads.TTL) != 90*time.Minute {
		t.Errorf("ttl = %v", time.Duration(c.Uploads.TTL))
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, strings.ReplaceAll(s[:min(8, len(s))], "\n", "_")+".yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, file string
		env        []string
		want       string
	}{
		{"unknown key", write("adr: x\n"), nil, "adr"},
		{"bad duration", write("uploads:\n  ttl: forever\n"), nil, "duration"},
		{"bad addr", write("addr: nowhere\n"), nil, "host:port"},
		{"small manifest limit", write("limits:\n  maxManifestBytes: 1000\n"), nil, "4 MiB"},
		{"bad log format", "", []string{"CUSTODY_LOG_FORMAT=xml"}, "text or json"},
		{"bad env duration", "", []string{"CUSTODY_UPLOAD_TTL=soon"}, "CUSTODY_UPLOAD_TTL"},
		{"missing file", filepath.Join(dir, "absent.yaml"), nil, "reading config file"},
		{"bad trusted proxy", write("proxy:\n  trusted: [10.0.0.0/33]\n"), nil, "CIDR"},
		{"bad env trusted proxy", "", []string{"CUSTODY_TRUSTED_PROXIES=10.0.0.1,proxy.example.org"}, "proxy.example.org"},
		{"bad proxy header", "", []string{"CUSTODY_PROXY_HEADER=X-Real-IP"}, "X-Forwarded-For or Forwarded"},
		{"address limit below name limit", write("auth:\n  loginFailures: 20\n  loginAddressFailures: 5\n"), nil, "loginAddressFailures"},
		// Every repository pattern is checked at load (internal/repopattern).
		{"bad gc pattern", write("gc:\n  untaggedManifests: [\"ci/x**\"]\n"), nil, "gc.untaggedManifests: repository pattern \"ci/x**\": '**' must be a whole path segment"},
		{"bad onPush pattern", write("signing:\n  onPush: [Team/*]\n"), nil, "signing.onPush: repository pattern \"Team/*\": character 'T'"},
		{"bad policy pattern", write("policies:\n- repository: team//a\n"), nil, "policies[0].repository: repository pattern \"team//a\" has an empty path segment"},
		{"bad project pattern", write("projects:\n- repositories: \"a?\"\n  environments: [{name: dev}]\n"), nil, "projects[0].repositories: repository pattern \"a?\": character '?'"},
		{"bad grant pattern", write("# grants\nauth:\n  grants:\n  - {subjects: [anonymous], role: reader, repositories: [\"team/[ab]\"]}\n"), nil, "auth.grants[0].repositories: repository pattern \"team/[ab]\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.file, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := Load("", []string{"CUSTODY_TRUSTED_PROXIES= 10.0.0.0/8, 192.0.2.7 ,", "CUSTODY_PROXY_HEADER=forwarded"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Proxy.Trusted, "|") != "10.0.0.0/8|192.0.2.7" || c.Proxy.Header != "forwarded" {
		t.Fatalf("proxy = %+v", c.Proxy)
	}
	d := Default()
	if len(d.Proxy.Trusted) != 0 || d.Proxy.Header != "X-Forwarded-For" || d.Auth.LoginAddressFailures != 100 {
		t.Fatalf("defaults: %+v %+v", d.Proxy, d.Auth)
	}
}
