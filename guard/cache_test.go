package guard

import (
	"fmt"
	"strings"
	"testing"
)

// cachedBytes sums what the cache's entries count, checking that no key
// keeps a long text.
func cachedBytes(t *testing.T, c *verdictCache) (n int64, entries int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tbl := range c.byContext {
		for k, e := range tbl.short {
			if len(k) > keyTextMax {
				t.Fatalf("a key of %d bytes is kept", len(k))
			}
			n, entries = n+e.size, entries+1
		}
		for _, e := range tbl.long {
			n, entries = n+e.size, entries+1
		}
	}
	return n, entries
}

// TestVerdictCacheStaysBoundedInBytes fills a small cache from many
// contexts with short and long texts and denials holding text: the bytes
// held never pass the bound, and what the cache counts is what it holds.
func TestVerdictCacheStaysBoundedInBytes(t *testing.T) {
	const max = 256 << 10
	c := newVerdictCache(max)
	var reported int64
	c.onSize = func(n int64) { reported = n }
	for i := 0; i < 3000; i++ {
		k := contextKey{user: fmt.Sprint("u", i%7)}
		tbl := c.forContext(k)
		text := fmt.Sprintf("SELECT %d", i)
		if i%3 == 0 {
			text += strings.Repeat(" ", 8<<10) // keyed by its hash
		}
		v := &verdict{}
		if i%5 == 0 {
			v.denied = &denial{statement: strings.Repeat("x", 2000)}
		}
		c.put(tbl, keyOf([]byte(text)), v)
		if got := tbl.get([]byte(text)); got != v && !tbl.dropped.Load() {
			t.Fatalf("entry %d not found right after put", i)
		}
		if c.bytes.Load() > max {
			t.Fatalf("after %d puts the cache holds %d bytes, bound %d", i+1, c.bytes.Load(), max)
		}
	}
	n, entries := cachedBytes(t, c)
	if n != c.bytes.Load() || reported != n {
		t.Fatalf("entries hold %d bytes; the cache counts %d and reported %d", n, c.bytes.Load(), reported)
	}
	if entries < 100 {
		t.Fatalf("only %d entries kept in %d bytes", entries, max)
	}
}

// TestVerdictCacheKeepsWhatIsUsed: when the cache is full it lets go of
// entries not looked up since the last sweep, not of everything: a text
// in steady use stays cached however many others pass through.
func TestVerdictCacheKeepsWhatIsUsed(t *testing.T) {
	c := newVerdictCache(64 << 10)
	hotCtx := c.forContext(contextKey{user: "hot"})
	hot := &verdict{}
	c.put(hotCtx, keyOf([]byte("SELECT hot")), hot)
	for i := 0; i < 5000; i++ {
		tbl := c.forContext(contextKey{user: fmt.Sprint("cold", i%3)})
		c.put(tbl, keyOf([]byte(fmt.Sprint("SELECT ", i))), &verdict{})
		if i%50 == 0 && hotCtx.get([]byte("SELECT hot")) != hot {
			t.Fatalf("the text in use was dropped after %d other texts", i)
		}
	}
	if hotCtx.dropped.Load() {
		t.Fatal("the table in use was let go of")
	}
}

// TestLongTextsAreKeyedByHash: a long text is found again by its hash and
// length, and another text of the same length is not.
func TestLongTextsAreKeyedByHash(t *testing.T) {
	c := newVerdictCache(1 << 20)
	tbl := c.forContext(contextKey{})
	a := "SELECT '" + strings.Repeat("a", 4000) + "'"
	b := "SELECT '" + strings.Repeat("a", 3999) + "b'"
	v := &verdict{}
	c.put(tbl, keyOf([]byte(a)), v)
	if tbl.get([]byte(a)) != v || tbl.get([]byte(b)) != nil {
		t.Fatal("long text lookup by hash failed")
	}
	if len(tbl.short) != 0 || len(tbl.long) != 1 {
		t.Fatalf("short %d, long %d entries", len(tbl.short), len(tbl.long))
	}
}

func TestConcurrentSessionsAnalyseANewTextOnce(t *testing.T) {
	tbl := newVerdictCache(1 << 20).forContext(contextKey{})
	k := keyOf([]byte("SELECT 1"))
	f, leader := tbl.join(k)
	if !leader {
		t.Fatal("first caller does not lead")
	}
	f2, leader2 := tbl.join(keyOf([]byte("SELECT 1")))
	if leader2 || f2 != f {
		t.Fatal("second caller started its own analysis")
	}
	v := &verdict{cacheable: true}
	go tbl.land(k, f, v)
	<-f2.done
	if f2.v != v {
		t.Fatal("follower did not get the leader's verdict")
	}
	if _, leader3 := tbl.join(k); !leader3 {
		t.Fatal("a landed flight still blocks new analyses")
	}
}
