package authz

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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

var (
	createTable = regexp.MustCompile(`(?i)^CREATE TABLE ([a-z_]+)\.([a-z_]+)`)
	columnLine  = regexp.MustCompile(`^\s+([a-z_]+)\s+[a-z]`)
)

// schemaColumns reads the column names of testdata/schema.sql; a small
// line-based reader is enough for the plain DDL kept there.
func schemaColumns(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cols []string
	table := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := createTable.FindStringSubmatch(line); m != nil {
			table = m[1] + "." + m[2]
			continue
		}
		if strings.HasPrefix(line, ")") {
			table = ""
			continue
		}
		if m := columnLine.FindStringSubmatch(line); m != nil && table != "" && m[1] != "primary" {
			cols = append(cols, table+"."+m[1])
		}
	}
	if len(cols) == 0 {
		t.Fatal("no columns in testdata/schema.sql")
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
