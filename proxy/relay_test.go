package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// TestRelaySimpleProtocol: multi-statement simple queries, errors and empty
// queries come back exactly as PostgreSQL sends them.
func TestRelaySimpleProtocol(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	rc := rawStartup(t, p.Addr, pgtest.Superuser)
	cases := []struct {
		sql  string
		want []string
	}{
		{"SELECT 1; SELECT 'two', NULL", []string{"T", "D:1", "C:SELECT 1", "T", "D:two,", "C:SELECT 1", "Z:I"}},
		{"", []string{"I", "Z:I"}},
		{"SELEC 1", []string{"E:42601", "Z:I"}},
		{"BEGIN; SELECT 1/0", []string{"C:BEGIN", "E:22012", "Z:E"}},
		{"SELECT 1", []string{"E:25P02", "Z:E"}},
		{"ROLLBACK", []string{"C:ROLLBACK", "Z:I"}},
		{"SELECT g FROM generate_series(1, 3) g", []string{"T", "D:1", "D:2", "D:3", "C:SELECT 3", "Z:I"}},
	}
	for _, tc := range cases {
		if got := rc.query(t, tc.sql); !slices.Equal(got, tc.want) {
			t.Fatalf("%q: got %v, want %v", tc.sql, got, tc.want)
		}
	}
}

// TestRelayExtendedProtocol: parameters, types, NULLs and binary results
// through pgx's extended protocol.
func TestRelayExtendedProtocol(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	conn := connect(t, p.AppURL())
	ctx := testCtx(t)
	var (
		i    int64
		s    string
		b    []byte
		f    float64
		null *string
		ts   time.Time
		arr  []int32
	)
	err := conn.QueryRow(ctx, "SELECT $1::int8 * 2, $2::text || '!', $3::bytea, $4::float8, $5::text, $6::timestamptz, $7::int4[]",
		int64(1)<<40, "héllo", []byte{0, 1, 2, 255}, 3.5, nil, time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC), []int32{1, 2, 3}).
		Scan(&i, &s, &b, &f, &null, &ts, &arr)
	if err != nil {
		t.Fatal(err)
	}
	if i != 1<<41 || s != "héllo!" || !bytes.Equal(b, []byte{0, 1, 2, 255}) || f != 3.5 || null != nil ||
		!ts.Equal(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)) || !slices.Equal(arr, []int32{1, 2, 3}) {
		t.Fatalf("round trip: %v %q %v %v %v %v %v", i, s, b, f, null, ts, arr)
	}
	_, err = conn.Exec(ctx, "SELECT $1::int", "not a number")
	wantPgError(t, err, "22P02")
	rows, err := conn.Query(ctx, "SELECT g, repeat('r', g) FROM generate_series(1, 500) g")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var g int
		var r string
		if err := rows.Scan(&g, &r); err != nil {
			t.Fatal(err)
		}
		n++
		if g != n || len(r) != g {
			t.Fatalf("row %d: %d %d", n, g, len(r))
		}
	}
	if rows.Err() != nil || n != 500 {
		t.Fatalf("rows: %d, %v", n, rows.Err())
	}
}

