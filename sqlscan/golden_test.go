package sqlscan

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expectations in testdata/cases (review every diff by hand)")

// A case file holds blocks like:
//
//	-- name: point select by id
//	-- search_path: crm, public      (optional; "unknown" for nil; default "$user", public)
//	-- user: alice                   (optional; default app)
//	-- catalog: ddl                  (optional: the incomplete, DDL-file-like snapshot)
//	-- allow: crm.mask_email         (optional, repeatable: Context.FunctionAllowed)
//	-- database: shop                (optional; default: the snapshot's)
//	SELECT email FROM crm.customers WHERE id = 1;
//	-- expect:
//	select
//	  read crm.customers.email select
//	  read crm.customers.id where
//
// Each statement of the input renders as its kind (with " ddl" when it
// changes the schema), then indented: the code it attaches, purpose,
// effect, accesses in order, and deny lines.
type goldenCase struct {
	name       string
	directives []string
	sql        string
	expect     string
	line       int
}

func parseCases(t *testing.T, path string) (header string, cases []*goldenCase) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cur *goldenCase
	inExpect := false
	var sql, exp []string
	flush := func() {
		if cur != nil {
			cur.sql = strings.TrimSpace(strings.Join(sql, "\n"))
			cur.expect = strings.TrimRight(strings.Join(exp, "\n"), "\n ")
			cases = append(cases, cur)
		}
		sql, exp, inExpect = nil, nil, false
	}
	var head []string
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "-- name:"):
			flush()
			cur = &goldenCase{name: strings.TrimSpace(strings.TrimPrefix(line, "-- name:")), line: i + 1}
		case cur == nil:
			head = append(head, line)
		case inExpect:
			exp = append(exp, line)
		case line == "-- expect:":
			inExpect = true
		case len(sql) == 0 && isDirective(line):
			cur.directives = append(cur.directives, strings.TrimPrefix(line, "-- "))
		default:
			sql = append(sql, line)
		}
	}
	flush()
	return strings.Join(head, "\n"), cases
}

func isDirective(line string) bool {
	for _, d := range []string{"search_path:", "user:", "catalog:", "allow:", "database:"} {
		if strings.HasPrefix(line, "-- "+d) {
			return true
		}
	}
	return false
}

// run analyses a case under its directives.
func (c *goldenCase) run(t *testing.T) *Result {
	complete, ddl := fixtures(t)
	cat := complete
	ctx := Context{User: "app", SearchPath: []string{"$user", "public"}}
	var allowed []string
	for _, d := range c.directives {
		key, val, _ := strings.Cut(d, ":")
		val = strings.TrimSpace(val)
		switch key {
		case "search_path":
			if val == "unknown" {
				ctx.SearchPath = nil
			} else {
				ctx.SearchPath = ParseSearchPath(val)
			}
		case "user":
			ctx.User = val
		case "catalog":
			if val == "ddl" {
				cat = ddl
			}
		case "allow":
			allowed = append(allowed, val)
		case "database":
			ctx.Database = val
		}
	}
	if len(allowed) > 0 {
		ctx.FunctionAllowed = func(schema, name string) bool {
			for _, a := range allowed {
				if a == schema+"."+name {
					return true
				}
			}
			return false
		}
	}
	return Analyze(c.sql, cat, ctx)
}

// render prints a result in the case-file format.
func render(r *Result) string {
	var b strings.Builder
	for i, st := range r.Statements {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(st.Kind)
		if st.DDL {
			b.WriteString(" ddl")
		}
		if st.Attaches != "" {
			fmt.Fprintf(&b, "\n  attaches %s", st.Attaches)
		}
		if st.Purpose != "" {
			fmt.Fprintf(&b, "\n  purpose %s", st.Purpose)
		}
		if e := st.Effect; e != nil {
			fmt.Fprintf(&b, "\n  effect %s", e.Kind)
			if e.Name != "" {
				fmt.Fprintf(&b, " %s", e.Name)
			}
			if e.Kind == "set" {
				fmt.Fprintf(&b, " = %q", e.Value)
			}
			if e.Local {
				b.WriteString(" local")
			}
		}
		for _, a := range st.Accesses {
			fmt.Fprintf(&b, "\n  %s %s.%s.%s %s", a.Act, a.Schema, a.Table, a.Column, a.Clause)
		}
		if d := st.Denial; d != nil {
			fmt.Fprintf(&b, "\n  deny %s: %s", d.Code, d.Reason)
		}
	}
	return b.String()
}

func caseFiles(t *testing.T) []string {
	files, err := filepath.Glob("testdata/cases/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files: %v", err)
	}
	return files
}

func TestGolden(t *testing.T) {
	total := 0
	for _, path := range caseFiles(t) {
		header, cases := parseCases(t, path)
		total += len(cases)
		changed := false
		for _, c := range cases {
			got := render(c.run(t))
			if got == c.expect {
				continue
			}
			if *update {
				c.expect, changed = got, true
				continue
			}
			t.Errorf("%s:%d %s\n--- sql\n%s\n--- want\n%s\n--- got\n%s", path, c.line, c.name, c.sql, c.expect, got)
		}
		if changed {
			writeCases(t, path, header, cases)
		}
	}
	if total < 200 {
		t.Errorf("only %d golden cases; the suite promises at least 200", total)
	}
}

func writeCases(t *testing.T, path, header string, cases []*goldenCase) {
	var b strings.Builder
	if header != "" {
		b.WriteString(strings.TrimRight(header, "\n") + "\n\n")
	}
	for i, c := range cases {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "-- name: %s\n", c.name)
		for _, d := range c.directives {
			fmt.Fprintf(&b, "-- %s\n", d)
		}
		fmt.Fprintf(&b, "%s\n-- expect:\n%s\n", c.sql, c.expect)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
