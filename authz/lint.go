package authz

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

// Severities of a Finding. A policy with error findings is never loaded;
// warnings are reported and the policy is used.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Finding is one problem lint found in the model or the policy file.
type Finding struct {
	File     string // the file as named to Lint
	Line     int    // 1-based; 0 when the finding is about the file as a whole
	Severity string // SeverityError or SeverityWarning
	Code     string // stable short name, e.g. "bad-effect", for filtering and tests
	Message  string
}

// String renders a finding the way compilers do: "policy.csv:17: error: ... [bad-effect]".
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: %s: %s [%s]", f.File, f.Line, f.Severity, f.Message, f.Code)
}

// LintError is returned by Load, NewEngine and Reload when lint finds errors.
type LintError struct {
	Findings []Finding // all findings, errors and warnings
}

// Error summarises the first error finding and how many there are.
func (e *LintError) Error() string {
	var errs []Finding
	for _, f := range e.Findings {
		if f.Severity == SeverityError {
			errs = append(errs, f)
		}
	}
	if len(errs) == 0 {
		return "policy lint found no errors"
	}
	if len(errs) == 1 {
		return "policy lint: " + errs[0].String()
	}
	return fmt.Sprintf("policy lint: %s (and %d more errors)", errs[0], len(errs)-1)
}

// hasErrors reports whether any finding is an error.
func hasErrors(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Check names one kind of finding and what it looks for.
type Check struct {
	Code  string // the code of its findings, e.g. "pattern-matches-nothing"
	About string // what it finds, in a few words
}

// catalogChecks are the checks that need the catalog's columns.
var catalogChecks = []Check{
	{"pattern-matches-nothing", "g2 and p column patterns that match no column of the database"},
	{"unclassified-personal-data", "columns that look like personal data but no g2 rule classifies"},
}

// SkippedChecks are the checks Lint does not run with the given columns:
// those that need the catalog when columns is nil, else none.
func SkippedChecks(columns []string) []Check {
	if columns != nil {
		return nil
	}
	return append([]Check(nil), catalogChecks...)
}

// Lint checks a model and a policy file and returns what it finds, sorted
// by file and line. columns, when not nil, are the catalog's columns as
// "schema.table.column"; with them lint also reports g2 patterns that match
// nothing and personal-looking columns no g2 pattern classifies. The error
// is only for files that cannot be read.
func Lint(modelPath, policyPath string, columns []string) ([]Finding, error) {
	modelData, err := os.ReadFile(modelPath)
	if err != nil {
		return nil, fmt.Errorf("lint model %s: %w", modelPath, err)
	}
	policyData, err := os.ReadFile(policyPath)
	if err != nil {
		return nil, fmt.Errorf("lint policy %s: %w", policyPath, err)
	}
	fs, _ := lintFiles(modelPath, modelData, policyPath, policyData, columns)
	return fs, nil
}

// lintFiles lints both files and also returns the policy's rules, so Load
// does not parse twice. The rules are only usable when no finding is an error.
func lintFiles(modelPath string, modelData []byte, policyPath string, policyData []byte, columns []string) ([]Finding, []rule) {
	_, fs := lintModel(modelPath, modelData)
	l := &linter{file: policyPath}
	rules := l.rules(parsePolicy(policyData))
	l.semantics(rules, columns)
	fs = append(fs, l.out...)
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].File != fs[j].File {
			return fs[i].File < fs[j].File
		}
		return fs[i].Line < fs[j].Line
	})
	return fs, rules
}

// rule is one well-formed policy line.
type rule struct {
	line   int
	ptype  string   // p, g, g2 or g3
	fields []string // the fields after the type
}

// text renders the rule as it is quoted in explanations.
func (r rule) text() string { return ruleText(append([]string{r.ptype}, r.fields...)) }

// fieldCounts is how many fields after the type each rule type takes.
var fieldCounts = map[string]int{"p": 5, "g": 2, "g2": 2, "g3": 2}

// linter collects findings about one policy file.
type linter struct {
	file string
	out  []Finding
}

func (l *linter) add(line int, sev, code, format string, args ...any) {
	l.out = append(l.out, Finding{File: l.file, Line: line, Severity: sev, Code: code, Message: fmt.Sprintf(format, args...)})
}

// rules checks each line on its own and returns the well-formed ones.
// Lines with a problem that changes their meaning are still returned when
// Casbin would load them, so the cross-rule checks see what Casbin sees.
func (l *linter) rules(lines []policyLine) []rule {
	var out []rule
	seen := map[string]int{}
	for _, pl := range lines {
		if pl.err != nil {
			l.add(pl.line, SeverityError, "syntax", "Casbin cannot read this line: %v", pl.err)
			continue
		}
		r, ok := l.shape(pl)
		if !ok {
			continue
		}
		key := r.text()
		if first, dup := seen[key]; dup {
			l.add(pl.line, SeverityWarning, "duplicate-rule", "duplicate of line %d; Casbin ignores it", first)
			continue
		}
		seen[key] = pl.line
		l.fieldsText(pl)
		l.values(r)
		out = append(out, r)
	}
	return out
}