// TestRelayBatch: a pgx Batch goes out as one pipeline and every result
// comes back in order.
func TestRelayBatch(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	conn := connect(t, p.AppURL())
	batch := &pgx.Batch{}
	for i := range 50 {
		batch.Queue("SELECT $1::int * 10", i)
	}
	br := conn.SendBatch(testCtx(t), batch)
	for i := range 50 {
		var got int
		if err := br.QueryRow().Scan(&got); err != nil || got != i*10 {
			t.Fatalf("batch item %d: %d, %v", i, got, err)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRelayPipeline: several extended queries before one Sync.
func TestRelayPipeline(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	conn := connect(t, p.AppURL())
	pl := conn.PgConn().StartPipeline(testCtx(t))
	pl.SendPrepare("pl_stmt", "SELECT $1::text || '-prepared'", nil)
	pl.SendQueryParams("SELECT $1::int + 1", [][]byte{[]byte("41")}, nil, nil, nil)
	pl.SendQueryParams("SELECT 'second'", nil, nil, nil, nil)
	pl.SendQueryPrepared("pl_stmt", [][]byte{[]byte("third")}, nil, nil)
	pl.SendPipelineSync()
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		res, err := pl.GetResults()
		if err != nil {
			t.Fatal(err)
		}
		if res == nil {
			break
		}
		switch r := res.(type) {
		case *pgconn.StatementDescription:
			got = append(got, fmt.Sprintf("prepared:%d", len(r.ParamOIDs)))
		case *pgconn.ResultReader:
			rr := r.Read()
			if rr.Err != nil {
				t.Fatal(rr.Err)
			}
			got = append(got, string(rr.Rows[0][0]))
		case *pgconn.PipelineSync:
			got = append(got, "sync")
		}
		if got[len(got)-1] == "sync" {
			break
		}
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"prepared:1", "42", "second", "third-prepared", "sync"}
	if !slices.Equal(got, want) {
		t.Fatalf("pipeline results %v, want %v", got, want)
	}
}

// TestRelayPreparedStatementReuse: one prepared statement, 1,000 executions.
func TestRelayPreparedStatementReuse(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	conn := connect(t, p.AppURL())
	ctx := testCtx(t)
	if _, err := conn.Prepare(ctx, "sq", "SELECT $1::int8 * $1::int8"); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for i := int64(1); i <= 1000; i++ {
		var sq int64
		if err := conn.QueryRow(ctx, "sq", i).Scan(&sq); err != nil {
			t.Fatalf("execution %d: %v", i, err)
		}
		sum += sq
	}
	if want := int64(1000 * 1001 * 2001 / 6); sum != want {
		t.Fatalf("sum of squares %d, want %d", sum, want)
	}
}

// TestRelayCopy: COPY FROM STDIN and COPY TO STDOUT, byte for byte.
func TestRelayCopy(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	conn := connect(t, p.AppURL())
	ctx := testCtx(t)
	table := uniqueName("copy")
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (id int PRIMARY KEY, name text, note text)"); err != nil {
		t.Fatal(err)
	}
	const rows = 20000
	src := make([][]any, rows)
	for i := range src {
		var note any
		if i%7 != 0 {
			note = strings.Repeat("n", i%50) + "\t\\tab"
		}
		src[i] = []any{i, fmt.Sprintf("name-%d-ü", i), note}
	}
	n, err := conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "name", "note"}, pgx.CopyFromRows(src))
	if err != nil || n != rows {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}

	// Text COPY FROM through pgconn, including an error mid-stream.
	input := "100000\tx\t\\N\n100001\ty\tz\n"
	tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(input), "COPY "+table+" FROM STDIN")
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("text CopyFrom: %v, %v", tag, err)
	}
	_, err = conn.PgConn().CopyFrom(ctx, strings.NewReader("1\tdup\tdup\n"), "COPY "+table+" FROM STDIN")
	wantPgError(t, err, "23505")

	var out bytes.Buffer
	tag, err = conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT * FROM "+table+" ORDER BY id) TO STDOUT")
	if err != nil || tag.RowsAffected() != rows+2 {
		t.Fatalf("CopyTo: %v, %v", tag, err)
	}
	// The same COPY straight from PostgreSQL is the reference.
	direct := connect(t, sharedPG(t).URL(appUser, appPassword, "postgres"))
	var ref bytes.Buffer
	if _, err := direct.PgConn().CopyTo(ctx, &ref, "COPY (SELECT * FROM "+table+" ORDER BY id) TO STDOUT"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), ref.Bytes()) || out.Len() < rows*10 {
		t.Fatalf("COPY TO through pgguard differs from PostgreSQL's (%d vs %d bytes)", out.Len(), ref.Len())
	}
	if !strings.HasPrefix(out.String(), "0\tname-0-ü\t\\N\n1\tname-1-ü\tn\\t\\\\tab\n") {
		t.Fatalf("COPY TO starts %q", out.String()[:40])
	}
}

