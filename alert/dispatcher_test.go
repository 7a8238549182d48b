package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func TestLogSink(t *testing.T) {
	flagged := sampleEvent()
	flagged.Kind, flagged.Mode = KindQueryFlagged, ModeMonitor
	reload := Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Kind: KindPolicyReloadFailed, Error: "policy.csv:7: unknown effect"}
	tests := []struct {
		name  string
		e     Event
		msg   string
		extra map[string]any
	}{
		{"blocked", sampleEvent(), "query blocked", map[string]any{
			"user": "sales_app", "purpose": "newsletter", "database": "shop", "client_addr": "10.0.0.7:51234",
			"application_name": "crm-ui", "statement": "SELECT email FROM crm.customers WHERE id = $1",
			"fingerprint": "a1b2c3d4", "policy_version": "sha256:0f3e", "mode": "enforce", "session_id": "s-42",
			"event": "query_blocked", "time": "2026-03-01T11:59:58.123456789Z",
		}},
		{"flagged", flagged, "query flagged", map[string]any{"event": "query_flagged", "mode": "monitor"}},
		{"reload failed", reload, "policy reload failed", map[string]any{
			"event": "policy_reload_failed", "error": "policy.csv:7: unknown effect", "time": "2026-01-02T03:04:05.000000006Z",
		}},
		{"catalog unavailable", Event{Kind: KindCatalogUnavailable, Database: "app", Error: "catalog unavailable: timeout"},
			"catalog unavailable", map[string]any{"event": "catalog_unavailable", "database": "app", "error": "catalog unavailable: timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, buf := newTestDispatcher(t, Config{})
			d.Emit(tc.e)
			closeNow(t, d)
			lines := buf.alertLines(t)
			if len(lines) != 1 {
				t.Fatalf("got %d alert lines, want 1: %s", len(lines), buf)
			}
			m := lines[0]
			if m["level"] != "warn" || m["message"] != tc.msg || m["count"] != 1.0 {
				t.Errorf("level/message/count = %v/%v/%v", m["level"], m["message"], m["count"])
			}
			for k, want := range tc.extra {
				if m[k] != want {
					t.Errorf("%s = %v, want %v", k, m[k], want)
				}
			}
			for _, k := range []string{"roles", "denied"} {
				if _, ok := m[k].([]any); !ok {
					t.Errorf("%s = %#v, want a JSON array", k, m[k])
				}
			}
		})
	}
}

