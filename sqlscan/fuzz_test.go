package sqlscan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/catalog"
)

// FuzzAnalyze feeds arbitrary text to every entry point, with both test
// catalogs and with a known and an unknown search path. Nothing may panic
// (Analyze's last-resort recovery would show as an internal denial, which
// counts as a failure here) or run for long: the node budget and view
// limits must bound every input. Seeds are the golden cases.
func FuzzAnalyze(f *testing.F) {
	files, _ := filepath.Glob("testdata/cases/*.txt")
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, block := range strings.Split(string(b), "-- name:") {
			sql, _, _ := strings.Cut(block, "-- expect:")
			if _, rest, ok := strings.Cut(sql, "\n"); ok {
				f.Add(rest)
			}
		}
	}
	f.Add("SELECT (((((((((((((((((((1)))))))))))))))))))")
	f.Add("WITH RECURSIVE a AS (SELECT * FROM a) SELECT * FROM a")
	complete, ddl := fixtures(f)
	f.Fuzz(func(t *testing.T, sql string) {
		// The work runs aside so a hang is reported with its input rather
		// than killing the fuzzing worker.
		failure := make(chan string, 1)
		go func() { failure <- exercise(sql, complete, ddl) }()
		select {
		case msg := <-failure:
			if msg != "" {
				t.Fatal(msg)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no result after 20s on %q", sql)
		}
	})
}

// exercise runs every entry point on sql and describes the first broken
// promise, or returns "".
func exercise(sql string, cats ...*catalog.Snapshot) string {
	for _, cat := range cats {
		for _, ctx := range []Context{defaultContext(), {}} {
			for _, st := range Analyze(sql, cat, ctx).Statements {
				if st.Denial != nil && st.Denial.Code == CodeInternal {
					return fmt.Sprintf("internal error on %q: %s", sql, st.Denial.Reason)
				}
			}
		}
	}
	_ = Normalize(sql)
	_ = Fingerprint(sql)
	_ = CheckLexical(sql, "on", "UTF8")
	return ""
}
