package sqlscan

import (
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// attachedCode names the kind of code a statement attaches to the
// database, "" if it attaches none.
//
// Such code runs later inside other statements, under names and on events
// the analysis of those statements cannot see into: a function that
// shadows a built-in, a cast or operator applied implicitly, a trigger or
// rule on every write, a policy expression on every read, a conversion on
// every message. The policy decides who may do this (act ddl on object ddl).
// Plain tables, views, indexes, sequences and schemas attach no code; the
// functions their expressions call are checked where they appear.
func attachedCode(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_CreateFunctionStmt:
		if x.CreateFunctionStmt.GetIsProcedure() {
			return "procedure"
		}
		return "function"
	case *pg.Node_DefineStmt:
		return defineKinds[x.DefineStmt.GetKind()]
	case *pg.Node_AlterTableStmt:
		return alterTableCode(x.AlterTableStmt)
	case *pg.Node_RenameStmt:
		return codeObjects[x.RenameStmt.GetRenameType()]
	case *pg.Node_AlterObjectSchemaStmt:
		return codeObjects[x.AlterObjectSchemaStmt.GetObjectType()]
	case *pg.Node_AlterOwnerStmt:
		return codeObjects[x.AlterOwnerStmt.GetObjectType()]
	case *pg.Node_AlterObjectDependsStmt:
		return codeObjects[x.AlterObjectDependsStmt.GetObjectType()]
	}
	return codeStatements[nodeName(n)]
}

// codeStatements are the statements that attach code whatever they say,
// by their node name.
var codeStatements = map[string]string{
	"AlterFunctionStmt":          "function",
	"CreateCastStmt":             "cast",
	"CompositeTypeStmt":          "type",
	"CreateEnumStmt":             "type",
	"CreateRangeStmt":            "type",
	"AlterEnumStmt":              "type",
	"AlterTypeStmt":              "type",
	"CreateDomainStmt":           "domain",
	"AlterDomainStmt":            "domain",
	"AlterOperatorStmt":          "operator",
	"CreateTrigStmt":             "trigger",
	"RuleStmt":                   "rule",
	"CreatePolicyStmt":           "policy",
	"AlterPolicyStmt":            "policy",
	"CreateEventTrigStmt":        "event trigger",
	"AlterEventTrigStmt":         "event trigger",
	"CreateOpClassStmt":          "operator class",
	"CreateOpFamilyStmt":         "operator family",
	"AlterOpFamilyStmt":          "operator family",
	"CreateConversionStmt":       "conversion",
	"CreateTransformStmt":        "transform",
	"CreatePLangStmt":            "language",
	"CreateExtensionStmt":        "extension",
	"AlterExtensionStmt":         "extension",
	"AlterExtensionContentsStmt": "extension",
	"CreateAmStmt":               "access method",
	// Foreign data: a wrapper's handler is code, and a foreign table or
	// server brings in rows from elsewhere under names no rule classifies.
	"CreateFdwStmt":           "foreign data wrapper",
	"AlterFdwStmt":            "foreign data wrapper",
	"CreateForeignServerStmt": "foreign server",
	"AlterForeignServerStmt":  "foreign server",
	"CreateUserMappingStmt":   "user mapping",
	"AlterUserMappingStmt":    "user mapping",
	"CreateForeignTableStmt":  "foreign table",
	"ImportForeignSchemaStmt": "foreign table",
}

// defineKinds are the CREATE AGGREGATE / OPERATOR / TYPE / TEXT SEARCH
// forms that attach code. Text search dictionaries and configurations only
// combine a parser and template that already exist; collations run none.
var defineKinds = map[pg.ObjectType]string{
	pg.ObjectType_OBJECT_AGGREGATE:  "aggregate",
	pg.ObjectType_OBJECT_OPERATOR:   "operator",
	pg.ObjectType_OBJECT_TYPE:       "type",
	pg.ObjectType_OBJECT_TSPARSER:   "text search parser",
	pg.ObjectType_OBJECT_TSTEMPLATE: "text search template",
}