func TestLogSinkDenials(t *testing.T) {
	d, buf := newTestDispatcher(t, Config{})
	d.Emit(sampleEvent())
	closeNow(t, d)
	m := buf.alertLines(t)[0]
	roles := m["roles"].([]any)
	den := m["denied"].([]any)
	if len(roles) != 1 || roles[0] != "sales" || len(den) != 1 {
		t.Fatalf("roles=%v denied=%v", roles, den)
	}
	got := den[0].(map[string]any)
	want := map[string]any{"column": "crm.customers.email", "category": "customer_contact", "act": "read", "reason": "no allow rule for purpose newsletter"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("denied[0].%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestLogSinkLevels(t *testing.T) {
	tests := []struct {
		level zerolog.Level
		want  int
	}{
		{zerolog.DebugLevel, 1},
		{zerolog.WarnLevel, 1},
		{zerolog.ErrorLevel, 1}, // alerts are not chatter
		{zerolog.Disabled, 0},
	}
	for _, tc := range tests {
		t.Run(tc.level.String(), func(t *testing.T) {
			buf := &syncBuffer{}
			d, err := New(Config{}, zerolog.New(buf).Level(tc.level), nil)
			if err != nil {
				t.Fatal(err)
			}
			d.Emit(sampleEvent())
			closeNow(t, d)
			if got := len(buf.alertLines(t)); got != tc.want {
				t.Errorf("%d alert lines, want %d", got, tc.want)
			}
		})
	}
}

// A logger with its own timestamp must not end up with two "time" keys.
func TestLogSinkTimestampedLogger(t *testing.T) {
	tests := []struct {
		name   string
		logger func(*syncBuffer) zerolog.Logger
		want   string // what "time" must be
	}{
		{"plain logger gets the event time", func(b *syncBuffer) zerolog.Logger { return zerolog.New(b) }, "2026-03-01T11:59:58.123456789Z"},
		{"timestamped logger keeps its own", func(b *syncBuffer) zerolog.Logger { return zerolog.New(b).With().Timestamp().Logger() }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := &syncBuffer{}
			d, err := New(Config{}, tc.logger(buf), nil)
			if err != nil {
				t.Fatal(err)
			}
			d.Emit(sampleEvent())
			closeNow(t, d)
			line := strings.TrimSpace(buf.String())
			if n := strings.Count(line, `"time":`); n != 1 {
				t.Fatalf(`line has %d "time" keys, want 1: %s`, n, line)
			}
			if got := buf.alertLines(t)[0]["time"]; tc.want != "" && got != tc.want {
				t.Errorf("time = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDedupFolding(t *testing.T) {
	clock := newFakeClock()
	d, buf := newTestDispatcher(t, Config{DedupWindow: time.Minute, SweepInterval: time.Millisecond, Now: clock.Now})
	alertsWith := func(count float64) []map[string]any {
		var out []map[string]any
		for _, m := range buf.alertLines(t) {
			if m["count"] == count {
				out = append(out, m)
			}
		}
		return out
	}
	at := func(off time.Duration) Event { e := sampleEvent(); e.Time = clock.Now().Add(off); return e }

	// First occurrence: out at once, while the clock stands still.
	d.Emit(at(0))
	waitFor(t, "the first occurrence", func() bool { return len(buf.alertLines(t)) == 1 })

	// Repeats are counted, a different user and a different kind are not
	// repeats.
	for i := 1; i <= 4; i++ {
		d.Emit(at(time.Duration(i) * time.Second))
	}
	other := at(0)
	other.User = "hr_app"
	d.Emit(other)
	flag := at(0)
	flag.Kind, flag.Mode = KindQueryFlagged, ModeMonitor
	d.Emit(flag)
	waitFor(t, "4 suppressed", func() bool { return value(t, d.metrics.suppressed) == 4 })
	waitFor(t, "the other keys", func() bool { return len(buf.alertLines(t)) == 3 })

	// Window closes: one summary for the 4 repeats.
	start := at(0).Time
	clock.Advance(61 * time.Second)
	waitFor(t, "the summary", func() bool { return len(alertsWith(4)) == 1 })
	s := alertsWith(4)[0]
	if s["user"] != "sales_app" || s["first_seen"] != formatTime(start.Add(time.Second)) ||
		s["last_seen"] != formatTime(start.Add(4*time.Second)) {
		t.Errorf("summary = %v", s)
	}
	if got := value(t, d.metrics.emitted.WithLabelValues(string(KindQueryBlocked))); got != 3 {
		t.Errorf("emitted{query_blocked} = %v, want 3 (first, other user, summary)", got)
	}

	// The window renewed by the summary folds the flood again: one event
	// per window per key.
	d.Emit(at(0))
	waitFor(t, "the 5th suppressed", func() bool { return value(t, d.metrics.suppressed) == 5 })
	clock.Advance(61 * time.Second)
	waitFor(t, "the one-repeat summary", func() bool { return len(buf.alertLines(t)) == 5 })
	if last := buf.alertLines(t)[4]; last["count"] != 1.0 || last["first_seen"] != nil {
		t.Errorf("one-repeat summary = %v, want count 1 without seen-times", last)
	}

	// A quiet window forgets the key; the next occurrence is immediate even
	// though the clock does not move again.
	clock.Advance(61 * time.Second)
	d.Emit(at(0))
	waitFor(t, "the new first occurrence", func() bool { return len(buf.alertLines(t)) == 6 })
	if got := value(t, d.metrics.suppressed); got != 5 {
		t.Errorf("suppressed = %v, want 5", got)
	}
}

func TestDedupOverflowEmitsInsteadOfGrowing(t *testing.T) {
	clock := newFakeClock()
	d, buf := newTestDispatcher(t, Config{DedupMaxEntries: 2, Now: clock.Now})
	for i := range 3 {
		e := sampleEvent()
		e.Fingerprint = fmt.Sprintf("fp%d", i)
		d.Emit(e)
		d.Emit(e) // a repeat: folded for tracked keys, sent for the untracked one
	}
	closeNow(t, d)
	var singles, summaries int
	for _, m := range buf.alertLines(t) {
		switch m["count"] {
		case 1.0:
			singles++
		default:
			summaries++
		}
	}
	// fp0, fp1: first + folded repeat (summary of 1 at Close); fp2: both sent.
	if singles != 6 || summaries != 0 {
		t.Errorf("singles=%d summaries=%d, want 6 and 0", singles, summaries)
	}
	if got := value(t, d.metrics.overflow); got != 2 {
		t.Errorf("overflow = %v, want 2", got)
	}
}

func TestCloseFlushes(t *testing.T) {
	hook := newHookServer(t, func(int, http.ResponseWriter) {})
	clock := newFakeClock()
	d, buf := newTestDispatcher(t, Config{WebhookURL: hook.URL, DedupWindow: time.Hour, Now: clock.Now})
	for i := range 50 {
		e := sampleEvent()
		e.Fingerprint = fmt.Sprintf("fp%d", i)
		d.Emit(e)
	}
	for range 7 {
		d.Emit(sampleEvent()) // fp differs from all above: first + 6 folded
	}
	closeNow(t, d)
	if got := hook.requests(); got != 52 {
		t.Errorf("webhook got %d requests, want 52 (50 + first + summary)", got)
	}
	lines := buf.alertLines(t)
	if len(lines) != 52 {
		t.Fatalf("log got %d alerts, want 52", len(lines))
	}
	counts := 0
	for _, m := range lines {
		counts += int(m["count"].(float64))
	}
	if counts != 57 {
		t.Errorf("sum of counts = %d, want 57 occurrences", counts)
	}
}

func TestEmitAfterCloseIsCountedNotPanicking(t *testing.T) {
	d, buf := newTestDispatcher(t, Config{})
	closeNow(t, d)
	d.Emit(sampleEvent())
	if got := value(t, d.inDropped); got != 1 {
		t.Errorf("dropped{dispatcher} = %v, want 1", got)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if n := len(buf.alertLines(t)); n != 0 {
		t.Errorf("got %d alerts after Close, want 0", n)
	}
}

func TestRedactsStatementWithLiteral(t *testing.T) {
	hook := newHookServer(t, func(int, http.ResponseWriter) {})
	d, buf := newTestDispatcher(t, Config{WebhookURL: hook.URL})
	e := sampleEvent()
	e.Statement = "SELECT email FROM crm.customers WHERE email = 'bob@example.com' AND id = 4711"
	d.Emit(e)
	closeNow(t, d)
	for where, out := range map[string]string{"log": buf.String(), "webhook": string(hook.body(0))} {
		if strings.Contains(out, "bob@example.com") || strings.Contains(out, "4711") {
			t.Errorf("%s output leaks the literal: %s", where, out)
		}
		if !strings.Contains(out, RedactedStatement) {
			t.Errorf("%s output lacks the redaction marker: %s", where, out)
		}
	}
	if got := value(t, d.metrics.redacted); got != 1 {
		t.Errorf("redacted = %v, want 1", got)
	}
}

// The package must add nothing to an alert beyond what the caller gave it
// and its own bookkeeping (count), so it cannot be a source of leaks.
func TestAlertCarriesOnlyWhatItWasGiven(t *testing.T) {
	hook := newHookServer(t, func(int, http.ResponseWriter) {})
	d, _ := newTestDispatcher(t, Config{WebhookURL: hook.URL})
	in := sampleEvent()
	d.Emit(in)
	closeNow(t, d)

	given := []string{
		formatTime(in.Time), string(in.Kind), in.User, in.Purpose, in.Database, in.ClientAddr,
		in.ApplicationName, in.Statement, in.Fingerprint, in.PolicyVersion, string(in.Mode), in.SessionID,
		in.Denied[0].Column, in.Denied[0].Category, in.Denied[0].Act, in.Denied[0].Reason,
	}
	given = append(given, in.Roles...)
	var got []string
	collectStrings(t, hook.body(0), &got)
	for _, s := range got {
		if !slices.Contains(given, s) {
			t.Errorf("alert contains %q, which the caller never gave", s)
		}
	}
	if len(got) != len(given) {
		t.Errorf("alert has %d strings, caller gave %d", len(got), len(given))
	}
}

func TestNewTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	d1, err := New(Config{}, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{}, zerolog.Nop(), reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second New = %v, want AlreadyRegisteredError", err)
	}
	closeNow(t, d1)
	d3, err := New(Config{}, zerolog.Nop(), reg)
	if err != nil {
		t.Fatalf("New after Close = %v, want the metrics to be free again", err)
	}
	closeNow(t, d3)
}

func TestNoGoroutineLeak(t *testing.T) {
	hook := newHookServer(t, func(n int, w http.ResponseWriter) {
		if n%3 == 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	// The receiver stays up: a Dispatcher that left keep-alive connections
	// open would leave goroutines on both ends.
	before := runtime.NumGoroutine()
	d, err := New(fastRetry(hook.URL), zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		e := sampleEvent()
		e.Fingerprint = fmt.Sprint(i)
		d.Emit(e)
	}
	waitFor(t, "deliveries", func() bool { return hook.requests() >= 20 })
	if runtime.NumGoroutine() <= before {
		t.Fatal("the dispatcher runs no goroutines at all; the check below would prove nothing")
	}
	closeNow(t, d)
	waitFor(t, "goroutines to return to the baseline", func() bool { return runtime.NumGoroutine() <= before })
}

// gatedClock blocks Now until opened, which stalls the dispatcher goroutine
// (it reads the clock for every event) while Emit keeps being called.
type gatedClock struct {
	gate chan struct{}
}

func (c gatedClock) Now() time.Time {
	<-c.gate
	return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
}

func TestEmitNeverBlocksWhenDispatcherStalls(t *testing.T) {
	clock := gatedClock{gate: make(chan struct{})}
	d, _ := newTestDispatcher(t, Config{QueueSize: 100, Now: clock.Now})
	open := sync.OnceFunc(func() { close(clock.gate) })
	t.Cleanup(open) // runs before Close even when the test fails early
	d.Emit(sampleEvent())
	waitFor(t, "the dispatcher to take the first event and stall", func() bool { return len(d.in) == 0 })
	const total = 10000
	var returned atomic.Int64
	go func() {
		for i := range total {
			e := sampleEvent() // Time set: Emit itself needs no clock
			e.Fingerprint = fmt.Sprint(i)
			d.Emit(e)
			returned.Add(1)
		}
	}()
	waitFor(t, "all Emit calls to return", func() bool { return returned.Load() == total })
	// 100 fit in the queue behind the stalled dispatcher; the rest drop.
	if got := value(t, d.inDropped); got != total-100 {
		t.Errorf("dropped{dispatcher} = %v, want %d", got, total-100)
	}
	open()
	closeNow(t, d)
	if got := value(t, d.metrics.emitted.WithLabelValues(string(KindQueryBlocked))); got != 101 {
		t.Errorf("emitted = %v, want the 101 accepted events (1 + 100 queued)", got)
	}
}

// collectStrings gathers every string value of a JSON document.
func collectStrings(t *testing.T, raw []byte, out *[]string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("webhook body is not JSON: %v", err)
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			*out = append(*out, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
}

// TestDedupFoldsOnlyIdenticalReports: repeats are folded only when the
// summary's fields describe them all; a repeat from another port of the
// same client, or in another session, is still a repeat.
func TestDedupFoldsOnlyIdenticalReports(t *testing.T) {
	variants := map[string]func(*Event){
		"purpose":          func(e *Event) { e.Purpose = "campaign_analysis" },
		"database":         func(e *Event) { e.Database = "archive" },
		"denied column":    func(e *Event) { e.Denied[0].Column = "crm.customers.phone" },
		"denial reason":    func(e *Event) { e.Denied[0].Reason = "deny rule" },
		"application":      func(e *Event) { e.ApplicationName = "batch" },
		"client host":      func(e *Event) { e.ClientAddr = "10.0.0.8:51234" },
		"roles":            func(e *Event) { e.Roles = []string{"marketing"} },
		"policy version":   func(e *Event) { e.PolicyVersion = "sha256:1111" },
		"another denial":   func(e *Event) { e.Denied = append(e.Denied, Denial{Column: "crm.customers.iban", Act: "read"}) },
		"statement (same)": nil,
	}
	for name, change := range variants {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			d, buf := newTestDispatcher(t, Config{DedupWindow: time.Minute, SweepInterval: time.Millisecond, Now: clock.Now})
			d.Emit(sampleEvent())
			waitFor(t, "the first occurrence", func() bool { return len(buf.alertLines(t)) == 1 })
			e := sampleEvent()
			e.Denied = append([]Denial(nil), e.Denied...)
			e.ClientAddr, e.SessionID = "10.0.0.7:60000", "s-43"
			if change != nil {
				change(&e)
			}
			d.Emit(e)
			if change == nil {
				waitFor(t, "the repeat folded", func() bool { return value(t, d.metrics.suppressed) == 1 })
				return
			}
			waitFor(t, "the variant sent on its own", func() bool { return len(buf.alertLines(t)) == 2 })
			if got := value(t, d.metrics.suppressed); got != 0 {
				t.Errorf("suppressed = %v, want 0", got)
			}
		})
	}
}
