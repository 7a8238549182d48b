package sqldepth

import (
	"encoding/json"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// treeDepth is how deeply pg_query's tree of sql nests, counted in JSON
// objects and arrays: the recursion its walkers go through.
func treeDepth(t testing.TB, sql string) (int, bool) {
	t.Helper()
	js, err := pg.ParseToJSON(sql)
	if err != nil {
		return 0, false
	}
	dec := json.NewDecoder(strings.NewReader(js))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest, true
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
				deepest = max(deepest, depth)
			default:
				depth--
			}
		}
	}
}

// boundHolds is the property the limit rests on: the estimate grows with
// the tree's depth. Every construct and statement seen so far keeps the
// tree within 5 levels per unit, plus 15 for any statement's frame (on
// PostgreSQL 15's grammar, pg_query v6).
func boundHolds(est, depth int) bool { return depth <= 5*(est+1)+15 }

// TestEstimateBoundsTheTree checks the bound on every construct at several
// depths: a construct the estimate counted too little would grow a tree
// deeper than the bound at some depth, long before a stack overflows.
func TestEstimateBoundsTheTree(t *testing.T) {
	for _, c := range append(append([]construct{}, deepConstructs...), flatStatements...) {
		for _, n := range []int{1, 10, 100, 400} {
			sql := c.make(n)
			depth, ok := treeDepth(t, sql)
			if !ok {
				continue
			}
			est, _ := Estimate(sql)
			if !boundHolds(est, depth) {
				t.Errorf("%s, n=%d: tree %d levels deep, estimate %d", c.name, n, depth, est)
			}
		}
	}
}

// FuzzEstimateBound looks for text whose tree outgrows the estimate: any
// statement that parses must keep the bound, whatever it is built of.
func FuzzEstimateBound(f *testing.F) {
	for _, c := range append(append([]construct{}, deepConstructs...), flatStatements...) {
		f.Add(c.make(3))
	}
	f.Add("SELECT x FROM t WHERE a BETWEEN 1 AND 2 AND b IS NOT DISTINCT FROM c")
	f.Add("SELECT ARRAY(SELECT 1)[1:2], (x).y.z, f(VARIADIC ARRAY[1]) OVER (PARTITION BY a ORDER BY b)")
	f.Add("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SEARCH DEPTH FIRST BY n SET o SELECT * FROM r")
	f.Fuzz(func(t *testing.T, sql string) {
		if len(sql) > 4096 || TooDeep(sql) {
			return
		}
		depth, ok := treeDepth(t, sql)
		if !ok {
			return
		}
		if est, _ := Estimate(sql); !boundHolds(est, depth) {
			t.Fatalf("tree %d levels deep, estimate %d: %q", depth, est, sql)
		}
	})
}
