package alert

import (
	"errors"
	"strings"
	"testing"
)

func TestStatementLiteral(t *testing.T) {
	tests := []struct {
		name string
		stmt string
		want string // "" when clean, else the description expected
	}{
		{"placeholders", "SELECT email FROM crm.customers WHERE id = $1 AND x IN ($2, $13)", ""},
		{"digits inside identifiers", "SELECT col1, t2.x_3 FROM s1.t2", ""},
		{"dollar inside identifier", "SELECT a$1b FROM t", ""},
		{"quoted identifier with digits and quotes", `SELECT "weird 1 'x'", "a""9" FROM "t 2"`, ""},
		{"sqlcommenter purpose tag", "/*purpose='newsletter'*/ SELECT a FROM b WHERE c = $1", ""},
		{"nested block comment", "SELECT a /* outer /* 'inner' 7 */ still */ FROM b", ""},
		{"line comment", "SELECT a -- it's 42\nFROM b", ""},
		{"non-ASCII identifier", "SELECT größe1 FROM maße", ""},
		{"empty", "", ""},
		{"the redaction marker itself", RedactedStatement, ""},
		{"lone dollar", "SELECT a FROM b WHERE c ~ $", ""},
		{"string", "SELECT a FROM t WHERE b = 'x'", "quoted string literal"},
		{"escape string", `SELECT E'\\x41'`, "quoted string literal"},
		{"unicode string", "SELECT U&'d\\0061t'", "quoted string literal"},
		{"unterminated string", "SELECT 'abc", "quoted string literal"},
		{"integer", "SELECT a FROM t LIMIT 10", "numeric literal"},
		{"decimal", "SELECT a * 1.5 FROM t", "numeric literal"},
		{"leading dot decimal", "SELECT .5", "numeric literal"},
		{"negative number", "SELECT a FROM t WHERE b=-3", "numeric literal"},
		{"number after comment", "SELECT /* c */ 7", "numeric literal"},
		{"empty dollar quote", "SELECT $$Bob Smith$$", "dollar-quoted string literal"},
		{"tagged dollar quote", "SELECT $tag$Bob$tag$", "dollar-quoted string literal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := statementLiteral(tc.stmt)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("statementLiteral(%q) = %v, want nil", tc.stmt, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errLiteral) {
				t.Fatalf("statementLiteral(%q) = %v, want %q", tc.stmt, err, tc.want)
			}
		})
	}
}

// The error must locate the literal without repeating it: the literal is
// exactly the personal data the check protects.
func TestStatementLiteralErrorDoesNotQuote(t *testing.T) {
	for _, stmt := range []string{
		"SELECT a FROM t WHERE email = 'bob@example.com'",
		"SELECT a FROM t WHERE ssn = 123456789",
		"SELECT $x$bob@example.com$x$",
	} {
		err := statementLiteral(stmt)
		if err == nil {
			t.Fatalf("statementLiteral(%q) = nil", stmt)
		}
		for _, secret := range []string{"bob", "123456789"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q repeats the literal", err)
			}
		}
	}
}
