package guard

import (
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pgguard/pgguard/proxy"
)

func shapeOf(t testing.TB, sql string) (string, bool) {
	t.Helper()
	spans, ok := literalSpans([]byte(sql), nil)
	if !ok {
		return "", false
	}
	return string(shapeKey([]byte(sql), spans, nil)), true
}

func TestShapeOfPlainLiterals(t *testing.T) {
	same := [][2]string{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 42;", "SELECT abalance FROM pgbench_accounts WHERE aid = 7;"},
		{"UPDATE t SET a = a + -5 WHERE id = 3", "UPDATE t SET a = a + -1234 WHERE id = 99"},
		{"SELECT 'it''s', 1.5e3", "SELECT 'x', 2.0E-1"},
		{"SELECT 'a'\n  'b' AS x", "SELECT 'long'\n  'er' AS x"},
		{"SELECT \"we'ird\" FROM t WHERE x = 'a' -- it's a comment\n", "SELECT \"we'ird\" FROM t WHERE x = 'bb' -- it's a comment\n"},
		{"SELECT email FROM c WHERE id = 1 /* purpose='x' /* nested */ */", "SELECT email FROM c WHERE id = 2 /* purpose='x' /* nested */ */"},
		{"SELECT $1::int, t1.c2 FROM t1 WHERE d = date '2024-01-01'", "SELECT $1::int, t1.c2 FROM t1 WHERE d = date '1999-12-31'"},
	}
	for _, p := range same {
		a, okA := shapeOf(t, p[0])
		b, okB := shapeOf(t, p[1])
		if !okA || !okB || a != b {
			t.Errorf("want one shape:\n  %q (%v)\n  %q (%v)", p[0], okA, p[1], okB)
		}
	}
	different := [][2]string{
		{"SELECT email FROM c /*purpose='a'*/", "SELECT email FROM c /*purpose='b'*/"},
		{"SELECT bsn FROM c WHERE id = 1", "SELECT email FROM c WHERE id = 1"},
		{"SELECT 1 IN (1, 2)", "SELECT 1 IN (1, 2, 3)"},
		{"SELECT a FROM t -- x\n WHERE b = 1", "SELECT a FROM t -- y\n WHERE b = 1"},
	}
	for _, p := range different {
		a, okA := shapeOf(t, p[0])
		b, okB := shapeOf(t, p[1])
		if !okA || !okB || a == b {
			t.Errorf("want two shapes (%v %v):\n  %q\n  %q", okA, okB, p[0], p[1])
		}
	}
}

func TestShapeGivesUpWhereUncertain(t *testing.T) {
	for _, sql := range []string{
		`SELECT E'\'' , bsn FROM c`,
		`SELECT $$ ' $$, bsn FROM c`,
		`SELECT $tag$x$tag$`,
		`SELECT U&'d\0061t' UESCAPE '!'`,
		`SELECT U&"d!0061t" UESCAPE '!' FROM t`,
		`SELECT B'101', X'1F'`,
		`SELECT N'x'`,
		`SELECT 123abc`,
		`SELECT 0x1F`,
		`SELECT 1_000`,
		`SELECT .5`,
		`SELECT 1.2.3`,
		`SELECT 1e`,
		`SELECT 'unterminated`,
		`SELECT "unterminated`,
		`SELECT 1 /* unterminated`,
		"SELECT 'a'\n-- between\n'b'",
		"SELECT '\xff'",
	} {
		if key, ok := shapeOf(t, sql); ok {
			t.Errorf("%q: shape %q, want none", sql, key)
		}
	}
}

// FuzzShapeAgreesWithPostgreSQL holds literalSpans to PostgreSQL's own
// lexer: whenever it gives spans, they are exactly the string and number
// constants pg_query's scanner sees, so blanking them cannot hide code.
func FuzzShapeAgreesWithPostgreSQL(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 42",
		"SELECT 'a''b', \"q\"\"x\", 1.5e-3 -- c\n/* d /* e */ */ FROM t",
		"SELECT e'x', E'\\''",
		"SELECT $1, $$x$$, 1e5, 2.",
		"SELECT 'a'\n'b'",
		"SELECT 1::text, -2, +3.0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		spans, ok := literalSpans([]byte(sql), nil)
		if !ok {
			return
		}
		scan, err := pg_query.Scan(sql)
		if err != nil {
			return // PostgreSQL's lexer refuses it; so will the analysis
		}
		var want []span
		for _, tok := range scan.GetTokens() {
			switch tok.GetToken() {
			case pg_query.Token_SCONST, pg_query.Token_ICONST, pg_query.Token_FCONST:
				want = append(want, span{int(tok.GetStart()), int(tok.GetEnd())})
			case pg_query.Token_XCONST, pg_query.Token_BCONST, pg_query.Token_USCONST, pg_query.Token_UIDENT:
				t.Fatalf("%q: gave spans although it holds a %v", sql, tok.GetToken())
			}
		}
		if len(spans) != len(want) {
			t.Fatalf("%q: spans %v, PostgreSQL's constants %v", sql, spans, want)
		}
		for i := range spans {
			if spans[i] != want[i] {
				t.Fatalf("%q: span %v, PostgreSQL's constant %v", sql, spans[i], want[i])
			}
		}
	})
}

func TestShapeCacheSharesOnlyValueFreeVerdicts(t *testing.T) {
	s := benchSessionT(t)
	q := func(sql string) proxy.Verdict {
		return s.ClientMessage(proxy.NewClientMessage('Q', append([]byte(sql), 0), 0))
	}
	if v := q("SELECT email FROM crm.customers WHERE id = 1"); v.Action != proxy.Forward {
		t.Fatalf("allowed query refused: %v", v.Error)
	}
	if got := s.table.get(s.shape([]byte("SELECT email FROM crm.customers WHERE id = 99"))); got == nil {
		t.Fatal("an allowed, effect-free verdict was not stored by shape")
	}
	// Effects carry values: each SET must take its own value.
	for _, p := range []string{"payroll", "order_fulfilment", "newsletter"} {
		q("SET pgguard.purpose = '" + p + "'")
		if got := s.state.purpose; got != p {
			t.Fatalf("after SET to %q the purpose is %q", p, got)
		}
		s.Confirmed(stateRow(p, "public", "sales_app"), nil, 'I') // what the server then reports
	}
	for _, path := range []string{"crm", "hr"} {
		if v := q("SELECT set_config('search_path', '" + path + "', false)"); !v.Barrier {
			t.Fatalf("set_config of search_path is not a barrier")
		}
		if got := joinPath(s.state.path); got != path {
			t.Fatalf("after set_config to %q the path is %q", path, got)
		}
		s.Confirmed(stateRow("order_fulfilment", path, "sales_app"), nil, 'I')
	}
	// Denials are not shared by shape: each text is analysed.
	q("SET pgguard.purpose = 'order_fulfilment'")
	for _, sql := range []string{"SELECT email FROM crm.customers WHERE bsn = '1'", "SELECT email FROM crm.customers WHERE bsn = '2'"} {
		if v := q(sql); v.Action != proxy.Deny {
			t.Fatalf("%s: allowed", sql)
		}
	}
}
