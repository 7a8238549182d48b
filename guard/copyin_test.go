package guard_test

// The COPY sub-protocol: PostgreSQL reads a client's messages as COPY data
// once a COPY FROM STDIN has started, ignores Sync and Flush there, and
// fails the COPY on any other message, which it consumes unrun. pgguard
// must count the ReadyForQuery messages to come as the server sends them,
// or a later barrier waits forever, and must never decide a later
// statement on a message the server did not run.

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/guard"
	"github.com/pgguard/pgguard/proxy"
)

// copyStep is one write and what it should bring back: readies
// ReadyForQuery messages, or, with copyIn, a CopyInResponse.
type copyStep struct {
	msgs    []pgproto3.FrontendMessage
	copyIn  bool
	readies int
	ends    bool // the session ends, as PostgreSQL ends it
}

// exchange writes s and reads its answer within a deadline, so that a
// miscount shows as a timeout; it returns the SQLSTATEs seen.
func (r *raw) exchange(t *testing.T, s copyStep) []string {
	t.Helper()
	for _, m := range s.msgs {
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = r.conn.SetReadDeadline(time.Now().Add(30 * time.Second)) }()
	var codes []string
	for readies := s.readies; readies > 0 || s.copyIn || s.ends; {
		m, err := r.fe.Receive()
		if err != nil && s.ends && !isTimeout(err) {
			return codes
		}
		if err != nil {
			t.Fatalf("receive (codes so far %v): %v", codes, err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			codes = append(codes, m.Code)
		case *pgproto3.CopyInResponse:
			if !s.copyIn || readies > 0 {
				t.Fatalf("unexpected CopyInResponse")
			}
			return codes
		case *pgproto3.ReadyForQuery:
			if s.ends {
				continue // the statement cancelled as the session ends
			}
			if readies == 0 {
				t.Fatalf("ReadyForQuery instead of CopyInResponse (codes %v)", codes)
			}
			readies--
		}
	}
	return codes
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func cq(sql string) []pgproto3.FrontendMessage { return []pgproto3.FrontendMessage{q(sql)} }

func TestCopyInCountsReadyForQueryAsTheServer(t *testing.T) {
	const copySQL = "COPY pg_temp.cp FROM STDIN"
	data := func(s string) *pgproto3.CopyData { return &pgproto3.CopyData{Data: []byte(s)} }
	extCopy := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	cases := []struct {
		name  string
		steps []copyStep
		codes []string // the SQLSTATEs of the steps, in order
	}{
		{"extended COPY with its Sync sent before the data, as libpq does", []copyStep{
			{msgs: append(extCopy[:3:3], &pgproto3.Sync{}), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("1\n"), &pgproto3.CopyDone{}, &pgproto3.Sync{}}, readies: 1},
		}, nil},
		{"simple COPY with Sync and Flush among the data", []copyStep{
			{msgs: cq(copySQL), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("1\n"), &pgproto3.Sync{}, &pgproto3.Flush{}, data("2\n"), &pgproto3.Sync{}, &pgproto3.CopyDone{}}, readies: 1},
		}, nil},
		{"simple COPY and a Query during it", []copyStep{
			{msgs: cq(copySQL), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("1\n"), q("SELECT 1")}, ends: true},
		}, []string{"08P01"}},
		{"simple COPY and a FunctionCall during it", []copyStep{
			{msgs: cq(copySQL), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{&pgproto3.FunctionCall{Function: 1}}, ends: true},
		}, []string{"08P01"}},
		{"extended COPY and a pipeline behind it", []copyStep{
			{msgs: append(extCopy[:3:3], &pgproto3.Sync{}, &pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{},
				&pgproto3.Execute{}, &pgproto3.Sync{}), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("1\n"), &pgproto3.CopyDone{}}, ends: true},
		}, []string{"08P01"}},
		{"extended COPY and Describe, Close and Flush during it", []copyStep{
			{msgs: append(extCopy[:3:3], &pgproto3.Flush{}), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{&pgproto3.Flush{}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Close{ObjectType: 'S'},
				&pgproto3.Sync{}}, ends: true},
		}, []string{"08P01"}},
		{"simple COPY failed by the client, then Sync", []copyStep{
			{msgs: cq(copySQL), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("1\n"), &pgproto3.CopyFail{Message: "no"}}, readies: 1},
			{msgs: []pgproto3.FrontendMessage{&pgproto3.Sync{}}, readies: 1},
		}, []string{"57014"}},
		{"simple COPY whose data fails the server mid-stream", []copyStep{
			{msgs: cq(copySQL), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("x\n")}, readies: 1},
			{msgs: []pgproto3.FrontendMessage{data("2\n"), &pgproto3.CopyDone{}, &pgproto3.Sync{}}, readies: 1},
		}, []string{"22P02"}},
		{"two COPYs in one Query", []copyStep{
			{msgs: cq(copySQL + "; " + copySQL), copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("1\n"), &pgproto3.CopyDone{}}, copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("2\n"), &pgproto3.CopyDone{}}, readies: 1},
		}, nil},
		{"COPY behind a slow segment of the same write", []copyStep{
			{msgs: append([]pgproto3.FrontendMessage{q("SELECT pg_sleep(0.2)")}, append(extCopy[:3:3], &pgproto3.Sync{})...), readies: 1, copyIn: true},
			{msgs: []pgproto3.FrontendMessage{data("1\n"), &pgproto3.CopyDone{}, &pgproto3.Sync{}}, readies: 1},
		}, nil},
		{"COPY in a Query that changes the purpose", []copyStep{
			{msgs: cq("SET pgguard.purpose = 'financial_reporting'; " + copySQL), readies: 1},
			{msgs: cq(ibans), readies: 1},
		}, []string{"0A000"}},
		{"statements that only name copy, behind an error and in named portals", []copyStep{
			{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s", Query: "SELECT 'copy'"}, &pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "p"},
				&pgproto3.Execute{Portal: "p"}, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{}}, readies: 1},
			{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{}, q("SELECT 'COPY'")}, readies: 2},
		}, []string{"22012"}},
		{"COPY TO STDOUT", []copyStep{
			{msgs: cq("COPY pg_temp.cp TO STDOUT"), readies: 1},
			{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY pg_temp.cp TO STDOUT"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}, readies: 1},
		}, nil},
		{"COPY data, done and fail outside COPY", []copyStep{
			{msgs: []pgproto3.FrontendMessage{data("1\n"), &pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "x"}, &pgproto3.Sync{}}, readies: 1},
		}, nil},
		{"COPY FROM STDIN that fails before copying, in a pipeline", []copyStep{
			{msgs: []pgproto3.FrontendMessage{q(copySQL + " (FORMAT nosuch)"), q("SELECT 1")}, readies: 2},
			{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}, readies: 1},
		}, []string{"22023", "22012"}},
	}
	for _, relay := range []struct {
		name  string
		loops int
	}{{"event loops", 0}, {"goroutines", -1}} {
		w := newWorld(t, alert.ModeEnforce, func(_ *guard.Config, pc *proxy.Config) { pc.EventLoops = relay.loops })
		for _, c := range cases {
			t.Run(relay.name+"/"+c.name, func(t *testing.T) {
				runCopyCase(t, w, c.steps, c.codes)
			})
		}
	}
}

