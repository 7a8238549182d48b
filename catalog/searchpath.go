package catalog

import (
	"strings"
)

// defaultSearchPath is PostgreSQL's built-in search_path; a fresh slice each
// time, so no caller can change another's.
func defaultSearchPath() []string { return []string{"$user", "public"} }

// ParseSearchPath splits a search_path value as PostgreSQL stores and reads
// it (`"$user", public`, `"My Schema",app`): names are separated by commas,
// double-quoted names keep their case and may contain commas and doubled
// quotes, unquoted names fold to lower case. Empty quoted names, which name
// no schema, are dropped. The second result is false when the value is
// malformed (an unterminated quote, an empty unquoted name, junk after a
// name), which PostgreSQL itself would refuse, and when PostgreSQL versions
// read it differently.
//
// The split is PostgreSQL's SplitIdentifierString, whose white space is
// space, tab, newline, carriage return and form feed only. A vertical tab
// is part of an unquoted name up to PostgreSQL 15 and white space from 16
// on: `decoy\v,hr` is the path "decoy\v", hr there, and decoy, hr here. A
// value with one outside quotes is reported malformed, so that no version
// is guessed.
func ParseSearchPath(value string) ([]string, bool) {
	names := []string{}
	rest := value
	for {
		rest = strings.TrimLeft(rest, pathSpace)
		if rest == "" {
			return names, true
		}
		name, after, ok := nextPathName(rest)
		if !ok {
			return names, false
		}
		if name != "" {
			names = append(names, name)
		}
		after = strings.TrimLeft(after, pathSpace)
		switch {
		case after == "":
			return names, true
		case after[0] == ',':
			rest = after[1:]
			if strings.TrimLeft(rest, pathSpace) == "" {
				return names, false // a separator expects another name
			}
		default:
			return names, false
		}
	}
}

// pathSpace is the white space of PostgreSQL's scanner_isspace.
const pathSpace = " \t\n\r\f"

// nextPathName reads one name from the start of s and returns what follows.
func nextPathName(s string) (name, rest string, ok bool) {
	if s[0] != '"' {
		end := strings.IndexAny(s, ","+pathSpace)
		if end < 0 {
			end = len(s)
		}
		if end == 0 || strings.IndexByte(s[:end], '\v') >= 0 {
			return "", "", false
		}
		return foldIdentifier(s[:end]), s[end:], true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), s[i+1:], true
	}
	return "", "", false
}

// foldIdentifier lower-cases ASCII letters only, as PostgreSQL does for
// unquoted identifiers in a UTF-8 database.
func foldIdentifier(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
