package grants

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// SequencesFromDDL reads which columns use which sequences from a schema
// file, as LoadSequences does from a database: serial columns, identities,
// defaults that call nextval with a constant name, and OWNED BY, declared
// by CREATE TABLE, ALTER TABLE, CREATE SEQUENCE and ALTER SEQUENCE.
// Unqualified names resolve as PostgreSQL would under the file's SET
// search_path (public without one). Later renames are not followed: a
// database is the exact source.
func SequencesFromDDL(ddl string) ([]SequenceUse, error) {
	tree, err := pg_query.Parse(ddl)
	if err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	r := &ddlSequences{path: []string{"public"}, relations: map[seqName]bool{}, sequences: map[seqName]bool{},
		defaults: map[ddlColumn]seqName{}}
	for _, raw := range tree.GetStmts() {
		r.statement(raw.GetStmt())
	}
	for col, seq := range r.defaults {
		r.use(seq, col.table, col.column)
	}
	slices.SortFunc(r.uses, func(a, b SequenceUse) int {
		return strings.Compare(a.Schema+"."+a.Name+" "+a.TableSchema+"."+a.Table+"."+a.Column,
			b.Schema+"."+b.Name+" "+b.TableSchema+"."+b.Table+"."+b.Column)
	})
	return slices.Compact(r.uses), nil
}

// ddlSequences is what replaying a schema file has seen so far.
type ddlSequences struct {
	path      []string         // search_path, without $user
	relations map[seqName]bool // every relation created, sequences included
	sequences map[seqName]bool
	// uses are the sequences columns own; defaults the sequences their
	// current defaults call, which a later default replaces.
	uses     []SequenceUse
	defaults map[ddlColumn]seqName
}

type ddlColumn struct {
	table  seqName
	column string
}

func (r *ddlSequences) statement(n *pg_query.Node) {
	switch {
	case n.GetVariableSetStmt() != nil:
		if v := n.GetVariableSetStmt(); v.GetName() == "search_path" {
			var path []string
			for _, a := range v.GetArgs() {
				if s := a.GetAConst().GetSval().GetSval(); s != "" && s != "$user" && s != "pg_temp" {
					path = append(path, s)
				}
			}
			if len(path) > 0 {
				r.path = path
			}
		}
	case n.GetCreateStmt() != nil:
		c := n.GetCreateStmt()
		table := r.name(c.GetRelation())
		r.relations[table] = true
		for _, e := range c.GetTableElts() {
			if col := e.GetColumnDef(); col != nil {
				r.column(table, col)
			}
		}
	case n.GetAlterTableStmt() != nil:
		a := n.GetAlterTableStmt()
		table := r.name(a.GetRelation())
		for _, c := range a.GetCmds() {
			cmd := c.GetAlterTableCmd()
			switch cmd.GetSubtype() {
			case pg_query.AlterTableType_AT_AddColumn:
				r.column(table, cmd.GetDef().GetColumnDef())
			case pg_query.AlterTableType_AT_ColumnDefault:
				r.nextval(table, cmd.GetName(), cmd.GetDef())
			case pg_query.AlterTableType_AT_AddIdentity:
				r.identity(table, cmd.GetName(), cmd.GetDef().GetConstraint())
			}
		}
	case n.GetCreateSeqStmt() != nil:
		s := n.GetCreateSeqStmt()
		seq := r.name(s.GetSequence())
		r.relations[seq], r.sequences[seq] = true, true
		r.ownedBy(seq, s.GetOptions())
	case n.GetAlterSeqStmt() != nil:
		s := n.GetAlterSeqStmt()
		r.ownedBy(r.resolve(s.GetSequence().GetSchemaname(), s.GetSequence().GetRelname()), s.GetOptions())
	}
}

// name is where a relation being created goes: its schema, or the first
// of the path.
func (r *ddlSequences) name(rv *pg_query.RangeVar) seqName {
	if rv.GetSchemaname() != "" {
		return seqName{rv.GetSchemaname(), rv.GetRelname()}
	}
	return seqName{r.path[0], rv.GetRelname()}
}

// resolve finds an existing sequence the way the path does; one not seen
// is taken to be in the first schema of the path.
func (r *ddlSequences) resolve(schema, name string) seqName {
	if schema != "" {
		return seqName{schema, name}
	}
	for _, s := range r.path {
		if r.sequences[seqName{s, name}] {
			return seqName{s, name}
		}
	}
	return seqName{r.path[0], name}
}

var serialTypes = []string{"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"}

