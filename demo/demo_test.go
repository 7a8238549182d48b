package demo

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFakeBSNsFailTheElevenTest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		if b := fakeBSN(r); len(b) != 9 || ValidBSN(b) {
			t.Fatalf("fakeBSN gave %q, valid=%v", b, ValidBSN(b))
		}
	}
	// 123456782 is the textbook example of a number that passes.
	for _, tc := range []struct {
		bsn  string
		want bool
	}{{"123456782", true}, {"123456789", false}, {"12345678", false}, {"12345678a", false}} {
		if got := ValidBSN(tc.bsn); got != tc.want {
			t.Errorf("ValidBSN(%q) = %v, want %v", tc.bsn, got, tc.want)
		}
	}
}

func TestSetupSQLIsDeterministicAndSized(t *testing.T) {
	a, b := SetupSQL(), SetupSQL()
	if a != b {
		t.Fatal("two calls gave different data")
	}
	if n := strings.Count(a, "@example.nl'"); n != 2000 {
		t.Fatalf("%d customer e-mail addresses, want 2000", n)
	}
	for _, l := range Logins {
		if !strings.Contains(a, "CREATE ROLE "+l.User+" LOGIN") {
			t.Fatalf("no login for %s", l.User)
		}
	}
}