// TestRelayNotices: NOTICE messages reach pgx's OnNotice, in order, with the
// statement's result.
func TestRelayNotices(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	var mu sync.Mutex
	var notices []string
	conn := connectWith(t, p.AppURL(), func(cfg *pgx.ConnConfig) {
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			notices = append(notices, n.Severity+":"+n.Message)
			mu.Unlock()
		}
	})
	if _, err := conn.Exec(testCtx(t), `DO $$ BEGIN
		RAISE NOTICE 'first %', 1; RAISE WARNING 'second'; RAISE NOTICE 'third'; END $$`); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"NOTICE:first 1", "WARNING:second", "NOTICE:third"}
	if !slices.Equal(notices, want) {
		t.Fatalf("notices %v, want %v", notices, want)
	}
}

// TestRelayListenNotify: notifications between two sessions through
// pgguard, delivered while the listener is idle. They are relayed as
// PostgreSQL sent them, so the pid they carry is the notifier's backend pid
// (pg_backend_pid()), not the key pgguard gave the notifier.
func TestRelayListenNotify(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	listener := connect(t, p.AppURL())
	notifier := connect(t, p.AppURL())
	ctx := testCtx(t)
	channel := uniqueName("chan")
	if _, err := listener.Exec(ctx, "LISTEN "+channel); err != nil {
		t.Fatal(err)
	}
	var notifierPID uint32
	if err := notifier.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&notifierPID); err != nil {
		t.Fatal(err)
	}
	for i, payload := range []string{"hello", "wörld", strings.Repeat("p", 7000)} {
		if _, err := notifier.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload); err != nil {
			t.Fatal(err)
		}
		n, err := listener.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		if n.Channel != channel || n.Payload != payload || n.PID != notifierPID {
			t.Fatalf("notification %d: %q %q from %d", i, n.Channel, n.Payload[:min(len(n.Payload), 20)], n.PID)
		}
	}
}

