package proxy

import "testing"

func TestMayCopy(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want bool
	}{
		{"COPY t FROM STDIN", true},
		{"copy t from stdin", true},
		{"CoPy t FROM STDIN", true},
		{"SELECT 1; copY t FROM STDIN", true},
		{"SELECT 'copy'", true}, // a false alarm only costs a wait
		{"SELECT 1", false},
		{"cop", false},
		{"", false},
		{"SELECT cOp", false},
		{"SELECT \xc3\xa7opy", false}, // ç is not c
		{"COPZ", false},
	} {
		if got := mayCopy([]byte(c.sql)); got != c.want {
			t.Errorf("mayCopy(%q) = %v, want %v", c.sql, got, c.want)
		}
	}
}

func BenchmarkMayCopy(b *testing.B) {
	sql := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND bid IN (SELECT bid FROM pgbench_branches WHERE bbalance > 0) ORDER BY aid LIMIT 10")
	for b.Loop() {
		if mayCopy(sql) {
			b.Fatal("copy")
		}
	}
}
