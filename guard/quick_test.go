package guard

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/proxy"
)

// TestTryClientMessage: the event loop's question is answered only from the
// verdict cache under a current catalog snapshot; a decline leaves the
// session as it was, so ClientMessage can follow for the same message.
func TestTryClientMessage(t *testing.T) {
	s := benchSession(t, "sales_app", "order_fulfilment")
	allowed := proxy.NewClientMessage('Q', queryBody("SELECT email FROM crm.customers WHERE id = 1"), 0)
	sameShape := proxy.NewClientMessage('Q', queryBody("SELECT email FROM crm.customers WHERE id = 2"), 0)
	denied := proxy.NewClientMessage('Q', queryBody("SELECT gross_monthly FROM hr.salaries"), 0)
	parse := proxy.NewClientMessage('P', encodeBody(t, &pgproto3.Parse{Name: "s1", Query: "SELECT status FROM crm.orders WHERE id = $1"}), 0)
	bind := proxy.NewClientMessage('B', encodeBody(t, &pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("7")}}), 0)

	try := func(step string, m proxy.ClientMessage, wantOK bool, want proxy.Action) {
		t.Helper()
		gen, records := s.stateGen, len(s.prepared)
		v, ok := s.TryClientMessage(m)
		if ok != wantOK || (ok && v.Action != want) {
			t.Fatalf("%s: TryClientMessage = %v, %v; want %v, %v", step, v.Action, ok, want, wantOK)
		}
		if !ok && (s.stateGen != gen || len(s.prepared) != records) {
			t.Fatalf("%s: a declined message changed the session", step)
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

// TestUnnamedStatementRecordsReused: a driver that parses a few texts in
// turn as the unnamed statement gets the record of each text back, without
// allocating, and every Bind of a reused record still follows the purpose
// in force.
func TestUnnamedStatementRecordsReused(t *testing.T) {
	s := benchSession(t, "sales_app", "order_fulfilment")
	parse := func(text string) proxy.ClientMessage {
		return proxy.NewClientMessage('P', encodeBody(t, &pgproto3.Parse{Query: text}), 0)
	}
	email, status := parse("SELECT email FROM crm.customers WHERE id = $1"), parse("SELECT status FROM crm.orders WHERE id = $1")
	bind := proxy.NewClientMessage('B', encodeBody(t, &pgproto3.Bind{Parameters: [][]byte{[]byte("7")}}), 0)
	run := func(step string, m proxy.ClientMessage, want proxy.Action) {
		t.Helper()
		if v := s.ClientMessage(m); v.Action != want {
			t.Fatalf("%s: %v, want %v", step, v.Action, want)
		}
	}
	setPurpose := func(purpose string) {
		t.Helper()
		run("SET "+purpose, proxy.NewClientMessage('Q', queryBody("SET pgguard.purpose = '"+purpose+"'"), 0), proxy.Forward)
		s.ServerMessage(proxy.NewServerMessage('C', []byte("SET\x00")))
		s.ServerMessage(proxy.NewServerMessage('Z', []byte{'I'}))
		// The SET is a barrier: the proxy reads the state before going on.
		s.Confirmed(stateRow(purpose, `"$user", public`, "sales_app"), nil, 'I')
	}

	run("Parse email", email, proxy.Forward)
	first := s.prepared[""]
	run("Bind email", bind, proxy.Forward)
	run("Parse status", status, proxy.Forward)
	run("Bind status", bind, proxy.Forward)
	run("Parse email again", email, proxy.Forward)
	if s.prepared[""] != first {
		t.Fatal("the record of a text parsed before was not reused")
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, m := range []proxy.ClientMessage{email, bind, status, bind} {
			if v, ok := s.TryClientMessage(m); !ok || v.Action != proxy.Forward {
				t.Fatalf("%c not decided on the loop, or refused", m.Type)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Parse and Bind of texts in turn: %v allocations, want 0", allocs)
	}

	// The purpose changes between Parse and Bind: the reused record's last
	// decision no longer holds.
	run("Parse email", email, proxy.Forward)
	setPurpose("newsletter")
	run("Bind email under newsletter", bind, proxy.Deny)
	run("Parse email under newsletter", email, proxy.Deny)
	setPurpose("order_fulfilment")
	run("Parse email, purpose back", email, proxy.Forward)
	if s.prepared[""] != first {
		t.Fatal("the record was not reused after the purpose came back")
	}
	run("Bind email, purpose back", bind, proxy.Forward)

	// More texts than records kept, and a text too long to keep: each is
	// recorded anew and decided as before.
	for i := range recentRecords + 2 {
		run("Parse of text "+itoa(i), parse("SELECT status FROM crm.orders WHERE id = $1 AND "+itoa(i)+" = "+itoa(i)), proxy.Forward)
		run("Bind of text "+itoa(i), bind, proxy.Forward)
	}
	long := "SELECT status FROM crm.orders WHERE id = $1 /*" + strings.Repeat("x", recentTextMax) + "*/"
	run("Parse of a long text", parse(long), proxy.Forward)
	if s.recentRecord([]byte(long), s.prepared[""].from) != nil {
		t.Error("a text over recentTextMax was kept for reuse")
	}
	run("Bind of a long text", bind, proxy.Forward)
	run("Parse email after all that", email, proxy.Forward)
	run("Bind email after all that", bind, proxy.Forward)
}
