package sqlscan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/catalog"
)

// FuzzAnalyze feeds arbitrary text to every entry point. Nothing may panic
// (Analyze's last-resort recovery would show as an internal denial, which
// counts as a failure here), hang, or return a denial whose reason quotes
// the text's literals. Seeds are the golden cases.
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
		start := time.Now()
		for _, cat := range []*catalog.Snapshot{complete, ddl} {
			for _, ctx := range []Context{defaultContext(), {}} {
				r := Analyze(sql, cat, ctx)
				for _, st := range r.Statements {
					if st.Denial != nil && st.Denial.Code == CodeInternal {
						t.Fatalf("internal error on %q: %s", sql, st.Denial.Reason)
					}
				}
			}
		}
		_ = Normalize(sql)
		_ = Fingerprint(sql)
		_ = CheckLexical(sql, "on", "UTF8")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v on %q", d, sql)
		}
	})
}
