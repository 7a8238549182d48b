package catalog

import (
	"errors"
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
)

// stmtText is where a top-level statement stands in the DDL file. The zero
// value stands for a statement with no text of its own, such as an element
// of CREATE SCHEMA.
type stmtText struct {
	src        string
	start, end int   // byte offsets; the start may include leading comments
	version    int32 // of the parse tree, which deparsing must name
}

// textOf locates raw in src, clamping offsets a damaged tree could carry.
func textOf(src string, raw *pg_query.RawStmt, version int32) stmtText {
	start := clamp(int(raw.GetStmtLocation()), 0, len(src))
	end := len(src)
	if n := int(raw.GetStmtLen()); n > 0 {
		end = clamp(start+n, start, len(src))
	}
	return stmtText{src: src, start: start, end: end, version: version}
}

func clamp(v, lo, hi int) int {
	return max(lo, min(v, hi))
}

// line is the 1-based line of the statement's first token.
func (st stmtText) line() int {
	pos := st.start
	if toks, err := st.tokens(); err == nil && len(toks) > 0 {
		pos = st.start + int(toks[0].GetStart())
	}
	return lineAt(st.src, pos)
}

// tokens lexes the statement, leaving out comments; offsets are relative to
// st.start.
func (st stmtText) tokens() ([]*pg_query.ScanToken, error) {
	res, err := pg_query.Scan(st.src[st.start:st.end])
	if err != nil {
		return nil, err
	}
	var out []*pg_query.ScanToken
	for _, t := range res.GetTokens() {
		if k := t.GetToken(); k != pg_query.Token_SQL_COMMENT && k != pg_query.Token_C_COMMENT {
			out = append(out, t)
		}
	}
	return out, nil
}

func lineAt(src string, pos int) int {
	return strings.Count(src[:clamp(pos, 0, len(src))], "\n") + 1
}

// trailer names a clause that may follow a view's query in its statement
// and is not part of the query.
type trailer int

const (
	noTrailer   trailer = iota
	checkOption         // WITH [CASCADED | LOCAL] CHECK OPTION
	withData            // WITH [NO] DATA
)

// definition returns the query text of a view or materialized view as
// written: what follows the first AS outside parentheses after the view's
// name (at byte offset nameAt), without the trailing clause. A statement
// without text of its own gets the query deparsed instead.
func (st stmtText) definition(nameAt int, query *pg_query.Node, tail trailer) (string, error) {
	if st.src == "" {
		return deparseQuery(query, st.version)
	}
	toks, err := st.tokens()
	if err != nil {
		return "", fmt.Errorf("find view query: %w", err)
	}
	body := queryTokens(toks, nameAt-st.start)
	body = trimTrailer(body, tail)
	if len(body) == 0 {
		return "", errors.New("find view query: no AS before it")
	}
	from := st.start + int(body[0].GetStart())
	to := st.start + int(body[len(body)-1].GetEnd())
	return st.src[clamp(from, 0, len(st.src)):clamp(to, from, len(st.src))], nil
}

// queryTokens returns the tokens after the first top-level AS past offset.
func queryTokens(toks []*pg_query.ScanToken, offset int) []*pg_query.ScanToken {
	depth := 0
	for i, t := range toks {
		switch t.GetToken() {
		case pg_query.Token_ASCII_40:
			depth++
		case pg_query.Token_ASCII_41:
			depth--
		case pg_query.Token_AS:
			if depth == 0 && int(t.GetStart()) > offset {
				return toks[i+1:]
			}
		}
	}
	return nil
}

func trimTrailer(body []*pg_query.ScanToken, tail trailer) []*pg_query.ScanToken {
	n := len(body)
	kind := func(i int) pg_query.Token {
		if i < 0 || i >= n {
			return pg_query.Token_NUL
		}
		return body[i].GetToken()
	}
	switch tail {
	case checkOption:
		// The check option is the last top-level WITH; the query's own
		// WITHs (CTEs, WITH ORDINALITY) all come before it.
		depth, last := 0, -1
		for i := range body {
			switch kind(i) {
			case pg_query.Token_ASCII_40:
				depth++
			case pg_query.Token_ASCII_41:
				depth--
			case pg_query.Token_WITH:
				if depth == 0 {
					last = i
				}
			}
		}
		if last >= 0 {
			return body[:last]
		}
	case withData:
		if kind(n-1) == pg_query.Token_DATA_P && kind(n-2) == pg_query.Token_WITH {
			return body[:n-2]
		}
		if kind(n-1) == pg_query.Token_DATA_P && kind(n-2) == pg_query.Token_NO && kind(n-3) == pg_query.Token_WITH {
			return body[:n-3]
		}
	}
	return body
}

func deparseQuery(query *pg_query.Node, version int32) (string, error) {
	tree := &pg_query.ParseResult{Version: version, Stmts: []*pg_query.RawStmt{{Stmt: query}}}
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return "", fmt.Errorf("deparse view query: %w", err)
	}
	return out, nil
}

// blankMetaCommands replaces psql backslash commands (recent pg_dump opens
// and closes its output with \restrict and \unrestrict) with spaces, which
// keeps every offset and line number. The lexer finds them, so a backslash
// inside a string or comment is left alone; a command runs to the end of
// its line.
func blankMetaCommands(src string) string {
	if !strings.Contains(src, "\\") {
		return src
	}
	res, err := pg_query.Scan(src)
	if err != nil {
		return src // the parser will report the real problem
	}
	b := []byte(src)
	for _, t := range res.GetTokens() {
		if t.GetToken() != pg_query.Token_ASCII_92 {
			continue
		}
		for i := clamp(int(t.GetStart()), 0, len(b)); i < len(b) && b[i] != '\n'; i++ {
			b[i] = ' '
		}
	}
	return string(b)
}

// parseError names the line a syntax error stands on. PostgreSQL reports
// its position in characters, counted from 1.
func parseError(src string, err error) error {
	var pe *parser.Error
	if !errors.As(err, &pe) || pe.Cursorpos <= 0 {
		return fmt.Errorf("parse DDL: %w", err)
	}
	chars, pos := 0, len(src)
	for i := range src {
		if chars == pe.Cursorpos-1 {
			pos = i
			break
		}
		chars++
	}
	return fmt.Errorf("line %d: parse DDL: %w", lineAt(src, pos), err)
}
