package proxy_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/proxy"
)

// denyMarker makes testInterceptor deny the statement, function call or COPY
// data that contains it.
const denyMarker = "deny_me"

// deniedMessage is the text of testInterceptor's errors.
const deniedMessage = "pgguard: test policy denies " + denyMarker

// testInterceptor denies client messages whose statement text (Query,
// Parse), function arguments (FunctionCall) or COPY data contain denyMarker,
// and records every session and message type it sees.
type testInterceptor struct {
	// deny, when set, replaces the marker rule.
	deny func(m proxy.ClientMessage) bool

	mu          sync.Mutex
	sessions    []*proxy.Session
	contexts    []context.Context
	clientTypes []byte
	serverTypes []byte
	closed      int
}

func newTestInterceptor() *testInterceptor { return &testInterceptor{} }

func (ti *testInterceptor) OpenSession(ctx context.Context, s *proxy.Session) (proxy.SessionInterceptor, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.sessions = append(ti.sessions, s)
	ti.contexts = append(ti.contexts, s.Context())
	return &testSession{ti: ti}, nil
}

type testSession struct {
	ti    *testInterceptor
	tries int
}

// TryClientMessage declines every other message, so that tests through an
// event loop cover decisions on the loop and on the session's goroutine,
// and the hand-over between the two inside one pipeline.
func (ts *testSession) TryClientMessage(m proxy.ClientMessage) (proxy.Verdict, bool) {
	ts.tries++
	if ts.tries%2 == 0 {
		return proxy.Verdict{}, false
	}
	return ts.ClientMessage(m), true
}

func (ts *testSession) ClientMessage(m proxy.ClientMessage) proxy.Verdict {
	ts.ti.mu.Lock()
	ts.ti.clientTypes = append(ts.ti.clientTypes, m.Type)
	deny := ts.ti.deny
	ts.ti.mu.Unlock()
	denied := false
	if deny != nil {
		denied = deny(m)
	} else {
		denied = strings.Contains(messageText(m), denyMarker)
	}
	if !denied {
		return proxy.Allow
	}
	return proxy.Verdict{Action: proxy.Deny, Error: &pgproto3.ErrorResponse{
		Severity: "ERROR",
		Code:     "42501",
		Message:  deniedMessage,
		Hint:     "declare a purpose: /*purpose='NAME'*/",
	}}
}

func (ts *testSession) ServerMessage(m proxy.ServerMessage) {
	ts.ti.mu.Lock()
	ts.ti.serverTypes = append(ts.ti.serverTypes, m.Type)
	ts.ti.mu.Unlock()
}

func (ts *testSession) Close() {
	ts.ti.mu.Lock()
	ts.ti.closed++
	ts.ti.mu.Unlock()
}

// messageText decodes what a message would make the server run or store.
func messageText(m proxy.ClientMessage) string {
	switch m.Type {
	case 'Q':
		var q pgproto3.Query
		if q.Decode(m.Body) == nil {
			return q.String
		}
	case 'P':
		var p pgproto3.Parse
		if p.Decode(m.Body) == nil {
			return p.Query
		}
	case 'F':
		var f pgproto3.FunctionCall
		if f.Decode(m.Body) == nil {
			return string(bytes.Join(f.Arguments, []byte{' '}))
		}
	case 'd':
		return string(m.Body)
	}
	return ""
}

func (ti *testInterceptor) lastSession(t testing.TB) *proxy.Session {
	t.Helper()
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if len(ti.sessions) == 0 {
		t.Fatal("the interceptor saw no session")
	}
	return ti.sessions[len(ti.sessions)-1]
}

func (ti *testInterceptor) seenClientTypes() string {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return string(ti.clientTypes)
}

func (ti *testInterceptor) seenServerTypes() string {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return string(ti.serverTypes)
}

func (ti *testInterceptor) closedSessions() int {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.closed
}

// TestSessionContextEndsWithTheSession: what an interceptor does for a
// session can end when the session does, while the server and the other
// sessions go on.
func TestSessionContextEndsWithTheSession(t *testing.T) {
	ti := newTestInterceptor()
	p := startProxy(t, proxy.Config{Interceptor: ti})
	first := connect(t, p.AppURL())
	second := connect(t, p.AppURL())
	ti.mu.Lock()
	ctxs := append([]context.Context(nil), ti.contexts...)
	ti.mu.Unlock()
	if len(ctxs) != 2 || ctxs[0].Err() != nil || ctxs[1].Err() != nil {
		t.Fatalf("contexts of two open sessions: %v", ctxs)
	}
	if err := first.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first session's context ends", func() bool { return ctxs[0].Err() != nil })
	if ctxs[1].Err() != nil {
		t.Fatal("the other session's context ended too")
	}
	if _, err := second.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}
