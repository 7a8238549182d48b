package sqlscan

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgguard/pgguard/catalog"
)

func defaultContext() Context {
	return Context{User: "app", SearchPath: []string{"$user", "public"}}
}

func TestAnalyzeRefusesTextTheParserWouldMisread(t *testing.T) {
	complete, _ := fixtures(t)
	for name, sql := range map[string]string{
		"NUL byte":      "SELECT 1\x00; SELECT bsn FROM hr.employees",
		"invalid UTF-8": "SELECT '\xff' FROM crm.customers",
	} {
		d := Analyze(sql, complete, defaultContext()).Denial()
		if d == nil || d.Code != CodeLexical {
			t.Errorf("%s: got %v, want a lexical denial", name, d)
		}
	}
}

func TestStatementTextAndFirstDenial(t *testing.T) {
	complete, _ := fixtures(t)
	sql := "SELECT 1;\n  SELECT pg_read_file('x') ; /* c */ SELECT crm.mask_email('y')"
	r := Analyze(sql, complete, defaultContext())
	var texts []string
	for _, st := range r.Statements {
		texts = append(texts, st.Text)
	}
	want := []string{"SELECT 1", "SELECT pg_read_file('x')", "/* c */ SELECT crm.mask_email('y')"}
	if !slices.Equal(texts, want) {
		t.Errorf("texts = %q, want %q", texts, want)
	}
	if d := r.Denial(); d == nil || d.Code != CodeUnsafeFunction {
		t.Errorf("first denial = %v, want unsafe_function from the second statement", d)
	}
	if r.Statements[0].Denial != nil || r.Statements[2].Denial == nil {
		t.Errorf("denials belong to their own statements: %+v", r.Statements)
	}
}

func TestAnalyzeTurnsPanicsIntoDenials(t *testing.T) {
	r := Analyze("SELECT email FROM crm.customers", nil, defaultContext())
	if d := r.Denial(); d == nil || d.Code != CodeInternal {
		t.Fatalf("nil catalog: got %v, want an internal denial", d)
	}
}

// TestGoldenInvariants checks properties every analysed case must have,
// whatever its expectation says.
func TestGoldenInvariants(t *testing.T) {
	for _, path := range caseFiles(t) {
		_, cases := parseCases(t, path)
		for _, c := range cases {
			r := c.run(t)
			literals := stringLiterals(c.sql)
			for _, st := range r.Statements {
				checkStatement(t, c, st, literals)
			}
		}
	}
}

func checkStatement(t *testing.T, c *goldenCase, st Statement, literals []string) {
	t.Helper()
	seen := map[Access]bool{}
	for _, a := range st.Accesses {
		if seen[a] {
			t.Errorf("%s: duplicate access %v", c.name, a)
		}
		seen[a] = true
		if (a.Act != Read && a.Act != Write) || a.Clause == "" || a.Schema == "" || a.Table == "" || a.Column == "" {
			t.Errorf("%s: malformed access %+v", c.name, a)
		}
	}
	if d := st.Denial; d != nil {
		if d.Code == CodeInternal {
			t.Errorf("%s: internal error: %s", c.name, d.Reason)
		}
		for _, lit := range literals {
			if strings.Contains(d.Reason, lit) {
				t.Errorf("%s: reason %q repeats the literal %q", c.name, d.Reason, lit)
			}
		}
	}
}

// stringLiterals lists the string constants of sql long enough to be
// recognisable, using PostgreSQL's scanner.
func stringLiterals(sql string) []string {
	res, err := pg.Scan(sql)
	if err != nil {
		return nil
	}
	var out []string
	for _, tok := range res.GetTokens() {
		if tok.GetToken() != pg.Token_SCONST {
			continue
		}
		lit := strings.Trim(sql[tok.GetStart():tok.GetEnd()], "'$")
		if len(lit) >= 4 {
			out = append(out, lit)
		}
	}
	return out
}