// shape checks the rule type and the field count.
func (l *linter) shape(pl policyLine) (rule, bool) {
	ptype := pl.fields[0]
	want, known := fieldCounts[ptype]
	if !known {
		l.add(pl.line, SeverityError, "unknown-type", "unknown rule type %q; the model defines p, g, g2 and g3", ptype)
		return rule{}, false
	}
	if got := len(pl.fields) - 1; got != want {
		l.add(pl.line, SeverityError, "field-count", "%s rules take %d fields, this one has %d", ptype, want, got)
		return rule{}, false
	}
	return rule{line: pl.line, ptype: ptype, fields: pl.fields[1:]}, true
}

// fieldsText reports white space and comments that Casbin keeps as part of
// a value, which make a rule silently never match.
func (l *linter) fieldsText(pl policyLine) {
	for _, f := range pl.fields {
		switch {
		case f == "":
			l.add(pl.line, SeverityError, "empty-field", "empty field; every field needs a value")
		case strings.Contains(f, "#"):
			l.add(pl.line, SeverityError, "inline-comment", "field %q contains '#': Casbin has no inline comments, put the comment on its own line", f)
		case strings.TrimRightFunc(f, unicode.IsSpace) != f:
			l.add(pl.line, SeverityError, "trailing-space", "field %q ends in white space, which Casbin keeps as part of the value", f)
		}
	}
	if strings.TrimRightFunc(pl.raw, unicode.IsSpace) != pl.raw {
		l.add(pl.line, SeverityWarning, "trailing-space", "line ends in white space (Casbin trims it, but editors and diffs do not)")
	}
}

// values checks the values of one rule: effect, act and object shapes.
func (l *linter) values(r rule) {
	switch r.ptype {
	case "p":
		l.effect(r)
		l.act(r)
		l.object(r.line, r.fields[2], true)
		if r.fields[0] == "*" {
			l.add(r.line, SeverityError, "bad-subject", "subject \"*\" is not a wildcard in pgguard; name a department or role")
		}
	case "g2":
		l.object(r.line, r.fields[0], true)
		if kind, _ := objectKind(r.fields[1]); kind != objCategory {
			l.add(r.line, SeverityError, "bad-pattern", "g2 right side %q must be a category name (no '.', '*' or ':', and not ddl)", r.fields[1])
		}
		if kind, _ := objectKind(r.fields[0]); kind == objDDL {
			l.add(r.line, SeverityError, "bad-pattern", "ddl cannot be given a category; allow it with p, dept, purpose, ddl, ddl, allow")
		}
	case "g", "g3":
		for _, v := range r.fields {
			if v == "*" {
				l.add(r.line, SeverityError, "bad-pattern", "%q is not a wildcard in %s rules", v, r.ptype)
			}
		}
	}
}

func (l *linter) effect(r rule) {
	eft := r.fields[4]
	if eft == "allow" || eft == "deny" || eft == "" || strings.Contains(eft, "#") {
		return // the last two already have their own finding
	}
	hint := ""
	for _, want := range []string{"allow", "deny"} {
		if strings.EqualFold(strings.TrimSpace(eft), want) || editDistance(strings.ToLower(eft), want) <= 2 {
			hint = fmt.Sprintf(" (did you mean %q?)", want)
			break
		}
	}
	l.add(r.line, SeverityError, "bad-effect", "effect %q is neither \"allow\" nor \"deny\"; Casbin compares exactly and ignores this rule%s", eft, hint)
}

func (l *linter) act(r rule) {
	act := Act(r.fields[3])
	kind, _ := objectKind(r.fields[2])
	switch {
	case act != ActRead && act != ActWrite && act != ActExecute && act != ActDDL:
		l.add(r.line, SeverityError, "bad-act", "act %q is not read, write, execute or ddl", act)
	case (act == ActDDL) != (kind == objDDL):
		l.add(r.line, SeverityError, "bad-act", "act ddl goes with object ddl and only with it (the right to attach code: p, dept, *, ddl, ddl, allow), not %q with %q", act, r.fields[2])
	case act != ActExecute && kind == objExtension:
		l.add(r.line, SeverityError, "bad-act", "extensions are trusted with act execute, not %q", act)
	case act == ActExecute && kind == objColumn:
		l.add(r.line, SeverityError, "bad-act", "execute applies to functions (function:schema.name), not to the column pattern %q", r.fields[2])
	case act != ActExecute && kind == objFunction:
		l.add(r.line, SeverityError, "bad-act", "functions are allowed with act execute, not %q", act)
	}
}

// object checks a g2 left side or a p object.
func (l *linter) object(line int, obj string, allowCategory bool) {
	kind, why := objectKind(obj)
	switch {
	case kind == objInvalid:
		l.add(line, SeverityError, "bad-pattern", "%q is not a category, a schema.table.column pattern, a function:schema.name pattern, an extension:name or ddl: %s", obj, why)
	case kind == objCategory && !allowCategory:
		l.add(line, SeverityError, "bad-pattern", "%q must be a pattern", obj)
	case kind != objCategory && strings.ToLower(obj) != obj:
		l.add(line, SeverityWarning, "uppercase", "%q has upper case letters; PostgreSQL folds unquoted names to lower case, so it only matches quoted identifiers", obj)
	}
}

// editDistance is the Levenshtein distance, used to suggest "deny" for "dney".
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// baseName is how explanations name the policy file.
func baseName(path string) string { return filepath.Base(path) }
