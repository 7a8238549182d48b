package authz

import (
	"fmt"
	"sort"
	"strings"
)

// facts is what the rules say about names, shared by lint and Load.
type facts struct {
	users, roles map[string]bool // left and right sides of g
	purposes     map[string]bool // both sides of g3
	populated    map[string]bool // categories some column or function pattern reaches
	categories   map[string]bool // every right side of g2
	patterns     []rule          // g2 rules whose left side is a column or function pattern
}

// gather collects the facts of well-formed rules.
func gather(rules []rule) facts {
	f := facts{users: map[string]bool{}, roles: map[string]bool{}, purposes: map[string]bool{},
		populated: map[string]bool{}, categories: map[string]bool{}}
	links := map[string][]string{} // child category -> parents
	for _, r := range rules {
		switch r.ptype {
		case "g":
			f.users[r.fields[0]], f.roles[r.fields[1]] = true, true
		case "g3":
			f.purposes[r.fields[0]], f.purposes[r.fields[1]] = true, true
		case "g2":
			f.categories[r.fields[1]] = true
			if kind, _ := objectKind(r.fields[0]); kind == objCategory {
				links[r.fields[0]] = append(links[r.fields[0]], r.fields[1])
			} else {
				f.patterns = append(f.patterns, r)
				f.populated[r.fields[1]] = true
			}
		}
	}
	// A parent category has the columns of its children.
	for changed := true; changed; {
		changed = false
		for child, parents := range links {
			for _, parent := range parents {
				if f.populated[child] && !f.populated[parent] {
					f.populated[parent], changed = true, true
				}
			}
		}
	}
	return f
}

// semantics runs the checks that need all rules at once.
func (l *linter) semantics(rules []rule, columns []string) {
	f := gather(rules)
	for _, r := range rules {
		switch r.ptype {
		case "p":
			l.ruleNames(f, r)
		case "g2":
			if kind, _ := objectKind(r.fields[0]); kind == objCategory && !f.populated[r.fields[0]] {
				l.add(r.line, SeverityWarning, "unknown-category", "category %q is given no columns by any g2 rule%s", r.fields[0], suggest(r.fields[0], f.populated))
			}
		}
	}
	l.hierarchies(rules)
	l.completeness(rules)
	if columns != nil {
		l.catalog(f, rules, columns)
	}
}

// ruleNames checks that a p rule's category, purpose and subject exist.
func (l *linter) ruleNames(f facts, r rule) {
	sub, purpose, obj, eft := r.fields[0], r.fields[1], r.fields[2], r.fields[4]
	if kind, _ := objectKind(obj); kind == objCategory && !f.populated[obj] {
		l.add(r.line, SeverityError, "unknown-category", "category %q is given no columns by any g2 rule, so this rule never applies%s", obj, suggest(obj, f.populated))
	}
	if purpose != "*" && purpose != "" && !f.purposes[purpose] {
		// A misspelt purpose on a deny rule silently opens access; on an
		// allow rule it only fails closed, and a flat purpose list is legal.
		sev := SeverityWarning
		if eft == "deny" {
			sev = SeverityError
		}
		l.add(r.line, sev, "unknown-purpose", "purpose %q appears in no g3 rule%s", purpose, suggest(purpose, f.purposes))
	}
	if sub != "*" && sub != "" && !f.users[sub] && !f.roles[sub] {
		// The rule could only apply to a login of exactly this name, which
		// no g rule places anywhere: far more often a misspelt department,
		// and a misspelt deny rule silently opens access. A rule meant for
		// one user names a user that a g rule places in a department.
		l.add(r.line, SeverityError, "unknown-subject", "subject %q is neither a department nor a user of any g rule, so this rule applies to no one the policy knows%s", sub, suggest(sub, f.roles))
	}
}

// catalog checks the patterns against the catalog's columns and looks for
// personal data no pattern classifies.
func (l *linter) catalog(f facts, rules []rule, columns []string) {
	for _, r := range rules {
		var pattern string
		switch r.ptype {
		case "g2":
			pattern = r.fields[0]
		case "p":
			pattern = r.fields[2]
		}
		if kind, _ := objectKind(pattern); kind != objColumn {
			continue
		}
		if !anyMatch(pattern, columns) {
			l.add(r.line, SeverityWarning, "pattern-matches-nothing", "pattern %q matches no column of the catalog", pattern)
		}
	}
	for _, col := range columns {
		if hint := personalHint(col); hint != "" && !classified(f.patterns, col) {
			l.add(0, SeverityWarning, "unclassified-personal-data", "column %s looks like personal data (%s) but no g2 rule classifies it", col, hint)
		}
	}
}

func anyMatch(pattern string, columns []string) bool {
	for _, c := range columns {
		if MatchPattern(pattern, c) {
			return true
		}
	}
	return false
}

func classified(patterns []rule, column string) bool {
	for _, r := range patterns {
		if MatchPattern(r.fields[0], column) {
			return true
		}
	}
	return false
}

// personalHints are column name fragments that usually mean personal data.
// Short, ambiguous ones ("name", "dob") must be a whole '_'-separated word.
var (
	personalFragments = []string{"email", "e_mail", "phone", "mobile", "iban", "bank_account", "birth",
		"address", "street", "postal", "postcode", "zipcode", "salary", "wage", "passport", "diagnos",
		"medical", "health", "gender", "ethnic", "religio", "nationality", "surname", "firstname",
		"lastname", "fullname", "social_security", "tax_id", "license_number", "licence_number"}
	personalWords = []string{"name", "ssn", "bsn", "dob", "zip", "city", "ip", "gross", "income", "sex"}
)

// personalHint returns what makes a column name look personal, or "".
func personalHint(column string) string {
	name := strings.ToLower(column[strings.LastIndexByte(column, '.')+1:])
	for _, frag := range personalFragments {
		if strings.Contains(name, frag) {
			return frag
		}
	}
	words := strings.Split(name, "_")
	for _, w := range personalWords {
		for _, x := range words {
			if x == w {
				return w
			}
		}
	}
	return ""
}

// suggest proposes the closest known name for a likely typo.
func suggest(name string, known map[string]bool) string {
	best := closest(name, known)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// closest returns the known name at most two edits from name, the first in
// sort order among equally close ones; "" when there is none.
func closest(name string, known map[string]bool) string {
	best, bestDist := "", 3
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic choice between equally close names
	for _, k := range names {
		if d := editDistance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// completeness refuses a policy that classifies nothing or allows nothing.
// Such a file is what an empty or truncated policy.csv looks like, and
// with unclassified columns allowed it would open every column to every
// user: a policy that protects nothing is a mistake, never an intent.
func (l *linter) completeness(rules []rule) {
	var classifications, allows int
	for _, r := range rules {
		switch {
		case r.ptype == "g2":
			classifications++
		case r.ptype == "p" && r.fields[4] == "allow":
			allows++
		}
	}
	if classifications == 0 {
		l.add(0, SeverityError, "no-classification", "the policy classifies no column (no g2 rule): it would protect nothing; an empty or truncated file is refused")
	}
	if allows == 0 {
		l.add(0, SeverityError, "no-rule", "the policy has no allow rule: it would refuse all classified data to everyone; an empty or truncated file is refused")
	}
}
