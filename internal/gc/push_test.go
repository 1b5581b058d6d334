package gc_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

// client pushes and pulls over the OCI API with net/http only.
type client struct {
	t    testing.TB
	base string
}

func (c client) do(method, path string, body []byte, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// pushBlob uploads b into repo, monolithically or in a chunked session.
func (c client) pushBlob(repo string, b []byte, chunked bool) (digest.Digest, error) {
	d := digest.FromBytes(b)
	if !chunked {
		resp, body, err := c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b,
			"Content-Type", "application/octet-stream")
		if err != nil {
			return d, err
		}
		if resp.StatusCode != http.StatusCreated {
			return d, fmt.Errorf("monolithic upload: %s: %s", resp.Status, body)
		}
		return d, nil
	}
	resp, body, err := c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return d, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return d, fmt.Errorf("start upload: %s: %s", resp.Status, body)
	}
	loc := resp.Header.Get("Location")
	half := len(b) / 2
	resp, body, err = c.do(http.MethodPatch, loc, b[:half], "Content-Type", "application/octet-stream",
		"Content-Range", fmt.Sprintf("0-%d", max(half-1, 0)))
	if err != nil {
		return d, err
	}
	if half > 0 && resp.StatusCode != http.StatusAccepted {
		return d, fmt.Errorf("patch: %s: %s", resp.Status, body)
	}
	resp, body, err = c.do(http.MethodPut, loc+"?digest="+d.String(), b[half:], "Content-Type", "application/octet-stream")
	if err != nil {
		return d, err
	}
	if resp.StatusCode != http.StatusCreated {
		return d, fmt.Errorf("close upload: %s: %s", resp.Status, body)
	}
	return d, nil
}

type desc struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// manifest builds an image manifest over config and layers.
func manifest(config []byte, layers ...[]byte) []byte {
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json",
		desc{"application/vnd.oci.image.config.v1+json", digest.FromBytes(config), int64(len(config))}, []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{"application/vnd.oci.image.layer.v1.tar", digest.FromBytes(l), int64(len(l))})
	}
	b, _ := json.Marshal(m)
	return b
}

func (c client) putManifest(repo, ref string, body []byte) (*http.Response, []byte, error) {
	return c.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
}

// pullOK checks that repo:tag resolves to want and that the manifest and
// every blob it names come back intact.
func (c client) pullOK(repo, tag string, want digest.Digest) error {
	resp, body, err := c.do(http.MethodGet, "/v2/"+repo+"/manifests/"+tag, nil,
		"Accept", "application/vnd.oci.image.manifest.v1+json")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET manifest %s:%s: %s: %s", repo, tag, resp.Status, body)
	}
	if got := digest.FromBytes(body); got != want {
		return fmt.Errorf("manifest %s:%s is %s, want %s", repo, tag, got, want)
	}
	var m struct {
		Config desc   `json:"config"`
		Layers []desc `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	for _, l := range append([]desc{m.Config}, m.Layers...) {
		resp, b, err := c.do(http.MethodGet, "/v2/"+repo+"/blobs/"+l.Digest.String(), nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET blob %s in %s: %s: %s", l.Digest, repo, resp.Status, b)
		}
		if digest.FromBytes(b) != l.Digest {
			return fmt.Errorf("blob %s in %s: content differs", l.Digest, repo)
		}
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
