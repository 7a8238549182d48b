package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// denyFixture is a proxy with testInterceptor, a table the denied statements
// would write to, and a superuser connection that bypasses the proxy.
type denyFixture struct {
	p     *testProxy
	ti    *testInterceptor
	super *pgx.Conn
	table string
}

func newDenyFixture(t *testing.T) *denyFixture {
	t.Helper()
	pg := sharedPG(t)
	f := &denyFixture{ti: newTestInterceptor(), super: superConn(t, pg), table: uniqueName("deny")}
	if _, err := f.super.Exec(testCtx(t), "CREATE TABLE "+f.table+" (v int); GRANT ALL ON "+f.table+" TO "+appUser); err != nil {
		t.Fatal(err)
	}
	f.p = startProxy(t, proxy.Config{Interceptor: f.ti})
	return f
}

// rows counts the table's rows, straight from PostgreSQL.
func (f *denyFixture) rows(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.super.QueryRow(testCtx(t), "SELECT count(*) FROM "+f.table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// backendState is pg_stat_activity.state of a backend, straight from
// PostgreSQL.
func (f *denyFixture) backendState(t *testing.T, pid uint32) string {
	t.Helper()
	var state string
	if err := f.super.QueryRow(testCtx(t), "SELECT state FROM pg_stat_activity WHERE pid = $1", pid).Scan(&state); err != nil {
		t.Fatal(err)
	}
	return state
}

// wantDenied checks an error is the interceptor's, unchanged.
func wantDenied(t *testing.T, e *pgproto3.ErrorResponse) {
	t.Helper()
	if e.Code != "42501" || e.Severity != "ERROR" || e.SeverityUnlocalized != "ERROR" ||
		e.Message != deniedMessage || !strings.Contains(e.Hint, "purpose") {
		t.Fatalf("denial arrived as %s %s %q (hint %q)", e.Severity, e.Code, e.Message, e.Hint)
	}
}

// TestDenySimpleQuery: a denied simple query gets the interceptor's error and
// nothing of it reaches the database; the session goes on.
func TestDenySimpleQuery(t *testing.T) {
	f := newDenyFixture(t)
	rc := rawStartup(t, f.p.Addr, pgtest.Superuser)
	for _, sql := range []string{
		"INSERT INTO " + f.table + " VALUES (1) -- " + denyMarker,
		"INSERT INTO " + f.table + " VALUES (2); SELECT '" + denyMarker + "'",
	} {
		rc.send(t, &pgproto3.Query{String: sql})
		wantDenied(t, rc.recvError(t))
		if got := rc.untilReady(t); !slices.Equal(got, []string{"Z:I"}) {
			t.Fatalf("after the denial: %v", got)
		}
	}
	if n := f.rows(t); n != 0 {
		t.Fatalf("denied INSERTs reached the database: %d rows", n)
	}
	if got := rc.query(t, "INSERT INTO "+f.table+" VALUES (3)"); !slices.Equal(got, []string{"C:INSERT 0 1", "Z:I"}) {
		t.Fatalf("allowed INSERT: %v", got)
	}
	if n := f.rows(t); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	// Through pgx as well, where the error is a *pgconn.PgError.
	conn := connect(t, f.p.AppURL())
	_, err := conn.Exec(testCtx(t), "INSERT INTO "+f.table+" VALUES ($1) -- "+denyMarker, 4)
	pe := wantPgError(t, err, "42501", deniedMessage)
	if pe.Severity != "ERROR" || pe.Hint == "" {
		t.Fatalf("severity %q hint %q", pe.Severity, pe.Hint)
	}
	if n := f.rows(t); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}

// TestDenyInTransaction: a denial fails the transaction block as an error of
// PostgreSQL's would, and client, pgguard and server agree on the status.
func TestDenyInTransaction(t *testing.T) {
	f := newDenyFixture(t)
	conn := connect(t, f.p.AppURL())
	pc := conn.PgConn()
	ctx := testCtx(t)
	s := f.ti.lastSession(t)
	var pid uint32
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) error {
		_, err := pc.Exec(ctx, sql).ReadAll()
		return err
	}
	agree := func(want byte, state string) {
		t.Helper()
		if pc.TxStatus() != want || s.TxStatus() != want {
			t.Fatalf("client TxStatus %q, pgguard's %q, want %q", pc.TxStatus(), s.TxStatus(), want)
		}
		if got := f.backendState(t, pid); got != state {
			t.Fatalf("server state %q, want %q", got, state)
		}
	}

	for _, end := range []string{"ROLLBACK", "COMMIT"} {
		if err := exec("BEGIN; INSERT INTO " + f.table + " VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		agree('T', "idle in transaction")
		wantPgError(t, exec("INSERT INTO "+f.table+" VALUES (2) -- "+denyMarker), "42501", deniedMessage)
		agree('E', "idle in transaction (aborted)")
		wantPgError(t, exec("SELECT 1"), "25P02")
		// A second denial in the failed block fails as any statement would.
		wantPgError(t, exec("SELECT '"+denyMarker+"'"), "25P02")
		agree('E', "idle in transaction (aborted)")
		res, err := pc.Exec(ctx, end).ReadAll()
		if err != nil || res[0].CommandTag.String() != "ROLLBACK" {
			t.Fatalf("%s of a failed block: %v %v", end, res, err)
		}
		agree('I', "idle")
		if n := f.rows(t); n != 0 {
			t.Fatalf("%d rows survived the failed block", n)
		}
		// The next denial is reported as a denial again.
		wantPgError(t, exec("SELECT '"+denyMarker+"'"), "42501", deniedMessage)
		agree('I', "idle")
	}
}

// extended sends one statement as Parse/Bind/Describe/Execute.
func extended(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: sql},
		&pgproto3.Bind{},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
	}
}

