package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedUpToDate fails when decode_gen.go is not what the
// generator writes for the pg_query_go in go.mod: after an update of
// pg_query_go, run go generate in internal/pgtree.
func TestGeneratedUpToDate(t *testing.T) {
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../decode_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/pgtree/decode_gen.go is stale: run go generate ./internal/pgtree")
	}
}
