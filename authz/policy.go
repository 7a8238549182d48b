package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
)

// Act is what a statement does to a column: ActRead or ActWrite; or
// ActExecute for a function or a trusted extension; or ActDDL for
// attaching code to the database.
type Act string

// The acts a p rule may name.
const (
	ActRead    Act = "read"
	ActWrite   Act = "write"
	ActExecute Act = "execute" // calling a function, see FunctionAllowed and ExtensionTrusted
	ActDDL     Act = "ddl"     // attaching code, see DDLAllowed
)

// Access is one column a statement touches, and how.
type Access struct {
	Column string // schema.table.column, as PostgreSQL stores the names; or function:schema.name with ActExecute
	Act    Act
}

// Denial explains why one access is denied.
type Denial struct {
	Column   string
	Category string // the category the deciding rule names, else the column's first category; "" if unclassified
	Act      Act
	Reason   string // e.g. `deny rule "p, marketing, *, customer_identity, read, deny" (policy.csv:17)`
}

// Decision is the verdict on all accesses of one statement.
type Decision struct {
	Allowed       bool
	Denied        []Denial // one per denied access, in access order; nil when allowed
	Roles         []string // the subject's roles, all levels; shared, do not modify
	PolicyVersion string
	// UnknownSubject and UnknownPurpose say, on a decision that denied some
	// access for want of an allow rule, what of the request the policy
	// does not know: no p rule names the subject or any of its roles, or
	// the declared purpose is named by no rule (only "*" rules apply to it).
	// They are the real reason of such a refusal, more than any one column.
	UnknownSubject, UnknownPurpose bool
}

// Unclassified settings: what happens to a column no g2 pattern covers.
const (
	UnclassifiedAllow = "allow"
	UnclassifiedDeny  = "deny"
)

// Options tune loading and deciding.
type Options struct {
	// Unclassified is UnclassifiedAllow (the default when empty) or
	// UnclassifiedDeny. It only applies when no rule matches the column:
	// a deny rule on a column pattern still denies, an allow rule allows.
	Unclassified string
	// Columns are the catalog's columns (schema.table.column), optional.
	// Lint uses them for warnings only; they never block a load.
	Columns []string
	// CacheBytes bounds, in bytes, the decisions a Policy caches; 0 means
	// DefaultCacheBytes.
	CacheBytes int64
	// Debounce is how long Watch waits for a burst of file events to end;
	// 0 means 200ms.
	Debounce time.Duration
	// Settle is how long a reload waits between two reads of the files,
	// which must agree before the policy is loaded; 0 means 100ms, and a
	// negative value reads once (tests that write files atomically).
	Settle time.Duration
}

func (o Options) settle() time.Duration {
	switch {
	case o.Settle < 0:
		return 0
	case o.Settle == 0:
		return 100 * time.Millisecond
	}
	return o.Settle
}

func (o Options) validate() error {
	if o.CacheBytes < 0 {
		return fmt.Errorf("decision cache bytes must not be negative, got %d", o.CacheBytes)
	}
	switch o.Unclassified {
	case "", UnclassifiedAllow, UnclassifiedDeny:
		return nil
	}
	return fmt.Errorf("unclassified must be %q or %q, not %q", UnclassifiedAllow, UnclassifiedDeny, o.Unclassified)
}

// Policy is a loaded, linted, immutable policy. All its methods are safe for
// concurrent use. Decisions are computed from tables built at load time and
// cached inside the Policy, so a reload (a new Policy) starts with an empty
// cache and old answers can never leak into the new policy.
type Policy struct {
	version          string
	checksum         string // full SHA-256 of model and policy; version is its prefix
	file             string // base name of the policy file, for explanations
	unclassifiedDeny bool
	rules            []string  // every rule as text, sorted, for reload diffs
	findings         []Finding // lint warnings of this policy (it has no errors)

	// enforcer is Casbin loaded with the model and the rules. The role and
	// purpose hierarchies come from its role managers; tests compare every
	// decision of the example policy with its Enforce.
	enforcer *casbin.Enforcer

	schemaPatterns map[string][]catPattern // g2 patterns whose schema part is literal, by schema
	otherPatterns  []catPattern            // g2 patterns with '*' in the schema part
	parents        map[string][]string     // category -> parent categories
	roles          map[string][]string     // subject -> its roles, sorted
	ancestors      map[string][]string     // purpose -> its ancestors
	bySubject      map[string][]*pRule     // p rules by subject
	purposes       map[string]bool         // purposes named anywhere
	outline        outline                 // names in file order, for Matrix

	cache *decisionCache
}

// catPattern is a g2 pattern and the category it gives.
type catPattern struct {
	pattern, category string
	line              int
}

// pRule is one p rule, ready to evaluate.
type pRule struct {
	sub, purpose, obj string
	act               Act
	deny              bool
	category          bool // obj is a category rather than a pattern
	line              int
	text              string
}