// TestDenyExtendedPipeline: denials in the extended protocol, each statement
// with its own Sync and several under one Sync.
func TestDenyExtendedPipeline(t *testing.T) {
	f := newDenyFixture(t)
	rc := rawStartup(t, f.p.Addr, pgtest.Superuser)
	seq := uniqueName("seq")
	if got := rc.query(t, "CREATE SEQUENCE "+seq); !slices.Equal(got, []string{"C:CREATE SEQUENCE", "Z:I"}) {
		t.Fatal(got)
	}
	readAll := func(n int) []string { // n ReadyForQuery
		var out []string
		for range n {
			out = append(out, rc.untilReady(t)...)
		}
		return out
	}

	t.Run("own_syncs", func(t *testing.T) {
		var msgs []pgproto3.FrontendMessage
		for _, sql := range []string{"SELECT 1", "SELECT '" + denyMarker + "'", "SELECT 3"} {
			msgs = append(append(msgs, extended(sql)...), &pgproto3.Sync{})
		}
		rc.send(t, msgs...)
		want := []string{"1", "2", "T", "D:1", "C:SELECT 1", "Z:I", "E:42501", "Z:I", "1", "2", "T", "D:3", "C:SELECT 1", "Z:I"}
		if got := readAll(3); !slices.Equal(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
	})

	t.Run("one_sync", func(t *testing.T) {
		// Sequences are not transactional, so nextval shows what ran.
		next := "SELECT nextval('" + seq + "')"
		var msgs []pgproto3.FrontendMessage
		msgs = append(msgs, extended(next)...)
		msgs = append(msgs, extended(next+" -- "+denyMarker)...)
		msgs = append(msgs, extended("INSERT INTO "+f.table+" "+next)...)
		msgs = append(msgs, extended(next)...)
		rc.send(t, append(msgs, &pgproto3.Sync{})...)
		want := []string{"1", "2", "T", "D:1", "C:SELECT 1", "E:42501", "Z:I"}
		if got := readAll(1); !slices.Equal(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
		if got := rc.query(t, next); !slices.Equal(got, []string{"T", "D:2", "C:SELECT 1", "Z:I"}) {
			t.Fatalf("the messages after the denial ran: %v", got)
		}
		if n := f.rows(t); n != 0 {
			t.Fatalf("%d rows", n)
		}
	})

	t.Run("one_sync_in_transaction_block", func(t *testing.T) {
		rc.query(t, "BEGIN")
		var msgs []pgproto3.FrontendMessage
		msgs = append(msgs, extended("INSERT INTO "+f.table+" VALUES (1)")...)
		msgs = append(msgs, extended("SELECT '"+denyMarker+"'")...)
		rc.send(t, append(msgs, &pgproto3.Sync{})...)
		want := []string{"1", "2", "n", "C:INSERT 0 1", "E:42501", "Z:E"}
		if got := readAll(1); !slices.Equal(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
		rc.send(t, append(extended("SELECT 1"), &pgproto3.Sync{})...)
		if got := readAll(1); !slices.Equal(got, []string{"E:25P02", "Z:E"}) {
			t.Fatalf("in the failed block: %v", got)
		}
		if got := rc.query(t, "ROLLBACK"); !slices.Equal(got, []string{"C:ROLLBACK", "Z:I"}) {
			t.Fatal(got)
		}
		if n := f.rows(t); n != 0 {
			t.Fatalf("%d rows", n)
		}
	})

	t.Run("after_a_server_error_in_the_batch", func(t *testing.T) {
		// PostgreSQL already skips to Sync, so the client sees its error
		// only; the next denial is still reported as such.
		var msgs []pgproto3.FrontendMessage
		msgs = append(msgs, extended("SELEC 1")...)
		msgs = append(msgs, extended("SELECT '"+denyMarker+"'")...)
		rc.send(t, append(msgs, &pgproto3.Sync{})...)
		if got := readAll(1); !slices.Equal(got, []string{"E:42601", "Z:I"}) {
			t.Fatalf("got %v", got)
		}
		rc.send(t, append(extended("SELECT '"+denyMarker+"'"), &pgproto3.Sync{})...)
		wantDenied(t, rc.recvError(t))
		if got := readAll(1); !slices.Equal(got, []string{"Z:I"}) {
			t.Fatalf("got %v", got)
		}
		// Same after a failed transaction block that swallowed a denial.
		rc.query(t, "BEGIN; SELECT 1/0")
		if got := rc.query(t, "SELECT '"+denyMarker+"'"); !slices.Equal(got, []string{"E:25P02", "Z:E"}) {
			t.Fatalf("denial in a failed block: %v", got)
		}
		rc.query(t, "ROLLBACK")
		rc.send(t, &pgproto3.Query{String: "SELECT '" + denyMarker + "'"})
		wantDenied(t, rc.recvError(t))
		rc.untilReady(t)
	})

	t.Run("flush_without_sync", func(t *testing.T) {
		// A denial answered before Sync arrives: the error comes at Flush,
		// and Sync then ends the batch.
		rc.send(t, append(extended("SELECT '"+denyMarker+"'"), &pgproto3.Flush{})...)
		wantDenied(t, rc.recvError(t))
		rc.send(t, append(extended("SELECT 'skipped'"), &pgproto3.Sync{})...)
		if got := readAll(1); !slices.Equal(got, []string{"Z:I"}) {
			t.Fatalf("got %v", got)
		}
	})

	if got := rc.query(t, "SELECT 'still usable'"); !slices.Equal(got, []string{"T", "D:still usable", "C:SELECT 1", "Z:I"}) {
		t.Fatal(got)
	}
}

// TestDenyEachExtendedMessage: Bind, Describe, Execute and Close can each be
// denied; PostgreSQL's answers up to the denied message arrive, then the
// interceptor's error, then ReadyForQuery at Sync.
func TestDenyEachExtendedMessage(t *testing.T) {
	// Only the portal's name carries the marker.
	const stmt, portal = "stmt", "deny_me_portal"
	batch := []pgproto3.FrontendMessage{
		&pgproto3.Bind{DestinationPortal: portal, PreparedStatement: stmt},
		&pgproto3.Describe{ObjectType: 'P', Name: portal},
		&pgproto3.Execute{Portal: portal},
		&pgproto3.Close{ObjectType: 'P', Name: portal},
		&pgproto3.Sync{},
	}
	cases := []struct {
		typ  byte
		want []string
	}{
		{'B', []string{"E:42501", "Z:I"}},
		{'D', []string{"2", "E:42501", "Z:I"}},
		{'E', []string{"2", "T", "E:42501", "Z:I"}},
		{'C', []string{"2", "T", "D:1", "C:SELECT 1", "E:42501", "Z:I"}},
	}
	for _, tc := range cases {
		t.Run(string(tc.typ), func(t *testing.T) {
			ti := newTestInterceptor()
			ti.deny = func(m proxy.ClientMessage) bool {
				return m.Type == tc.typ && bytes.Contains(m.Body, []byte(denyMarker))
			}
			p := startProxy(t, proxy.Config{Interceptor: ti})
			rc := rawStartup(t, p.Addr, pgtest.Superuser)
			rc.send(t, &pgproto3.Parse{Name: stmt, Query: "SELECT 1"}, &pgproto3.Sync{})
			if got := rc.untilReady(t); !slices.Equal(got, []string{"1", "Z:I"}) {
				t.Fatal(got)
			}
			rc.send(t, batch...)
			var got []string
			for {
				msg := rc.recv(t)
				if e, ok := msg.(*pgproto3.ErrorResponse); ok {
					wantDenied(t, e)
				}
				got = append(got, describe(msg))
				if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
					break
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			// The session and its prepared statement are intact.
			rc.send(t, &pgproto3.Bind{PreparedStatement: stmt}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if got := rc.untilReady(t); !slices.Equal(got, []string{"2", "D:1", "C:SELECT 1", "Z:I"}) {
				t.Fatalf("statement after the denial: %v", got)
			}
		})
	}
}

// TestDenyFunctionCall: the legacy FunctionCall message is subject to the
// interceptor as well.
func TestDenyFunctionCall(t *testing.T) {
	f := newDenyFixture(t)
	rc := rawStartup(t, f.p.Addr, pgtest.Superuser)
	got := rc.query(t, "SELECT 'md5(text)'::regprocedure::oid")
	if len(got) != 4 {
		t.Fatal(got)
	}
	oid, err := strconv.ParseUint(got[1][2:], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	call := func(arg string) *pgproto3.FunctionCall {
		return &pgproto3.FunctionCall{Function: uint32(oid), ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte(arg)}}
	}
	rc.send(t, call("abc"))
	if got := rc.untilReady(t); !slices.Equal(got, []string{"V:900150983cd24fb0d6963f7d28e17f72", "Z:I"}) {
		t.Fatalf("allowed call: %v", got)
	}
	rc.send(t, call(denyMarker))
	wantDenied(t, rc.recvError(t))
	if got := rc.untilReady(t); !slices.Equal(got, []string{"Z:I"}) {
		t.Fatal(got)
	}
	rc.query(t, "BEGIN")
	rc.send(t, call(denyMarker))
	wantDenied(t, rc.recvError(t))
	if got := rc.untilReady(t); !slices.Equal(got, []string{"Z:E"}) {
		t.Fatalf("denied call in a block: %v", got)
	}
	if got := rc.query(t, "ROLLBACK"); !slices.Equal(got, []string{"C:ROLLBACK", "Z:I"}) {
		t.Fatal(got)
	}
}

// TestDenyCopyData: COPY data can be denied too; the COPY fails with the
// interceptor's error and writes nothing.
func TestDenyCopyData(t *testing.T) {
	f := newDenyFixture(t)
	conn := connect(t, f.p.AppURL())
	ctx := testCtx(t)
	for range 2 {
		_, err := conn.PgConn().CopyFrom(ctx, strings.NewReader("1\n2\n-- "+denyMarker+"\n"), "COPY "+f.table+" FROM STDIN")
		wantPgError(t, err, "42501", deniedMessage)
		if n := f.rows(t); n != 0 {
			t.Fatalf("denied COPY wrote %d rows", n)
		}
		// The session goes on, and the next denial is reported as one.
		if _, err := conn.Exec(ctx, "INSERT INTO "+f.table+" VALUES (9)"); err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "SELECT '"+denyMarker+"'")
		wantPgError(t, err, "42501", deniedMessage)
		if _, err := conn.Exec(ctx, "DELETE FROM "+f.table); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDenyAfterExtendedCopy: libpq sends COPY FROM STDIN in the extended
// protocol as Parse/Bind/Describe/Execute/Sync, and another Sync after
// CopyDone; PostgreSQL ignores the first Sync (it arrives in copy-in mode)
// and answers one ReadyForQuery. Denials later in the session must still be
// reported as denials.
func TestDenyAfterExtendedCopy(t *testing.T) {
	f := newDenyFixture(t)
	rc := rawStartup(t, f.p.Addr, pgtest.Superuser)
	rc.send(t, append(extended("COPY "+f.table+" FROM STDIN"), &pgproto3.Sync{})...)
	var got []string
	for {
		msg := rc.recv(t)
		got = append(got, describe(msg))
		if _, ok := msg.(*pgproto3.CopyInResponse); ok {
			break
		}
	}
	rc.send(t, &pgproto3.CopyData{Data: []byte("1\n2\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	got = append(got, rc.untilReady(t)...)
	want := []string{"1", "2", "n", "*pgproto3.CopyInResponse", "C:COPY 2", "Z:I"}
	if !slices.Equal(got, want) {
		t.Fatalf("extended COPY: %v, want %v", got, want)
	}
	for _, denied := range [][]pgproto3.FrontendMessage{
		{&pgproto3.Query{String: "SELECT '" + denyMarker + "'"}},
		append(extended("SELECT '"+denyMarker+"'"), &pgproto3.Sync{}),
	} {
		rc.send(t, denied...)
		wantDenied(t, rc.recvError(t))
		if got := rc.untilReady(t); !slices.Equal(got, []string{"Z:I"}) {
			t.Fatal(got)
		}
	}
	if got := rc.query(t, "SELECT count(*) FROM "+f.table); !slices.Equal(got, []string{"T", "D:2", "C:SELECT 1", "Z:I"}) {
		t.Fatal(got)
	}
}

// TestDenyMessageTypesSeen: the interceptor is asked about every kind of
// client message, and observes the server's state messages.
func TestDenyMessageTypesSeen(t *testing.T) {
	f := newDenyFixture(t)
	conn := connect(t, f.p.AppURL())
	pc := conn.PgConn()
	ctx := testCtx(t)
	if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); err != nil { // Q
		t.Fatal(err)
	}
	if err := pc.ExecParams(ctx, "SELECT $1::int", [][]byte{[]byte("1")}, nil, nil, nil).Read().Err; err != nil { // P B D E S
		t.Fatal(err)
	}
	if _, err := pc.Prepare(ctx, "st", "SELECT 2", nil); err != nil {
		t.Fatal(err)
	}
	if err := pc.Deallocate(ctx, "st"); err != nil { // C
		t.Fatal(err)
	}
	pl := pc.StartPipeline(ctx) // H
	pl.SendQueryParams("SELECT 3", nil, nil, nil, nil)
	pl.SendFlushRequest()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err := pl.GetResults()
	if err != nil {
		t.Fatal(err)
	}
	if rr, ok := res.(*pgconn.ResultReader); !ok || rr.Read().Err != nil {
		t.Fatalf("pipeline result %T", res)
	}
	pl.SendPipelineSync()
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	if res, err := pl.GetResults(); err != nil {
		t.Fatal(err)
	} else if _, ok := res.(*pgconn.PipelineSync); !ok {
		t.Fatalf("want PipelineSync, got %T", res)
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.CopyFrom(ctx, strings.NewReader("5\n"), "COPY "+f.table+" FROM STDIN"); err != nil { // d c
		t.Fatal(err)
	}
	_, err = pc.CopyFrom(ctx, failingReader{}, "COPY "+f.table+" FROM STDIN") // f
	if err == nil {
		t.Fatal("a failing COPY source did not fail the COPY")
	}
	rc := rawStartup(t, f.p.Addr, pgtest.Superuser)
	rc.send(t, &pgproto3.FunctionCall{Function: 1317 /* length(text) */, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("four")}})
	if got := rc.untilReady(t); !slices.Equal(got, []string{"V:4", "Z:I"}) {
		t.Fatal(got)
	}
	seen := f.ti.seenClientTypes()
	for _, typ := range "QPBDESCHdcfF" {
		if !strings.ContainsRune(seen, typ) {
			t.Errorf("the interceptor never saw %q (saw %q)", typ, seen)
		}
	}
	if strings.ContainsRune(seen, 'X') || strings.ContainsRune(seen, 'p') {
		t.Errorf("the interceptor was asked about Terminate or password messages: %q", seen)
	}
	server := f.ti.seenServerTypes()
	for _, typ := range "CEZ" {
		if !strings.ContainsRune(server, typ) {
			t.Errorf("the interceptor never observed server %q (saw %q)", typ, server)
		}
	}
	if strings.Trim(server, "CEZ") != "" {
		t.Errorf("the interceptor observed server messages other than C, E, Z: %q", server)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errFailingReader }

var errFailingReader = errors.New("the COPY source failed")

// TestDenySharedErrorResponse: an interceptor may return the same
// ErrorResponse to many sessions at once (a package-level value); the proxy
// must not write to it. Run under -race.
func TestDenySharedErrorResponse(t *testing.T) {
	shared := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42501", Message: deniedMessage, Hint: "purpose"}
	p := startProxy(t, proxy.Config{Interceptor: sharedErrorInterceptor{shared}})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			conn, err := tryConnect(t, p.AppURL(), nil)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(context.Background())
			for range 20 {
				_, err := conn.Exec(context.Background(), "SELECT '"+denyMarker+"'")
				if pgCode(err) != "42501" {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if shared.SeverityUnlocalized != "" {
		t.Fatalf("the proxy modified the interceptor's ErrorResponse: %+v", shared)
	}
}

type sharedErrorInterceptor struct{ e *pgproto3.ErrorResponse }

func (s sharedErrorInterceptor) OpenSession(context.Context, *proxy.Session) (proxy.SessionInterceptor, error) {
	return s, nil
}

func (s sharedErrorInterceptor) ClientMessage(m proxy.ClientMessage) proxy.Verdict {
	if strings.Contains(messageText(m), denyMarker) {
		return proxy.Verdict{Action: proxy.Deny, Error: s.e}
	}
	return proxy.Allow
}

func (sharedErrorInterceptor) ServerMessage(proxy.ServerMessage) {}
func (sharedErrorInterceptor) Close()                            {}
