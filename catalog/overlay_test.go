package catalog

import (
	"slices"
	"testing"
)

// TestOverlay: the relations of the overlaid names are exactly those
// given, in every schema; everything else, and the parent-child index, is
// the base's with them; the version tells overlays apart.
func TestOverlay(t *testing.T) {
	base := New(Contents{Relations: []Relation{
		{Schema: "a", Name: "t", Kind: Table, Columns: []string{"x"}},
		{Schema: "b", Name: "t", Kind: Table, Columns: []string{"y"}},
		{Schema: "a", Name: "p", Kind: Table, Columns: []string{"id"}},
		{Schema: "a", Name: "kid", Kind: Table, Columns: []string{"id"}, Parents: []QualifiedName{{"a", "p"}}},
		{Schema: "a", Name: "keep", Kind: Table, Columns: []string{"k"}},
	}})
	tests := []struct {
		name     string
		names    []string
		rels     []Relation
		relation QualifiedName
		want     []string // columns; nil when absent
		children []string // of a.p
	}{
		{"dropped in every schema", []string{"t"}, nil, QualifiedName{"b", "t"}, nil, []string{"kid"}},
		{"altered in one schema", []string{"t"}, []Relation{{Schema: "b", Name: "t", Kind: Table, Columns: []string{"y", "z"}}},
			QualifiedName{"b", "t"}, []string{"y", "z"}, []string{"kid"}},
		{"the other schema's relation goes too", []string{"t"}, []Relation{{Schema: "b", Name: "t", Kind: Table, Columns: []string{"y"}}},
			QualifiedName{"a", "t"}, nil, []string{"kid"}},
		{"created in a new schema", []string{"n"}, []Relation{{Schema: "fresh", Name: "n", Kind: Table, Columns: []string{"c"}}},
			QualifiedName{"fresh", "n"}, []string{"c"}, []string{"kid"}},
		{"detached child", []string{"kid"}, []Relation{{Schema: "a", Name: "kid", Kind: Table, Columns: []string{"id"}}},
			QualifiedName{"a", "kid"}, []string{"id"}, nil},
		{"untouched names stay", []string{"t"}, nil, QualifiedName{"a", "keep"}, []string{"k"}, []string{"kid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base.Overlay(tc.names, tc.rels)
			r, ok := o.Relation(tc.relation.Schema, tc.relation.Name)
			switch {
			case tc.want == nil && ok:
				t.Fatalf("%s is still there", tc.relation)
			case tc.want != nil && (!ok || !slices.Equal(r.Columns, tc.want)):
				t.Fatalf("%s: got %v, %v; want %v", tc.relation, ok, r, tc.want)
			}
			var kids []string
			for _, k := range o.Children("a", "p") {
				kids = append(kids, k.Name)
			}
			if !slices.Equal(kids, tc.children) {
				t.Fatalf("children of a.p: %v, want %v", kids, tc.children)
			}
			if tc.want != nil && !o.HasSchema(tc.relation.Schema) {
				t.Fatalf("schema %s unknown", tc.relation.Schema)
			}
			if o.Version() == base.Version() {
				t.Fatal("the overlay has the base's version")
			}
			// The base is unchanged.
			if r, ok := base.Relation("a", "t"); !ok || !slices.Equal(r.Columns, []string{"x"}) {
				t.Fatal("the base changed")
			}
		})
	}
	dropped := base.Overlay([]string{"t"}, nil)
	altered := base.Overlay([]string{"t"}, []Relation{{Schema: "b", Name: "t", Kind: Table, Columns: []string{"y", "z"}}})
	if dropped.Version() == altered.Version() {
		t.Fatal("two overlays that differ have one version")
	}
	if base.Overlay(nil, nil) != base {
		t.Fatal("an empty overlay is not the base")
	}
}
