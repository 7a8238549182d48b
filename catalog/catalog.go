// Package catalog holds immutable snapshots of a database's schema: the
// relations, their columns, view definitions and functions that statement
// analysis needs to resolve names. Snapshots come from a live database through
// pg_catalog or from a DDL file, and carry a version that changes whenever
// their content does.
//
// Load reads a live database, FromDDL replays a schema file, and Cache keeps
// the current snapshot of each database a proxy serves.
package catalog

// RelKind is the kind of a relation, as pg_class.relkind says.
type RelKind byte

// Relation kinds pgguard distinguishes.
const (
	Table            RelKind = 'r'
	PartitionedTable RelKind = 'p'
	View             RelKind = 'v'
	MaterializedView RelKind = 'm'
	ForeignTable     RelKind = 'f'
	Sequence         RelKind = 'S'
	CompositeType    RelKind = 'c'
)

// Relation is one table-like object.
type Relation struct {
	Schema string
	Name   string
	Kind   RelKind
	// Columns in attribute order, excluding dropped and system columns.
	Columns []string
	// ColumnTypes are the columns' type OIDs, in the same order; nil when
	// not known (a DDL file).
	ColumnTypes []uint32
	// Parents are the relations this one inherits from or is a partition of
	// (direct parents only); reading this relation's column counts as reading
	// the parents' column of the same name.
	Parents []QualifiedName
	// ViewDefinition is the SELECT of a view or materialized view.
	ViewDefinition string
	// OID is the relation's pg_class OID, 0 when not known (a DDL file, a
	// session's own view of its transaction). A rename changes the name,
	// not the OID, so the catalog finds a renamed relation again by it.
	OID uint32
	// DependsOn are, for a view or materialized view read from a live
	// database, the OIDs of the relations its definition reads (pg_depend):
	// DDL that drops or changes one of them changes the view too, even
	// when it names only them.
	DependsOn []uint32
	// rowType and arrayType are the OIDs of the relation's row type and
	// its array type (a live load only), which go when it goes.
	rowType, arrayType uint32
	// DefinitionSearchPath is the search_path that unqualified names in
	// ViewDefinition resolve under. A live load renders definitions with
	// pg_catalog alone on the path, so every other name comes qualified; a DDL
	// file keeps the text as written, under the path in force where it stood.
	// Resolving a definition with the querying session's path instead would
	// let a same-named relation earlier on that path stand in for the real one.
	// As everywhere in PostgreSQL, pg_catalog is searched first when the path
	// does not list it.
	DefinitionSearchPath []string
}

// QualifiedName is a schema-qualified object name, as PostgreSQL stores it.
type QualifiedName struct {
	Schema string
	Name   string
}

// String renders schema.name without quoting.
func (q QualifiedName) String() string { return q.Schema + "." + q.Name }

// Function is one function or procedure, overloads collapsed.
type Function struct {
	Schema string
	Name   string
	// Language is sql, plpgsql, c, internal, ... When overloads are written
	// in different languages it lists them all, sorted and comma separated,
	// so a check for one exact language fails rather than guessing.
	Language string
	// BuiltIn is true for functions in pg_catalog and information_schema.
	BuiltIn bool
	// Extension is the extension every overload belongs to (pg_depend), ""
	// when one of them belongs to none or they belong to different ones.
	Extension string
	// Overloads are the signatures of a function outside the built-in
	// schemas (a live load only; nil when not known).
	Overloads []Signature
}

// Signature is what PostgreSQL matches a call's arguments against.
type Signature struct {
	// Args are the input argument types' OIDs.
	Args []uint32
	// Defaults is how many trailing arguments have defaults.
	Defaults int
	// Variadic is set when the last argument takes any number of values.
	Variadic bool
}

// Operator is one operator: outside pg_catalog in Snapshot.UserOperators,
// pg_catalog's in Snapshot.BuiltinOperator.
type Operator struct {
	Schema string
	Name   string // the symbol
	// Left and Right are the operand types' OIDs; Left is 0 for a prefix
	// operator. Both are 0 when not known (a DDL file), and then the
	// operator may apply to anything.
	Left, Right uint32
	// Extension is the extension the operator belongs to, "" if none.
	Extension string
}

// Type is a data type, as far as operator resolution needs one: whether a
// value of one type can be an operand of an operator declared on another.
type Type struct {
	OID    uint32
	Schema string
	Name   string
	// Kind is pg_type.typtype: b base, c composite, d domain, e enum, p
	// pseudo-type, r range, m multirange.
	Kind byte
	// Category is pg_type.typcategory (A for arrays, S for strings, ...).
	Category byte
}
