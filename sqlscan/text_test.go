package sqlscan

import (
	"slices"
	"strings"
	"testing"
)

func TestNormalizeLeavesNoLiteral(t *testing.T) {
	secrets := []string{"jan@example.com", "4242", "3.1415", "dollarsecret", "tagsecret",
		"escsecret", "0101", "ffee", "unisecret", "arrsecret", "1 day 7", "2020-01-31",
		"hunter2", "payload9", "commentsecret", "linesecret", "defsecret", "purposesecret"}
	for _, sql := range []string{
		`SELECT 'jan@example.com', 4242, 3.1415, -4242, 1e10, $$dollarsecret$$, $t$tagsecret$t$`,
		`SELECT E'escsecret\'', B'0101', X'ffee', U&'unisecret\0041'`,
		`SELECT ARRAY['arrsecret'], '{4242}'::int[], interval '1 day 7', date '2020-01-31'`,
		`SET pgguard.purpose = 'purposesecret'`,
		`CREATE USER bob PASSWORD 'hunter2'`,
		`NOTIFY ch, 'payload9'`,
		`SELECT 1 /* commentsecret */ -- linesecret`,
		`CREATE TABLE t (a text DEFAULT 'defsecret')`,
		`COPY (SELECT 'jan@example.com') TO STDOUT`,
		`DO $$ BEGIN RAISE NOTICE 'dollarsecret'; END $$`,
		`PREPARE p AS SELECT 'jan@example.com' WHERE a = $1`,
		`SELECT * FROM t LIMIT 4242`,
	} {
		got := Normalize(sql)
		for _, s := range secrets {
			if strings.Contains(got, s) {
				t.Errorf("Normalize(%q) = %q keeps %q", sql, got, s)
			}
		}
	}
}

func TestNormalizeShapes(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT email FROM crm.customers WHERE id = 42": "SELECT email FROM crm.customers WHERE id = $1",
		"SELECT $1, 'x'":                                   "SELECT $1, $2",
		"SELECT 1 /*purpose='payroll'*/":                   "SELECT $1",
		"SELECT FROM WHERE 'jan@example.com'":              unparsablePlaceholder,
		"SELECT 'jan@example.com'\x00":                     unparsablePlaceholder,
		"INSERT INTO t (a, b) VALUES ('x', 2) RETURNING a": "INSERT INTO t (a, b) VALUES ($1, $2) RETURNING a",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a := Fingerprint("SELECT c.email AS e FROM crm.customers c WHERE c.id = 1")
	b := Fingerprint("select c.email as x from crm.customers c where c.id = 99 /* hi */")
	if a == "" || a != b {
		t.Errorf("literals and aliases should not change the fingerprint: %q vs %q", a, b)
	}
	if c := Fingerprint("SELECT c.bsn FROM crm.customers c WHERE c.id = 1"); c == a {
		t.Errorf("a different column must change the fingerprint")
	}
	if Fingerprint("SELECT FROM WHERE") != "" {
		t.Errorf("unparsable text has no fingerprint")
	}
}

