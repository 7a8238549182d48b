package guard

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/pgguard/pgguard/proxy"
)

// TestVerdictCacheHoldsWhatItCounts fills the verdict cache with verdicts
// of distinct texts and checks that the heap they hold is within what the
// cache counts for them, so that --verdict-cache-bytes bounds memory: at
// one point parse trees were linked to each other and every verdict held
// two to three times what was counted.
func TestVerdictCacheHoldsWhatItCounts(t *testing.T) {
	s := benchSession(t, "sales_app", "order_fulfilment")
	s.g.cache = newVerdictCache(1 << 30)
	const n = 20000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		text := "SELECT c.email AS a" + strconv.Itoa(i) + ", o.status FROM crm.customers c JOIN crm.orders o ON o.customer_id = c.id WHERE o.id = 5"
		if v := s.ClientMessage(proxy.NewClientMessage('Q', queryBody(text), 0)); v.Action != proxy.Forward {
			t.Fatalf("%s: %+v", text, v)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	counted := s.g.cache.bytes.Load() / n
	t.Logf("per verdict: %d bytes held, %d counted", held, counted)
	if held > counted {
		t.Fatalf("each verdict holds %d bytes of heap, the cache counts %d", held, counted)
	}
	runtime.KeepAlive(s)
}
