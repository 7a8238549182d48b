package authz

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// wantFinding is one expected finding: code, line and severity.
type wantFinding struct {
	code string
	line int
	sev  string
}

func TestLintFindings(t *testing.T) {
	const e, w = SeverityError, SeverityWarning
	catalog := []string{"crm.customers.email", "crm.customers.phone", "crm.customers.id"}
	tests := []struct {
		file    string
		columns []string
		want    []wantFinding
		message string // a substring of the first finding's message
	}{
		{"bad_effect_case.csv", nil, []wantFinding{{"bad-effect", 6, e}}, `did you mean "deny"?`},
		{"bad_effect_typo.csv", nil, []wantFinding{{"bad-effect", 6, e}}, `effect "dney"`},
		{"inline_comment.csv", nil, []wantFinding{{"inline-comment", 6, e}}, "no inline comments"},
		{"trailing_space_field.csv", nil, []wantFinding{{"trailing-space", 6, e}}, `"app2 "`},
		{"trailing_space_line.csv", nil, []wantFinding{{"trailing-space", 6, w}}, "line ends in white space"},
		{"duplicate_rule.csv", nil, []wantFinding{{"duplicate-rule", 6, w}}, "duplicate of line 5"},
		{"field_count.csv", nil, []wantFinding{{"field-count", 6, e}, {"field-count", 7, e}}, "take 5 fields, this one has 4"},
		{"unknown_type.csv", nil, []wantFinding{{"unknown-type", 6, e}, {"unknown-type", 7, e}}, `"g4"`},
		{"unknown_category.csv", nil, []wantFinding{{"unknown-category", 6, e}}, `did you mean "contact"?`},
		{"unknown_purpose.csv", nil, []wantFinding{{"unknown-purpose", 6, w}, {"unknown-purpose", 7, e}}, `did you mean "newsletter"?`},
		{"unknown_subject.csv", nil, []wantFinding{{"unknown-subject", 6, e}, {"unknown-subject", 7, e}}, `did you mean "dept"?`},
		{"syntax.csv", nil, []wantFinding{{"syntax", 6, e}}, "Casbin cannot read this line"},
		{"bad_act.csv", nil, []wantFinding{{"bad-act", 6, e}, {"bad-act", 7, e}}, `act "Read"`},
		{"bad_ddl.csv", nil, []wantFinding{{"bad-act", 6, e}, {"bad-act", 7, e}, {"bad-act", 8, e}, {"bad-pattern", 9, e}, {"bad-pattern", 10, e}}, "act ddl goes with object ddl"},
		{"bad_pattern.csv", nil, []wantFinding{{"bad-pattern", 6, e}, {"bad-pattern", 7, e}, {"bad-pattern", 8, e}, {"bad-pattern", 9, e}}, "three parts"},
		{"empty_field.csv", nil, []wantFinding{{"empty-field", 6, e}}, "empty field"},
		{"hierarchy_cycle.csv", nil, []wantFinding{{"hierarchy-cycle", 6, w}}, "g3 link marketing -> newsletter closes a cycle"},
		{"hierarchy_depth.csv", nil, []wantFinding{{"hierarchy-depth", 6, e}}, `from "role1" run 9 levels deep`},
		{"uppercase.csv", nil, []wantFinding{{"uppercase", 6, w}}, "folds unquoted names"},
		{"pattern_matches_nothing.csv", catalog[:1], []wantFinding{{"pattern-matches-nothing", 6, w}}, `"crm.customer.*"`},
		{"unclassified_personal.csv", catalog, []wantFinding{{"unclassified-personal-data", 0, w}}, "crm.customers.phone looks like personal data (phone)"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			policy := filepath.Join("testdata", "lint", tt.file)
			fs, err := Lint(shippedModel, policy, tt.columns)
			if err != nil {
				t.Fatal(err)
			}
			assertFindings(t, fs, policy, tt.want)
			if len(fs) > 0 && !strings.Contains(fs[0].Message, tt.message) {
				t.Errorf("message %q does not contain %q", fs[0].Message, tt.message)
			}
		})
	}
}

