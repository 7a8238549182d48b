package authz

import "strings"

// MatchPattern reports whether name (a dotted name such as
// "crm.customers.email" or "function:public.unaccent") matches pattern.
//
// Both are split at '.' and must have the same number of parts; within a part
// '*' matches any run of characters (also none). A '*' never matches a '.',
// so "hr.*.*" covers every column of every table in schema hr, while "hr.*"
// covers no column at all. Every other character, including '?', '[' and '\',
// is literal: path.Match would treat '/' as the separator and interpret those
// characters, which is not what a column pattern means.
func MatchPattern(pattern, name string) bool {
	for {
		pi := strings.IndexByte(pattern, '.')
		ni := strings.IndexByte(name, '.')
		if pi < 0 || ni < 0 {
			// The last part of one side: both must be on their last part.
			return pi < 0 && ni < 0 && matchPart(pattern, name)
		}
		if !matchPart(pattern[:pi], name[:ni]) {
			return false
		}
		pattern, name = pattern[pi+1:], name[ni+1:]
	}
}

// matchPart matches one dot-free part, '*' being the only wildcard. It keeps
// a single backtracking point (the last star seen), which is enough for
// '*'-only globs and runs in O(len(pattern)*len(name)) at worst without
// recursion or allocation.
func matchPart(pattern, name string) bool {
	p, n := 0, 0
	star, resume := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, resume = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			// Let the last star swallow one more character and retry.
			resume++
			p, n = star+1, resume
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// isPattern reports whether s contains a wildcard.
func isPattern(s string) bool { return strings.IndexByte(s, '*') >= 0 }
