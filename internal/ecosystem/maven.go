package ecosystem

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// pomProject is the part of a Maven POM that names dependencies.
type pomProject struct {
	Version string `xml:"version"`
	Parent  struct {
		Version string `xml:"version"`
	} `xml:"parent"`
	Properties struct {
		Entries []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"properties"`
	Dependencies []struct {
		GroupID    string `xml:"groupId"`
		ArtifactID string `xml:"artifactId"`
		Version    string `xml:"version"`
	} `xml:"dependencies>dependency"`
}

var pomProperty = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$\{([^}]+)\}`) })

// ParsePom reads a pom.xml's declared dependencies (Name "group:artifact").
// A version that is a ${property} is resolved from the same file's
// properties (and project.version, falling back to the parent's); one
// that cannot be resolved, or a range, is left out.
func ParsePom(b []byte) ([]Package, error) {
	var p pomProject
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not a pom.xml: %w", err)
	}
	props := map[string]string{}
	for _, e := range p.Properties.Entries {
		props[e.XMLName.Local] = strings.TrimSpace(e.Value)
	}
	pv := strings.TrimSpace(p.Version)
	if pv == "" {
		pv = strings.TrimSpace(p.Parent.Version)
	}
	props["project.version"], props["pom.version"] = pv, pv
	resolve := func(s string) string {
		s = strings.TrimSpace(s)
		for i := 0; i < 4 && strings.Contains(s, "${"); i++ {
			s = pomProperty().ReplaceAllStringFunc(s, func(m string) string {
				if v, ok := props[m[2:len(m)-1]]; ok {
					return v
				}
				return m
			})
		}
		return s
	}
	var out []Package
	for _, d := range p.Dependencies {
		g, a, v := resolve(d.GroupID), resolve(d.ArtifactID), resolve(d.Version)
		if g == "" || a == "" || v == "" || strings.ContainsAny(v, "${[(,") || strings.Contains(g, ":") {
			continue
		}
		out = append(out, Package{Type: TypeMaven, Name: g + ":" + a, Version: v})
	}
	return out, nil
}

// ParsePomProperties reads META-INF/maven/<group>/<artifact>/pom.properties
// (Java properties: "key=value" or "key:value"). It returns the one
// package it describes, or nothing when groupId, artifactId or version is
// missing.
func ParsePomProperties(b []byte) ([]Package, error) {
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' || t[0] == '!' {
			continue
		}
		i := strings.IndexAny(t, "=:")
		if i < 0 {
			continue
		}
		props[strings.TrimSpace(t[:i])] = strings.TrimSpace(t[i+1:])
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	g, a, v := props["groupId"], props["artifactId"], props["version"]
	if g == "" || a == "" || v == "" {
		return nil, nil
	}
	return []Package{{Type: TypeMaven, Name: g + ":" + a, Version: v}}, nil
}

// IsPomProperties reports whether p (a slash-separated path) is a Maven
// pom.properties file.
func IsPomProperties(p string) bool {
	return strings.HasSuffix(p, "/pom.properties") && strings.Contains(p, "META-INF/maven/")
}
