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
// quotes, unquoted names fold to lower case. Empty names are dropped. The
// second result is false when the value is malformed (an unterminated quote
// or junk after a name), which PostgreSQL itself would refuse.
func ParseSearchPath(value string) ([]string, bool) {
	names := []string{}
	rest := value
	for {
		rest = strings.TrimLeft(rest, " \t\n\r\f\v")
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
		after = strings.TrimLeft(after, " \t\n\r\f\v")
		switch {
		case after == "":
			return names, true
		case after[0] == ',':
			rest = after[1:]
		default:
			return names, false
		}
	}
}

// nextPathName reads one name from the start of s and returns what follows.
func nextPathName(s string) (name, rest string, ok bool) {
	if s[0] != '"' {
		end := strings.IndexAny(s, ", \t\n\r\f\v")
		if end < 0 {
			end = len(s)
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