// runCopyCase runs steps on a session of their own, checks the errors they
// bring, and then that the session's next barrier and decision work.
func runCopyCase(t *testing.T, w *world, steps []copyStep, want []string) {
	t.Helper()
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	r.send(q("CREATE TEMP TABLE cp (x int)"))
	var codes []string
	for _, s := range steps {
		codes = append(codes, r.exchange(t, s)...)
	}
	ends := steps[len(steps)-1].ends
	if len(codes) < len(want) || len(codes) > len(want) && !ends {
		t.Fatalf("errors %v, want %v", codes, want)
	}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("errors %v, want %v", codes, want)
		}
	}
	if ends {
		return
	}
	// A barrier, then a decision on the state it confirmed: the purpose
	// changed, so the read is refused, and the session still answers.
	r.exchange(t, copyStep{msgs: cq(toReporting), readies: 1})
	if got := r.exchange(t, copyStep{msgs: cq(ibans), readies: 1}); len(got) != 1 || got[0] != "42501" {
		t.Fatalf("read after the purpose change: errors %v, want [42501]", got)
	}
	r.exchange(t, copyStep{msgs: cq("SELECT 1"), readies: 1})
}

// TestAttackBehindACopysIgnoredSync: the Sync a COPY's server ignored must
// not shift which segment pgguard holds a later error in, or a Parse the
// server skipped would count as a redefinition of a prepared statement
// that still reads IBANs.
func TestAttackBehindACopysIgnoredSync(t *testing.T) {
	w := newWorld(t, alert.ModeEnforce)
	r := w.raw(t, "finance_app", "-c pgguard.purpose=invoicing")
	r.send(q("CREATE TEMP TABLE cp (x int)"), q("PREPARE x AS "+ibans))
	r.exchange(t, copyStep{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY pg_temp.cp FROM STDIN"},
		&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}, copyIn: true})
	r.exchange(t, copyStep{msgs: []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{},
		&pgproto3.Sync{}}, readies: 1})
	r.write(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	r.until(t, "22012")
	attack(t, r, ibanMarker, []step{{&pgproto3.Parse{Name: "x", Query: "SELECT 1"}, &pgproto3.Sync{}},
		{q(toReporting)}, {q("EXECUTE x")}})
}
