package sqlscan

import (
	"strings"
	"testing"

	"github.com/pgguard/pgguard/catalog"
)

// TestSharedColumnsFollowTheSnapshot: a relation's columns are built once
// per snapshot and shared, so an analysis under an overlay (the session's
// own DDL) must not reuse what was built under the snapshot beneath it,
// where the relation's children differ; and an analysis that merges or
// aliases the shared columns must leave them as they were.
func TestSharedColumnsFollowTheSnapshot(t *testing.T) {
	base := catalog.New(catalog.Contents{Database: "app", Relations: []catalog.Relation{
		{Schema: "s", Name: "parent", Kind: catalog.Table, Columns: []string{"a", "b"}},
		{Schema: "s", Name: "old_child", Kind: catalog.Table, Columns: []string{"a", "b"},
			Parents: []catalog.QualifiedName{{Schema: "s", Name: "parent"}}},
	}})
	// The session created new_child, inheriting from parent.
	over := base.Overlay([]string{"new_child"}, []catalog.Relation{
		{Schema: "s", Name: "new_child", Kind: catalog.Table, Columns: []string{"a", "b"},
			Parents: []catalog.QualifiedName{{Schema: "s", Name: "parent"}}},
	})
	ctx := Context{User: "app", SearchPath: []string{"s"}}
	reads := func(cat *catalog.Snapshot, sql string) string {
		t.Helper()
		res := Analyze(sql, cat, ctx)
		if d := res.Denial(); d != nil {
			t.Fatalf("%s: denied: %v", sql, d)
		}
		var out []string
		for _, a := range res.Statements[0].Accesses {
			out = append(out, a.Table+"."+a.Column)
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		name string
		cat  *catalog.Snapshot
		sql  string
		want string
	}{
		{"base", base, "SELECT a FROM parent", "parent.a old_child.a"},
		{"overlay after base", over, "SELECT a FROM parent", "parent.a old_child.a new_child.a"},
		{"ONLY", base, "SELECT a FROM ONLY parent", "parent.a"},
		{"aliased columns", base, "SELECT x FROM parent AS p(x)", "parent.a old_child.a"},
		{"join merging USING columns", base, "SELECT a FROM parent JOIN old_child USING (a)", "parent.a old_child.a parent.a old_child.a"}, // join, then select
		{"base again", base, "SELECT a, b FROM parent", "parent.a old_child.a parent.b old_child.b"},
		{"overlay again", over, "SELECT b FROM parent", "parent.b old_child.b new_child.b"},
	} {
		if got := reads(c.cat, c.sql); got != c.want {
			t.Errorf("%s: %s reads %q, want %q", c.name, c.sql, got, c.want)
		}
	}
}
