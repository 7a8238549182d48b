package sqlscan

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// fieldNames splits a ColumnRef into its names, appended to buf[:0], and
// whether it ends in *.
func fieldNames(cr *pg.ColumnRef, buf []string) (names []string, star bool) {
	names = buf[:0]
	for _, f := range cr.GetFields() {
		switch {
		case f.GetAStar() != nil:
			star = true
		case f.GetString_() != nil:
			names = append(names, f.GetString_().GetSval())
		}
	}
	return names, star
}

// nameBuf holds the names of a column reference: PostgreSQL allows at
// most four (database, schema, table, column), so a reference's names fit
// in a nameBuf on the caller's stack and need no allocation.
type nameBuf [4]string

// columnRef resolves a column reference in an expression the way
// PostgreSQL's transformColumnRef does, and emits the reads it makes.
//
//	a        column a of some entry (innermost level first), else the whole
//	         row of the entry named a
//	t.c      column c of entry t; when t has no column c, the function c
//	         applied to t's whole row (functional notation)
//	s.t.c    the same for an unaliased relation in schema s; d.s.t.c with
//	         the current database d
//	t.*, *   whole rows (a select list expands them instead)
func (a *analyzer) columnRef(sc *scope, cr *pg.ColumnRef) {
	a.loc = cr.GetLocation()
	names, star := fieldNames(cr, new(nameBuf)[:])
	switch {
	case star && len(names) == 0:
		if sc != nil {
			for _, r := range sc.items {
				a.readWholeRow(r)
			}
		}
	case star:
		rels := a.findRels(sc, names)
		if len(rels) == 0 {
			a.unknownEntry(names)
			return
		}
		for _, r := range rels {
			a.readWholeRow(r)
		}
	case len(names) == 1:
		a.unqualifiedColumn(sc, names[0])
	case len(names) > 1:
		a.qualifiedColumn(sc, names[:len(names)-1], names[len(names)-1])
	}
}

func (a *analyzer) unknownEntry(qual []string) {
	a.denyAsServer(CodeUnknownColumn, "42P01", a.loc, "missing FROM-clause entry for table \""+qual[len(qual)-1]+"\"",
		"no FROM item named %s", strings.Join(qual, "."))
}

// unqualifiedColumn resolves a bare name: a column at the innermost level
// that has one, else the whole row of an entry of that name. A weak match
// (an entry whose columns are unknown) does not end the search, so a name
// that really belongs to an outer query is still counted there.
func (a *analyzer) unqualifiedColumn(sc *scope, name string) {
	strong, weak := lookupColumn(sc, name)
	for _, c := range strong {
		a.readColumn(c)
	}
	for _, c := range weak {
		a.readColumn(c)
	}
	if len(strong) > 0 {
		return
	}
	rels := a.findRels(sc, []string{name})
	for _, r := range rels {
		a.readWholeRow(r)
	}
	if len(weak) == 0 && len(rels) == 0 {
		a.denyAsServer(CodeUnknownColumn, "42703", a.loc, "column \""+name+"\" does not exist",
			"column %s does not exist in any FROM item", name)
	}
}

// lookupColumn searches the levels from sc outwards for columns called
// name. It stops at the first level with a strong match; weak matches are
// gathered along the way.
func lookupColumn(sc *scope, name string) (strong, weak []*column) {
	for level := sc; level != nil; level = level.parent {
		for _, r := range level.items {
			// lookup's slices are full: appending to them copies.
			cols, ok := r.lookup(name)
			switch {
			case ok && strong == nil:
				strong = cols
			case ok:
				strong = append(strong, cols...)
			case weak == nil:
				weak = cols
			default:
				weak = append(weak, cols...)
			}
		}
		if len(strong) > 0 {
			return strong, weak
		}
	}
	return nil, weak
}

// findRels finds the entries a qualifier names, innermost level first.
// qual is [t], [s, t] or [db, s, t].
func (a *analyzer) findRels(sc *scope, qual []string) []*rel {
	if len(qual) == 3 {
		if qual[0] != a.s.database {
			a.deny(CodeUnsupported, "cross-database reference %s", strings.Join(qual, "."))
			return nil
		}
		qual = qual[1:]
	}
	if len(qual) < 1 || len(qual) > 2 {
		return nil
	}
	name, schema := qual[len(qual)-1], ""
	if len(qual) == 2 {
		schema = qual[0]
	}
	for level := sc; level != nil; level = level.parent {
		var found []*rel
		for _, r := range level.items {
			if r.refname == name && (schema == "" || r.schema == schema) {
				found = append(found, r)
			}
		}
		if len(found) > 0 {
			return found
		}
	}
	return nil
}

// qualifiedColumn resolves t.c (or s.t.c): the column, or, when the entry
// has no such column, PostgreSQL's functional notation c(t), which reads
// the whole row and runs function c.
func (a *analyzer) qualifiedColumn(sc *scope, qual []string, name string) {
	rels := a.findRels(sc, qual)
	if len(rels) == 0 {
		if !a.failed() {
			a.unknownEntry(qual)
		}
		return
	}
	for _, r := range rels {
		cols, strong := r.lookup(name)
		if strong || len(cols) > 0 {
			for _, c := range cols {
				a.readColumn(c)
			}
			continue
		}
		a.checkFunction([]string{name}, 1)
		a.readWholeRow(r)
	}
}

// wholeRowRel reports the entry a lone function argument names as a whole
// row (t or t.*), for functional notation email(t).
func (a *analyzer) wholeRowRel(sc *scope, n *pg.Node) []*rel {
	cr := n.GetColumnRef()
	if cr == nil {
		return nil
	}
	names, star := fieldNames(cr, new(nameBuf)[:])
	if star && len(names) > 0 {
		return a.findRels(sc, names)
	}
	if !star && len(names) == 1 {
		if strong, weak := lookupColumn(sc, names[0]); len(strong)+len(weak) > 0 {
			return nil
		}
		return a.findRels(sc, names)
	}
	return nil
}
