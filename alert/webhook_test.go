package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func TestWebhookDelivers(t *testing.T) {
	hook := newHookServer(t, func(int, http.ResponseWriter) {})
	d, _ := newTestDispatcher(t, Config{WebhookURL: hook.URL + "/alerts?token=x"})
	d.Emit(sampleEvent())
	closeNow(t, d)

	if hook.requests() != 1 {
		t.Fatalf("got %d requests, want 1", hook.requests())
	}
	h := hook.header(0)
	if h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "pgguard" {
		t.Errorf("Content-Type=%q User-Agent=%q", h.Get("Content-Type"), h.Get("User-Agent"))
	}
	var got Event
	if err := json.Unmarshal(hook.body(0), &got); err != nil {
		t.Fatalf("body is not an Event: %v", err)
	}
	want := single(sampleEvent())
	wantRaw, _ := json.Marshal(want)
	gotRaw, _ := json.Marshal(got)
	if string(gotRaw) != string(wantRaw) {
		t.Errorf("body\n got %s\nwant %s", gotRaw, wantRaw)
	}
	if v := value(t, d.metrics.deliveries.WithLabelValues(outcomeSuccess)); v != 1 {
		t.Errorf("deliveries{success} = %v, want 1", v)
	}
}

func TestWebhookRetries(t *testing.T) {
	tests := []struct {
		name         string
		attempts     int
		reply        func(n int, w http.ResponseWriter)
		wantRequests int
		wantOutcome  string
		wantRetries  float64
	}{
		{"500 then success", 5, func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}, 2, outcomeSuccess, 1},
		{"429 with Retry-After then success", 5, func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
			}
		}, 2, outcomeSuccess, 1},
		{"two 503 then success", 5, func(n int, w http.ResponseWriter) {
			if n <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}, 3, outcomeSuccess, 2},
		{"gives up after N attempts", 3, func(_ int, w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
		}, 3, outcomeFailed, 2},
		{"400 is not retried", 5, func(_ int, w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadRequest)
		}, 1, outcomeRejected, 0},
		{"redirect is not followed", 5, func(_ int, w http.ResponseWriter) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
		}, 1, outcomeRejected, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hook := newHookServer(t, tc.reply)
			cfg := fastRetry(hook.URL)
			cfg.WebhookMaxAttempts = tc.attempts
			d, _ := newTestDispatcher(t, cfg)
			d.Emit(sampleEvent())
			closeNow(t, d)
			if got := hook.requests(); got != tc.wantRequests {
				t.Errorf("requests = %d, want %d", got, tc.wantRequests)
			}
			for i := range hook.requests() {
				if string(hook.body(i)) != string(hook.body(0)) {
					t.Errorf("retry %d sent a different body", i)
				}
			}
			for _, o := range []string{outcomeSuccess, outcomeFailed, outcomeRejected} {
				want := 0.0
				if o == tc.wantOutcome {
					want = 1
				}
				if got := value(t, d.metrics.deliveries.WithLabelValues(o)); got != want {
					t.Errorf("deliveries{%s} = %v, want %v", o, got, want)
				}
			}
			if got := value(t, d.metrics.retries); got != tc.wantRetries {
				t.Errorf("retries = %v, want %v", got, tc.wantRetries)
			}
		})
	}
}

func TestWebhookNetworkErrorIsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more: connection refused
	cfg := fastRetry("http://" + addr + "/hook")
	cfg.WebhookMaxAttempts = 3
	buf := &syncBuffer{}
	d, err := New(cfg, zerolog.New(buf), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Emit(sampleEvent())
	closeNow(t, d)
	if got := value(t, d.metrics.retries); got != 2 {
		t.Errorf("retries = %v, want 2", got)
	}
	if got := value(t, d.metrics.deliveries.WithLabelValues(outcomeFailed)); got != 1 {
		t.Errorf("deliveries{failed} = %v, want 1", got)
	}
	if out := buf.String(); strings.Count(lastLine(out), `"component"`) != 1 || !containsAll(out, "alert webhook delivery failed", `"attempts":3`) {
		t.Errorf("failure not logged as expected: %s", out)
	}
}

func TestWebhookRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	hook := newHookServer(t, func(int, http.ResponseWriter) { <-release })
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	cfg := fastRetry(hook.URL)
	cfg.WebhookTimeout = 20 * time.Millisecond
	cfg.WebhookMaxAttempts = 2
	d, _ := newTestDispatcher(t, cfg)
	d.Emit(sampleEvent())
	closeNow(t, d)
	if got := hook.requests(); got != 2 {
		t.Errorf("requests = %d, want 2 (each timed out)", got)
	}
	if got := value(t, d.metrics.deliveries.WithLabelValues(outcomeFailed)); got != 1 {
		t.Errorf("deliveries{failed} = %v, want 1", got)
	}
}

