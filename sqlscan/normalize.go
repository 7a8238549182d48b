package sqlscan

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgguard/pgguard/catalog"
)

// unparsablePlaceholder stands in for text that cannot be normalized: the
// raw text might hold personal data, so it is never returned.
const unparsablePlaceholder = "/* pgguard: unparsable statement */"

// Normalize returns sql with every literal replaced by a $n parameter and
// every comment removed, for logs and alerts: no value from the text
// survives. It uses pg_query's normalization, then PostgreSQL's scanner
// to replace any constant that normalization kept (utility statements
// keep some) and to drop comments, which may hold values too. Text that
// does not parse gives a fixed placeholder.
func Normalize(sql string) string {
	if textDenial(sql, Limits{}) != nil {
		return unparsablePlaceholder
	}
	norm, err := pg.Normalize(sql)
	if err != nil {
		return unparsablePlaceholder
	}
	out, ok := scrubTokens(norm)
	if !ok {
		return unparsablePlaceholder
	}
	return out
}

// scrubTokens replaces constant tokens by $n (numbered after the highest
// parameter already present) and comments by a space.
func scrubTokens(s string) (string, bool) {
	res, err := pg.Scan(s)
	if err != nil {
		return "", false
	}
	next := 1
	for _, t := range res.GetTokens() {
		if t.GetToken() == pg.Token_PARAM {
			if n, err := strconv.Atoi(strings.TrimPrefix(s[t.GetStart():t.GetEnd()], "$")); err == nil && n >= next {
				next = n + 1
			}
		}
	}
	var b strings.Builder
	last := 0
	for _, t := range res.GetTokens() {
		start, end := int(t.GetStart()), int(t.GetEnd())
		if start < last || end > len(s) {
			return "", false
		}
		var repl string
		switch t.GetToken() {
		case pg.Token_SCONST, pg.Token_USCONST, pg.Token_ICONST, pg.Token_FCONST,
			pg.Token_BCONST, pg.Token_XCONST:
			repl = "$" + strconv.Itoa(next)
			next++
		case pg.Token_SQL_COMMENT, pg.Token_C_COMMENT:
			repl = " "
		default:
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(repl)
		last = end
	}
	b.WriteString(s[last:])
	return strings.TrimSpace(b.String()), true
}

// Fingerprint returns pg_query's fingerprint of sql as hex: the same for
// statements that differ only in literal values, aliases, comments and
// white space. It identifies a statement shape for metrics and
// de-duplication; it must never key a verdict cache, since statements that
// differ in ways it ignores may touch different columns. Text that does
// not parse gives "".
func Fingerprint(sql string) string {
	if textDenial(sql, Limits{}) != nil {
		return ""
	}
	fp, err := pg.Fingerprint(sql)
	if err != nil {
		return ""
	}
	return fp
}

// ParseSearchPath parses a search_path value as SET, SHOW or
// current_setting present it (`"$user", public`, `crm,"My Schema"`):
// unquoted names fold to lower case, quoted names keep theirs. It returns
// nil when the value is malformed, which Context reads as an unknown path
// (every candidate counts), and an empty non-nil list for an empty path.
func ParseSearchPath(value string) []string {
	names, ok := catalog.ParseSearchPath(value)
	if !ok {
		return nil
	}
	if names == nil {
		names = []string{}
	}
	return names
}