// Load reads, lints and loads a model and a policy file. It fails with a
// *LintError when lint finds errors: a policy that would be misread (say a
// deny rule spelt "Deny", which Casbin ignores) is never used.
func Load(modelPath, policyPath string, opts Options) (*Policy, error) {
	modelData, err := os.ReadFile(modelPath)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", modelPath, err)
	}
	policyData, err := os.ReadFile(policyPath)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", policyPath, err)
	}
	return loadBytes(modelPath, modelData, policyPath, policyData, opts)
}

// loadBytes is Load on file contents already read, so a reload lints and
// loads the very bytes it hashed.
func loadBytes(modelPath string, modelData []byte, policyPath string, policyData []byte, opts Options) (*Policy, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("load policy %s: %w", policyPath, err)
	}
	findings, rules := lintFiles(modelPath, modelData, policyPath, policyData, opts.Columns)
	if hasErrors(findings) {
		return nil, fmt.Errorf("load policy %s: %w", policyPath, &LintError{Findings: findings})
	}
	e, err := newEnforcer(modelData, rules)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", policyPath, err)
	}
	p := &Policy{
		version:          versionOf(modelData, policyData),
		checksum:         Checksum(modelData, policyData),
		file:             baseName(policyPath),
		unclassifiedDeny: opts.Unclassified == UnclassifiedDeny,
		findings:         findings,
		enforcer:         e,
		cache:            newDecisionCache(opts.CacheBytes),
	}
	if err := p.index(rules); err != nil {
		return nil, fmt.Errorf("load policy %s: %w", policyPath, err)
	}
	return p, nil
}

// versionOf names a model and policy pair by content: the same files give
// the same version on every host, which lets alerts be tied to a policy.
func versionOf(modelData, policyData []byte) string {
	return Checksum(modelData, policyData)[:12]
}

// Checksum is the SHA-256, in hex, of a model and policy pair: the length
// of the model, a newline, the model and the policy. A policy's Version is
// its first 12 digits, so a checksum shown by the policy store and the
// version in an alert can be matched by eye.
func Checksum(modelData, policyData []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(modelData)) // keep the boundary unambiguous
	h.Write(modelData)
	h.Write(policyData)
	return hex.EncodeToString(h.Sum(nil))
}

// newEnforcer loads the rules into Casbin, with the column glob as g2's
// matching function so that g2 left sides act as patterns.
func newEnforcer(modelData []byte, rules []rule) (*casbin.Enforcer, error) {
	m, err := model.NewModelFromString(string(modelData))
	if err != nil {
		return nil, fmt.Errorf("casbin model: %w", err)
	}
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		return nil, fmt.Errorf("casbin enforcer: %w", err)
	}
	e.AddNamedMatchingFunc("g2", "MatchPattern", func(name, pattern string) bool { return MatchPattern(pattern, name) })
	for _, r := range rules {
		sec := r.ptype[:1]
		if err := m.AddPolicy(sec, r.ptype, r.fields); err != nil {
			return nil, fmt.Errorf("casbin rule at line %d: %w", r.line, err)
		}
	}
	if err := e.BuildRoleLinks(); err != nil {
		return nil, fmt.Errorf("casbin role links: %w", err)
	}
	return e, nil
}

// index builds the lookup tables the decisions run on. The hierarchies are
// read from Casbin's role managers, so depth limits and cycles behave as
// Casbin has them.
func (p *Policy) index(rules []rule) error {
	p.schemaPatterns = map[string][]catPattern{}
	p.parents = map[string][]string{}
	p.bySubject = map[string][]*pRule{}
	p.purposes = map[string]bool{}
	subjects := map[string]bool{}
	for _, r := range rules {
		p.rules = append(p.rules, r.text())
		p.indexRule(r, subjects)
	}
	sort.Strings(p.rules)
	p.outline = outlineOf(rules)
	var err error
	if p.roles, err = implicitRoles(p.enforcer, "g", subjects); err != nil {
		return err
	}
	p.ancestors, err = implicitRoles(p.enforcer, "g3", p.purposes)
	return err
}

