package sqlscan

import "github.com/pgguard/pgguard/catalog"

// column is one output column of a range entry: a table's column, a
// sub-query's or view's output, a CTE's column. lineage lists the stored
// columns its values come from. A lineage entry with an empty Clause takes
// the clause of the place that references the column; one with a view:
// clause keeps it, so a column read inside a view stays attributed to it.
type column struct {
	name    string
	lineage []Access
	// typ is the type OID of a stored relation's column, 0 when not
	// certain (a view's or sub-query's output, a snapshot without types).
	typ uint32
	// unsure marks a select-list item whose name PostgreSQL works out in a
	// way the analysis does not model; a NATURAL join cannot match on it.
	unsure bool
}

// rel is a range entry: something in FROM (or the target of a DML
// statement) that column references can name.
type rel struct {
	// refname is the name column references qualify with: the alias, or the
	// relation's or CTE's own name; "" for an unaliased join.
	refname string
	// schema is set for an unaliased catalog relation, which can also be
	// referenced as schema.table.column.
	schema string
	cols   []*column
	// anyCols marks entries whose column names are not known (function
	// results, temporary tables without a column list): any name matches,
	// weakly, with anyLineage as its lineage.
	anyCols    bool
	anyLineage []Access
	// temp is set when the entry may be a temporary table: a statement
	// that writes the entry writes it.
	temp *tempTable
	// rels are the catalog relations this entry may be (more than one when
	// the name is ambiguous under an unknown search path).
	rels []*catalog.Relation
	// systemCols is true for stored relations, which have ctid, xmin, ...
	systemCols bool
	// unknownSelf, for a built-in relation the snapshot does not describe,
	// names it so referenced columns can still be reported.
	unknownSelf *catalog.QualifiedName
}

// systemColumns are the columns every stored relation has but that * and
// whole-row references leave out.
var systemColumns = map[string]bool{
	"ctid": true, "xmin": true, "xmax": true, "cmin": true, "cmax": true, "tableoid": true,
}

// lookup finds the named column. strong is false for a match that only
// anyCols made possible.
// A single match is returned as a full slice of r.cols, without
// allocating: appending to it copies.
func (r *rel) lookup(name string) (cols []*column, strong bool) {
	for i, c := range r.cols {
		if c.name != name {
			continue
		}
		if cols == nil {
			cols = r.cols[i : i+1 : i+1]
			continue
		}
		cols = append(cols, c)
	}
	if len(cols) > 0 {
		return cols, true
	}
	if r.systemCols && systemColumns[name] {
		return []*column{r.systemColumn(name)}, true
	}
	if r.unknownSelf != nil {
		q := r.unknownSelf
		return []*column{{name: name, lineage: []Access{{Schema: q.Schema, Table: q.Name, Column: name, Act: Read}}}}, true
	}
	if r.anyCols {
		return []*column{{name: name, lineage: r.anyLineage}}, false
	}
	return nil, false
}

// systemColumn builds the lineage of a system column: the column itself in
// every candidate relation (and their parents, like any other column).
func (r *rel) systemColumn(name string) *column {
	c := &column{name: name}
	for _, cr := range r.rels {
		c.lineage = append(c.lineage, Access{Schema: cr.Schema, Table: cr.Name, Column: name, Act: Read})
	}
	return c
}

// scope is one query level's name space.
type scope struct {
	parent *scope
	// items are the range entries column references can see.
	items []*rel
	// ctes are the WITH queries visible from this level down.
	ctes []*cte
}

// cte is one WITH query.
type cte struct {
	name string
	cols []*column
	// pending is true while a recursive CTE's own definition is analysed.
	pending bool
}

// findCTE looks a CTE up by name from this level outwards.
func (s *scope) findCTE(name string) *cte {
	for sc := s; sc != nil; sc = sc.parent {
		for i := len(sc.ctes) - 1; i >= 0; i-- {
			if sc.ctes[i].name == name {
				return sc.ctes[i]
			}
		}
	}
	return nil
}

// detached is what a non-LATERAL sub-query in FROM sees around it: s's
// CTEs and outer levels, but not s's own entries.
func (s *scope) detached() *scope {
	return &scope{parent: s.parent, ctes: s.ctes}
}

// lateral is what a LATERAL item (or a function in FROM) sees: also the
// entries before it at its level.
func (s *scope) lateral(visible []*rel) *scope {
	return &scope{parent: s.parent, ctes: s.ctes, items: visible}
}
