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

// TestLimits: the client, backend and disk limits have defaults and are
// set by the file and CUSTODY_* variables.
func TestLimits(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.ReadHeaderTimeout <= 0 || l.IdleTimeout <= 0 || l.BodyWindow <= 0 || l.BodyMinBytes <= 0 ||
		l.MaxConnsPerClient <= 0 || l.BackendTimeout <= 0 || l.DiskReserve <= 0 {
		t.Fatalf("limits default to off: %+v", l)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("limits:\n  bodyWindow: 5s\n  maxConnsPerClient: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(p, []string{"CUSTODY_READ_HEADER_TIMEOUT=3s", "CUSTODY_IDLE_TIMEOUT=4s", "CUSTODY_BODY_MIN_BYTES=10",
		"CUSTODY_BACKEND_TIMEOUT=7s", "CUSTODY_DISK_RESERVE=0"})
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{MaxManifestBytes: 4 << 20, ReadHeaderTimeout: Duration(3 * time.Second), IdleTimeout: Duration(4 * time.Second),
		BodyWindow: Duration(5 * time.Second), BodyMinBytes: 10, BackendTimeout: Duration(7 * time.Second)}
	if c.Limits != want {
		t.Fatalf("limits = %+v, want %+v", c.Limits, want)
	}
}

