package guard_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/alert"
)

// BenchmarkSelectDuringDDL is the latency of SELECT 1 in one session while
// another session creates and drops a table in a loop (none, temporary,
// or a plain table, in autocommit), directly and through pgguard, one
// after the other for each kind of DDL. Besides ns/op it reports the
// median, the 99th percentile and the longest SELECT 1, and how many
// create-and-drop cycles the other session ran meanwhile. After a plain
// table's DDL pgguard reads the catalog again in the background: the
// SELECT 1, which names no relation, must not wait for it.
func BenchmarkSelectDuringDDL(b *testing.B) {
	w := newWorld(b, alert.ModeEnforce)
	w.pg.MustExec(b, "postgres", `CREATE SCHEMA IF NOT EXISTS owned;
		GRANT USAGE, CREATE ON SCHEMA owned TO finance_app`)
	direct := func(tb testing.TB) *pgx.Conn { return connectDirect(tb, w, "finance_app") }
	through := func(tb testing.TB) *pgx.Conn { return w.connect(tb, "finance_app", "-c pgguard.purpose=invoicing") }
	ddls := []struct{ name, create string }{
		{"none", ""},
		{"temp", "CREATE TEMP TABLE bench_ddl (id int, note text)"},
		{"table", "CREATE TABLE owned.bench_ddl (id int, note text)"},
	}
	targets := []struct {
		name    string
		connect func(testing.TB) *pgx.Conn
	}{{"direct", direct}, {"pgguard", through}}
	ctx := context.Background()
	for _, d := range ddls {
		for _, target := range targets {
			b.Run(fmt.Sprintf("ddl=%s/%s", d.name, target.name), func(b *testing.B) {
				reader := target.connect(b)
				var cycles atomic.Int64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				if d.create != "" {
					writer := target.connect(b)
					drop := "DROP TABLE IF EXISTS owned.bench_ddl"
					if d.name == "temp" {
						drop = "DROP TABLE IF EXISTS pg_temp.bench_ddl"
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
							}
							if _, err := writer.Exec(ctx, d.create); err != nil {
								b.Error(err)
								return
							}
							if _, err := writer.Exec(ctx, drop); err != nil {
								b.Error(err)
								return
							}
							cycles.Add(1)
						}
					}()
				}
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for range b.N {
					start := time.Now()
					if _, err := reader.Exec(ctx, "SELECT 1"); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				close(stop)
				wg.Wait()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
				b.ReportMetric(float64(cycles.Load()), "ddl-cycles")
			})
		}
	}
}

