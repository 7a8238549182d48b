package authz

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// generated is a random, lint-clean policy and the names it talks about.
type generated struct {
	text                        string
	subjects, purposes, columns []string
	rules                       int
}

// genPolicy writes a random policy of about n rules that lints without
// errors: nested roles, a purpose forest, overlapping glob patterns,
// category nesting, allow and deny, '*' purposes. It feeds the comparison
// with Casbin and the reload benchmark.
func genPolicy(rnd *rand.Rand, n int) generated {
	var g generated
	var b strings.Builder
	seen := map[string]bool{}
	emit := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if !seen[line] {
			seen[line] = true
			b.WriteString(line + "\n")
			g.rules++
		}
	}
	// The universe grows with n, so small policies stay dense enough for
	// both outcomes to be common.
	depts := names("dept", max(4, n/250))
	roles := names("role", max(8, n/125))
	users := names("user", max(10, n/20))
	for i, r := range roles {
		// a role belongs to a department or to an earlier role: no cycles;
		// the first ones give every department a member, as lint requires
		// of a p rule's subject
		if i < len(depts) {
			emit("g, %s, %s", r, depts[i])
		} else if rnd.IntN(3) == 0 {
			emit("g, %s, %s", r, roles[rnd.IntN(i)])
		} else {
			emit("g, %s, %s", r, depts[rnd.IntN(len(depts))])
		}
	}
	for _, u := range users {
		emit("g, %s, %s", u, pick(rnd, append(roles, depts...)))
	}
	purposes := names("purpose", max(12, n/125))
	roots := len(purposes) / 4
	for i := 0; i < roots; i++ { // roots hang below three areas
		emit("g3, %s, area%d", purposes[i], i%3)
	}
	for i := roots; i < len(purposes); i++ {
		emit("g3, %s, %s", purposes[i], purposes[rnd.IntN(i)])
	}
	schemas, cats := names("s", max(2, n/600)), names("cat", max(12, n/80))
	for _, s := range schemas {
		for t := 0; t < 8; t++ {
			for c := 0; c < 12; c++ {
				g.columns = append(g.columns, fmt.Sprintf("%s.t%d.c%d", s, t, c))
			}
		}
	}
	populated := cats[:len(cats)*5/6]
	for _, c := range populated { // every category gets columns
		emit("g2, %s, %s", genPattern(rnd, schemas), c)
	}
	for len(seen) < n/2 {
		emit("g2, %s, %s", genPattern(rnd, schemas), pick(rnd, populated))
	}
	for i := len(populated); i < len(cats); i++ { // parents of populated categories
		emit("g2, %s, %s", pick(rnd, populated), cats[i])
	}
	subjects := append(append(append([]string{}, depts...), roles...), users[:5]...)
	for len(seen) < n {
		purpose := "*"
		if rnd.IntN(5) > 0 {
			purpose = pick(rnd, purposes)
		}
		obj := pick(rnd, cats)
		if rnd.IntN(5) == 0 {
			obj = genPattern(rnd, schemas)
		}
		emit("p, %s, %s, %s, %s, %s", pick(rnd, subjects), purpose, obj, pick(rnd, []string{"read", "write"}), pick(rnd, []string{"allow", "allow", "deny"}))
	}
	g.text = b.String()
	g.subjects = append(append(append([]string{}, users...), roles...), depts...)
	g.purposes = purposes
	return g
}

// genPattern returns a column pattern that may use '*' in any part.
func genPattern(rnd *rand.Rand, schemas []string) string {
	schema := pick(rnd, schemas)
	table := fmt.Sprintf("t%d", rnd.IntN(8))
	column := fmt.Sprintf("c%d", rnd.IntN(12))
	switch rnd.IntN(6) {
	case 0:
		schema = "*"
	case 1:
		table = "*"
	case 2:
		column = "*"
	case 3:
		column = fmt.Sprintf("c%d*", rnd.IntN(2)) // c0*, c1*: c1, c10, c11
	}
	return schema + "." + table + "." + column
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func pick(rnd *rand.Rand, list []string) string { return list[rnd.IntN(len(list))] }
