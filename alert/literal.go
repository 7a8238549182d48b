package alert

import (
	"errors"
	"fmt"
)

// errLiteral is wrapped by statementLiteral's errors so the dispatcher can
// tell "redact the statement" apart from other validation failures.
var errLiteral = errors.New("literal left in normalized statement")

// statementLiteral reports the first literal value left in a statement that
// should have been normalized, or nil.
//
// It is a heuristic and a last-line safety net, not a SQL parser: a small
// lexer loop that knows just enough PostgreSQL lexical structure to skip what
// cannot hold a value (identifiers, "quoted identifiers", comments, $n
// placeholders) and to flag what can ('strings' with any prefix such as E'..'
// or U&'..', $tag$ dollar-quoted strings$tag$, and numbers). It errs towards
// flagging: a normalizer that leaves a harmless constant (varchar(255)) gets
// its statement redacted, which costs visibility but never leaks data.
// Comments are skipped because the sqlcommenter purpose tag lives there.
// The error gives a byte offset only, never the text it found.
func statementLiteral(s string) error {
	for i := 0; i < len(s); {
		next, what := lexStep(s, i)
		if what != "" {
			return fmt.Errorf("%w: %s at byte %d", errLiteral, what, i)
		}
		i = next
	}
	return nil
}

// lexStep looks at the token starting at s[i] and returns where the next one
// starts, or, if the token is a literal, a description of it.
func lexStep(s string, i int) (next int, literal string) {
	c := s[i]
	switch {
	case c == '\'':
		return i, "quoted string literal"
	case c == '"':
		return skipQuotedIdent(s, i), ""
	case c == '-' && peek(s, i+1) == '-':
		return skipLineComment(s, i), ""
	case c == '/' && peek(s, i+1) == '*':
		return skipBlockComment(s, i), ""
	case c == '$':
		return lexDollar(s, i)
	case isIdentStart(c):
		return skipIdent(s, i), ""
	case isDigit(c), c == '.' && isDigit(peek(s, i+1)):
		return i, "numeric literal"
	}
	return i + 1, ""
}

// lexDollar handles a token starting with '$': a $n placeholder (fine), a
// $tag$ or $$ dollar-quoted string (a literal), or a lone '$'.
func lexDollar(s string, i int) (int, string) {
	j := i + 1
	if isDigit(peek(s, j)) {
		for isDigit(peek(s, j)) {
			j++
		}
		return j, ""
	}
	if isIdentStart(peek(s, j)) {
		for isIdentStart(peek(s, j)) || isDigit(peek(s, j)) {
			j++
		}
	}
	if peek(s, j) == '$' {
		return i, "dollar-quoted string literal"
	}
	return i + 1, ""
}

// skipQuotedIdent skips "an identifier", where "" stands for one quote.
func skipQuotedIdent(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] != '"' {
			continue
		}
		if peek(s, j+1) != '"' {
			return j + 1
		}
		j++
	}
	return len(s)
}

// skipLineComment skips a -- comment up to and including the newline.
func skipLineComment(s string, i int) int {
	for j := i + 2; j < len(s); j++ {
		if s[j] == '\n' {
			return j + 1
		}
	}
	return len(s)
}

// skipBlockComment skips a /* comment */, which nests in PostgreSQL.
func skipBlockComment(s string, i int) int {
	depth := 0
	for j := i; j < len(s); j++ {
		switch {
		case s[j] == '/' && peek(s, j+1) == '*':
			depth++
			j++
		case s[j] == '*' && peek(s, j+1) == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(s)
}

// skipIdent skips an unquoted identifier or keyword; digits and '$' inside
// one (col1, a$b) are part of the name, not values.
func skipIdent(s string, i int) int {
	j := i + 1
	for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j]) || s[j] == '$') {
		j++
	}
	return j
}

// peek returns s[i], or 0 past the end, which keeps the lexer free of bounds
// checks at every look-ahead.
func peek(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isIdentStart follows PostgreSQL: letters, '_' and any non-ASCII byte.
func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}