func (p *Policy) indexRule(r rule, subjects map[string]bool) {
	f := r.fields
	switch r.ptype {
	case "g":
		subjects[f[0]], subjects[f[1]] = true, true
	case "g3":
		p.purposes[f[0]], p.purposes[f[1]] = true, true
	case "g2":
		if kind, _ := objectKind(f[0]); kind == objCategory {
			p.parents[f[0]] = append(p.parents[f[0]], f[1])
			return
		}
		// Index by the first part ("crm", "function:public") so a lookup
		// only globs the patterns of the object's own schema.
		cp := catPattern{pattern: f[0], category: f[1], line: r.line}
		head := f[0]
		if dot := strings.IndexByte(head, '.'); dot >= 0 {
			head = head[:dot]
		}
		if isPattern(head) {
			p.otherPatterns = append(p.otherPatterns, cp)
		} else {
			p.schemaPatterns[head] = append(p.schemaPatterns[head], cp)
		}
	case "p":
		kind, _ := objectKind(f[2])
		pr := &pRule{sub: f[0], purpose: f[1], obj: f[2], act: Act(f[3]), deny: f[4] == "deny",
			category: kind == objCategory, line: r.line, text: r.text()}
		if f[4] == "allow" || f[4] == "deny" { // Casbin ignores any other effect; so does lint-clean policy
			p.bySubject[f[0]] = append(p.bySubject[f[0]], pr)
		}
		subjects[f[0]] = true
		if f[1] != "*" {
			p.purposes[f[1]] = true
		}
	}
}

// implicitRoles asks Casbin's role manager of ptype for every name's
// ancestors, sorted.
func implicitRoles(e *casbin.Enforcer, ptype string, names map[string]bool) (map[string][]string, error) {
	rm := e.GetNamedRoleManager(ptype)
	out := make(map[string][]string, len(names))
	for name := range names {
		roles, err := rm.GetImplicitRoles(name)
		if err != nil {
			return nil, fmt.Errorf("%s roles of %q: %w", ptype, name, err)
		}
		if len(roles) > 0 {
			sort.Strings(roles)
			out[name] = roles
		}
	}
	return out, nil
}

// Version is a short hex SHA-256 of the model and policy bytes.
func (p *Policy) Version() string { return p.version }

// CacheBytes is the size of the policy's decision cache, in bytes as it
// counts them; at most Options.CacheBytes.
func (p *Policy) CacheBytes() int64 { return p.cache.size() }

// Checksum is the full SHA-256 of the model and policy the Policy was
// loaded from (see Checksum); Version is its first 12 digits.
func (p *Policy) Checksum() string { return p.checksum }

// Findings are the lint warnings of this policy; a loaded policy has no errors.
func (p *Policy) Findings() []Finding { return append([]Finding(nil), p.findings...) }

// Rules are all rules of the policy as text ("p, hr, payroll, ..."), sorted.
func (p *Policy) Rules() []string { return append([]string(nil), p.rules...) }

// Roles returns the subject's roles at every level (payroll_app ->
// payroll_clerk -> hr gives [hr payroll_clerk]), sorted; nil for a subject
// no g rule names.
func (p *Policy) Roles(subject string) []string {
	return append([]string(nil), p.roles[subject]...)
}

// KnownPurpose reports whether any rule names the purpose, in g3 or in a p
// rule. "" (no purpose) and "*" (the wildcard) are not purposes. The proxy
// uses this to warn a client that declared a purpose the policy has never
// heard of, which can only ever match "*" rules.
func (p *Policy) KnownPurpose(name string) bool {
	return name != "" && name != "*" && p.purposes[name]
}

// HasRules reports whether some p rule names the subject or one of its
// roles; a subject without any can be allowed nothing but unclassified
// columns.
func (p *Policy) HasRules(subject string) bool {
	if len(p.bySubject[subject]) > 0 {
		return true
	}
	for _, role := range p.roles[subject] {
		if len(p.bySubject[role]) > 0 {
			return true
		}
	}
	return false
}

// SimilarPurpose returns the purpose of the policy closest in spelling to
// name (at most two edits away), or "" when there is none: the likely
// intent behind a purpose the policy does not know.
func (p *Policy) SimilarPurpose(name string) string {
	return closest(name, p.purposes)
}

// Categories returns the column's data categories: those its g2 patterns
// give, in file order, then their parent categories. Empty means the column
// is unclassified. Functions ("function:schema.name") work the same way.
func (p *Policy) Categories(column string) []string {
	direct := p.directCategories(column)
	out := append([]string(nil), direct...)
	seen := make(map[string]bool, len(out))
	for _, c := range out {
		seen[c] = true
	}
	for i := 0; i < len(out); i++ { // breadth first over category -> parent links
		for _, parent := range p.parents[out[i]] {
			if !seen[parent] {
				seen[parent] = true
				out = append(out, parent)
			}
		}
	}
	return out
}

// directCategories returns the categories of the g2 patterns that cover the
// object, in file order, without duplicates.
func (p *Policy) directCategories(object string) []string {
	head := object
	if dot := strings.IndexByte(object, '.'); dot >= 0 {
		head = object[:dot]
	}
	var hits []catPattern
	for _, list := range [][]catPattern{p.schemaPatterns[head], p.otherPatterns} {
		for _, cp := range list {
			if MatchPattern(cp.pattern, object) {
				hits = append(hits, cp)
			}
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].line < hits[j].line })
	var out []string
	for _, cp := range hits {
		if !contains(out, cp.category) {
			out = append(out, cp.category)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