func TestAnalyzeIsSafeForConcurrentUse(t *testing.T) {
	complete, _ := fixtures(t)
	var cases []*goldenCase
	for _, path := range caseFiles(t) {
		_, cs := parseCases(t, path)
		cases = append(cases, cs...)
	}
	want := make([]string, len(cases))
	for i, c := range cases {
		want[i] = render(c.run(t))
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(cases); i += 3 {
				if got := render(cases[i].run(t)); got != want[i] {
					t.Errorf("%s: concurrent result differs", cases[i].name)
				}
			}
		}(g)
	}
	wg.Wait()
	_ = complete
}

// viewChain builds views v0 <- v1 <- ... <- v(n-1), each over the one
// before, and a view that refers to itself.
func viewChain(n int) *catalog.Snapshot {
	rels := []catalog.Relation{{Schema: "app", Name: "t", Kind: catalog.Table, Columns: []string{"secret"}}}
	prev := "app.t"
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("v%d", i)
		rels = append(rels, catalog.Relation{Schema: "app", Name: name, Kind: catalog.View,
			Columns: []string{"secret"}, ViewDefinition: "SELECT secret FROM " + prev,
			DefinitionSearchPath: []string{"pg_catalog"}})
		prev = "app." + name
	}
	rels = append(rels, catalog.Relation{Schema: "app", Name: "loop", Kind: catalog.View,
		Columns: []string{"secret"}, ViewDefinition: "SELECT secret FROM app.loop"})
	return catalog.New(catalog.Contents{Database: "d", Schemas: []string{"app"}, Relations: rels})
}

func TestViewExpansionIsBounded(t *testing.T) {
	cat := viewChain(maxViewDepth + 4)
	ok := Analyze("SELECT secret FROM app.v3", cat, defaultContext())
	if d := ok.Denial(); d != nil {
		t.Fatalf("short chain: %v", d)
	}
	if !slices.Contains(ok.Statements[0].Accesses, Access{"app", "t", "secret", Read, "view:app.v0"}) {
		t.Errorf("short chain does not reach the table: %v", ok.Statements[0].Accesses)
	}
	deep := Analyze(fmt.Sprintf("SELECT secret FROM app.v%d", maxViewDepth+3), cat, defaultContext())
	if d := deep.Denial(); d == nil || d.Code != CodeUnsupported {
		t.Errorf("deep chain: got %v, want unsupported", d)
	}
	loop := Analyze("SELECT secret FROM app.loop", cat, defaultContext())
	if d := loop.Denial(); d == nil || d.Code != CodeUnsupported {
		t.Errorf("self-referencing view: got %v, want unsupported", d)
	}
}

func TestHugeStatementsAreBounded(t *testing.T) {
	complete, _ := fixtures(t)
	var b strings.Builder
	b.WriteString("SELECT 1 FROM crm.customers WHERE ")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "email = 'x%d' OR ", i)
	}
	b.WriteString("false")
	r := Analyze(b.String(), complete, defaultContext())
	if d := r.Denial(); d != nil && d.Code != CodeUnsupported {
		t.Errorf("got %v", d)
	}
	deep := strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000)
	r = Analyze("SELECT "+deep, complete, defaultContext())
	if d := r.Denial(); d == nil {
		t.Log("deep nesting analysed within bounds")
	}
}

func TestRepeatedReferencesDoNotMultiplyLineage(t *testing.T) {
	complete, _ := fixtures(t)
	q := "SELECT email AS x FROM crm.customers"
	for i := 0; i < 40; i++ {
		q = "SELECT s.x || s.x || s.x AS x FROM (" + q + ") s"
	}
	start := time.Now()
	r := Analyze(q, complete, defaultContext())
	if d := r.Denial(); d != nil {
		t.Fatalf("denied: %v", d)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
	if n := len(r.Statements[0].Accesses); n != 1 {
		t.Errorf("got %d accesses, want 1 (read crm.customers.email select): %v", n, r.Statements[0].Accesses)
	}
}
