package guard

import "testing"

func TestVerdictCacheStaysBounded(t *testing.T) {
	c := newVerdictCache(10)
	k := contextKey{user: "u"}
	tbl := c.forContext(k)
	first := tbl
	for i := 0; i < 35; i++ {
		if tbl.dropped.Load() { // what a session does before its lookup
			tbl = c.forContext(k)
		}
		c.put(tbl, string(rune('a'+i)), &verdict{})
	}
	total := 0
	for _, t := range c.byContext {
		total += len(t.m)
	}
	if total > 10 || len(first.m) != 0 || !first.dropped.Load() {
		t.Fatalf("%d entries kept (bound 10); first table len %d dropped %v", total, len(first.m), first.dropped.Load())
	}
}

func TestConcurrentSessionsAnalyseANewTextOnce(t *testing.T) {
	tbl := &textVerdicts{m: make(map[string]*verdict)}
	f, leader := tbl.join([]byte("SELECT 1"))
	if !leader {
		t.Fatal("first caller does not lead")
	}
	f2, leader2 := tbl.join([]byte("SELECT 1"))
	if leader2 || f2 != f {
		t.Fatal("second caller started its own analysis")
	}
	v := &verdict{cacheable: true}
	go tbl.land("SELECT 1", f, v)
	<-f2.done
	if f2.v != v {
		t.Fatal("follower did not get the leader's verdict")
	}
	if _, leader3 := tbl.join([]byte("SELECT 1")); !leader3 {
		t.Fatal("a landed flight still blocks new analyses")
	}
}
