package sqlscan

import (
	"testing"

	"github.com/pgguard/pgguard/catalog"
)

// typedContents is a database with hstore and citext installed in public
// and a user operator = on text in public: what operator resolution needs.
func typedContents() catalog.Contents {
	const hstore, citext = 90001, 90002
	return catalog.Contents{
		Database: "shop", Complete: true,
		Schemas: []string{"crm", "public"},
		Relations: []catalog.Relation{{Schema: "crm", Name: "t", Kind: catalog.Table,
			Columns: []string{"id", "name", "h", "c"}, ColumnTypes: []uint32{oidInt4, 25, hstore, citext}}},
		Types: []catalog.Type{
			{OID: oidInt4, Schema: "pg_catalog", Name: "int4", Kind: 'b', Category: 'N'},
			{OID: oidInt8, Schema: "pg_catalog", Name: "int8", Kind: 'b', Category: 'N'},
			{OID: 25, Schema: "pg_catalog", Name: "text", Kind: 'b', Category: 'S'},
			{OID: oidUnknown, Schema: "pg_catalog", Name: "unknown", Kind: 'p', Category: 'X'},
			{OID: 2283, Schema: "pg_catalog", Name: "anyelement", Kind: 'p', Category: 'P'},
			{OID: hstore, Schema: "public", Name: "hstore", Kind: 'b', Category: 'U'},
			{OID: citext, Schema: "public", Name: "citext", Kind: 'b', Category: 'S'},
		},
		ImplicitCasts: [][2]uint32{{citext, 25}, {oidInt4, oidInt8}},
		Operators: []catalog.Operator{
			{Schema: "pg_catalog", Name: "=", Left: oidInt4, Right: oidInt4},
			{Schema: "pg_catalog", Name: "=", Left: 25, Right: 25},
			{Schema: "pg_catalog", Name: "<=", Left: oidInt4, Right: oidInt4},
			{Schema: "pg_catalog", Name: ">=", Left: oidInt4, Right: oidInt4},
			{Schema: "pg_catalog", Name: "~~", Left: 25, Right: 25},
			{Schema: "public", Name: "=", Left: hstore, Right: hstore, Extension: "hstore"},
			{Schema: "public", Name: "->", Left: hstore, Right: 25, Extension: "hstore"},
			{Schema: "public", Name: "=", Left: citext, Right: citext, Extension: "citext"},
			{Schema: "public", Name: "~~", Left: citext, Right: citext, Extension: "citext"},
			{Schema: "public", Name: "=", Left: 25, Right: 25},
			{Schema: "public", Name: "=", Left: 2283, Right: oidInt8},
		},
		Functions: []catalog.Function{
			{Schema: "pg_catalog", Name: "lower", BuiltIn: true},
			{Schema: "public", Name: "lower", Extension: "citext", Overloads: []catalog.Signature{{Args: []uint32{citext}}}},
			{Schema: "public", Name: "fmt", Overloads: []catalog.Signature{{Args: []uint32{25, oidInt4}, Defaults: 1}}},
		},
		SearchPaths: map[string][]string{"": {"$user", "public"}},
	}
}

func TestFunctionResolution(t *testing.T) {
	snap := catalog.New(typedContents())
	for sql, ok := range map[string]bool{
		"SELECT lower(name) FROM crm.t":            true,  // text cannot become citext implicitly
		"SELECT lower(name::text) FROM crm.t":      true,  //
		"SELECT lower(c) FROM crm.t":               false, // citext's lower
		"SELECT lower('X') FROM crm.t":             false, // an untyped literal may become citext
		"SELECT lower(id) FROM crm.t":              true,  // no lower takes an int4 implicitly
		"SELECT fmt(id) FROM crm.t":                true,  // int4 cannot become text implicitly
		"SELECT fmt(name) FROM crm.t":              false, // one argument, the second defaulted
		"SELECT fmt(name, id, id) FROM crm.t":      true,  // too many arguments for any overload
		"SELECT fmt(id, id) FROM crm.t":            true,  // int4 cannot become text implicitly
		"SELECT fmt(name, 'x') FROM crm.t":         false,
		"SELECT public.lower(name) FROM crm.t":     false, // named explicitly
		"SELECT lower(name) FROM crm.t WHERE true": true,
	} {
		d := Analyze(sql, snap, defaultContext()).Denial()
		if (d == nil) != ok {
			t.Errorf("%s: denial %v, want allowed %v", sql, d, ok)
		}
	}
}

