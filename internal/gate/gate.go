package gate

import (
	"context"
	"errors"
	"fmt"
	"github.com/custody-dev/custody/internal/certidentity"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/custody-dev/custody/internal/gate/spec"
)

// Limits on what Compile accepts and Evaluate spends.
const (
	// MaxRules caps the rules of one gate.
	MaxRules = 256
	// MaxExprBytes caps one custom rule's expression.
	MaxExprBytes = 16 << 10
	// MaxMessageBytes caps one rule's message.
	MaxMessageBytes = 1 << 10
	// DefaultCostLimit is the per-rule CEL cost limit when spec.Gate.CostLimit
	// is 0: a hundred thousand list elements or comparisons visited, about
	// 0.1 s of CPU at worst (BenchmarkCostUnit). The ready-made rules
	// cost tens of units on ordinary inputs; an exists() over 10,000
	// findings costs about 50,000.
	DefaultCostLimit = 100_000
	// DefaultTimeout is the limit on one Evaluate when spec.Gate.Timeout is 0.
	DefaultTimeout = 2 * time.Second
)

var ruleName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`) })

// Gate is a compiled gate: rules that all must pass. It is safe for
// concurrent use.
type Gate struct {
	rules     []compiled
	costLimit uint64
	timeout   time.Duration
}

type compiled struct {
	name    string
	message string
	params  *Params
	prg     cel.Program
}

// Result is the outcome of Evaluate.
type Result struct {
	// Pass is true when every rule passed.
	Pass bool `json:"pass"`
	// Rules are the rules' results, in the gate's order.
	Rules []RuleResult `json:"rules"`
}

// Failed returns the results of the rules that did not pass.
func (r Result) Failed() []RuleResult {
	var out []RuleResult
	for _, rr := range r.Rules {
		if !rr.Pass {
			out = append(out, rr)
		}
	}
	return out
}

// RuleResult is one rule's outcome.
type RuleResult struct {
	// Name is the rule's name.
	Name string `json:"name"`
	// Pass is true when the expression evaluated to true.
	Pass bool `json:"pass"`
	// Message is the rule's human message: what it requires.
	Message string `json:"message"`
	// Error is set when the rule could not be evaluated (runtime error,
	// cost limit, timeout); such a rule fails.
	Error string `json:"error,omitempty"`
	// Cost is the CEL cost the evaluation spent.
	Cost uint64 `json:"cost"`
}

var (
	envOnce sync.Once
	baseEnv *cel.Env
	envErr  error
)

// env is the CEL environment every rule is checked in: the Input
// variables, params, the gate functions and the strings, lists, sets and
// optional-types extensions.
func env() (*cel.Env, error) {
	envOnce.Do(func() {
		obj := func(n string) *cel.Type { return cel.ObjectType("gate." + n) }
		baseEnv, envErr = cel.NewEnv(
			ext.NativeTypes(reflect.TypeFor[Input](), reflect.TypeFor[Params](), ext.ParseStructTag("json")),
			cel.Variable("artifact", obj("Artifact")),
			cel.Variable("signatures", cel.ListType(obj("Signature"))),
			cel.Variable("notation", cel.ListType(obj("NotationSignature"))),
			cel.Variable("attestations", cel.MapType(cel.StringType, cel.ListType(obj("Attestation")))),
			cel.Variable("provenance", cel.ListType(obj("Provenance"))),
			cel.Variable("testResults", cel.ListType(obj("TestResult"))),
			cel.Variable("findings", cel.ListType(obj("Finding"))),
			cel.Variable("promotions", cel.ListType(obj("Promotion"))),
			cel.Variable("sources", cel.ListType(obj("Source"))),
			cel.Variable("environment", obj("Environment")),
			cel.Variable("now", cel.TimestampType),
			cel.Variable("revoked", cel.BoolType),
			cel.Variable("params", obj("Params")),
			cel.Function("severityRank",
				cel.Overload("severityRank_string", []*cel.Type{cel.StringType}, cel.IntType,
					cel.UnaryBinding(func(v ref.Val) ref.Val {
						s, ok := v.(types.String)
						if !ok {
							return types.NoSuchOverloadErr()
						}
						r, ok := SeverityRank(string(s))
						if !ok {
							return types.NewErr("unknown severity %q: want NONE, LOW, MEDIUM, HIGH or CRITICAL", string(s))
						}
						return types.Int(r)
					}))),
			cel.Function("normalizeSourceURI",
				cel.Overload("normalizeSourceURI_string", []*cel.Type{cel.StringType}, cel.StringType,
					cel.UnaryBinding(func(v ref.Val) ref.Val {
						s, ok := v.(types.String)
						if !ok {
							return types.NoSuchOverloadErr()
						}
						return types.String(NormalizeSourceURI(string(s)))
					}))),
			cel.Function("identityMatches",
				cel.Overload("identityMatches_map_params", []*cel.Type{cel.MapType(cel.StringType, cel.StringType), obj("Params")}, cel.BoolType,
					cel.BinaryBinding(func(c, p ref.Val) ref.Val {
						claims, err := c.ConvertToNative(reflect.TypeFor[map[string]string]())
						if err != nil {
							return types.NoSuchOverloadErr()
						}
						params, ok := p.Value().(Params)
						if !ok {
							if pp, ok2 := p.Value().(*Params); ok2 {
								params, ok = *pp, true
							}
						}
						if !ok {
							return types.NoSuchOverloadErr()
						}
						return types.Bool(params.Constraints().Match(claims.(map[string]string)) == nil)
					}))),
			ext.Strings(),
			ext.Lists(),
			ext.Sets(),
			cel.OptionalTypes(),
			cel.ParserExpressionSizeLimit(MaxExprBytes),
		)
	})
	return baseEnv, envErr
}

// Compile checks every rule of s and returns the gate. Each custom
// expression is parsed and type-checked against the Input declaration,
// so a syntax error, an unknown variable or field, or an expression that
// is not of type bool is an error naming the rule. Ready-made rules'
// params are checked too.
func Compile(s spec.Gate) (*Gate, error) {
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("gate: building the CEL environment: %w", err)
	}
	if len(s.Rules) == 0 {
		return nil, errors.New("gate: a gate needs at least one rule")
	}
	if len(s.Rules) > MaxRules {
		return nil, fmt.Errorf("gate: %d rules, the limit is %d", len(s.Rules), MaxRules)
	}
	g := &Gate{costLimit: s.CostLimit, timeout: time.Duration(s.Timeout)}
	if g.costLimit == 0 {
		g.costLimit = DefaultCostLimit
	}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	seen := map[string]int{}
	var errs []error
	for i, rs := range s.Rules {
		c, err := g.compileRule(e, rs)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", ruleLabel(i, rs), err))
			continue
		}
		if j, dup := seen[c.name]; dup {
			errs = append(errs, fmt.Errorf("rule %s: name %q is already used by rule #%d; give each rule its own name", ruleLabel(i, rs), c.name, j+1))
			continue
		}
		seen[c.name] = i
		g.rules = append(g.rules, c)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("gate: %w", errors.Join(errs...))
	}
	return g, nil
}

// ruleLabel names a rule in an error: its name, else its Use, else its
// position.
func ruleLabel(i int, rs spec.Rule) string {
	switch {
	case rs.Name != "" && len(rs.Name) <= 128:
		return fmt.Sprintf("%q (#%d)", rs.Name, i+1)
	case rs.Use != "" && len(rs.Use) <= 128:
		return fmt.Sprintf("%q (#%d)", rs.Use, i+1)
	}
	return fmt.Sprintf("#%d", i+1)
}

func (g *Gate) compileRule(e *cel.Env, rs spec.Rule) (compiled, error) {
	if len(rs.Message) > MaxMessageBytes {
		return compiled{}, fmt.Errorf("message is %d bytes, the limit is %d", len(rs.Message), MaxMessageBytes)
	}
	var c compiled
	var expr string
	if rs.Use != "" {
		rr, ok := lookupReady(rs.Use)
		if !ok {
			return compiled{}, fmt.Errorf("no ready-made rule %q; the ready-made rules are %s", rs.Use, readyNames())
		}
		if rs.Expr != "" {
			return compiled{}, errors.New("set either use (a ready-made rule) or expr (a custom rule), not both")
		}
		for _, p := range Params(rs.Params).set() {
			if !slices.Contains(rr.Params, p) {
				return compiled{}, fmt.Errorf("%s takes no parameter %q (it takes: %v)", rr.Name, p, rr.Params)
			}
		}
		p := Params(rs.Params)
		p.Keys, p.Builders, p.Sources, p.Branches = slices.Clone(p.Keys), slices.Clone(p.Builders), slices.Clone(p.Sources), slices.Clone(p.Branches)
		if rr.prepare != nil {
			if err := rr.prepare(&p); err != nil {
				return compiled{}, err
			}
		}
		c = compiled{name: rr.Name, message: rr.message(p), params: &p}
		expr = rr.Expr
	} else {
		if rs.Name == "" {
			return compiled{}, errors.New("a custom rule needs a name (or use: a ready-made rule)")
		}
		if rs.Expr == "" {
			return compiled{}, errors.New("a custom rule needs expr, a CEL expression of type bool")
		}
		if len(rs.Expr) > MaxExprBytes {
			return compiled{}, fmt.Errorf("expr is %d bytes, the limit is %d", len(rs.Expr), MaxExprBytes)
		}
		if len(Params(rs.Params).set()) > 0 {
			return compiled{}, errors.New("params are for ready-made rules only; write the values into expr")
		}
		c = compiled{name: rs.Name, message: rs.Message, params: &Params{}}
		if c.message == "" {
			c.message = "custom rule " + rs.Name + " must pass"
		}
		expr = rs.Expr
	}
	if rs.Name != "" {
		c.name = rs.Name
	}
	if !ruleName().MatchString(c.name) {
		return compiled{}, fmt.Errorf("name %q: use 1 to 128 letters, digits, '_', '-' or '.', not starting with '-' or '.'", c.name)
	}
	if rs.Message != "" {
		c.message = rs.Message
	}
	ast, iss := e.Compile(expr)
	if iss.Err() != nil {
		return compiled{}, fmt.Errorf("invalid expression: %w", iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return compiled{}, fmt.Errorf("expression has type %s, it must be bool (compare a dynamic value explicitly, e.g. `... == true`)", ast.OutputType())
	}
	prg, err := e.Program(ast,
		cel.CostLimit(g.costLimit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptTrackCost),
	)
	if err != nil {
		return compiled{}, fmt.Errorf("invalid expression: %w", err)
	}
	c.prg = prg
	return c, nil
}

// Names returns the gate's rule names, in order.
func (g *Gate) Names() []string {
	if g == nil {
		return nil
	}
	out := make([]string, len(g.rules))
	for i, r := range g.rules {
		out[i] = r.name
	}
	return out
}

// Evaluate checks in against every rule. A rule fails when its
// expression is false, and also, failing closed, when it cannot be
// evaluated: a runtime error (a missing map key, an unknown severity),
// the cost limit, the gate's timeout or ctx ending. Pass is true only when
// every rule passed. A Gate not made by Compile has no rules and never
// passes.
func (g *Gate) Evaluate(ctx context.Context, in Input) Result {
	if g == nil || len(g.rules) == 0 {
		return Result{Rules: []RuleResult{{Name: "gate", Message: "a gate must have rules", Error: "gate has no rules: build it with Compile"}}}
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	in = sanitize(in)
	res := Result{Pass: true, Rules: make([]RuleResult, 0, len(g.rules))}
	for _, r := range g.rules {
		rr := r.eval(ctx, &in)
		res.Pass = res.Pass && rr.Pass
		res.Rules = append(res.Rules, rr)
	}
	return res
}

func (r compiled) eval(ctx context.Context, in *Input) (rr RuleResult) {
	rr = RuleResult{Name: r.name, Message: r.message}
	defer func() {
		if p := recover(); p != nil {
			rr.Pass, rr.Error = false, fmt.Sprintf("evaluation panicked: %v", p)
		}
	}()
	if err := ctx.Err(); err != nil {
		rr.Error = "not evaluated: " + ctxReason(err)
		return rr
	}
	out, det, err := r.prg.ContextEval(ctx, &activation{in: in, params: r.params})
	if det != nil && det.ActualCost() != nil {
		rr.Cost = *det.ActualCost()
	}
	if err != nil {
		rr.Error = err.Error()
		if cerr := ctx.Err(); cerr != nil {
			rr.Error = ctxReason(cerr) + ": " + rr.Error
		}
		return rr
	}
	b, ok := out.(types.Bool)
	if !ok {
		rr.Error = fmt.Sprintf("expression returned %s, not bool", out.Type())
		return rr
	}
	rr.Pass = bool(b)
	return rr
}

func ctxReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "gate timed out"
	}
	return "evaluation cancelled"
}

// sanitize makes in safe to hand to CEL: nil predicates become empty
// objects. The caller's maps and slices are not modified.
func sanitize(in Input) Input {
	for _, as := range in.Attestations {
		for _, a := range as {
			if a.Predicate == nil {
				return withPredicates(in)
			}
		}
	}
	return in
}

func withPredicates(in Input) Input {
	m := make(map[string][]Attestation, len(in.Attestations))
	for t, as := range in.Attestations {
		as = slices.Clone(as)
		for i := range as {
			if as[i].Predicate == nil {
				as[i].Predicate = &structpb.Struct{}
			}
		}
		m[t] = as
	}
	in.Attestations = m
	return in
}

// activation resolves the CEL variables from an Input without copying it
// into a map.
type activation struct {
	in     *Input
	params *Params
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "artifact":
		return a.in.Artifact, true
	case "signatures":
		return a.in.Signatures, true
	case "notation":
		if a.in.Notation == nil {
			return []NotationSignature{}, true
		}
		return a.in.Notation, true
	case "attestations":
		return a.in.Attestations, true
	case "provenance":
		return a.in.Provenance, true
	case "testResults":
		return a.in.TestResults, true
	case "findings":
		return a.in.Findings, true
	case "promotions":
		return a.in.Promotions, true
	case "sources":
		return a.in.Sources, true
	case "environment":
		return a.in.Environment, true
	case "now":
		return a.in.Now, true
	case "revoked":
		return a.in.Revoked, true
	case "params":
		return *a.params, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Params are a ready-made rule's spec.Params as CEL sees them: the
// variable params, of type gate.Params.
type Params spec.Params

// Constraints are the identity constraints of signed_by_identity.
func (p Params) Constraints() certidentity.Constraints {
	return certidentity.Constraints{Identity: p.Identity, IdentityRegexp: p.IdentityRegexp, Issuer: p.Issuer, IssuerRegexp: p.IssuerRegexp,
		GitHubWorkflowRepository: p.GitHubWorkflowRepository, GitHubWorkflowRef: p.GitHubWorkflowRef,
		Repository: p.Repository, Ref: p.Ref, Workflow: p.Workflow}
}

func (p Params) set() []string {
	var s []string
	if len(p.Keys) > 0 {
		s = append(s, "keys")
	}
	if len(p.Builders) > 0 {
		s = append(s, "builders")
	}
	if len(p.Sources) > 0 {
		s = append(s, "sources")
	}
	if len(p.Branches) > 0 {
		s = append(s, "branches")
	}
	if p.Severity != "" {
		s = append(s, "severity")
	}
	if len(p.Principals) > 0 {
		s = append(s, "principals")
	}
	if len(p.Fingerprints) > 0 {
		s = append(s, "fingerprints")
	}
	for _, f := range []struct{ n, v string }{{"identity", p.Identity}, {"identityRegexp", p.IdentityRegexp}, {"issuer", p.Issuer},
		{"issuerRegexp", p.IssuerRegexp}, {"githubWorkflowRepository", p.GitHubWorkflowRepository}, {"githubWorkflowRef", p.GitHubWorkflowRef},
		{"repository", p.Repository}, {"ref", p.Ref}, {"workflow", p.Workflow}} {
		if f.v != "" {
			s = append(s, f.n)
		}
	}
	return s
}
