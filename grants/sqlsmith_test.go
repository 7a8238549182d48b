package grants_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pgguard/pgguard/internal/pgtest"
)

// SQLsmith writes random statements that PostgreSQL accepts, over the
// relations, types, functions and operators of the database it reads:
// shapes no hand-written generator thinks of (LATERAL, TABLESAMPLE, window
// functions over sub-queries, ON CONFLICT, casts of NULL to every type).
// The same oracle judges them: no department pgguard lets run a statement
// may be one PostgreSQL refuses under the department's grants.

// sqlsmithPerSeed is how many statements each seed contributes.
const sqlsmithPerSeed = 100

// sqlsmithStatements is PGGUARD_SQLSMITH_STATEMENTS, or a bounded number
// for CI; seeds 1, 2, ... each give sqlsmithPerSeed of them, so a longer
// run begins with CI's corpus.
func sqlsmithStatements() int {
	if n, err := strconv.Atoi(os.Getenv("PGGUARD_SQLSMITH_STATEMENTS")); err == nil && n > 0 {
		return n
	}
	return 200
}

func TestDifferentialSQLsmith(t *testing.T) {
	if _, err := exec.LookPath("sqlsmith"); err != nil {
		t.Fatal("sqlsmith is not installed (apt-get install -y sqlsmith): ", err)
	}
	// A cluster of its own: SQLsmith picks from the catalog in the order
	// PostgreSQL returns it, which a fresh cluster given the same DDL keeps,
	// so that a seed always gives the same statements.
	o := newOracle(t, pgtest.Start(t, pgtest.Options{}))
	var st tally
	total := sqlsmithStatements()
	for seed := 1; total > 0; seed++ {
		n := min(total, sqlsmithPerSeed)
		total -= n
		for _, sql := range sqlsmith(t, o.pg, seed, n) {
			if o.compare(t, &st, sql) {
				t.Logf("seed %d gave the unsound statement above", seed)
			}
		}
	}
	t.Logf("%s", st)
	if st.dbAllowed == 0 || st.dbRefused == 0 {
		t.Fatalf("the corpus proves little: %s", st)
	}
	if p := st.precision(); p < 0.95 {
		t.Errorf("precision %.1f%%, want at least 95%%", 100*p)
	}
}

// sqlsmith generates n statements with seed over the database, reading its
// schema as the superuser; PostgreSQL's own catalogs are left out, which
// pgguard refuses or allows by name rather than by the policy.
func sqlsmith(t *testing.T, pg *pgtest.Server, seed, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sqlsmith", "--dry-run", "--exclude-catalog",
		"--seed="+strconv.Itoa(seed), "--max-queries="+strconv.Itoa(n),
		"--target="+pg.URL(pgtest.Superuser, "", "postgres"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sqlsmith seed %d: %v\n%s", seed, err, stderr.String())
	}
	stmts, err := pg_query.SplitWithScanner(string(out), true)
	if err != nil {
		t.Fatalf("sqlsmith seed %d wrote what does not split: %v", seed, err)
	}
	if len(stmts) < n {
		t.Fatalf("sqlsmith seed %d gave %d statements, want %d", seed, len(stmts), n)
	}
	return stmts
}
