package catalog

import "testing"

func TestChildrenIndexesParents(t *testing.T) {
	s := New(Contents{Relations: []Relation{
		{Schema: "hr", Name: "employees", Kind: Table, Columns: []string{"id"}},
		{Schema: "hr", Name: "contractors", Kind: Table, Columns: []string{"id", "agency"},
			Parents: []QualifiedName{{"hr", "employees"}}},
		{Schema: "crm", Name: "orders", Kind: PartitionedTable, Columns: []string{"id"}},
		{Schema: "crm", Name: "orders_2026", Kind: Table, Columns: []string{"id"},
			Parents: []QualifiedName{{"crm", "orders"}}},
	}})
	for _, tc := range []struct {
		schema, name string
		want         []string
	}{
		{"hr", "employees", []string{"contractors"}},
		{"crm", "orders", []string{"orders_2026"}},
		{"hr", "contractors", nil},
	} {
		var got []string
		for _, c := range s.Children(tc.schema, tc.name) {
			got = append(got, c.Name)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("Children(%s.%s) = %v, want %v", tc.schema, tc.name, got, tc.want)
		}
	}
}
