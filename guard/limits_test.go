package guard

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/proxy"
	dto "github.com/prometheus/client_model/go"
)

// TestSessionPreparedTextIsBounded: named statements whose texts would
// together pass Config.SessionPreparedBytes are refused with 54000;
// closing one makes room again.
func TestSessionPreparedTextIsBounded(t *testing.T) {
	s := benchSession(t, "sales_app", "order_fulfilment")
	s.g.cfg.SessionPreparedBytes = 1 << 20
	long := func(i int) string {
		return fmt.Sprintf("SELECT status FROM crm.orders WHERE id = $1 /* %s%d */", strings.Repeat("x", 300<<10), i)
	}
	parse := func(name, text string) proxy.Verdict {
		return s.ClientMessage(proxy.NewClientMessage('P', encodeBody(t, &pgproto3.Parse{Name: name, Query: text}), 0))
	}
	for i := 0; i < 3; i++ {
		if v := parse(fmt.Sprint("s", i), long(i)); v.Action != proxy.Forward {
			t.Fatalf("Parse %d refused: %v", i, v.Error)
		}
		s.ServerMessage(proxy.NewServerMessage('Z', []byte{'I'}))
	}
	v := parse("s3", long(3))
	if v.Action != proxy.Deny || v.Error.Code != "54000" {
		t.Fatalf("fourth 300 KiB statement within a 1 MiB bound: %v %v", v.Action, v.Error)
	}
	s.ClientMessage(proxy.NewClientMessage('C', append([]byte("Ss0"), 0), 0))
	s.ServerMessage(proxy.NewServerMessage('Z', []byte{'I'}))
	if v := parse("s3", long(3)); v.Action != proxy.Forward {
		t.Fatalf("Parse refused after a Close made room: %v", v.Error)
	}
}

// TestStatementSizeBounds: a text over MaxStatementSize is refused at once
// with 54000, and one with more tokens than MaxStatementTokens after the
// token count, in either protocol; the cache's size reaches its metric.
func TestStatementSizeBounds(t *testing.T) {
	m := alert.NewMetrics(nil)
	s := benchSessionMetrics(t, "sales_app", "order_fulfilment", m)
	s.g.cfg.MaxStatementSize, s.g.cfg.MaxStatementTokens = 64<<10, 1000
	for name, text := range map[string]string{
		"bytes":  "SELECT status FROM crm.orders WHERE id = 1 /* " + strings.Repeat("x", 64<<10) + " */",
		"tokens": "SELECT status FROM crm.orders WHERE id IN (" + strings.Repeat("1,", 1000) + "1)",
	} {
		for _, msg := range []proxy.ClientMessage{
			{Type: 'Q', Body: queryBody(text)},
			{Type: 'P', Body: encodeBody(t, &pgproto3.Parse{Name: "s", Query: text})},
		} {
			if v := s.ClientMessage(msg); v.Action != proxy.Deny || v.Error.Code != "54000" {
				t.Fatalf("%s, %c: %v %v", name, msg.Type, v.Action, v.Error)
			}
		}
	}
	if v := s.ClientMessage(proxy.NewClientMessage('Q', queryBody("SELECT status FROM crm.orders"), 0)); v.Action != proxy.Forward {
		t.Fatalf("a short statement: %v", v.Error)
	}
	var pb dto.Metric
	if err := m.VerdictCacheBytes.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if got := pb.GetGauge().GetValue(); got <= 0 || int64(got) != s.g.cache.bytes.Load() {
		t.Fatalf("pgguard_verdict_cache_bytes = %v, cache holds %d", got, s.g.cache.bytes.Load())
	}
}