func TestWebSession(t *testing.T) {
	c, err := Load("", nil)
	if err != nil || c.Web.Session.Idle != Duration(30*time.Minute) || c.Web.Session.Absolute != Duration(12*time.Hour) {
		t.Fatalf("defaults: %+v, %v", c.Web.Session, err)
	}
	c, err = Load("", []string{"CUSTODY_WEB_SESSION_IDLE=2s", "CUSTODY_WEB_SESSION_ABSOLUTE=1h"})
	if err != nil || c.Web.Session.Idle != Duration(2*time.Second) || c.Web.Session.Absolute != Duration(time.Hour) {
		t.Fatalf("from the environment: %+v, %v", c.Web.Session, err)
	}
	if c, err := Load("", []string{"CUSTODY_WEB_URL=https://registry.example:8443"}); err != nil || c.Web.URL != "https://registry.example:8443" {
		t.Fatalf("web.url from the environment: %q, %v", c.Web.URL, err)
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
		{"zero body window", "", []string{"CUSTODY_BODY_WINDOW=0s"}, "bodyWindow"},
		{"zero body rate", "", []string{"CUSTODY_BODY_MIN_BYTES=0"}, "bodyMinBytes"},
		{"negative conn cap", "", []string{"CUSTODY_MAX_CONNS_PER_CLIENT=-1"}, "maxConnsPerClient"},
		{"bad backend timeout", "", []string{"CUSTODY_BACKEND_TIMEOUT=never"}, "CUSTODY_BACKEND_TIMEOUT"},
		{"negative reserve", "", []string{"CUSTODY_DISK_RESERVE=-5"}, "diskReserve"},
		// Every repository pattern is checked at load (internal/repopattern).
		{"bad gc pattern", write("gc:\n  untaggedManifests: [\"ci/x**\"]\n"), nil, "gc.untaggedManifests: repository pattern \"ci/x**\": '**' must be a whole path segment"},
		{"bad onPush pattern", write("signing:\n  onPush: [Team/*]\n"), nil, "signing.onPush: repository pattern \"Team/*\": character 'T'"},
		{"bad policy pattern", write("policies:\n- repository: team//a\n"), nil, "policies[0].repository: repository pattern \"team//a\" has an empty path segment"},
		{"bad project pattern", write("projects:\n- repositories: \"a?\"\n  environments: [{name: dev}]\n"), nil, "projects[0].repositories: repository pattern \"a?\": character '?'"},
		{"duplicate project name", write("# names\nprojects:\n- {name: shop, repositories: \"shop/**\", environments: [{name: dev}]}\n- {name: shop, repositories: \"apps/**\", environments: [{name: dev}]}\n"), nil, "projects[1]: \"shop\" names another project too"},
		{"project named like another's pattern", write("# named\nprojects:\n- {repositories: \"shop/**\", environments: [{name: dev}]}\n- {name: \"shop/**\", repositories: \"apps/**\", environments: [{name: dev}]}\n"), nil, "projects[1]: \"shop/**\" names another project too"},
		{"idle above absolute", "", []string{"CUSTODY_WEB_SESSION_IDLE=13h"}, "web.session.idle (13h0m0s) and web.session.absolute (12h0m0s)"},
		{"zero session idle", write("web:\n  session:\n    idle: 0s\n"), nil, "web.session.idle"},
		{"bad session env", "", []string{"CUSTODY_WEB_SESSION_ABSOLUTE=day"}, "CUSTODY_WEB_SESSION_ABSOLUTE"},
		{"web URL with a path", "", []string{"CUSTODY_WEB_URL=https://registry.example/ui"}, "web.url \"https://registry.example/ui\" must be an origin"},
		{"web URL not http", write("web:\n  url: ftp://registry.example\n"), nil, "web.url \"ftp://registry.example\" must be an origin"},
		{"web URL an IP address", "", []string{"CUSTODY_WEB_URL=http://127.0.0.1:8080"}, "WebAuthn needs a host name"},
		{"CA key without certificate", write("# ca\nca:\n  key: /x/ca.key\n"), nil, "ca needs both key and certificate"},
		{"rekor key without url", write("# rekor\nrekor:\n  key: /x/rekor.key\n"), nil, "rekor needs url (or ca.url)"},
		{"CA validity too long", write("# ca validity\nca:\n  key: /x/ca.key\n  certificate: /x/ca.pem\n  validity: 48h\n"), nil, "ca.validity"},
		{"CT log without CA", write("# ctlog\nca:\n  ctlog:\n    key: /x/ctlog.key\n"), nil, "ca.ctlog needs the CA"},
		{"retired CA without until", write("# oldca\nca:\n  retired:\n  - certificate: /x/old.pem\n"), nil, "ca.retired[0] needs certificate and until"},
		{"retired CT log ends before it starts", write("# oldlog\nca:\n  ctlog:\n    retired:\n    - {publicKey: /x/old.pub, start: 2027-01-02T00:00:00Z, until: 2027-01-01T00:00:00Z}\n"), nil, "ca.ctlog.retired[0] needs publicKey, start and until"},
		{"CA URL not http", write("# caurl\nca:\n  url: custody.example\n"), nil, "ca.url \"custody.example\" must be an http(s) URL"},
		{"OIDC client without redirect", write("# oidc\nauth:\n  oidc:\n  - issuer: https://id.example\n    clientID: custody\n    rules: [{subject: \"sso:x\"}]\n"), nil, "needs both clientID and redirectURL"},
		{"OIDC subject like a local user", write("# oidc2\nauth:\n  oidc:\n  - issuer: https://id.example\n    rules: [{subject: \"{sub}\"}]\n"), nil, "must start with a fixed prefix holding ':'"},
		{"OIDC subject with the colon from a claim", write("# oidc3\nauth:\n  oidc:\n  - issuer: https://id.example\n    rules: [{subject: \"{iss}:{sub}\"}]\n"), nil, "must start with a fixed prefix holding ':'"},
		{"drill without projects", write("drills:\n- {environment: prod, interval: 24h}\n"), nil, "drills[0]: drills rebuild environments: declare projects first"},
		{"drill without environment", write("# envdrill\nprojects:\n- {repositories: \"a/**\", environments: [{name: prod}]}\ndrills:\n- {interval: 24h}\n"), nil, "drills[0].environment is empty"},
		{"drill interval too short", write("# intdrill\nprojects:\n- {repositories: \"a/**\", environments: [{name: prod}]}\ndrills:\n- {environment: prod}\n"), nil, "drills[0].interval 0s: give at least 1s"},
		{"feed name with a slash", write("# feed1\nfeeds:\n- {name: a/b, ecosystem: npm}\n"), nil, "feeds[0].name \"a/b\" must be lowercase letters and digits"},
		{"feed name dot-dot", write("# feed2\nfeeds:\n- {name: \"..\", ecosystem: npm}\n"), nil, "feeds[0].name"},
		{"duplicate feed", write("# feed3\nfeeds:\n- {name: a, ecosystem: npm}\n- {name: a, ecosystem: npm}\n"), nil, "feeds[1]: the name \"a\" is taken"},
		{"feed ecosystem not served", write("# feed4\nfeeds:\n- {name: py, ecosystem: nuget}\n"), nil, "feeds[0] (py): ecosystem \"nuget\": use npm, pypi, go, maven or oci"},
		{"feed kind not served", write("# feed5\nfeeds:\n- {name: a, ecosystem: npm, kind: group}\n"), nil, "feeds[0] (a): kind \"group\": use hosted, proxy or virtual"},
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

func TestFeeds(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("feeds:\n- {name: npm, ecosystem: npm}\n- {name: npm-team, ecosystem: npm, kind: hosted}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, nil)
	if err != nil || len(c.Feeds) != 2 || c.Feeds[0].Name != "npm" || c.Feeds[0].Ecosystem != FeedEcosystemNPM || c.Feeds[0].Kind != "" || c.Feeds[1].Kind != FeedKindHosted {
		t.Fatalf("Load = %+v, %v", c.Feeds, err)
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

func TestGoFeed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("feeds:\n- {name: gomods, ecosystem: go, kind: hosted}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, nil)
	if err != nil || len(c.Feeds) != 1 || c.Feeds[0].Name != "gomods" || c.Feeds[0].Ecosystem != FeedEcosystemGo || c.Feeds[0].Kind != FeedKindHosted {
		t.Fatalf("Load = %+v, %v", c.Feeds, err)
	}
}

// TestFeedKinds: proxy feeds need an http(s) upstream without embedded
// credentials, virtual feeds need members of their ecosystem that exist
// and are not virtual, and oci feeds are proxies only.
func TestFeedKinds(t *testing.T) {
	good := `feeds:
- {name: npm-hosted, ecosystem: npm}
- name: npmjs
  ecosystem: npm
  kind: proxy
  upstream: https://registry.npmjs.org
  upstreamAuth: {tokenEnv: NPM_TOKEN}
  firewall: {blockSeverity: high, blockUnpinned: true, allow: [lodash@4.17.20]}
- {name: npm, ecosystem: npm, kind: virtual, members: [npm-hosted, npmjs]}
- {name: dockerhub, ecosystem: oci, kind: proxy, upstream: "https://registry-1.docker.io"}
- {name: central, ecosystem: maven, kind: proxy, upstream: "https://repo1.maven.org/maven2", upstreamAuth: {username: u, passwordEnv: P}}
`
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, nil)
	if err != nil || len(c.Feeds) != 5 || c.Feeds[1].Upstream != "https://registry.npmjs.org" || c.Feeds[1].Firewall.BlockSeverity != "high" ||
		!c.Feeds[1].Firewall.BlockUnpinned || len(c.Feeds[2].Members) != 2 || c.Feeds[1].UpstreamAuth.TokenEnv != "NPM_TOKEN" {
		t.Fatalf("Load = %+v, %v", c.Feeds, err)
	}
	for feeds, want := range map[string]string{
		"- {name: a, ecosystem: npm, kind: proxy}":                                                                                                                "upstream is required",
		"- {name: a, ecosystem: npm, upstream: https://x}":                                                                                                        "upstream is required",
		"- {name: a, ecosystem: npm, kind: proxy, upstream: ftp://x}":                                                                                             "must be an http(s) URL",
		"- {name: a, ecosystem: npm, kind: proxy, upstream: 'https://u:p@x'}":                                                                                     "without credentials",
		"- {name: a, ecosystem: npm, kind: proxy, upstream: https://x, upstreamAuth: {username: u}}":                                                              "username with passwordEnv",
		"- {name: a, ecosystem: npm, upstreamAuth: {tokenEnv: T}}":                                                                                                "only for proxy feeds",
		"- {name: a, ecosystem: npm, kind: virtual}":                                                                                                              "members are required",
		"- {name: a, ecosystem: npm, kind: virtual, members: [b]}":                                                                                                `member "b" is not a feed`,
		"- {name: a, ecosystem: npm, kind: virtual, members: [b]}\n- {name: b, ecosystem: pypi}":                                                                  "is a pypi feed",
		"- {name: a, ecosystem: npm, kind: virtual, members: [b, b]}\n- {name: b, ecosystem: npm}":                                                                "listed twice",
		"- {name: a, ecosystem: npm, kind: virtual, members: [a]}":                                                                                                "is virtual",
		"- {name: a, ecosystem: npm, kind: virtual, members: [p, h]}\n- {name: h, ecosystem: npm}\n- {name: p, ecosystem: npm, kind: proxy, upstream: https://x}": "list hosted feeds first",
		"- {name: a, ecosystem: oci}":                                                                                                                             "an oci feed is a proxy",
		"- {name: a, ecosystem: npm, firewall: {blockSeverity: severe}}":                                                                                          "blockSeverity",
		"- {name: a, ecosystem: cargo}":                                                                                                                           "use npm, pypi, go, maven or oci",
		"- {name: a, ecosystem: npm, kind: mirror}":                                                                                                               `kind "mirror"`,
	} {
		if err := os.WriteFile(p, []byte("feeds:\n"+feeds+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Load = %v, want an error mentioning %q", feeds, err, want)
		}
	}
}

func TestFeedNames(t *testing.T) {
	for name, want := range map[string]bool{
		"npm": true, "npm-internal": true, "py.pi2": true, "a": true,
		"": false, "A": false, "a/b": false, "a_b": false, "-a": false, "a-": false, "a--b": false, "a.-b": false,
		strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	} {
		if got := feedName(name); got != want {
			t.Errorf("feedName(%q) = %v, want %v", name, got, want)
		}
	}
}
