package guard

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/proxy"
)

// TestTransactionControlIsABarrierOnlyAfterAChange: a transaction that
// changed no session state has nothing for COMMIT or ROLLBACK to end or
// undo, so its transaction control pays no state query; after a SET, SET
// LOCAL or DDL in the transaction, or a state read inside a transaction
// block, it does.
func TestTransactionControlIsABarrierOnlyAfterAChange(t *testing.T) {
	s := benchSession(t, "sales_app", "order_fulfilment")
	segment := uint64(0)
	step := func(sql string, wantBarrier bool, status byte) {
		t.Helper()
		segment++
		v := s.ClientMessage(proxy.NewClientMessage('Q', queryBody(sql), segment))
		if v.Action != proxy.Forward || v.Barrier != wantBarrier {
			t.Fatalf("%s: action %v barrier %v, want forwarded with barrier %v", sql, v.Action, v.Barrier, wantBarrier)
		}
		s.ServerMessage(proxy.NewServerMessage('Z', []byte{status}))
		if v.Barrier {
			s.Confirmed(stateRow("order_fulfilment", `"$user", public`, "sales_app"), nil, status)
		}
	}
	// pgbench's TPC-B transaction, twice.
	for range 2 {
		step("BEGIN", false, 'T')
		step("UPDATE crm.orders SET status = 'x' WHERE id = 1", false, 'T')
		step("SELECT status FROM crm.orders WHERE id = 1", false, 'T')
		step("END", false, 'I')
	}
	step("BEGIN; SELECT status FROM crm.orders; COMMIT; SELECT status FROM crm.orders", false, 'I')
	step("ROLLBACK", false, 'I')

	// A SET LOCAL: the COMMIT ends it.
	step("BEGIN", false, 'T')
	step("SET LOCAL pgguard.purpose = 'order_fulfilment'", true, 'T')
	step("SELECT status FROM crm.orders WHERE id = 1", false, 'T')
	step("COMMIT", true, 'I')
	step("BEGIN", false, 'T')
	step("COMMIT", false, 'I')

	// In one message: the change comes first, so the COMMIT is a barrier
	// and nothing after it in the message is decided before the server
	// has answered.
	segment++
	v := s.ClientMessage(proxy.NewClientMessage('Q', queryBody("BEGIN; SET LOCAL search_path = hr; COMMIT; SELECT status FROM crm.orders"), segment))
	if v.Action != proxy.Deny {
		t.Fatalf("a statement after a COMMIT that ends a change was decided: %+v", v)
	}

	// A savepoint rolled back after a SET.
	step("BEGIN", false, 'T')
	step("SAVEPOINT a", false, 'T')
	step("SET search_path = hr", true, 'T')
	step("ROLLBACK TO SAVEPOINT a", true, 'T')
	step("ROLLBACK", true, 'I')
	step("BEGIN", false, 'T')
	step("ROLLBACK", false, 'I')

	// Prepared: a COMMIT parsed while settled is a barrier at a Bind after
	// a change.
	extended := func(m pgproto3.FrontendMessage, want bool) {
		t.Helper()
		v := s.ClientMessage(proxy.NewClientMessage(typeOf(m), encodeBody(t, m), segment+1))
		if v.Action != proxy.Forward || v.Barrier != want {
			t.Fatalf("%T: action %v barrier %v, want forwarded with barrier %v", m, v.Action, v.Barrier, want)
		}
	}
	extended(&pgproto3.Parse{Name: "c", Query: "COMMIT"}, false)
	extended(&pgproto3.Parse{Name: "b", Query: "BEGIN"}, false)
	extended(&pgproto3.Bind{PreparedStatement: "b"}, false)
	extended(&pgproto3.Parse{Query: "SET LOCAL search_path = hr"}, false) // a Parse runs nothing
	extended(&pgproto3.Bind{}, true)
	extended(&pgproto3.Execute{}, false) // the SET runs here
	extended(&pgproto3.Bind{PreparedStatement: "c"}, true)
}

func typeOf(m pgproto3.FrontendMessage) byte {
	switch m.(type) {
	case *pgproto3.Parse:
		return 'P'
	case *pgproto3.Bind:
		return 'B'
	case *pgproto3.Execute:
		return 'E'
	}
	return 0
}
