package proxy_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/proxy"
)

// panicky panics on statements that contain a marker, on either side of
// the relay.
type panicky struct{}

func (panicky) OpenSession(context.Context, *proxy.Session) (proxy.SessionInterceptor, error) {
	return panickySession{}, nil
}

type panickySession struct{}

func (panickySession) ClientMessage(m proxy.ClientMessage) proxy.Verdict {
	if bytes.Contains(m.Body, []byte("panic_client")) || bytes.Contains(m.Body, []byte("panic_quick")) {
		panic("interceptor bug")
	}
	return proxy.Allow
}

// TryClientMessage panics on the event loop itself for one marker and
// leaves the other to ClientMessage, on the session's goroutine. Relayed by
// goroutines, a session meets both panics in ClientMessage.
func (ps panickySession) TryClientMessage(m proxy.ClientMessage) (proxy.Verdict, bool) {
	switch {
	case bytes.Contains(m.Body, []byte("panic_quick")):
		panic("interceptor bug on the loop")
	case bytes.Contains(m.Body, []byte("panic_client")):
		return proxy.Verdict{}, false
	}
	return ps.ClientMessage(m), true
}

func (panickySession) ServerMessage(m proxy.ServerMessage) {
	if m.Type == 'C' && bytes.HasPrefix(m.Tag, []byte("SELECT 7")) {
		panic("interceptor bug on the server side")
	}
}

func (panickySession) Close() {}

// TestInterceptorPanicEndsOnlyItsSession: a bug reached through one session
// ends that session, not the process or the other sessions.
func TestInterceptorPanicEndsOnlyItsSession(t *testing.T) {
	p := startProxy(t, proxy.Config{Interceptor: panicky{}})
	bystander := connect(t, p.AppURL())
	for _, sql := range []string{"SELECT 'panic_client'", "SELECT 'panic_quick'", "SELECT generate_series(1, 7)"} {
		victim := connect(t, p.AppURL())
		_, err := victim.Exec(testCtx(t), sql)
		if err == nil {
			t.Fatalf("%s: the session survived its interceptor's panic", sql)
		}
		if strings.Contains(err.Error(), "panic") {
			t.Fatalf("%s: internal detail reached the client: %v", sql, err)
		}
	}
	var n int
	if err := bystander.QueryRow(testCtx(t), "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("bystander session: %v", err)
	}
	p.assertServing(t)
	connect(t, p.AppURL()).Close(testCtx(t))
}
