package sqlscan

import "fmt"

// Limits bound the work one input may cause before the parser sees it.
// PostgreSQL's parser, and pg_query's copy of its tree into Go, take time
// and memory in proportion to the tokens of the text (about 4 µs and 400
// bytes per token for a chain of ORs), all of it before the analysis can
// count a single node: so the text is measured first, in bytes and then in
// tokens, by a scan in Go that allocates nothing and stops at the limit.
type Limits struct {
	// MaxBytes is the longest text analysed; 0 means DefaultMaxBytes.
	MaxBytes int
	// MaxTokens is the most tokens a text may have; 0 means
	// DefaultMaxTokens.
	MaxTokens int
}

// The default limits. 4 MiB lets long literals (documents, encoded
// images) through, which cost little to analyse; 500,000 tokens is a
// bulk INSERT of about 1.4 MiB, an IN list of about 200,000 values, and
// takes at most about two seconds and 200 MB to analyse.
const (
	DefaultMaxBytes  = 4 << 20
	DefaultMaxTokens = 500_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = DefaultMaxTokens
	}
	return l
}

// CheckSize refuses sql when it is longer or has more tokens than l
// allows; it costs a pass over the text at most and allocates nothing
// unless it refuses.
func CheckSize(sql string, l Limits) *Denial {
	l = l.withDefaults()
	if len(sql) > l.MaxBytes {
		return &Denial{Code: CodeTooLarge, Reason: fmt.Sprintf("the statement is %d bytes long, more than the limit of %d", len(sql), l.MaxBytes)}
	}
	if len(sql) > l.MaxTokens && countTokens(sql, l.MaxTokens) > l.MaxTokens {
		return &Denial{Code: CodeTooLarge, Reason: fmt.Sprintf("the statement has more than %d tokens", l.MaxTokens)}
	}
	return nil
}

// countTokens counts sql's tokens much as PostgreSQL's scanner (with
// standard_conforming_strings on, as pg_query reads) cuts them, and stops
// once the count passes limit. It never counts fewer than the scanner
// does for the same text: a name, keyword or number is one token (a
// number with a point or exponent counts more), every operator or
// punctuation byte is one, and a string, quoted name or comment is
// skipped whole only where the scanner skips it too.
func countTokens(sql string, limit int) int {
	n := 0
	for i := 0; i < len(sql) && n <= limit; {
		c := sql[i]
		switch {
		case isBlank(c):
			i++
			continue
		case c == '-' && byteAt(sql, i+1) == '-':
			i = lineEnd(sql, i)
			continue
		case c == '/' && byteAt(sql, i+1) == '*':
			i = commentEnd(sql, i)
			continue
		case c == '\'':
			i = quoteEnd(sql, i, '\'', false)
		case c == '"':
			i = quoteEnd(sql, i, '"', false)
		case c == '$':
			i = dollarEnd(sql, i)
		case isWordByte(c):
			i = wordEnd(sql, i)
		default:
			i++
		}
		n++
	}
	return n
}

// wordEnd ends a name, keyword or number at i: a number at its digits (a
// point, exponent or junk after them counts apart), a name at the first
// byte that cannot continue it. A name of one letter E directly before a
// quote starts an escape string, which it skips too. (B, X, N and U&
// strings end as standard strings do.)
func wordEnd(sql string, i int) int {
	if isDigit(sql[i]) {
		return digitsEnd(sql, i)
	}
	j := i
	for j < len(sql) && isWordByte(sql[j]) {
		j++
	}
	if j == i+1 && (sql[i] == 'E' || sql[i] == 'e') && byteAt(sql, j) == '\'' {
		return quoteEnd(sql, j, '\'', true)
	}
	return j
}

// quoteEnd returns the end of the quoted string or name opening at i; a
// doubled quote stays inside, and so does a quote after a backslash when
// backslash escapes. An unterminated quote runs to the end.
func quoteEnd(sql string, i int, q byte, backslash bool) int {
	for j := i + 1; j < len(sql); j++ {
		switch sql[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if byteAt(sql, j+1) != q {
				return j + 1
			}
			j++
		}
	}
	return len(sql)
}

// dollarEnd ends what a $ opens at the start of a token: a dollar-quoted
// string, a parameter ($1), or else the $ alone, as the scanner cuts $x.
func dollarEnd(sql string, i int) int {
	switch {
	case dollarTagEnd(sql, i) > 0:
		return dollarQuoteEnd(sql, i)
	case isDigit(byteAt(sql, i+1)):
		return digitsEnd(sql, i+1)
	}
	return i + 1
}

func digitsEnd(sql string, i int) int {
	for i < len(sql) && isDigit(sql[i]) {
		i++
	}
	return i
}

// dollarTagEnd returns the end of a dollar-quote tag ($$ or $tag$) opening
// at i, or 0 when none opens there.
func dollarTagEnd(sql string, i int) int {
	j := i + 1
	if isDigit(byteAt(sql, j)) {
		return 0
	}
	for j < len(sql) && isWordByte(sql[j]) && sql[j] != '$' {
		j++
	}
	if byteAt(sql, j) != '$' {
		return 0
	}
	return j + 1
}

// dollarQuoteEnd returns the end of the dollar-quoted string opening at i.
func dollarQuoteEnd(sql string, i int) int {
	end := dollarTagEnd(sql, i)
	tag := sql[i:end]
	for j := end; j+len(tag) <= len(sql); j++ {
		if sql[j] == '$' && sql[j:j+len(tag)] == tag {
			return j + len(tag)
		}
	}
	return len(sql)
}

// commentEnd returns the end of the block comment opening at i; they nest.
func commentEnd(sql string, i int) int {
	depth := 0
	for j := i; j+1 < len(sql); j++ {
		switch {
		case sql[j] == '/' && sql[j+1] == '*':
			depth++
			j++
		case sql[j] == '*' && sql[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(sql)
}

func lineEnd(sql string, i int) int {
	for j := i; j < len(sql); j++ {
		if sql[j] == '\n' || sql[j] == '\r' {
			return j
		}
	}
	return len(sql)
}

func byteAt(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isWordByte: the bytes of PostgreSQL's names (letters, digits, _, $ and
// every byte of a multibyte character) and of its numbers.
func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z')
}
