package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Snapshot is an immutable view of one database's schema. It is safe for
// concurrent use; a refresh builds a new Snapshot rather than changing one.
type Snapshot struct {
	// Database is the database the snapshot describes.
	Database string
	// Complete is true when the snapshot was read from a live database and so
	// knows every relation and function, built-ins included. A snapshot from a
	// DDL file knows only what the file declares.
	Complete bool

	version   string
	schemas   map[string]bool
	relations map[QualifiedName]*Relation
	byName    map[string][]*Relation
	children  map[QualifiedName][]*Relation
	byOID     map[uint32]*Relation
	readers   map[uint32][]*Relation // views by the OIDs of what they read
	functions map[QualifiedName]*Function
	funcNames map[string][]*Function
	operators map[string][]Operator
	builtins  map[Operator]bool // pg_catalog's, by symbol and operand types
	types     map[uint32]*Type
	typeNames map[string][]*Type
	casts     map[[2]uint32]bool
	paths     map[string][]string
	// derived holds what other packages compute from this snapshot alone
	// and keep for every later use of it (the analysis's resolved columns
	// of a relation): built once per snapshot, not once per statement.
	// nil in a snapshot not built by New or Overlay, which then keeps
	// nothing.
	derived *sync.Map
}

// Contents are the raw parts a Snapshot is built from.
type Contents struct {
	Database  string
	Complete  bool
	Schemas   []string
	Relations []Relation
	Functions []Function
	// Operators are operators defined outside pg_catalog, by symbol: using one
	// runs a function the analysis cannot see into.
	Operators []Operator
	// Types are all data types (a live load only).
	Types []Type
	// ImplicitCasts are the casts PostgreSQL applies implicitly, source and
	// target type OIDs (pg_cast with castcontext 'i'; a live load only).
	ImplicitCasts [][2]uint32
	// SearchPaths maps a role name ("" for every role) to the search_path
	// configured for it in this database (ALTER ROLE/DATABASE ... SET).
	SearchPaths map[string][]string
}

// New builds a Snapshot and computes its version from its content, so two
// snapshots of an unchanged schema have the same version.
func New(c Contents) *Snapshot {
	s := &Snapshot{
		Database:  c.Database,
		Complete:  c.Complete,
		schemas:   make(map[string]bool, len(c.Schemas)),
		relations: make(map[QualifiedName]*Relation, len(c.Relations)),
		byName:    make(map[string][]*Relation, len(c.Relations)),
		children:  make(map[QualifiedName][]*Relation),
		functions: make(map[QualifiedName]*Function, len(c.Functions)),
		funcNames: make(map[string][]*Function, len(c.Functions)),
		operators: make(map[string][]Operator, len(c.Operators)),
		builtins:  make(map[Operator]bool),
		types:     make(map[uint32]*Type, len(c.Types)),
		typeNames: make(map[string][]*Type, len(c.Types)),
		casts:     make(map[[2]uint32]bool, len(c.ImplicitCasts)),
		paths:     c.SearchPaths,
		derived:   new(sync.Map),
	}
	for i := range c.Types {
		t := &c.Types[i]
		s.types[t.OID] = t
		s.typeNames[t.Name] = append(s.typeNames[t.Name], t)
	}
	for _, cast := range c.ImplicitCasts {
		s.casts[cast] = true
	}
	for _, name := range c.Schemas {
		s.schemas[name] = true
	}
	for i := range c.Relations {
		s.schemas[c.Relations[i].Schema] = true
		s.addRelation(&c.Relations[i])
	}
	for i := range c.Functions {
		f := &c.Functions[i]
		s.functions[QualifiedName{f.Schema, f.Name}] = f
		s.funcNames[f.Name] = append(s.funcNames[f.Name], f)
	}
	for _, op := range c.Operators {
		if op.Schema == "pg_catalog" {
			s.builtins[Operator{Schema: op.Schema, Name: op.Name, Left: op.Left, Right: op.Right}] = true
			continue
		}
		s.operators[op.Name] = append(s.operators[op.Name], op)
	}
	s.version = s.digest()
	return s
}

// Derived returns the value StoreDerived stored under key in this
// snapshot. key must be comparable; a package should use a key type of its
// own so that keys of different packages never collide.
func (s *Snapshot) Derived(key any) (any, bool) {
	if s.derived == nil {
		return nil, false
	}
	return s.derived.Load(key)
}