// A hanging receiver must cost alerts, never the data path: every Emit
// returns, and every event is accounted for as processed or dropped.
func TestHangingWebhookNeverBlocksEmit(t *testing.T) {
	release := make(chan struct{})
	hook := newHookServer(t, func(int, http.ResponseWriter) { <-release })
	t.Cleanup(func() { close(release) })
	cfg := Config{
		WebhookURL: hook.URL, QueueSize: 100, WebhookQueueSize: 100,
		DedupWindow: -1, WebhookTimeout: time.Hour, WebhookMaxAttempts: 1,
	}
	d, err := New(cfg, zerolog.New(io.Discard), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}

	// Emit until the dispatcher has passed on far more events than the
	// webhook can hold, however the goroutines are scheduled: a fixed
	// count may be dropped almost whole at the dispatcher on a busy machine,
	// leaving nothing for the webhook to drop.
	const fit = 101 // the webhook's queue and the request in flight
	emitted := func() float64 { return value(t, d.metrics.emitted.WithLabelValues(string(KindQueryBlocked))) }
	var returned atomic.Int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e := sampleEvent()
			e.Fingerprint = fmt.Sprint(i)
			d.Emit(e)
			returned.Add(1)
		}
	}()
	waitFor(t, "the dispatcher to pass on 3 webhook queues' worth", func() bool { return emitted() >= 3*fit })
	close(stop)
	waitFor(t, "every Emit call to return", func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	})
	// An event leaves the dispatcher's queue a moment before it is counted
	// and offered to the webhook: wait for the counts, not for the queue.
	total := float64(returned.Load())
	inDropped := func() float64 { return value(t, d.inDropped) }
	hookDropped := func() float64 { return value(t, d.metrics.dropped.WithLabelValues(sinkWebhook)) }
	waitFor(t, "every event to be emitted or dropped at the dispatcher", func() bool { return emitted()+inDropped() == total })
	passed := emitted()
	waitFor(t, fmt.Sprintf("the webhook to drop all but %d of %v events", fit, passed), func() bool { return hookDropped() >= passed-fit })
	if got := hookDropped(); got > passed {
		t.Errorf("webhook dropped %v of %v events", got, passed)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want it to report the deadline", err)
	}
	if got := value(t, d.metrics.dropped.WithLabelValues(sinkWebhook)); got != passed {
		t.Errorf("after Close webhook dropped = %v, want every one of the %v events", got, passed)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},  // capped
		{80, 500 * time.Millisecond, time.Second}, // no overflow
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("attempt ", tc.attempt), func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := backoff(tc.attempt, 100*time.Millisecond, time.Second)
				if d < tc.min || d > tc.max {
					t.Fatalf("backoff = %s, want within [%s, %s]", d, tc.min, tc.max)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Errorf("200 delays were all equal: no jitter")
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", -1},
		{"7", 7 * time.Second},
		{"0", 0},
		{"-3", -1},
		{"soon", -1},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		if got := retryAfter(tc.h, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.h, got, tc.want)
		}
	}
}

func TestDelayHonoursOnlySmallRetryAfter(t *testing.T) {
	s := &webhookSink{cfg: Config{
		WebhookBackoffBase: 100 * time.Millisecond, WebhookBackoffMax: time.Second, WebhookMaxRetryAfter: 10 * time.Second,
	}}
	if got := s.delay(1, 3*time.Second); got != 3*time.Second {
		t.Errorf("delay with Retry-After 3s = %s, want 3s", got)
	}
	if got := s.delay(1, time.Hour); got > 100*time.Millisecond {
		t.Errorf("delay with Retry-After 1h = %s, want the backoff instead", got)
	}
	if got := s.delay(1, -1); got > 100*time.Millisecond || got < 50*time.Millisecond {
		t.Errorf("delay without Retry-After = %s, want the backoff", got)
	}
}

// The receiver's URL may carry a token; a delivery error must not log it.
func TestWebhookFailureLogOmitsURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fastRetry("http://user:pw@" + addr + "/hooks/SECRET-TOKEN?k=SECRET-KEY")
	cfg.WebhookMaxAttempts = 1
	buf := &syncBuffer{}
	d, err := New(cfg, zerolog.New(buf), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Emit(sampleEvent())
	closeNow(t, d)
	out := buf.String()
	if !containsAll(out, "alert webhook delivery failed") {
		t.Fatalf("no failure logged: %s", out)
	}
	for _, secret := range []string{"SECRET-TOKEN", "SECRET-KEY", "pw@"} {
		if containsAll(out, secret) {
			t.Errorf("log leaks %q: %s", secret, out)
		}
	}
}