// codeObjects are the object types whose renaming, moving to another
// schema, change of owner (whose rights a SECURITY DEFINER routine runs
// with) or dependence on an extension changes which code runs where.
var codeObjects = map[pg.ObjectType]string{
	pg.ObjectType_OBJECT_FUNCTION:       "function",
	pg.ObjectType_OBJECT_PROCEDURE:      "procedure",
	pg.ObjectType_OBJECT_ROUTINE:        "function",
	pg.ObjectType_OBJECT_AGGREGATE:      "aggregate",
	pg.ObjectType_OBJECT_OPERATOR:       "operator",
	pg.ObjectType_OBJECT_OPCLASS:        "operator class",
	pg.ObjectType_OBJECT_OPFAMILY:       "operator family",
	pg.ObjectType_OBJECT_CAST:           "cast",
	pg.ObjectType_OBJECT_TYPE:           "type",
	pg.ObjectType_OBJECT_DOMAIN:         "domain",
	pg.ObjectType_OBJECT_TRIGGER:        "trigger",
	pg.ObjectType_OBJECT_RULE:           "rule",
	pg.ObjectType_OBJECT_POLICY:         "policy",
	pg.ObjectType_OBJECT_EVENT_TRIGGER:  "event trigger",
	pg.ObjectType_OBJECT_CONVERSION:     "conversion",
	pg.ObjectType_OBJECT_LANGUAGE:       "language",
	pg.ObjectType_OBJECT_EXTENSION:      "extension",
	pg.ObjectType_OBJECT_TRANSFORM:      "transform",
	pg.ObjectType_OBJECT_FDW:            "foreign data wrapper",
	pg.ObjectType_OBJECT_FOREIGN_SERVER: "foreign server",
	pg.ObjectType_OBJECT_TSPARSER:       "text search parser",
	pg.ObjectType_OBJECT_TSTEMPLATE:     "text search template",
	pg.ObjectType_OBJECT_ACCESS_METHOD:  "access method",
}

// alterTableCode finds the ALTER TABLE forms that attach code: those on a
// composite type, and those that switch triggers or rules on (a disabled
// trigger is code no statement runs until then).
func alterTableCode(s *pg.AlterTableStmt) string {
	if s.GetObjtype() == pg.ObjectType_OBJECT_TYPE {
		return "type"
	}
	for _, c := range s.GetCmds() {
		switch c.GetAlterTableCmd().GetSubtype() {
		case pg.AlterTableType_AT_EnableTrig, pg.AlterTableType_AT_EnableAlwaysTrig,
			pg.AlterTableType_AT_EnableReplicaTrig, pg.AlterTableType_AT_EnableTrigAll,
			pg.AlterTableType_AT_EnableTrigUser:
			return "trigger"
		case pg.AlterTableType_AT_EnableRule, pg.AlterTableType_AT_EnableAlwaysRule,
			pg.AlterTableType_AT_EnableReplicaRule:
			return "rule"
		}
	}
	return ""
}

// AllRelations in Statement.Changes or Context.Unsettled stands for every
// relation name: after a schema is renamed, none is certain.
const AllRelations = "*"

// relationObjects are the object types of relations, whose new name after
// RENAME is a relation name.
var relationObjects = map[pg.ObjectType]bool{
	pg.ObjectType_OBJECT_TABLE: true, pg.ObjectType_OBJECT_VIEW: true, pg.ObjectType_OBJECT_MATVIEW: true,
	pg.ObjectType_OBJECT_SEQUENCE: true, pg.ObjectType_OBJECT_FOREIGN_TABLE: true, pg.ObjectType_OBJECT_INDEX: true,
}

