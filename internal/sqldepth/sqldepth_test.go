package sqldepth

import (
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// parseAll runs every recursive walker pgguard uses on sql, on a goroutine
// of its own as a session would: a stack overflow ends the test binary.
func parseAll(sql string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = pg.Parse(sql)
		_, _ = pg.Normalize(sql)
		_, _ = pg.Fingerprint(sql)
	}()
	<-done
}

func TestDeepConstructsAreRefused(t *testing.T) {
	for _, c := range deepConstructs {
		t.Run(c.name, func(t *testing.T) {
			// The depth that crashed the process, and far beyond it.
			for _, n := range []int{22_500, 60_000} {
				if !TooDeep(c.make(n)) {
					t.Fatalf("n=%d: not refused", n)
				}
			}
			// The deepest statement of this kind that is let through must
			// go through every walker unharmed.
			n := deepestAllowed(c, 60_000)
			if n < 99 {
				t.Fatalf("refused from n=%d: the estimate is far too coarse", n+1)
			}
			parseAll(c.make(n))
		})
	}
}

// deepestAllowed is the largest n below hi at which TooDeep lets c
// through.
func deepestAllowed(c construct, hi int) int {
	lo := 1
	for lo < hi {
		mid := (lo + hi) / 2
		if TooDeep(c.make(mid)) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo - 1
}

func TestFlatStatementsAreAccepted(t *testing.T) {
	for _, c := range flatStatements {
		t.Run(c.name, func(t *testing.T) {
			sql := c.make(5_000)
			d, ok := Estimate(sql)
			if !ok || d > Limit() {
				t.Fatalf("estimate %d (ok=%v) for a flat statement of %d bytes", d, ok, len(sql))
			}
		})
	}
}

func TestShortTextIsNotScanned(t *testing.T) {
	// Every unit needs a byte: the shortest text that can exceed the
	// limit is Limit+1 bytes of brackets.
	if TooDeep(strings.Repeat("(", Limit()-1)) {
		t.Fatal("text shorter than the limit refused")
	}
	if !TooDeep("SELECT " + strings.Repeat("(", Limit()+1)) {
		t.Fatal("brackets beyond the limit accepted")
	}
}

func TestUnscannableTextIsRefused(t *testing.T) {
	// An unterminated quoted name makes PostgreSQL's scanner fail.
	if !TooDeep(`SELECT "` + strings.Repeat("a", 2*Limit())) {
		t.Fatal("text the scanner rejects was let through")
	}
}

// FuzzDeep builds statements from nesting constructs chosen by the input
// and checks that what TooDeep lets through survives every walker.
func FuzzDeep(f *testing.F) {
	f.Add([]byte{0, 200, 3, 100, 7, 50})
	f.Add([]byte{1, 255, 1, 255, 1, 255, 1, 255})
	f.Add([]byte{16, 90, 18, 90, 12, 90})
	f.Fuzz(func(t *testing.T, spec []byte) {
		if len(spec) > 64 {
			spec = spec[:64]
		}
		sql := "SELECT 1"
		for i := 0; i+1 < len(spec); i += 2 {
			c := deepConstructs[int(spec[i])%len(deepConstructs)]
			inner := c.make(int(spec[i+1]) * 40)
			inner = strings.TrimPrefix(inner, "SELECT ")
			sql = "SELECT (" + inner + ") + (" + strings.TrimPrefix(sql, "SELECT ") + ")"
		}
		if TooDeep(sql) {
			return
		}
		if depth, ok := treeDepth(t, sql); ok {
			if est, _ := Estimate(sql); !boundHolds(est, depth) {
				t.Fatalf("tree %d levels deep, estimate %d: %.200s", depth, est, sql)
			}
		}
		parseAll(sql)
	})
}
