package guard_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/alert"
)

// heapInUse is the heap in use after a full collection.
func heapInUse() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestLongStatementsAreNotKeptAfterTheSession: a session sends distinct
// long statements, allowed and denied, by both protocols. Once it is
// closed, the guard holds next to nothing of their texts: the verdict
// cache keys long texts by hash, alerts carry no long texts, and the
// session's records go with it.
func TestLongStatementsAreNotKeptAfterTheSession(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	const statements, size = 16, 1 << 20
	before := heapInUse()
	conn := w.connect(t, "sales_app", "")
	for i := 0; i < statements; i++ {
		long := strings.Repeat(fmt.Sprint(i%10), size)
		// Each differs from the others outside its literals too, or one
		// verdict would serve them all by their shape.
		allowed := fmt.Sprintf("SELECT length('%s') AS c%d", long, i)
		denied := fmt.Sprintf("SELECT gross_monthly AS c%d FROM hr.salaries WHERE employee_id::text = '%s'", i, long)
		mode := pgx.QueryExecModeSimpleProtocol
		if i%2 == 1 {
			mode = pgx.QueryExecModeExec
		}
		if _, err := conn.Exec(ctx, allowed, mode); err != nil {
			t.Fatalf("allowed statement %d: %v", i, err)
		}
		if _, err := conn.Exec(ctx, denied, mode); err == nil || pgErr(t, err).Code != "42501" {
			t.Fatalf("denied statement %d: %v", i, err)
		}
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	w.hook.waitFor(t, statements)
	held := heapInUse() - before
	t.Logf("heap held after the session: %d KiB; the session sent %d MiB of text", held>>10, 2*statements*size>>20)
	if held > 8<<20 {
		t.Fatalf("the guard holds %d MiB after a session of %d MiB of long statements", held>>20, 2*statements*size>>20)
	}
}

// TestHugeStatementsAreRefusedEarly: a text over --max-statement-size, and
// one within it but with more tokens than --max-statement-tokens, are
// refused with 54000 before they are parsed, allocating a small multiple
// of their size (the client's and the proxy's copies included), by both
// protocols; the session goes on.
func TestHugeStatementsAreRefusedEarly(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	ctx := context.Background()
	chain := func(size int) string {
		head := "SELECT id FROM crm.orders WHERE "
		return head + strings.Repeat("id = 1 OR ", (size-len(head))/10) + "true"
	}
	for name, sql := range map[string]string{
		"12 MB OR chain": chain(12 << 20),
		"3 MB OR chain":  chain(3 << 20),
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			conn := w.connect(t, "sales_app", "")
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := conn.Exec(ctx, sql, mode)
			runtime.ReadMemStats(&after)
			if pe := pgErr(t, err); pe.Code != "54000" {
				t.Fatalf("%s (%v): got %s %q, want 54000", name, mode, pe.Code, pe.Message)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s (%v): %s; %d MiB allocated", name, mode, pgErr(t, err).Message, alloc>>20)
			if alloc > 10*uint64(len(sql)) {
				t.Fatalf("%s: refusing it allocated %d MiB", name, alloc>>20)
			}
			var one int
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("%s: session unusable after the refusal: %v", name, err)
			}
		}
	}
}
