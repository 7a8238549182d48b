package alert

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
)

// syncBuffer is a log destination the test can read while the log worker
// writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// alertLines returns the log lines that are alerts (not the package's own
// diagnostics), parsed as JSON.
func (b *syncBuffer) alertLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader([]byte(b.String())))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		if _, diag := m["component"]; !diag {
			out = append(out, m)
		}
	}
	return out
}

// fakeClock is the injectable clock for dedup tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// value reads a counter or gauge directly, so assertions work after Close
// unregistered the metrics.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	switch {
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	}
	t.Fatalf("metric is neither counter nor gauge")
	return 0
}

// waitFor polls cond: the pipeline is asynchronous by design, so tests wait
// for an outcome rather than for a duration.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// newTestDispatcher starts a Dispatcher logging to a buffer, and closes it
// when the test ends.
func newTestDispatcher(t *testing.T, cfg Config) (*Dispatcher, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	d, err := New(cfg, zerolog.New(buf), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d, buf
}

func closeNow(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// sampleEvent is a denial as the proxy would report it, with a normalized
// statement.
func sampleEvent() Event {
	return Event{
		Time:            time.Date(2026, 3, 1, 11, 59, 58, 123456789, time.UTC),
		Kind:            KindQueryBlocked,
		User:            "sales_app",
		Roles:           []string{"sales"},
		Purpose:         "newsletter",
		Database:        "shop",
		ClientAddr:      "10.0.0.7:51234",
		ApplicationName: "crm-ui",
		Statement:       "SELECT email FROM crm.customers WHERE id = $1",
		Fingerprint:     "a1b2c3d4",
		Denied: []Denial{{
			Column: "crm.customers.email", Category: "customer_contact",
			Act: "read", Reason: "no allow rule for purpose newsletter",
		}},
		PolicyVersion: "sha256:0f3e",
		Mode:          ModeEnforce,
		SessionID:     "s-42",
	}
}

// hookServer is a webhook receiver that records bodies and answers with
// reply(n) for the n-th request (1-based).
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
}

func newHookServer(t *testing.T, reply func(n int, w http.ResponseWriter)) *hookServer {
	t.Helper()
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.heads = append(h.heads, r.Header.Clone())
		n := len(h.bodies)
		h.mu.Unlock()
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		reply(n, w)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

func (h *hookServer) body(i int) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bodies[i]
}

func (h *hookServer) header(i int) http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.heads[i]
}

// fastRetry keeps retry tests quick without changing what they prove.
func fastRetry(url string) Config {
	return Config{
		WebhookURL:         url,
		WebhookBackoffBase: time.Millisecond,
		WebhookBackoffMax:  4 * time.Millisecond,
		WebhookTimeout:     2 * time.Second,
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
