package proxy_test

import (
	"runtime"
	"testing"

	"github.com/pgguard/pgguard/proxy"
)

// TestIdleSessionsHoldLittleMemory opens many idle sessions and checks what
// the heap grew by per session: pooled buffers go back while a session
// waits, so an idle session must not hold its four 32 KiB buffers (it holds
// about 10 KiB; the bound is issue 7's budget for a whole idle connection).
func TestIdleSessionsHoldLittleMemory(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	warm := rawStartup(t, p.Addr, "postgres") // first-use allocations
	defer warm.Close()
	const sessions = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < sessions; i++ {
		rc := rawStartup(t, p.Addr, "postgres")
		defer rc.Close()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The heap also holds this test's own client side of each session.
	perSession := (int64(after.HeapInuse) - int64(before.HeapInuse)) / sessions
	t.Logf("heap per idle session, both ends: %d bytes", perSession)
	if perSession > 64<<10 {
		t.Fatalf("heap per idle session is %d bytes; buffers are not returned while idle", perSession)
	}
}
