package authz

// maxDepth is the longest chain of links lint accepts. Casbin's role
// managers stop following links after about ten levels without saying so;
// staying well below keeps pgguard's tables and Casbin in agreement, and no
// real organisation or purpose tree comes close.
const maxDepth = 8

// edge is one link of a hierarchy, as written on a policy line.
type edge struct {
	to   string
	line int
}

// hierarchy walks the links of one rule type (g, g3, or g2 between
// categories) to find cycles (a warning: Casbin copes, but everyone in the
// cycle then shares everything, which is rarely meant) and chains deeper
// than maxDepth (an error).
type hierarchy struct {
	l       *linter
	ptype   string
	links   map[string][]edge
	state   map[string]int // 0 new, 1 on the current path, 2 done
	depth   map[string]int // longest chain of links starting here
	tooDeep bool           // reported once per rule type
}

// hierarchies checks the g, g3 and g2 category hierarchies of the rules.
func (l *linter) hierarchies(rules []rule) {
	for _, ptype := range []string{"g", "g3", "g2"} {
		h := &hierarchy{l: l, ptype: ptype, links: map[string][]edge{}, state: map[string]int{}, depth: map[string]int{}}
		var starts []edge
		for _, r := range rules {
			if r.ptype != ptype {
				continue
			}
			h.links[r.fields[0]] = append(h.links[r.fields[0]], edge{to: r.fields[1], line: r.line})
			starts = append(starts, edge{to: r.fields[0], line: r.line})
		}
		for _, s := range starts {
			if h.walk(s.to) > maxDepth && !h.tooDeep {
				h.tooDeep = true
				l.add(s.line, SeverityError, "hierarchy-depth", "%s links from %q run %d levels deep; pgguard supports %d", ptype, s.to, h.walk(s.to), maxDepth)
			}
		}
	}
}

// walk returns the longest chain of links from name, reporting each link
// that closes a cycle.
func (h *hierarchy) walk(name string) int {
	switch h.state[name] {
	case 1:
		return 0 // a cycle; reported by the link that led here
	case 2:
		return h.depth[name]
	}
	h.state[name] = 1
	longest := 0
	for _, e := range h.links[name] {
		if h.state[e.to] == 1 {
			h.l.add(e.line, SeverityWarning, "hierarchy-cycle", "%s link %s -> %s closes a cycle", h.ptype, name, e.to)
			continue
		}
		longest = max(longest, 1+h.walk(e.to))
	}
	h.state[name], h.depth[name] = 2, longest
	return longest
}
