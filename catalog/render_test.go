package catalog_test

import (
	"fmt"
	"strings"

	"github.com/pgguard/pgguard/catalog"
)

// render prints what a snapshot knows about the schemas kept by keep, one
// fact a line, in a stable order: the golden files' format, and what the
// live and DDL loaders are compared on.
func render(s *catalog.Snapshot, keep func(schema string) bool, withDefinitions bool) string {
	var b strings.Builder
	for _, name := range s.Schemas() {
		if keep(name) {
			fmt.Fprintf(&b, "schema %s\n", name)
		}
	}
	for _, r := range s.Relations() {
		if !keep(r.Schema) {
			continue
		}
		fmt.Fprintf(&b, "%c %s.%s (%s)", r.Kind, r.Schema, r.Name, strings.Join(r.Columns, ", "))
		if len(r.Parents) > 0 {
			fmt.Fprintf(&b, " parents %v", r.Parents)
		}
		b.WriteString("\n")
		if withDefinitions && r.ViewDefinition != "" {
			fmt.Fprintf(&b, "  as %q under %q\n", r.ViewDefinition, r.DefinitionSearchPath)
		}
	}
	for _, f := range s.Functions() {
		if keep(f.Schema) {
			fmt.Fprintf(&b, "function %s.%s %s builtin=%v\n", f.Schema, f.Name, f.Language, f.BuiltIn)
		}
	}
	for _, op := range s.Operators() {
		if keep(op.Schema) {
			fmt.Fprintf(&b, "operator %s %s\n", op.Schema, op.Name)
		}
	}
	return b.String()
}

func userSchema(name string) bool {
	return name != "pg_catalog" && name != "information_schema"
}