func TestCheckLexical(t *testing.T) {
	cases := []struct {
		sql, scs, enc string
		ok            bool
	}{
		{"SELECT 'x'", "on", "UTF8", true},
		{"SELECT 'é'", "on", "UTF8", true},
		{"SELECT 'é'", "on", "utf-8", true},
		{"SELECT '\xff'", "on", "UTF8", false},
		{"SELECT 'a\\'", "off", "UTF8", false},
		{"SELECT 'a'", "off", "UTF8", true},
		{"SELECT 'it''s'", "off", "UTF8", true},
		{"SELECT E'a'", "off", "UTF8", true},
		{"SELECT 'a' -- \\", "off", "UTF8", false},
		{"SELECT $$a\\$$", "off", "UTF8", false},
		{"SET standard_conforming_strings = on", "off", "UTF8", true},
		{"SELECT 'a'", "", "UTF8", true},
		{"SELECT 'a\\'", "", "UTF8", false},
		{"SELECT 'x'", "on", "LATIN1", true},
		{"SELECT 'x'", "on", "ISO_8859_15", true},
		{"SELECT 'x'", "on", "WIN1252", true},
		{"SELECT 'x'", "on", "EUC_JP", true},
		{"SELECT 'x'", "on", "SQL_ASCII", true},
		{"SELECT 'x'", "on", "KOI8R", true},
		{"SELECT '\xe9'", "on", "LATIN1", false},
		{"SELECT 'é'", "on", "WIN1252", false},
		{"SELECT 'x'", "on", "SJIS", false},
		{"SELECT 'x'", "on", "BIG5", false},
		{"SELECT 'x'", "on", "GBK", false},
		{"SELECT 'x'", "on", "UHC", false},
		{"SELECT 'x'", "on", "GB18030", false},
		{"SELECT 'x'", "on", "JOHAB", false},
		{"SELECT 'x'", "on", "KLINGON", false},
		{"SELECT 'x'", "on", "", false},
		{"SELECT 'x'\x00", "on", "UTF8", false},
	}
	for _, c := range cases {
		d := CheckLexical(c.sql, c.scs, c.enc)
		if (d == nil) != c.ok {
			t.Errorf("CheckLexical(%q, %q, %q) = %v, want ok=%v", c.sql, c.scs, c.enc, d, c.ok)
		}
		if d != nil && (d.Code != CodeLexical || strings.Contains(d.Reason, "SELECT")) {
			t.Errorf("CheckLexical(%q, %q, %q) = %+v: wrong code or quotes the text", c.sql, c.scs, c.enc, d)
		}
	}
}

func TestParseSearchPath(t *testing.T) {
	for in, want := range map[string][]string{
		`"$user", public`:          {"$user", "public"},
		`crm,HR , "My Schema"`:     {"crm", "hr", "My Schema"},
		`"a""b"`:                   {`a"b`},
		``:                         {},
		`  `:                       {},
		`"unterminated`:            nil,
		`crm junk`:                 nil,
		`"crm, hr"`:                {"crm, hr"},
		`pg_catalog, crm, pg_temp`: {"pg_catalog", "crm", "pg_temp"},
	} {
		got := ParseSearchPath(in)
		if !slices.Equal(got, want) || (want == nil) != (got == nil) {
			t.Errorf("ParseSearchPath(%q) = %#v, want %#v", in, got, want)
		}
	}
}

func TestCommentPurpose(t *testing.T) {
	cases := []struct {
		comment    string
		name       string
		found, bad bool
	}{
		{"/*purpose='payroll'*/", "payroll", true, false},
		{"/* purpose='payroll' */", "payroll", true, false},
		{"/*action='a',purpose='p%20q',route='%2Fx'*/", "p q", true, false},
		{"/*purpose='it\\'s'*/", "it's", true, false},
		{"/*purpose='a+b'*/", "a+b", true, false},
		{"/*purpose='%zz'*/", "", false, true},
		{"/*purpose='a',purpose='b'*/", "", false, true},
		{"/*purpose=''*/", "", false, false},
		{"/*purpose=payroll*/", "", false, false},
		{"/* just a comment */", "", false, false},
		{"/*db_driver='pgx',traceparent='00-abc-def-01'*/", "", false, false},
	}
	for _, c := range cases {
		name, found, bad := commentPurpose(c.comment)
		if name != c.name || found != c.found || bad != c.bad {
			t.Errorf("commentPurpose(%q) = %q,%v,%v want %q,%v,%v", c.comment, name, found, bad, c.name, c.found, c.bad)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{
		"crm": "crm", "$user": `"$user"`, "My": `"My"`, "select": `"select"`, "a b": `"a b"`,
		"_x1": "_x1", "1x": `"1x"`, `a"b`: `"a""b"`, "name": "name", "": `""`,
	} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %q, want %q", in, got, want)
		}
	}
}
