package guard

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/authz"
	"github.com/pgguard/pgguard/catalog"
	"github.com/pgguard/pgguard/proxy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// benchSession is a session over the shipped policy and the demo schema,
// without a network: what the client pump calls per message.
func benchSession(b testing.TB, user, purpose string) *session {
	b.Helper()
	return benchSessionMetrics(b, user, purpose, nil)
}

// benchSessionMetrics is benchSession counting into m, as pgguard serve
// does.
func benchSessionMetrics(b testing.TB, user, purpose string, m *alert.Metrics) *session {
	b.Helper()
	engine, err := authz.NewEngine("../model.conf", "../policy.csv", authz.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ddl, err := os.ReadFile("../demo/schema.sql")
	if err != nil {
		b.Fatal(err)
	}
	snap, err := catalog.FromDDL("postgres", string(ddl))
	if err != nil {
		b.Fatal(err)
	}
	cats := catalog.NewCache(func(context.Context, string) (*catalog.Snapshot, error) { return snap, nil }, 0)
	g, err := New(Config{Policy: engine, Catalogs: cats, Logger: zerolog.Nop(), Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	ps := &proxy.Session{User: user, Database: "postgres", ClientAddr: &net.TCPAddr{}}
	ps.SetStartupParameter("options", "-c pgguard.purpose="+purpose)
	s := newSession(g, ps)
	// What the server would report for this session at its start.
	s.Confirmed(stateRow(purpose, `"$user", public`, user), nil, 'I')
	return s
}

func queryBody(sql string) []byte { return append([]byte(sql), 0) }

// BenchmarkQueryCached is the hot path: a statement text seen before.
func BenchmarkQueryCached(b *testing.B) {
	benchCachedQuery(b, benchSession(b, "sales_app", "order_fulfilment"))
}

// BenchmarkQueryCachedMetrics is BenchmarkQueryCached with the metrics
// pgguard serve registers: what counting adds to every statement.
func BenchmarkQueryCachedMetrics(b *testing.B) {
	benchCachedQuery(b, benchSessionMetrics(b, "sales_app", "order_fulfilment", alert.NewMetrics(prometheus.NewRegistry())))
}

// benchCachedQuery decides one allowed text over and over.
func benchCachedQuery(b *testing.B, s *session) {
	msg := proxy.NewClientMessage('Q', queryBody("SELECT email, phone FROM crm.customers WHERE id = 42"), 0)
	if v := s.ClientMessage(msg); v.Action != proxy.Forward {
		b.Fatalf("not allowed: %+v", v.Error)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.ClientMessage(msg)
	}
}

// BenchmarkQueryCold analyses and decides a new text every time.
func BenchmarkQueryCold(b *testing.B) {
	s := benchSession(b, "sales_app", "order_fulfilment")
	texts := make([][]byte, 1024)
	for i := range texts {
		texts[i] = queryBody("SELECT c.email, o.status FROM crm.customers c JOIN crm.orders o ON o.customer_id = c.id WHERE o.id = " + itoa(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.g.cache = newVerdictCache(1 << 20) // forget, so every text is new
		s.table = nil
		s.ClientMessage(proxy.NewClientMessage('Q', texts[i%len(texts)], 0))
	}
}

// BenchmarkQueryNewLiterals is the simple protocol with a new value in
// every statement: the exact text is new each time, its shape is not.
func BenchmarkQueryNewLiterals(b *testing.B) {
	s := benchSession(b, "sales_app", "order_fulfilment")
	texts := make([][]byte, 4096)
	for i := range texts {
		texts[i] = queryBody("SELECT email, phone FROM crm.customers WHERE id = " + itoa(i+1))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v := s.ClientMessage(proxy.NewClientMessage('Q', texts[i%len(texts)], 0)); v.Action != proxy.Forward {
			b.Fatal("denied")
		}
	}
}

// BenchmarkBindPrepared is Bind of a statement prepared once.
func BenchmarkBindPrepared(b *testing.B) {
	s := benchSession(b, "sales_app", "order_fulfilment")
	parse := append([]byte("s1\x00SELECT status FROM crm.orders WHERE id = $1\x00"), 0, 0)
	if v := s.ClientMessage(proxy.NewClientMessage('P', parse, 0)); v.Action != proxy.Forward {
		b.Fatalf("parse not allowed: %+v", v.Error)
	}
	bind := []byte("\x00s1\x00\x00\x00\x00\x01\x00\x00\x00\x0242\x00\x00")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v := s.ClientMessage(proxy.NewClientMessage('B', bind, 0)); v.Action != proxy.Forward {
			b.Fatal("bind denied")
		}
	}
}

// BenchmarkParseBindUnnamed is the extended protocol as pgx and pgbench -M
// extended speak it: the same text parsed as the unnamed statement, then
// bound, for every execution; decided on the event loop.
func BenchmarkParseBindUnnamed(b *testing.B) {
	s := benchSession(b, "sales_app", "order_fulfilment")
	parse := proxy.NewClientMessage('P', append([]byte("\x00SELECT status FROM crm.orders WHERE id = $1\x00"), 0, 0), 0)
	bind := proxy.NewClientMessage('B', []byte("\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0242\x00\x00"), 0)
	if v := s.ClientMessage(parse); v.Action != proxy.Forward {
		b.Fatalf("parse not allowed: %+v", v.Error)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v, ok := s.TryClientMessage(parse); !ok || v.Action != proxy.Forward {
			b.Fatal("parse not decided on the loop, or denied")
		}
		if v, ok := s.TryClientMessage(bind); !ok || v.Action != proxy.Forward {
			b.Fatal("bind not decided on the loop, or denied")
		}
	}
}

// BenchmarkParseBindUnnamedCycle is the unnamed statement as JDBC,
// node-postgres and pgbench -M extended's TPC-B script use it: several
// texts in turn, each parsed and bound per execution. It reports per
// statement.
func BenchmarkParseBindUnnamedCycle(b *testing.B) {
	s := benchSession(b, "sales_app", "order_fulfilment")
	texts := []string{
		"BEGIN",
		"UPDATE crm.orders SET status = $1 WHERE id = $2",
		"SELECT status FROM crm.orders WHERE id = $1",
		"UPDATE crm.orders SET total_amount = total_amount + $1 WHERE id = $2",
		"SELECT email, phone FROM crm.customers WHERE id = $1",
		"INSERT INTO crm.orders (id, customer_id, ordered_at, total_amount, status) VALUES ($1, $2, now(), $3, 'new')",
		"END",
	}
	var parses []proxy.ClientMessage
	for _, t := range texts {
		parses = append(parses, proxy.NewClientMessage('P', append([]byte("\x00"+t+"\x00"), 0, 0), 0))
	}
	bind := proxy.NewClientMessage('B', []byte("\x00\x00\x00\x00\x00\x00\x00\x00"), 0)
	for _, p := range parses {
		if v := s.ClientMessage(p); v.Action != proxy.Forward {
			b.Fatalf("parse not allowed: %+v", v.Error)
		}
	}
	// END would be a barrier after a SET LOCAL; in a transaction that set
	// nothing it is not, and none of these statements is. Were one, the
	// proxy would hand the state the server reports after its Sync to the
	// session before the next message.
	row := stateRow("order_fulfilment", `"$user", public`, "sales_app")
	idle := []byte{'I'}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(parses)
		if v, ok := s.TryClientMessage(parses[k]); !ok || v.Action != proxy.Forward {
			b.Fatal("parse not decided on the loop, or denied")
		}
		v, ok := s.TryClientMessage(bind)
		if !ok || v.Action != proxy.Forward {
			b.Fatal("bind not decided on the loop, or denied")
		}
		if v.Barrier {
			b.Fatalf("%q: a barrier in a transaction that changes no state", texts[k])
		}
		// The ReadyForQuery after the statement's Sync settles the
		// replaced unnamed statement.
		s.ServerMessage(proxy.NewServerMessage('Z', idle))
		if v.Barrier {
			s.Confirmed(row, nil, 'I')
		}
	}
}

// BenchmarkConfirmed is pgguard's own share of a barrier: taking the row
// of the state query the proxy sends after the barrier's segment. (The
// server parses, plans and runs that query each time, and the client waits
// for the round trip: bench/README.md measures those.)
func BenchmarkConfirmed(b *testing.B) {
	s := benchSession(b, "sales_app", "order_fulfilment")
	row := stateRow("order_fulfilment", `"$user", public`, "sales_app")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Confirmed(row, nil, 'I')
	}
	if !s.state.known {
		b.Fatal("the state row was not taken")
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// benchSessionT is a sales session for fuzzing.
func benchSessionT(t testing.TB) *session { return benchSession(t, "sales_app", "order_fulfilment") }

// stateRow is the state query's row as the server would send it.
func stateRow(purpose, path, user string, prepared ...string) [][]byte {
	names := "[]"
	if len(prepared) > 0 {
		names = `["` + strings.Join(prepared, `","`) + `"]`
	}
	return [][]byte{[]byte(purpose), []byte(path), []byte(user), []byte("on"), []byte("UTF8"), []byte(names), []byte("[]"), []byte("[]"), []byte(`["pg_catalog","public"]`), []byte("read committed")}
}