func TestOperatorResolution(t *testing.T) {
	snap := catalog.New(typedContents())
	trustHstore := func(name string) bool { return name == "hstore" }
	cases := []struct {
		sql     string
		path    []string
		trusted func(string) bool
		ok      bool
	}{
		{"SELECT id FROM crm.t WHERE id = 1", nil, nil, true},            // pg_catalog.=(int4, int4) matches exactly
		{"SELECT id FROM crm.t WHERE id = 10000000000", nil, nil, false}, // int4 = int8: public.=(anyelement, int8) may
		{"SELECT id FROM crm.t WHERE name = $1", nil, nil, false},        // $1 may be sent as int8
		{"SELECT id FROM crm.t WHERE name = 'x'", nil, nil, true},
		{"SELECT id FROM crm.t WHERE name LIKE 'x%'", nil, nil, true},
		{"SELECT id FROM crm.t WHERE name = 'x'::text", nil, nil, true},
		{"SELECT id FROM crm.t WHERE name IN ('a', 'b')", nil, nil, true},
		{"SELECT id FROM crm.t t1 WHERE t1.name = 'x'", nil, nil, true},
		{"SELECT id FROM crm.t WHERE c = 'x'", nil, nil, false},                                 // citext = citext
		{"SELECT id FROM crm.t WHERE name = c", nil, nil, true},                                 // text = citext: citext casts to text, not back
		{"SELECT id FROM crm.t WHERE h = 'a=>1'", nil, nil, false},                              // hstore = hstore
		{"SELECT id FROM crm.t WHERE h = 'a=>1'", nil, trustHstore, true},                       // ... from a trusted extension
		{"SELECT h -> 'a' FROM crm.t", nil, nil, false},                                         // hstore -> text
		{"SELECT h -> 'a' FROM crm.t", nil, trustHstore, true},                                  //
		{"SELECT id FROM crm.t WHERE $1 = $2", nil, nil, false},                                 // could be anything
		{"SELECT id FROM crm.t WHERE name = 'x'", []string{"public", "pg_catalog"}, nil, false}, // public.=(text,text) first
		{"SELECT x FROM (SELECT name AS x FROM crm.t) s WHERE x = 'a'", nil, nil, false},        // the type is not followed
		{"SELECT id FROM crm.t WHERE name OPERATOR(public.=) 'x'", nil, nil, false},
		{"SELECT id FROM crm.t WHERE name OPERATOR(pg_catalog.=) 'x'", nil, nil, true},
	}
	for _, c := range cases {
		ctx := Context{User: "app", SearchPath: []string{"$user", "public"}, ExtensionTrusted: c.trusted}
		if c.path != nil {
			ctx.SearchPath = c.path
		}
		d := Analyze(c.sql, snap, ctx).Denial()
		if (d == nil) != c.ok {
			t.Errorf("%s (path %v): denial %v, want allowed %v", c.sql, ctx.SearchPath, d, c.ok)
		}
	}
	// Without the polymorphic operator, integer comparisons are built-in.
	contents := typedContents()
	contents.Operators = contents.Operators[:len(contents.Operators)-1]
	snap = catalog.New(contents)
	for _, sql := range []string{
		"SELECT id FROM crm.t WHERE id = 1",
		"SELECT id FROM crm.t WHERE id BETWEEN 1 AND 2",
		"SELECT id FROM crm.t WHERE id = 10000000000", // int4 = int8: no exact match, hstore and citext ruled out
		"SELECT id FROM crm.t WHERE name = $1",
		"SELECT id FROM crm.t WHERE $1 = name",
		"SELECT id FROM crm.t WHERE id = $1",
	} {
		if d := Analyze(sql, snap, defaultContext()).Denial(); d != nil {
			t.Errorf("%s: %v", sql, d)
		}
	}
}
