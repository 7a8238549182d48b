package authz

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pgguard/pgguard/catalog"
)

// Paths of the shipped example, relative to this package.
var (
	shippedModel  = filepath.Join("..", "model.conf")
	shippedPolicy = filepath.Join("..", "policy.csv")
)

// loadShipped loads the example policy at the repository root.
func loadShipped(t testing.TB, opts Options) *Policy {
	t.Helper()
	p, err := Load(shippedModel, shippedPolicy, opts)
	if err != nil {
		t.Fatalf("load shipped policy: %v", err)
	}
	return p
}

// schemaColumns lists the columns of the demo schema, the one the shipped
// policy is written for, as PostgreSQL's parser reads it.
func schemaColumns(t testing.TB) []string {
	t.Helper()
	ddl, err := os.ReadFile(filepath.Join("..", "demo", "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.FromDDL("postgres", string(ddl))
	if err != nil {
		t.Fatal(err)
	}
	cols := snap.Columns()
	if len(cols) == 0 {
		t.Fatal("no columns in demo/schema.sql")
	}
	return cols
}

// writeFile writes data to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readFile returns the content of path.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
