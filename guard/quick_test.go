package guard

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/proxy"
)

// TestTryClientMessage: the event loop's question is answered only from the
// verdict cache under a current catalog snapshot; a decline leaves the
// session as it was, so ClientMessage can follow for the same message.
func TestTryClientMessage(t *testing.T) {
	s := benchSession(t, "sales_app", "order_fulfilment")
	allowed := proxy.ClientMessage{Type: 'Q', Body: queryBody("SELECT email FROM crm.customers WHERE id = 1")}
	sameShape := proxy.ClientMessage{Type: 'Q', Body: queryBody("SELECT email FROM crm.customers WHERE id = 2")}
	denied := proxy.ClientMessage{Type: 'Q', Body: queryBody("SELECT gross_monthly FROM hr.salaries")}
	parse := proxy.ClientMessage{Type: 'P', Body: encodeBody(t, &pgproto3.Parse{Name: "s1", Query: "SELECT status FROM crm.orders WHERE id = $1"})}
	bind := proxy.ClientMessage{Type: 'B', Body: encodeBody(t, &pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("7")}})}

	try := func(step string, m proxy.ClientMessage, wantOK bool, want proxy.Action) {
		t.Helper()
		owed := s.readyOwed
		v, ok := s.TryClientMessage(m)
		if ok != wantOK || (ok && v.Action != want) {
			t.Fatalf("%s: TryClientMessage = %v, %v; want %v, %v", step, v.Action, ok, want, wantOK)
		}
		if !ok && s.readyOwed != owed {
			t.Fatalf("%s: a declined Query changed the session", step)
		}
	}
	decide := func(step string, m proxy.ClientMessage, want proxy.Action) {
		t.Helper()
		if v := s.ClientMessage(m); v.Action != want {
			t.Fatalf("%s: ClientMessage = %v, want %v", step, v.Action, want)
		}
	}

	try("new text", allowed, false, 0)
	decide("new text", allowed, proxy.Forward)
	try("seen text", allowed, true, proxy.Forward)
	try("same shape", sameShape, true, proxy.Forward)
	try("new denied text", denied, false, 0)
	decide("new denied text", denied, proxy.Deny)
	try("seen denied text", denied, true, proxy.Deny)
	try("Bind before its Parse", bind, true, proxy.Deny)
	try("new Parse", parse, false, 0)
	if s.prepared["s1"] != nil {
		t.Fatal("a declined Parse recorded its statement")
	}
	decide("new Parse", parse, proxy.Forward)
	try("Bind after its Parse", bind, true, proxy.Forward)

	s.g.cfg.Catalogs.Invalidate("postgres")
	try("seen text, catalog stale", allowed, false, 0)
	decide("seen text, catalog stale", allowed, proxy.Forward)
	try("seen text, catalog reloaded", allowed, true, proxy.Forward)
}

func encodeBody(t *testing.T, msg interface{ Encode([]byte) ([]byte, error) }) []byte {
	t.Helper()
	b, err := msg.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b[5:]
}