// StoreDerived keeps v under key for the snapshot's lifetime, unless a
// value is there already, and returns the value kept. v must be computed
// from the snapshot alone and never changed afterwards: every user of the
// snapshot, on any goroutine, shares it.
func (s *Snapshot) StoreDerived(key, v any) any {
	if s.derived == nil {
		return v
	}
	kept, _ := s.derived.LoadOrStore(key, v)
	return kept
}

// addRelation indexes r in a snapshot being built; its schema is the
// caller's to record.
func (s *Snapshot) addRelation(r *Relation) {
	s.relations[QualifiedName{r.Schema, r.Name}] = r
	s.byName[r.Name] = append(s.byName[r.Name], r)
	for _, p := range r.Parents {
		s.children[p] = append(s.children[p], r)
	}
	if r.OID != 0 {
		if s.byOID == nil {
			s.byOID, s.readers = map[uint32]*Relation{}, map[uint32][]*Relation{}
		}
		s.byOID[r.OID] = r
		for _, d := range r.DependsOn {
			s.readers[d] = append(s.readers[d], r)
		}
	}
}

// Version identifies the snapshot's content: a short hex digest.
func (s *Snapshot) Version() string { return s.version }

// HasSchema reports whether the schema exists.
func (s *Snapshot) HasSchema(name string) bool { return s.schemas[name] }

// Relation looks up schema.name.
func (s *Snapshot) Relation(schema, name string) (*Relation, bool) {
	r, ok := s.relations[QualifiedName{schema, name}]
	return r, ok
}

// RelationsNamed lists the relations called name in any schema: the
// candidates for an unqualified name whose search_path is uncertain.
func (s *Snapshot) RelationsNamed(name string) []*Relation { return s.byName[name] }

// Children lists the relations that inherit from schema.name or are its
// partitions (direct children only): reading a table without ONLY reads
// their rows too.
func (s *Snapshot) Children(schema, name string) []*Relation {
	return s.children[QualifiedName{schema, name}]
}

// Function looks up schema.name (any overload).
func (s *Snapshot) Function(schema, name string) (*Function, bool) {
	f, ok := s.functions[QualifiedName{schema, name}]
	return f, ok
}

// FunctionsNamed lists the functions called name in any schema.
func (s *Snapshot) FunctionsNamed(name string) []*Function { return s.funcNames[name] }

// UserOperators lists the operators outside pg_catalog with this symbol.
func (s *Snapshot) UserOperators(symbol string) []Operator { return s.operators[symbol] }

// BuiltinOperator reports whether pg_catalog has the operator symbol with
// exactly these operand types (left 0 for a prefix operator).
func (s *Snapshot) BuiltinOperator(symbol string, left, right uint32) bool {
	return s.builtins[Operator{Schema: "pg_catalog", Name: symbol, Left: left, Right: right}]
}

// Type looks a data type up by OID.
func (s *Snapshot) Type(oid uint32) (*Type, bool) {
	t, ok := s.types[oid]
	return t, ok
}

// TypesNamed lists the data types called name in any schema.
func (s *Snapshot) TypesNamed(name string) []*Type { return s.typeNames[name] }

// ImplicitCast reports whether PostgreSQL casts a value of type src to
// type dst implicitly, by a pg_cast entry.
func (s *Snapshot) ImplicitCast(src, dst uint32) bool { return s.casts[[2]uint32{src, dst}] }

// KnowsTypes is true when the snapshot holds the data types, column types
// and implicit casts (a live load).
func (s *Snapshot) KnowsTypes() bool { return len(s.types) > 0 }

// SearchPath returns the search_path configured for role in this database,
// falling back to the database-wide setting, then to PostgreSQL's default.
func (s *Snapshot) SearchPath(role string) []string {
	if p, ok := s.paths[role]; ok {
		return p
	}
	if p, ok := s.paths[""]; ok {
		return p
	}
	return []string{"$user", "public"}
}