// column records what one column definition declares.
func (r *ddlSequences) column(table seqName, col *pg_query.ColumnDef) {
	if col == nil {
		return
	}
	if names := col.GetTypeName().GetNames(); len(names) == 1 && slices.Contains(serialTypes, names[0].GetString_().GetSval()) {
		seq := r.newSequence(table, col.GetColname())
		r.use(seq, table, col.GetColname())
		r.defaults[ddlColumn{table, col.GetColname()}] = seq
	}
	for _, c := range col.GetConstraints() {
		switch con := c.GetConstraint(); con.GetContype() {
		case pg_query.ConstrType_CONSTR_DEFAULT:
			r.nextval(table, col.GetColname(), con.GetRawExpr())
		case pg_query.ConstrType_CONSTR_IDENTITY:
			r.identity(table, col.GetColname(), con)
		}
	}
}

// identity records an identity's sequence: the one its options name, or
// the one PostgreSQL names for it.
func (r *ddlSequences) identity(table seqName, col string, con *pg_query.Constraint) {
	for _, o := range con.GetOptions() {
		if d := o.GetDefElem(); d.GetDefname() == "sequence_name" {
			parts := stringValues(d.GetArg().GetList().GetItems())
			seq := seqName{table.schema, parts[len(parts)-1]}
			if len(parts) > 1 {
				seq.schema = parts[len(parts)-2]
			}
			r.relations[seq], r.sequences[seq] = true, true
			r.use(seq, table, col)
			return
		}
	}
	r.use(r.newSequence(table, col), table, col)
}

// nextval records a column's new default: the sequence it calls with a
// constant name, if any.
func (r *ddlSequences) nextval(table seqName, col string, expr *pg_query.Node) {
	delete(r.defaults, ddlColumn{table, col})
	call := expr.GetFuncCall()
	if call == nil || len(call.GetArgs()) != 1 {
		return
	}
	if fn := stringValues(call.GetFuncname()); fn[len(fn)-1] != "nextval" {
		return
	}
	arg := call.GetArgs()[0]
	if cast := arg.GetTypeCast(); cast != nil {
		arg = cast.GetArg()
	}
	text := arg.GetAConst().GetSval().GetSval()
	if text == "" {
		return
	}
	parts := splitQualified(text)
	switch len(parts) {
	case 1:
		r.defaults[ddlColumn{table, col}] = r.resolve("", parts[0])
	case 2:
		r.defaults[ddlColumn{table, col}] = seqName{parts[0], parts[1]}
	}
}

// ownedBy records a sequence's OWNED BY table.column.
func (r *ddlSequences) ownedBy(seq seqName, options []*pg_query.Node) {
	for _, o := range options {
		d := o.GetDefElem()
		if d.GetDefname() != "owned_by" {
			continue
		}
		parts := stringValues(d.GetArg().GetList().GetItems())
		switch len(parts) {
		case 2:
			r.use(seq, seqName{r.path[0], parts[0]}, parts[1])
		case 3:
			r.use(seq, seqName{parts[0], parts[1]}, parts[2])
		}
	}
}

// newSequence names the sequence PostgreSQL creates for a serial column or
// an identity: table_column_seq, cut to 63 bytes the way PostgreSQL cuts
// it (the longer part loses characters first), with a number after "seq"
// when a relation of the schema already has the name.
func (r *ddlSequences) newSequence(table seqName, col string) seqName {
	for pass := 0; ; pass++ {
		label := "seq"
		if pass > 0 {
			label = fmt.Sprintf("seq%d", pass)
		}
		a, b := len(table.name), len(col)
		for avail := 63 - 2 - len(label); a+b > avail; {
			if a > b {
				a--
			} else {
				b--
			}
		}
		seq := seqName{table.schema, table.name[:a] + "_" + col[:b] + "_" + label}
		if !r.relations[seq] {
			r.relations[seq], r.sequences[seq] = true, true
			return seq
		}
	}
}

func (r *ddlSequences) use(seq, table seqName, col string) {
	r.uses = append(r.uses, SequenceUse{Schema: seq.schema, Name: seq.name, TableSchema: table.schema, Table: table.name, Column: col})
}

func stringValues(nodes []*pg_query.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.GetString_().GetSval()
	}
	return out
}

// splitQualified splits a name as regclass input does: at dots outside
// double quotes, folding unquoted parts to lower case.
func splitQualified(s string) []string {
	var out []string
	var part strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' && quoted && i+1 < len(s) && s[i+1] == '"':
			part.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			out = append(out, part.String())
			part.Reset()
		case !quoted && c >= 'A' && c <= 'Z':
			part.WriteByte(c + 'a' - 'A')
		default:
			part.WriteByte(c)
		}
	}
	return append(out, part.String())
}
