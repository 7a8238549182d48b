package authz

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Expectation is one line of a policy test file (see ParseExpectations).
type Expectation struct {
	Line    int    // line the expectation starts on
	Allow   bool   // the statement must be allowed (true) or denied (false)
	User    string // the subject
	Purpose string // "" when the file says "-" (no purpose declared)
	Column  string // for deny: a column (or function:schema.name) that must be among the denied; optional
	SQL     string // the statement, continuation lines joined with "\n"
}

// ParseExpectations reads a policy test file, the input of
// "pgguard policy test". The format is plain text, one expectation per line:
//
//	# comment lines and blank lines are ignored
//	allow USER PURPOSE : SQL
//	deny  USER PURPOSE [COLUMN] : SQL
//
// PURPOSE is "-" for no declared purpose. COLUMN (schema.table.column, or
// function:schema.name) names a column the denial must include. The header
// ends at the first ':' followed by white space, so SQL may hold any
// character, "::" casts included. A line starting with white space
// continues the SQL of the expectation above it, so a long statement may
// start on the line after the header.
func ParseExpectations(r io.Reader) ([]Expectation, error) {
	var out []Expectation
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case line[0] == ' ' || line[0] == '\t':
			if len(out) == 0 {
				return nil, fmt.Errorf("line %d: continuation line without an expectation above it", n)
			}
			last := &out[len(out)-1]
			if last.SQL != "" {
				last.SQL += "\n"
			}
			last.SQL += trimmed
			continue
		}
		x, err := parseExpectation(trimmed)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		x.Line = n
		out = append(out, x)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read expectations: %w", err)
	}
	for _, x := range out {
		if x.SQL == "" {
			return nil, fmt.Errorf("line %d: no SQL after the ':'", x.Line)
		}
	}
	return out, nil
}

// parseExpectation parses one expectation line.
func parseExpectation(line string) (Expectation, error) {
	head, sql, ok := cutHeader(line)
	if !ok {
		return Expectation{}, fmt.Errorf("missing \": SQL\" after the header in %q", line)
	}
	f := strings.Fields(head)
	if len(f) < 3 || len(f) > 4 {
		return Expectation{}, fmt.Errorf("header %q: want \"allow|deny USER PURPOSE [COLUMN]\"", head)
	}
	x := Expectation{User: f[1], Purpose: f[2], SQL: sql}
	switch f[0] {
	case "allow":
		x.Allow = true
		if len(f) == 4 {
			return Expectation{}, fmt.Errorf("a column only goes with deny, not with allow")
		}
	case "deny":
	default:
		return Expectation{}, fmt.Errorf("expectation %q is neither allow nor deny", f[0])
	}
	if x.Purpose == "-" {
		x.Purpose = ""
	}
	if len(f) == 4 {
		if kind, _ := objectKind(f[3]); kind != objColumn && kind != objFunction {
			return Expectation{}, fmt.Errorf("column %q is not schema.table.column or function:schema.name", f[3])
		}
		x.Column = f[3]
	}
	return x, nil
}

// cutHeader splits at the first ':' followed by white space or the end.
func cutHeader(line string) (head, sql string, ok bool) {
	for i := 0; i < len(line); i++ {
		if line[i] == ':' && (i+1 == len(line) || line[i+1] == ' ' || line[i+1] == '\t') {
			return strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:]), true
		}
	}
	return "", "", false
}