// Relations returns every relation, sorted by schema and name.
func (s *Snapshot) Relations() []*Relation {
	out := make([]*Relation, 0, len(s.relations))
	for _, r := range s.relations {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Functions returns every function, sorted by schema and name.
func (s *Snapshot) Functions() []*Function {
	out := make([]*Function, 0, len(s.functions))
	for _, f := range s.functions {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Schemas returns every schema name, sorted.
func (s *Snapshot) Schemas() []string {
	out := make([]string, 0, len(s.schemas))
	for name := range s.schemas {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Operators returns every operator defined outside pg_catalog, sorted by
// schema and symbol.
func (s *Snapshot) Operators() []Operator {
	var out []Operator
	for _, ops := range s.operators {
		out = append(out, ops...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Columns lists every column as schema.table.column, sorted; policy lint
// matches patterns against it.
func (s *Snapshot) Columns() []string {
	var out []string
	for _, r := range s.Relations() {
		for _, c := range r.Columns {
			out = append(out, r.Schema+"."+r.Name+"."+c)
		}
	}
	return out
}

func (s *Snapshot) digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "db=%s complete=%v\n", s.Database, s.Complete)
	for _, r := range s.Relations() {
		fmt.Fprintf(h, "rel %s.%s %c %s %v %v %q %q\n", r.Schema, r.Name, r.Kind,
			strings.Join(r.Columns, ","), r.ColumnTypes, r.Parents, r.ViewDefinition, r.DefinitionSearchPath)
	}
	names := make([]string, 0, len(s.functions))
	for q, f := range s.functions {
		names = append(names, fmt.Sprintf("fn %s %s %v %s %+v", q, f.Language, f.BuiltIn, f.Extension, f.Overloads))
	}
	for _, t := range s.types {
		names = append(names, fmt.Sprintf("type %+v", *t))
	}
	for c := range s.casts {
		names = append(names, fmt.Sprintf("cast %v", c))
	}
	for op := range s.builtins {
		names = append(names, fmt.Sprintf("builtin %+v", op))
	}
	for sym, ops := range s.operators {
		for _, op := range ops {
			names = append(names, fmt.Sprintf("op %s %+v", sym, op))
		}
	}
	for role, p := range s.paths {
		names = append(names, fmt.Sprintf("path %q %q", role, p))
	}
	schemas := make([]string, 0, len(s.schemas))
	for n := range s.schemas {
		schemas = append(schemas, "schema "+n)
	}
	sort.Strings(names)
	sort.Strings(schemas)
	fmt.Fprintln(h, strings.Join(names, "\n"), strings.Join(schemas, "\n"))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// withoutRelations is a copy of s, to be filled with relations (extra
// more than s has), that shares everything else with s. What was derived
// from s is not carried over: it may depend on the relations replaced,
// also for relations kept, since a column's lineage follows parents and
// children.
func (s *Snapshot) withoutRelations(extra int) *Snapshot {
	o := *s
	o.derived = new(sync.Map)
	o.relations = make(map[QualifiedName]*Relation, len(s.relations)+extra)
	o.byName = make(map[string][]*Relation, len(s.byName)+extra)
	o.children = make(map[QualifiedName][]*Relation, len(s.children))
	o.byOID, o.readers = nil, nil
	return &o
}

// Overlay returns a snapshot that describes, for every relation name in
// names, exactly the relations of rels with that name, in place of those s
// holds in any schema; everything else is s's. A session reads what its
// own open transaction changed from the server and sees the database
// through such an overlay: the names its DDL touched mean what the server
// says they mean to it, and the rest what the shared snapshot says. Each
// relation of rels must carry one of names. The overlay's version differs
// from s's whenever it describes anything differently.
func (s *Snapshot) Overlay(names []string, rels []Relation) *Snapshot {
	if len(names) == 0 {
		return s
	}
	replaced := make(map[string]bool, len(names))
	for _, n := range names {
		replaced[n] = true
	}
	// The overlay's relations are found by name only.
	o := s.withoutRelations(len(rels))
	o.schemas = make(map[string]bool, len(s.schemas))
	for name := range s.schemas {
		o.schemas[name] = true
	}
	add := func(r *Relation) {
		o.schemas[r.Schema] = true
		o.relations[QualifiedName{r.Schema, r.Name}] = r
		o.byName[r.Name] = append(o.byName[r.Name], r)
		for _, p := range r.Parents {
			o.children[p] = append(o.children[p], r)
		}
	}
	for _, r := range s.Relations() {
		if !replaced[r.Name] {
			add(r)
		}
	}
	own := make([]Relation, 0, len(rels))
	for _, r := range rels {
		if replaced[r.Name] {
			own = append(own, r)
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "base %s\n", s.version)
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	fmt.Fprintf(h, "names %q\n", sorted)
	for i := range own {
		r := &own[i]
		add(r)
		fmt.Fprintf(h, "rel %s.%s %c %s %v %v %q %q\n", r.Schema, r.Name, r.Kind,
			strings.Join(r.Columns, ","), r.ColumnTypes, r.Parents, r.ViewDefinition, r.DefinitionSearchPath)
	}
	o.version = hex.EncodeToString(h.Sum(nil))[:16]
	return o
}
