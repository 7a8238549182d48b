package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under cmd/pgguard/testdata")

// golden compares got with the file testdata/name, or rewrites the file
// with -update. Paths are from the repository root, where TestMain runs.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("cmd", "pgguard", "testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}
