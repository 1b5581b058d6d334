package pypi_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/feed/pypi"
)

func resolver(t testing.TB) func(string, string) (string, error) {
	u, err := feed.NewUpstream(config.Feed{Name: "p", Kind: config.FeedKindProxy, Upstream: "https://up.example/simple"}, feed.UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.Resolve
}

const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseIndex(t *testing.T) {
	page := "https://up.example/simple/demo/"
	htmlDoc := `<!DOCTYPE html><html><body>
<a href="../../files/demo/demo-1.0.tar.gz#sha256=` + strings.ToUpper(sum) + `" data-requires-python="&gt;=3.8">demo-1.0.tar.gz</a><br/>
<a href="https://files.example/demo-1.0-py3-none-any.whl#md5=00">demo-1.0-py3-none-any.whl</a>
<a href="javascript:alert(1)">demo-2.0.tar.gz</a>
<a href="x">../../etc/passwd</a>
</body></html>`
	files, err := pypi.ParseIndex([]byte(htmlDoc), "text/html", page, resolver(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "demo-1.0.tar.gz" || files[0].URL != "https://up.example/files/demo/demo-1.0.tar.gz" ||
		files[0].SHA256 != sum || files[0].RequiresPython != ">=3.8" || files[1].SHA256 != "" {
		t.Fatalf("HTML index parsed as %+v", files)
	}
	jsonDoc := `{"meta":{"api-version":"1.0"},"name":"demo","files":[{"filename":"demo-1.0.tar.gz","url":"/f/demo-1.0.tar.gz","hashes":{"sha256":"` + sum + `"},"requires-python":">=3"},{"filename":"demo-1.1.tar.gz","url":"file:///etc/passwd","hashes":{}}]}`
	files, err = pypi.ParseIndex([]byte(jsonDoc), pypi.JSONType, page, resolver(t))
	if err != nil || len(files) != 1 || files[0].URL != "https://up.example/f/demo-1.0.tar.gz" || files[0].SHA256 != sum || files[0].RequiresPython != ">=3" {
		t.Fatalf("JSON index parsed as %+v, %v", files, err)
	}
	if _, err := pypi.ParseIndex([]byte(`{"files":`), pypi.JSONType, page, resolver(t)); err == nil {
		t.Fatal("truncated JSON parsed")
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`<a href="a-1.0.tar.gz#sha256=`+sum+`">a-1.0.tar.gz</a>`), "text/html")
	f.Add([]byte(`{"files":[{"filename":"a-1.0.tar.gz","url":"a","hashes":{"sha256":"`+sum+`"}}]}`), pypi.JSONType)
	f.Add([]byte(`<a href="//evil/x">..</a><a>`), "")
	res := resolver(f)
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		files, err := pypi.ParseIndex(body, ctype, "https://up.example/simple/a/", res)
		if err != nil {
			return
		}
		for _, x := range files {
			u, err := url.Parse(x.URL)
			if !feed.ValidFilename(x.Name) || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
				t.Fatalf("kept %+v", x)
			}
			if x.SHA256 != "" && (len(x.SHA256) != 64 || strings.ToLower(x.SHA256) != x.SHA256) {
				t.Fatalf("sha256 %q kept", x.SHA256)
			}
		}
	})
}
