package proxy_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// rewriteInterceptor is testInterceptor whose sessions rewrite errors: a
// detail that names the key 42 becomes a long text, one that names the key
// 7 is dropped, and every other error passes unchanged.
type rewriteInterceptor struct {
	*testInterceptor
	mu   sync.Mutex
	seen []string // messages of the errors RewriteError was asked about
}

// longDetail is longer than any detail the server writes in these tests, so
// the rewritten frame grows.
var longDetail = "rewritten: " + strings.Repeat("withheld ", 200)

func (ri *rewriteInterceptor) OpenSession(ctx context.Context, s *proxy.Session) (proxy.SessionInterceptor, error) {
	si, err := ri.testInterceptor.OpenSession(ctx, s)
	if err != nil {
		return nil, err
	}
	return &rewriteSession{testSession: si.(*testSession), ri: ri}, nil
}

type rewriteSession struct {
	*testSession
	ri *rewriteInterceptor
}

var _ proxy.ErrorRewriter = (*rewriteSession)(nil)

func (rs *rewriteSession) RewriteError(body []byte, _ proxy.ErrorFields) ([]byte, bool) {
	var e pgproto3.ErrorResponse
	if err := e.Decode(body); err != nil {
		return nil, false
	}
	rs.ri.mu.Lock()
	rs.ri.seen = append(rs.ri.seen, e.Message)
	rs.ri.mu.Unlock()
	switch {
	case strings.Contains(e.Detail, "=(42)"):
		e.Detail = longDetail
	case strings.Contains(e.Detail, "=(7)"):
		e.Detail = ""
	default:
		return nil, false
	}
	out, err := e.Encode(nil)
	if err != nil {
		return nil, false
	}
	return out[5:], true
}

func (ri *rewriteInterceptor) seenMessages() []string {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return append([]string(nil), ri.seen...)
}

// TestErrorRewriterReplacesServerErrors: the rewritten error reaches the
// client with its frame resized, pipelined messages around it stay intact,
// errors the rewriter declines pass exactly as the server sent them, and
// pgguard's own denials are never offered to it.
func TestErrorRewriterReplacesServerErrors(t *testing.T) {
	pg := sharedPG(t)
	table := uniqueName("rewrite")
	pg.MustExec(t, "postgres", "CREATE TABLE "+table+" (k int PRIMARY KEY); INSERT INTO "+table+" VALUES (42), (7)")
	ri := &rewriteInterceptor{testInterceptor: newTestInterceptor()}
	p := startProxy(t, proxy.Config{Interceptor: ri})
	rc := rawStartup(t, p.Addr, pgtest.Superuser)

	// Simple protocol: a grown error, then a shrunk one, then a row.
	rc.send(t, &pgproto3.Query{String: "INSERT INTO " + table + " VALUES (42)"},
		&pgproto3.Query{String: "INSERT INTO " + table + " VALUES (7)"},
		&pgproto3.Query{String: "SELECT 'after'"})
	grown := rc.recvError(t)
	if grown.Code != "23505" || grown.Detail != longDetail || grown.ConstraintName != table+"_pkey" {
		t.Fatalf("grown: %s %q detail %.40q constraint %q", grown.Code, grown.Message, grown.Detail, grown.ConstraintName)
	}
	if got := rc.untilReady(t); !reflect.DeepEqual(got, []string{"Z:I"}) {
		t.Fatalf("after the grown error: %v", got)
	}
	shrunk := rc.recvError(t)
	if shrunk.Code != "23505" || shrunk.Detail != "" || shrunk.TableName != table {
		t.Fatalf("shrunk: %s detail %q table %q", shrunk.Code, shrunk.Detail, shrunk.TableName)
	}
	rc.untilReady(t)
	if got := rc.untilReady(t); !reflect.DeepEqual(got, []string{"T", "D:after", "C:SELECT 1", "Z:I"}) {
		t.Fatalf("after the shrunk error: %v", got)
	}

	// Extended protocol, pipelined: the error and what follows its Sync.
	rc.send(t, &pgproto3.Parse{Query: "INSERT INTO " + table + " VALUES ($1)"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("42")}}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELECT 'extended'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	for _, want := range []string{"1", "2"} {
		if got := describe(rc.recv(t)); got != want {
			t.Fatalf("extended insert: %s, want %s", got, want)
		}
	}
	if e := rc.recvError(t); e.Detail != longDetail {
		t.Fatalf("extended insert: detail %.40q", e.Detail)
	}
	rc.untilReady(t)
	if got := rc.untilReady(t); !reflect.DeepEqual(got, []string{"1", "2", "D:extended", "C:SELECT 1", "Z:I"}) {
		t.Fatalf("after the extended error: %v", got)
	}

	// Declined: exactly the server's error, as a direct session gets it.
	direct := rawDial(t, pg.Addr())
	direct.send(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": pgtest.Superuser, "database": "postgres"}})
	direct.readStartupReply(t)
	for _, sql := range []string{"SELECT 1/0", "INSERT INTO " + table + " VALUES (NULL)"} {
		direct.send(t, &pgproto3.Query{String: sql})
		want := direct.recvError(t)
		direct.untilReady(t)
		rc.send(t, &pgproto3.Query{String: sql})
		got := rc.recvError(t)
		rc.untilReady(t)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: through the proxy %+v, directly %+v", sql, got, want)
		}
	}

	// A denial is pgguard's own error: the rewriter never sees it.
	rc.send(t, &pgproto3.Query{String: "SELECT '" + denyMarker + "'"})
	if e := rc.recvError(t); e.Message != deniedMessage {
		t.Fatalf("denial: %q", e.Message)
	}
	rc.untilReady(t)
	seen := ri.seenMessages()
	if len(seen) != 5 {
		t.Fatalf("RewriteError saw %d errors, want 5: %q", len(seen), seen)
	}
	for _, m := range seen {
		if strings.Contains(m, "pgguard") {
			t.Fatalf("RewriteError saw a denial's error: %q", m)
		}
	}
}