// TestRelayParameterStatus: the proxy's Session follows ParameterStatus.
func TestRelayParameterStatus(t *testing.T) {
	ti := newTestInterceptor()
	p := startProxy(t, proxy.Config{Interceptor: ti})
	conn := connect(t, p.AppURL())
	ctx := testCtx(t)
	s := ti.lastSession(t)
	if s.Parameter("server_version") == "" || s.Parameter("client_encoding") != "UTF8" {
		t.Fatalf("startup parameters not tracked: %q %q", s.Parameter("server_version"), s.Parameter("client_encoding"))
	}
	for _, name := range []string{"report-one", "report-two"} {
		if _, err := conn.Exec(ctx, "SET application_name = '"+name+"'"); err != nil {
			t.Fatal(err)
		}
		// pgguard records the report before it forwards ReadyForQuery.
		if got := s.Parameter("application_name"); got != name {
			t.Fatalf("Session.Parameter(application_name) = %q, want %q", got, name)
		}
		if got := conn.PgConn().ParameterStatus("application_name"); got != name {
			t.Fatalf("the client saw application_name %q", got)
		}
	}
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if s.TxStatus() != 'T' {
		t.Fatalf("Session.TxStatus = %q inside a transaction", s.TxStatus())
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if s.TxStatus() != 'I' {
		t.Fatalf("Session.TxStatus = %q after COMMIT", s.TxStatus())
	}
}

// TestRelayConcurrentSessions: 100 sessions at once, each running its own
// queries, all get their own right answers.
func TestRelayConcurrentSessions(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	const sessions, queries = 100, 20
	var wg sync.WaitGroup
	var failures atomic.Int64
	errs := make(chan error, sessions)
	for s := range sessions {
		wg.Go(func() {
			conn, err := tryConnect(t, p.AppURL(), nil)
			if err != nil {
				failures.Add(1)
				errs <- fmt.Errorf("session %d connect: %w", s, err)
				return
			}
			defer conn.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			for q := range queries {
				var got string
				var n int
				err := conn.QueryRow(ctx, "SELECT $1::text, count(*) FROM generate_series(1, $2::int)",
					fmt.Sprintf("s%d-q%d", s, q), s+q).Scan(&got, &n)
				if err != nil || got != fmt.Sprintf("s%d-q%d", s, q) || n != s+q {
					failures.Add(1)
					errs <- fmt.Errorf("session %d query %d: %q %d %v", s, q, got, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if failures.Load() != 0 {
		t.Fatalf("%d sessions failed", failures.Load())
	}
}

// TestRelayLargeResultStreams: a result of over 100 MB streams through
// pgguard in bounded memory, every byte arriving.
func TestRelayLargeResultStreams(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	rc := rawStartup(t, p.Addr, pgtest.Superuser)
	_ = rc.SetDeadline(time.Now().Add(3 * testTimeout))

	const rows, width = 110000, 1000
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	rc.send(t, &pgproto3.Query{String: fmt.Sprintf("SELECT repeat('x', %d) FROM generate_series(1, %d)", width, rows)})
	var dataBytes, dataRows int64
	var tag string
loop:
	for {
		msg := rc.recv(t)
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			dataRows++
			for _, v := range m.Values {
				dataBytes += int64(len(v))
			}
		case *pgproto3.CommandComplete:
			tag = string(m.CommandTag)
		case *pgproto3.ReadyForQuery:
			break loop
		case *pgproto3.RowDescription:
		default:
			t.Fatalf("unexpected %s", describe(msg))
		}
	}
	close(stop)
	<-sampled

	if dataRows != rows || dataBytes != rows*width || tag != fmt.Sprintf("SELECT %d", rows) {
		t.Fatalf("got %d rows, %d bytes, tag %q; want %d rows, %d bytes", dataRows, dataBytes, tag, rows, rows*width)
	}
	const limit = 48 << 20
	if peak.Load() >= limit {
		t.Fatalf("heap in use peaked at %d MB while streaming %d MB", peak.Load()>>20, dataBytes>>20)
	}
	t.Logf("streamed %d MB; heap in use peaked at %d MB", dataBytes>>20, peak.Load()>>20)
}

// TestRelayChoice: plain sessions go to the event loops unless they are
// switched off; a TLS session always relays on its own goroutines.
func TestRelayChoice(t *testing.T) {
	serverTLS, _ := proxyTLS(t)
	cases := []struct {
		name    string
		cfg     proxy.Config
		sslmode string
		want    int64
	}{
		{"plain", proxy.Config{}, "disable", 1},
		{"plain_loops_off", proxy.Config{EventLoops: -1}, "disable", 0},
		{"tls_client", proxy.Config{TLS: serverTLS}, "require", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, tc.cfg)
			conn := connect(t, p.URL(appUser, appPassword, "postgres", "sslmode="+tc.sslmode))
			var n int
			if err := conn.QueryRow(testCtx(t), "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
				t.Fatalf("SELECT 41 + 1 = %d, %v", n, err)
			}
			want := tc.want
			if onGoroutines() {
				want = 0
			}
			if got := proxy.LoopedSessions(p.Srv); got != want {
				t.Fatalf("sessions on an event loop: %d, want %d", got, want)
			}
		})
	}
}

// TestRelayBackPressure: a client that stops reading a large result makes
// pgguard stop reading the server, instead of buffering the result; once the
// client reads again, every row arrives.
func TestRelayBackPressure(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	rc := rawStartup(t, p.Addr, pgtest.Superuser)
	_ = rc.SetDeadline(time.Now().Add(3 * testTimeout))
	const rows, width = 64000, 1000 // about 64 MiB
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rc.send(t, &pgproto3.Query{String: fmt.Sprintf("SELECT repeat('y', %d) FROM generate_series(1, %d)", width, rows)})
	// Long enough for PostgreSQL to produce the whole result, had pgguard
	// kept reading it.
	time.Sleep(time.Second)
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapInuse) - int64(before.HeapInuse); grew > 16<<20 {
		t.Fatalf("heap grew by %d bytes while the client did not read: the result is being buffered", grew)
	}
	var got int
	for {
		msg := rc.recv(t)
		if _, ok := msg.(*pgproto3.DataRow); ok {
			got++
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if got != rows {
		t.Fatalf("received %d rows, want %d", got, rows)
	}
}
