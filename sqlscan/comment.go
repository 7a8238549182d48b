package sqlscan

import (
	"net/url"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// purposeDecl is the purpose a statement's comments declare.
type purposeDecl struct {
	name   string
	denial *Denial
}

// purposesBySpan finds sqlcommenter comments (/*key='value',...*/) and
// gives each statement the purpose declared inside its span. Comments are
// found with PostgreSQL's own scanner, so text that only looks like a
// comment inside a string literal or a quoted name does not count. A
// comment after the last statement belongs to it (sqlcommenter appends
// comments, sometimes after the semicolon).
func purposesBySpan(sql string, spans []span) ([]purposeDecl, *Denial) {
	out := make([]purposeDecl, len(spans))
	if len(spans) == 0 || !strings.Contains(sql, "/*") {
		return out, nil
	}
	res, err := pg.Scan(sql)
	if err != nil {
		return out, &Denial{Code: CodeUnparsable, Reason: "the statement's comments cannot be read"}
	}
	for _, tok := range res.GetTokens() {
		if tok.GetToken() != pg.Token_C_COMMENT {
			continue
		}
		start, end := clamp(int(tok.GetStart()), len(sql)), clamp(int(tok.GetEnd()), len(sql))
		i := spanIndex(spans, start)
		name, found, bad := commentPurpose(sql[start:end])
		d := &out[i]
		switch {
		case bad:
			d.denial = &Denial{Code: CodePurpose, Reason: "a purpose comment is malformed"}
			d.name = ""
		case !found:
		case d.name != "" && d.name != name:
			d.denial = &Denial{Code: CodePurpose, Reason: "the statement declares more than one purpose"}
			d.name = ""
		case d.denial == nil:
			d.name = name
		}
	}
	return out, nil
}

// spanIndex finds the statement whose span holds pos; past the last span,
// the last statement.
func spanIndex(spans []span, pos int) int {
	for i, s := range spans {
		if pos >= s.start && pos < s.end {
			return i
		}
	}
	for i := len(spans) - 1; i >= 0; i-- {
		if pos >= spans[i].start {
			return i
		}
	}
	return 0
}

// commentPurpose reads a C-style comment in sqlcommenter form and returns
// its purpose value. found is false for comments that are not in that form
// or carry no purpose; bad is true for a purpose that cannot be decoded or
// is given twice with different values.
func commentPurpose(comment string) (name string, found, bad bool) {
	body := strings.TrimSuffix(strings.TrimPrefix(comment, "/*"), "*/")
	pairs, ok := parseSQLCommenter(strings.TrimSpace(body))
	if !ok {
		return "", false, false
	}
	for _, p := range pairs {
		key, err := url.PathUnescape(p[0])
		if err != nil || key != "purpose" {
			continue
		}
		v, err := url.PathUnescape(p[1])
		if err != nil {
			return "", false, true
		}
		if found && v != name {
			return "", false, true
		}
		name, found = v, true
	}
	if found && name == "" {
		return "", false, false
	}
	return name, found, false
}

// parseSQLCommenter splits key='value',key='value' into pairs, undoing the
// \' escape of the value's quotes. ok is false unless the whole text is in
// that form.
func parseSQLCommenter(s string) (pairs [][2]string, ok bool) {
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], "'\", \t\n") {
			return nil, false
		}
		key := s[:eq]
		s = s[eq+1:]
		if s == "" || s[0] != '\'' {
			return nil, false
		}
		var v strings.Builder
		i := 1
		for ; i < len(s); i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				v.WriteByte(s[i])
				continue
			}
			if s[i] == '\'' {
				break
			}
			v.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, false
		}
		pairs = append(pairs, [2]string{key, v.String()})
		s = strings.TrimSpace(s[i+1:])
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
	return pairs, len(pairs) > 0
}
