package sqlscan

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// lexicalTraps are texts where a token count could go wrong: quotes,
// escapes, dollar quotes and comments that hide, or seem to hide, tokens.
var lexicalTraps = []string{
	`SELECT 'a''b' OR 1 = 1 OR 'c'`,
	`SELECT E'\'' OR 1 = 1 OR 2 = 2 OR 'x'`,
	`SELECT e'\\' OR 1 = 1 OR ' '`,
	`SELECT 'a\' OR 1 = 1 OR 2 = 2 --'`,
	`SELECT xE'\' OR 1 = 1 OR 2 = 2'`,
	`SELECT U&'d\0061t' OR 1 = 1, B'101', X'ff', N'n'`,
	`SELECT $$a$$ OR $q$ $$ OR 1 $q$ OR $1 OR a$$b OR $x`,
	`SELECT "a""b" OR "c" . "d"`,
	`SELECT 1 /* a /* nested */ OR 1 */ OR 2 -- OR 3` + "\n OR 4",
	`SELECT 1.5e10 + .5 - 5. * 1e-3 :: int [1:2] >= <> !~~* @@ ||/ 3`,
	`SELECT 1--2` + "\n+3/*c*/+4",
	`SELECT 'unterminated OR 1 = 1`,
	`SELECT $a$ unterminated OR 1 = 1`,
	"SELECT 'multi'\n'part' OR 1 = 1",
	`SELECT 0$00 OR 1abc OR $x OR 0x1F OR 1_000 OR 'a' OR 0'0'`,
	`SELECT émoji, "ü" FROM ñ WHERE x = 'ß' OR y = 1`,
}

// TestCountTokensNeverUndercounts holds the count to PostgreSQL's own
// scanner: were it lower, a text could carry more tokens past the limit
// than the limit says.
func TestCountTokensNeverUndercounts(t *testing.T) {
	texts := append([]string{}, lexicalTraps...)
	files, _ := filepath.Glob("testdata/cases/*.txt")
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, strings.Split(string(b), "-- name:")...)
	}
	for _, sql := range texts {
		checkTokenCount(t, sql)
	}
}

func checkTokenCount(t *testing.T, sql string) {
	t.Helper()
	res, err := pg.Scan(sql)
	if err != nil {
		return // the parser refuses it anyway, at once
	}
	want := 0
	for _, tok := range res.GetTokens() {
		if k := tok.GetToken(); k != pg.Token_SQL_COMMENT && k != pg.Token_C_COMMENT {
			want++ // the scanner reports comments, which the parser skips
		}
	}
	if got := countTokens(sql, len(sql)+1); got < want {
		t.Errorf("countTokens = %d, PostgreSQL's scanner finds %d, in %q", got, want, sql)
	}
}

// FuzzCountTokens: no text counts fewer tokens than the scanner finds.
func FuzzCountTokens(f *testing.F) {
	for _, s := range lexicalTraps {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		// NUL and invalid UTF-8 are refused before counting.
		if strings.IndexByte(sql, 0) < 0 && utf8.ValidString(sql) {
			checkTokenCount(t, sql)
		}
	})
}

func orChain(size int) string {
	head := "SELECT id FROM crm.customers WHERE "
	return head + strings.Repeat("id = 1 OR ", (size-len(head))/10) + "true"
}

// TestHugeStatementIsRefusedCheaply: an OR chain of several megabytes
// used to reach the parser, which took seconds and hundreds of megabytes
// per megabyte of text before the node budget refused it. It must be
// refused before the parser, allocating a small part of its own size.
func TestHugeStatementIsRefusedCheaply(t *testing.T) {
	complete, _ := fixtures(t)
	for _, tc := range []struct {
		name string
		sql  string
		lim  Limits
	}{
		{"over the default byte limit", orChain(12 << 20), Limits{}},
		{"over the token limit", orChain(3 << 20), Limits{MaxBytes: 64 << 20}},
		{"over a lower token limit", orChain(64 << 10), Limits{MaxTokens: 10_000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := defaultContext()
			ctx.Limits = tc.lim
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			d := Analyze(tc.sql, complete, ctx).Denial()
			runtime.ReadMemStats(&after)
			if d == nil || d.Code != CodeTooLarge {
				t.Fatalf("denial %v, want %s", d, CodeTooLarge)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes of text: refused (%s), %d bytes allocated", len(tc.sql), d.Reason, alloc)
			if alloc > uint64(len(tc.sql))/10 {
				t.Fatalf("refusing %d bytes of text allocated %d bytes", len(tc.sql), alloc)
			}
		})
	}
}

// TestLargeFlatStatementsPass: the statements applications send in bulk
// stay within the default limits.
func TestLargeFlatStatementsPass(t *testing.T) {
	for name, sql := range map[string]string{
		"100,000-value IN list": "SELECT id FROM crm.customers WHERE id IN (" + strings.Repeat("123456,", 100_000) + "1)",
		"1 MiB of VALUES":       "INSERT INTO crm.orders (customer_id, total_amount, status) VALUES " + strings.Repeat("(12345, 67.89, 'new'), ", 1<<20/23) + "(1, 2, 'x')",
		"4 MB string literal":   "SELECT '" + strings.Repeat("x", 4_000_000) + "'",
	} {
		if d := CheckSize(sql, Limits{}); d != nil {
			t.Errorf("%s (%d bytes): %v", name, len(sql), d)
		}
	}
}