// BenchmarkTouchDuringDDL is the latency of a statement in one session
// that reads a relation another session alters in a loop, in autocommit:
// a table one of whose columns is renamed back and forth, or a view
// replaced by one of two definitions in turn. Directly and through
// pgguard, each with no DDL for reference, and a direct SELECT 1 for the
// round trip; and the same DDL run by another session right before each
// read ("then-read"), so that every read comes after DDL the catalog has
// yet to read, and through pgguard waits for that read. With DDL in a
// loop, through pgguard, most reads arrive after a DDL statement has
// committed and before the catalog has read the relation again. Besides ns/op it reports the median, the 99th
// percentile and the longest read, how many DDL statements the other
// session ran meanwhile, and how many reads pgguard refused (a refusal
// is counted with its latency; a refused DDL statement is sent again).
func BenchmarkTouchDuringDDL(b *testing.B) {
	w := newWorld(b, alert.ModeEnforce)
	w.pg.MustExec(b, "postgres", `CREATE SCHEMA IF NOT EXISTS owned;
		GRANT USAGE, CREATE ON SCHEMA owned TO finance_app;
		DROP TABLE IF EXISTS owned.bench_touch CASCADE; SET ROLE finance_app;
		CREATE TABLE owned.bench_touch (id int PRIMARY KEY, note text);
		INSERT INTO owned.bench_touch VALUES (1, 'one');
		CREATE VIEW owned.bench_touch_v AS SELECT id, note FROM owned.bench_touch WHERE id > 0; RESET ROLE`)
	// The catalog pgguard starts with knows what was created directly.
	w.connect(b, "finance_app", "").Close(context.Background())
	direct := func(tb testing.TB) *pgx.Conn { return connectDirect(tb, w, "finance_app") }
	through := func(tb testing.TB) *pgx.Conn { return w.connect(tb, "finance_app", "-c pgguard.purpose=invoicing") }
	type target struct {
		name    string
		connect func(testing.TB) *pgx.Conn
	}
	both := []target{{"direct", direct}, {"pgguard", through}}
	cases := []struct {
		name, read string
		ddl        [2]string // run in turn
		targets    []target
		// then: the reader's own connection runs each DDL statement,
		// untimed, right before each read, so that every read comes
		// after DDL the catalog has yet to read.
		then bool
	}{
		{"ddl=none/select1", "SELECT 1", [2]string{}, both[:1], false},
		{"ddl=none/table", "SELECT id, note FROM owned.bench_touch WHERE id = 1", [2]string{}, both, false},
		{"ddl=rename-column/table", "SELECT id FROM owned.bench_touch WHERE id = 1", [2]string{
			"ALTER TABLE owned.bench_touch RENAME COLUMN note TO remark",
			"ALTER TABLE owned.bench_touch RENAME COLUMN remark TO note"}, both, false},
		{"ddl=none/view", "SELECT id, note FROM owned.bench_touch_v WHERE id = 1", [2]string{}, both, false},
		{"ddl=replace-view/view", "SELECT id, note FROM owned.bench_touch_v WHERE id = 1", [2]string{
			"CREATE OR REPLACE VIEW owned.bench_touch_v AS SELECT id, note FROM owned.bench_touch WHERE id >= 0",
			"CREATE OR REPLACE VIEW owned.bench_touch_v AS SELECT id, note FROM owned.bench_touch WHERE id > 0"}, both, false},
		{"ddl=rename-column-then-read/table", "SELECT id FROM owned.bench_touch WHERE id = 1", [2]string{
			"ALTER TABLE owned.bench_touch RENAME COLUMN note TO remark",
			"ALTER TABLE owned.bench_touch RENAME COLUMN remark TO note"}, both, true},
		{"ddl=replace-view-then-read/view", "SELECT id, note FROM owned.bench_touch_v WHERE id = 1", [2]string{
			"CREATE OR REPLACE VIEW owned.bench_touch_v AS SELECT id, note FROM owned.bench_touch WHERE id >= 0",
			"CREATE OR REPLACE VIEW owned.bench_touch_v AS SELECT id, note FROM owned.bench_touch WHERE id > 0"}, both, true},
	}
	ctx := context.Background()
	for _, c := range cases {
		for _, target := range c.targets {
			b.Run(c.name+"/"+target.name, func(b *testing.B) {
				reader := target.connect(b)
				var ddls atomic.Int64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				writer := target.connect(b)
				if c.ddl[0] != "" && !c.then {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; ; i++ {
							select {
							case <-stop:
								// Leave the relation as it began.
								if i%2 == 1 {
									_, _ = writer.Exec(ctx, c.ddl[1])
								}
								return
							default:
							}
							if _, err := writer.Exec(ctx, c.ddl[i%2]); isRefusal(err) {
								i-- // do it again
								continue
							} else if err != nil {
								b.Error(err)
								return
							}
							ddls.Add(1)
						}
					}()
				}
				lat := make([]time.Duration, 0, b.N)
				refused := 0
				b.ResetTimer()
				for i := range b.N {
					if c.then {
						b.StopTimer()
						for {
							_, err := writer.Exec(ctx, c.ddl[i%2])
							if err == nil {
								break
							} else if !isRefusal(err) {
								b.Fatal(err)
							}
						}
						ddls.Add(1)
						b.StartTimer()
					}
					start := time.Now()
					if _, err := reader.Exec(ctx, c.read); isRefusal(err) {
						refused++
					} else if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				close(stop)
				wg.Wait()
				if c.then && b.N%2 == 1 {
					_, _ = writer.Exec(ctx, c.ddl[1])
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
				b.ReportMetric(float64(ddls.Load()), "ddl-stmts")
				b.ReportMetric(float64(refused), "refused")
			})
		}
	}
}

// connectDirect opens a session of user straight to w's PostgreSQL,
// bypassing pgguard.
func connectDirect(tb testing.TB, w *world, user string) *pgx.Conn {
	conn, err := pgx.Connect(context.Background(), "postgres://"+user+":"+password+"@"+w.pg.Addr()+"/postgres?sslmode=disable")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