func TestLintModel(t *testing.T) {
	tests := []struct {
		file string
		want []wantFinding
	}{
		{"bad_matcher.conf", []wantFinding{{"model-shape", 25, SeverityError}}},
		{"missing_g3.conf", []wantFinding{{"model-shape", 15, SeverityError}}},
	}
	policy := filepath.Join("testdata", "lint", "bad_effect_case.csv")
	for _, tt := range tests {
		model := filepath.Join("testdata", "lint", tt.file)
		fs, err := Lint(model, policy, nil)
		if err != nil {
			t.Fatal(err)
		}
		var modelFindings []Finding
		for _, f := range fs {
			if f.File == model {
				modelFindings = append(modelFindings, f)
			}
		}
		assertFindings(t, modelFindings, model, tt.want)
	}
	dir := t.TempDir()
	broken := writeFile(t, dir, "model.conf", "[request_definition]\nr = sub\n")
	fs, err := Lint(broken, policy, nil)
	if err != nil || len(fs) == 0 || fs[0].Code != "model-load" || fs[0].File != broken {
		t.Errorf("unloadable model: %v %v", fs, err)
	}
}

func assertFindings(t *testing.T, fs []Finding, file string, want []wantFinding) {
	t.Helper()
	var got []wantFinding
	for _, f := range fs {
		if f.File != file {
			t.Errorf("finding names file %q, want %q: %s", f.File, file, f)
		}
		got = append(got, wantFinding{f.Code, f.Line, f.Severity})
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n%s\nwant %v", findingList(fs), want)
	}
}

func findingList(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

func TestLintShippedPolicyIsClean(t *testing.T) {
	fs, err := Lint(shippedModel, shippedPolicy, schemaColumns(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Errorf("shipped policy has findings:\n%s", findingList(fs))
	}
}

func TestLintCatalogDiscovery(t *testing.T) {
	// Without the g2 rules for hr, every personal-looking hr column shows up.
	dir := t.TempDir()
	var kept []string
	for _, l := range strings.Split(readFile(t, shippedPolicy), "\n") {
		if !strings.HasPrefix(l, "g2, hr.") && !strings.Contains(l, "employee_") {
			kept = append(kept, l)
		}
	}
	policy := writeFile(t, dir, "policy.csv", strings.Join(kept, "\n"))
	fs, err := Lint(shippedModel, policy, schemaColumns(t))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range fs {
		if f.Code == "unclassified-personal-data" {
			found = append(found, strings.Fields(f.Message)[1])
		}
	}
	wantCols := []string{"hr.employees.first_name", "hr.employees.last_name", "hr.employees.email", "hr.employees.phone",
		"hr.employees.bsn", "hr.employees.iban", "hr.employees.birth_date", "hr.salaries.gross_monthly",
		"hr.salaries.bank_account", "hr.sick_leave.diagnosis_note"}
	if !slices.Equal(found, wantCols) {
		t.Errorf("discovered %v, want %v", found, wantCols)
	}
}

func TestLoadRefusesLintErrors(t *testing.T) {
	policy := filepath.Join("testdata", "lint", "bad_effect_case.csv")
	_, err := Load(shippedModel, policy, Options{})
	var lint *LintError
	if !errors.As(err, &lint) {
		t.Fatalf("Load error %v is not a *LintError", err)
	}
	if len(lint.Findings) != 1 || lint.Findings[0].Code != "bad-effect" || !strings.Contains(err.Error(), "bad_effect_case.csv:6") {
		t.Errorf("error %q, findings %v", err, lint.Findings)
	}
	// Warnings do not block a load, and the policy keeps them.
	p, err := Load(shippedModel, filepath.Join("testdata", "lint", "duplicate_rule.csv"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fs := p.Findings(); len(fs) != 1 || fs[0].Code != "duplicate-rule" {
		t.Errorf("findings %v", fs)
	}
}

func TestParsePolicyLikeCasbin(t *testing.T) {
	src := "# comment\r\n\r\n   # indented comment\np,  a, \"b, c\",d\r\n  g, x , y  \nbad, \"quote\" ,x\nlast, line"
	lines := parsePolicy([]byte(src))
	got := [][]string{}
	nums := []int{}
	for _, l := range lines {
		got = append(got, l.fields)
		nums = append(nums, l.line)
	}
	wantFields := [][]string{{"p", "a", "b, c", "d"}, {"g", "x ", "y"}, nil, {"last", "line"}}
	if !slices.EqualFunc(got, wantFields, slices.Equal) || !slices.Equal(nums, []int{4, 5, 6, 7}) {
		t.Errorf("parsed %q at %v", got, nums)
	}
	if lines[2].err == nil {
		t.Error("a quote followed by a space should be a syntax error, as in Casbin")
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{{"dney", "deny", 2}, {"deny", "deny", 0}, {"", "abc", 3}, {"allow", "alow", 1}}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
