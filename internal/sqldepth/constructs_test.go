package sqldepth

import "strings"

// construct builds a statement nested n levels deep in one way.
type construct struct {
	name string
	make func(n int) string
}

func wrap(prefix, open, inner, close string, n int) string {
	return prefix + strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// deepConstructs are the ways a statement can nest that the estimate must
// bound: every one crashed a parser walker at some depth.
var deepConstructs = []construct{
	{"plus chain", func(n int) string { return "SELECT 1" + strings.Repeat("+1", n) }},
	{"concat chain", func(n int) string { return "SELECT 'a'" + strings.Repeat("||'a'", n) }},
	{"parentheses", func(n int) string { return wrap("SELECT ", "(", "1", ")", n) }},
	{"parenthesised sums", func(n int) string { return wrap("SELECT ", "(1+", "1", ")", n) }},
	{"function calls", func(n int) string { return wrap("SELECT ", "abs(", "1", ")", n) }},
	{"arrays", func(n int) string { return wrap("SELECT ", "ARRAY[", "1", "]", n) }},
	{"row constructors", func(n int) string { return wrap("SELECT ", "ROW(", "1", ")", n) }},
	{"NOT chain", func(n int) string { return "SELECT " + strings.Repeat("NOT ", n) + "true" }},
	{"unary minus", func(n int) string { return "SELECT " + strings.Repeat("- ", n) + "1" }},
	{"casts", func(n int) string { return "SELECT 1" + strings.Repeat("::int", n) }},
	{"collations", func(n int) string { return "SELECT 'a'" + strings.Repeat(` COLLATE "C"`, n) }},
	{"json arrows", func(n int) string { return "SELECT '{}'::jsonb" + strings.Repeat("->'a'", n) }},
	{"union chain", func(n int) string { return "SELECT 1" + strings.Repeat(" UNION SELECT 1", n) }},
	{"union chain with ANDs", func(n int) string {
		return "SELECT 1" + strings.Repeat(" UNION SELECT 1 WHERE true AND true", n)
	}},
	{"join chain", func(n int) string { return "SELECT 1 FROM t" + strings.Repeat(" JOIN t ON true", n) }},
	{"join chain with commas", func(n int) string { return "SELECT 1 FROM t" + strings.Repeat(" JOIN t ON true, t", n) }},
	{"nested CASE", func(n int) string { return wrap("SELECT ", "CASE WHEN true THEN ", "1", " END", n) }},
	{"CASE in ELSE", func(n int) string { return wrap("SELECT ", "CASE WHEN a AND b THEN 1 ELSE ", "1", " END", n) }},
	{"scalar subqueries", func(n int) string { return wrap("SELECT ", "(SELECT ", "1", ")", n) }},
	{"IN subqueries", func(n int) string { return wrap("SELECT 1 WHERE ", "1 IN (SELECT 1 WHERE ", "true", ")", n) }},
	{"EXISTS", func(n int) string { return wrap("SELECT 1 WHERE ", "EXISTS (SELECT 1 WHERE ", "true", ")", n) }},
	{"CTEs in subqueries", func(n int) string { return wrap("SELECT ", "(WITH x AS (SELECT 1) SELECT ", "1", ")", n) }},
	{"IS NOT NULL chain", func(n int) string { return "SELECT (1" + strings.Repeat(" IS NOT NULL", n) + ")" }},
	{"alternating AND OR in parentheses", func(n int) string { return wrap("SELECT 1 WHERE ", "(true AND (true OR ", "true", "))", n) }},
	{"comparison chain", func(n int) string { return "SELECT 1" + strings.Repeat(" < 1", n) }},
	{"subscripts", func(n int) string { return wrap("SELECT ", "(ARRAY[1])[", "1", "]", n) }},
	{"operator syntax", func(n int) string { return "SELECT 1" + strings.Repeat(" OPERATOR(pg_catalog.+) 1", n) }},
	{"AT TIME ZONE", func(n int) string { return "SELECT now()" + strings.Repeat(" AT TIME ZONE 'UTC'", n) }},
	{"plus chain after many statements", func(n int) string {
		return strings.Repeat("SELECT 1;", 10) + "SELECT 1" + strings.Repeat("+1", n)
	}},
	{"plus chain with END as a label", func(n int) string {
		return "SELECT 1 AS \"end\", (" + strings.Repeat("+1", 0) + "1" + strings.Repeat("+1", n) + ")"
	}},
}

// flatStatements are large statements of the kinds applications send; they
// must never be refused as deep.
var flatStatements = []construct{
	{"IN list", func(n int) string {
		return "SELECT * FROM t WHERE id IN (" + strings.Repeat("1,", n) + "1)"
	}},
	{"VALUES rows", func(n int) string {
		return "INSERT INTO t VALUES " + strings.Repeat("(1, 'a', 2+3), ", n) + "(1, 'a', 2)"
	}},
	{"wide select list", func(n int) string {
		return "SELECT " + strings.Repeat("a + b AS c, ", n) + "1 FROM t"
	}},
	{"AND chain", func(n int) string { return "SELECT 1 FROM t WHERE " + strings.Repeat("a = 1 AND ", n) + "true" }},
	{"OR chain", func(n int) string { return "SELECT 1 FROM t WHERE " + strings.Repeat("a = 1 OR ", n) + "true" }},
	{"CASE with many WHENs", func(n int) string {
		return "SELECT CASE " + strings.Repeat("WHEN a = 1 THEN 2 ", n) + "END FROM t"
	}},
	{"many statements", func(n int) string { return strings.Repeat("SELECT 1 + 2 + 3;", n) }},
	{"long string", func(n int) string { return "SELECT '" + strings.Repeat("((((", n) + "'" }},
	{"long comment", func(n int) string { return "SELECT 1 /* " + strings.Repeat("+1", n) + " */" }},
}
