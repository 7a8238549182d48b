package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSumFields reads the two /proc formats schedCounts relies on: status
// ("key:\tvalue") and sched ("key   :   value"), and reports what it cannot
// find as -1 rather than as zero.
func TestSumFields(t *testing.T) {
	status := "Name:\tpgguard\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n"
	sched := "pgguard (4242, #threads: 9)\n---------\nse.exec_start                                :      12345.678\nse.nr_migrations                             :                   31\nnr_switches                                  :                  127\n"
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	statusPath, schedPath := write("status", status), write("sched", sched)
	isSwitches := func(k string) bool { return k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches" }
	isMigrations := func(k string) bool { return k == "se.nr_migrations" }

	for _, tc := range []struct {
		name  string
		path  string
		match func(string) bool
		want  int64
	}{
		{"switches from status", statusPath, isSwitches, 127},
		{"migrations from sched", schedPath, isMigrations, 31},
		{"a key the file lacks", statusPath, isMigrations, -1},
		{"a file that does not exist", filepath.Join(dir, "absent"), isSwitches, -1},
	} {
		if got := sumFields(tc.path, tc.match); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}