// ddlChanges lists the relation names a DDL statement names, and marks
// them for the statements after it in the same input. Temporary tables
// this input creates are left out: their columns are followed. So are
// names of the session's temporary relations (qualified with pg_temp, or
// unqualified names of its temporary schema, which PostgreSQL finds
// first), whose state the server reports at every confirmation: the
// shared catalog leaves temporary schemas out. Those are still marked for
// the rest of the input. temp reports whether the statement named any.
func (s *session) ddlChanges(n *pg.Node) (names []string, temp bool) {
	switch n.GetNode().(type) {
	case *pg.Node_DropStmt, *pg.Node_RenameStmt, *pg.Node_ViewStmt, *pg.Node_CreateSeqStmt:
		// A temporary table this input created may be gone from here
		// on, renamed, or its name taken by a view or sequence: the
		// name no longer certainly means the table, and is marked
		// like any other name DDL named.
		s.forgetTemps(n)
	}
	add := func(name string, local bool) {
		if name == "" || s.temps[name] != nil {
			return
		}
		if local {
			temp = true
			if s.changed == nil {
				s.changed = map[string]bool{}
			}
			s.changed[name] = true
			return
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	walkMessages(n.ProtoReflect(), func(m proto.Message) bool {
		switch x := m.(type) {
		case *pg.RangeVar:
			add(x.GetRelname(), s.temporary(x))
		case *pg.RenameStmt:
			switch {
			case x.GetRenameType() == pg.ObjectType_OBJECT_SCHEMA:
				// Every name in the schema now means something else.
				add(AllRelations, false)
			case x.GetRelation() != nil && x.GetSubname() == "" && relationObjects[x.GetRenameType()]:
				add(x.GetNewname(), s.temporary(x.GetRelation()))
			}
		case *pg.DropStmt:
			// DROP names its relations as lists of strings, not RangeVars.
			if !relationObjects[x.GetRemoveType()] {
				return true
			}
			for _, o := range x.GetObjects() {
				parts := o.GetList().GetItems()
				if len(parts) == 0 {
					continue
				}
				name := parts[len(parts)-1].GetString_().GetSval()
				rv := &pg.RangeVar{Relname: name}
				if len(parts) == 2 {
					rv.Schemaname = parts[0].GetString_().GetSval()
				} else if len(parts) > 2 {
					rv.Catalogname = parts[0].GetString_().GetSval()
					rv.Schemaname = parts[1].GetString_().GetSval()
				}
				add(name, s.temporary(rv))
			}
		case *pg.SelectStmt, *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.MergeStmt:
			// The query of a view, CREATE TABLE AS or rule reads what it
			// names; the relation it defines is named outside it.
			return false
		}
		return true
	})
	if s.changed == nil && len(names) > 0 {
		s.changed = map[string]bool{}
	}
	for _, name := range names {
		s.changed[name] = true
	}
	return names, temp
}

// forgetTemps drops the temporary tables of this input that n names
// (as a relation or, in DROP, as an object) from those the analysis
// follows.
func (s *session) forgetTemps(n *pg.Node) {
	walkMessages(n.ProtoReflect(), func(m proto.Message) bool {
		switch x := m.(type) {
		case *pg.RangeVar:
			delete(s.temps, x.GetRelname())
		case *pg.RenameStmt:
			delete(s.temps, x.GetNewname())
		case *pg.DropStmt:
			for _, o := range x.GetObjects() {
				if parts := o.GetList().GetItems(); len(parts) > 0 {
					delete(s.temps, parts[len(parts)-1].GetString_().GetSval())
				}
			}
		case *pg.SelectStmt:
			return false // a view's query only reads
		}
		return true
	})
}

// temporary reports whether rv names a relation of the session's
// temporary schema: qualified with it, or unqualified and the name of one
// of its relations, which PostgreSQL finds before the path.
func (s *session) temporary(rv *pg.RangeVar) bool {
	schema := rv.GetSchemaname()
	if schema == "pg_temp" || strings.HasPrefix(schema, "pg_temp_") {
		return true
	}
	return schema == "" && rv.GetCatalogname() == "" && slices.Contains(s.ctx.TempRelations, rv.GetRelname())
}

// walkMessages calls f on m and every message nested in it, except below
// a message for which f returns false.
func walkMessages(m protoreflect.Message, f func(proto.Message) bool) {
	if !f(m.Interface()) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkMessages(l.Get(i).Message(), f)
			}
			return true
		}
		walkMessages(v.Message(), f)
		return true
	})
}

// createsTemp reports whether n creates a temporary table.
func createsTemp(n *pg.Node) bool {
	var rv *pg.RangeVar
	switch x := n.GetNode().(type) {
	case *pg.Node_CreateStmt:
		rv = x.CreateStmt.GetRelation()
	case *pg.Node_CreateTableAsStmt:
		if x.CreateTableAsStmt.GetObjtype() != pg.ObjectType_OBJECT_TABLE {
			return false
		}
		rv = x.CreateTableAsStmt.GetInto().GetRel()
	case *pg.Node_SelectStmt:
		rv = x.SelectStmt.GetIntoClause().GetRel()
	}
	return rv != nil && (rv.GetRelpersistence() == "t" || strings.HasPrefix(rv.GetSchemaname(), "pg_temp"))
}
