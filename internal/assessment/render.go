package assessment

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"sync"
	"time"
)

// WriteText writes the report for a person at a terminal: each subject's
// stage and level, every criterion with its evidence, and under each
// failing one the command that closes it.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "maturity assessment, %s", r.Generated.Format(time.RFC3339))
	if r.Project != "" {
		fmt.Fprintf(&b, ", project %s", r.Project)
	}
	fmt.Fprintln(&b)
	s := r.Server
	fmt.Fprintf(&b, "server: auth %s, audit log %s (%d entries, checkpoint %d), scrub %s, vulnerability database %d record(s)\n",
		s.AuthMode, onOff(s.AuditLog), s.AuditSize, s.Checkpoint, cmpOr(s.ScrubSchedule, "not scheduled"), s.VulnRecords)
	if len(r.Repositories) == 0 {
		fmt.Fprintln(&b, "no repository to assess")
	}
	for _, repo := range r.Repositories {
		fmt.Fprintln(&b)
		writeAssessment(&b, repo.Assessment, "")
		for _, e := range repo.Environments {
			writeAssessment(&b, e, "  ")
		}
	}
	if r.Next != "" {
		fmt.Fprintf(&b, "\nmore repositories follow %s: continue with --after %s\n", r.Next, r.Next)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Heading names the subject of an assessment.
func (a Assessment) Heading() string {
	if a.Environment == "" {
		return fmt.Sprintf("%s (%d of %d tagged artifact(s) examined)", a.Repository, a.Artifacts, a.Tagged)
	}
	return fmt.Sprintf("%s in %s runs %s", a.Repository, a.Environment, cmpOr(a.Digest, "nothing"))
}

func writeAssessment(b *strings.Builder, a Assessment, indent string) {
	fmt.Fprintf(b, "%s%s\n", indent, a.Heading())
	fmt.Fprintf(b, "%s  stage %d of 5: %s; SLSA build level %d of 3\n", indent, a.Stage, a.StageName, a.SLSALevel)
	if len(a.NextStage) > 0 {
		fmt.Fprintf(b, "%s  next: stage %d needs %s\n", indent, a.Stage+1, strings.Join(a.NextStage, ", "))
	}
	if len(a.NextLevel) > 0 {
		fmt.Fprintf(b, "%s  next: SLSA build level %d needs %s\n", indent, a.SLSALevel+1, strings.Join(a.NextLevel, ", "))
	}
	for _, c := range a.Criteria {
		mark := "ok  "
		if !c.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(b, "%s  %s %s %-24s %s\n", indent, mark, c.Scale(), c.ID, c.Evidence.Summary)
		if c.Evidence.Config != "" {
			fmt.Fprintf(b, "%s       config: %s\n", indent, c.Evidence.Config)
		}
		if c.Command != "" {
			fmt.Fprintf(b, "%s       -> %s\n", indent, c.Command)
		}
		if c.Setting != "" {
			fmt.Fprintf(b, "%s       -> set %s\n", indent, c.Setting)
		}
	}
}

// Scale names the stage or level a result belongs to ("stage 4", "SLSA 2").
func (r Result) Scale() string {
	if r.Model == SLSA {
		return fmt.Sprintf("SLSA %d ", r.Rank)
	}
	return fmt.Sprintf("stage %d", r.Rank)
}

// WriteHTML writes the report as one self-contained HTML page: styles
// inline, no script, nothing fetched from anywhere.
func (r Report) WriteHTML(w io.Writer) error {
	return page().Execute(w, r)
}

// page is parsed on first use, not when the package is initialised.
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Funcs(template.FuncMap{
		"time":  func(t time.Time) string { return t.Format(time.RFC3339) },
		"onoff": onOff,
	}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>custody maturity assessment</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top;text-align:left}
.pass{color:#176b2c;font-weight:bold}.fail{color:#a11;font-weight:bold}
code{background:#f4f4f4;padding:0 .2em}
h3{margin-bottom:.2em}
.rating{font-size:1.1em}
</style>
</head>
<body>
<h1>Maturity assessment</h1>
<p>Generated {{time .Generated}}{{if .Project}} for project <code>{{.Project}}</code>{{end}}.
Authentication {{.Server.AuthMode}}, audit log {{onoff .Server.AuditLog}} ({{.Server.AuditSize}} entries, checkpoint {{.Server.Checkpoint}}),
scrub {{if .Server.ScrubSchedule}}every {{.Server.ScrubSchedule}}{{else}}not scheduled{{end}},
vulnerability database {{.Server.VulnRecords}} record(s).</p>
{{range .Repositories}}
<h2>{{.Repository}}{{if .Project}} <small>(project <code>{{.Project}}</code>)</small>{{end}}</h2>
{{template "assessment" .Assessment}}
{{range .Environments}}{{template "assessment" .}}{{end}}
{{else}}<p>No repository to assess.</p>{{end}}
{{if .Next}}<p>More repositories follow <code>{{.Next}}</code>: continue with <code>--after {{.Next}}</code>.</p>{{end}}
</body>
</html>
{{define "assessment"}}
<h3>{{.Heading}}</h3>
<p class="rating">Stage {{.Stage}} of 5: {{.StageName}}; SLSA build level {{.SLSALevel}} of 3</p>
{{if .NextStage}}<p>Next stage needs: {{range $i, $c := .NextStage}}{{if $i}}, {{end}}<code>{{$c}}</code>{{end}}</p>{{end}}
{{if .NextLevel}}<p>Next SLSA level needs: {{range $i, $c := .NextLevel}}{{if $i}}, {{end}}<code>{{$c}}</code>{{end}}</p>{{end}}
<table>
<tr><th></th><th>criterion</th><th>evidence</th><th>next step</th></tr>
{{range .Criteria}}<tr>
<td>{{if .Pass}}<span class="pass">ok</span>{{else}}<span class="fail">gap</span>{{end}}</td>
<td>{{.Scale}}: {{.Title}}<br><code>{{.ID}}</code></td>
<td>{{.Evidence.Summary}}{{if .Evidence.Config}}<br>config: <code>{{.Evidence.Config}}</code>{{end}}{{if .Evidence.Example}}<br>e.g. <code>{{.Evidence.Example}}</code>{{end}}</td>
<td>{{if .Command}}<code>{{.Command}}</code>{{end}}{{if .Setting}}<br>set <code>{{.Setting}}</code>{{end}}</td>
</tr>{{end}}
</table>
{{end}}`))
})
