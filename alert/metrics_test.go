package alert

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHandlerExposesMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	hook := newHookServer(t, func(int, http.ResponseWriter) {})
	d, err := New(Config{WebhookURL: hook.URL}, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(t, d)
	m.SetPolicyVersion("v1")
	m.SetPolicyVersion("v2")
	m.Denials.WithLabelValues("marketing", "customer_contact").Inc()
	m.AnalysisDuration.Observe(3e-6)
	m.ConnectionsOpen.Inc()

	srv := httptest.NewServer(Handler(reg, nil))
	defer srv.Close()
	code, body := get(t, srv.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	want := []string{
		"pgguard_connections_open 1",
		"pgguard_connections_total 0",
		`pgguard_statements_total{verdict="allowed"} 0`,
		`pgguard_statements_total{verdict="error"} 0`,
		`pgguard_denials_total{category="customer_contact",role="marketing"} 1`,
		"pgguard_verdict_cache_hits_total 0",
		"pgguard_verdict_cache_misses_total 0",
		`pgguard_analysis_duration_seconds_bucket{le="1e-06"} 0`,
		`pgguard_analysis_duration_seconds_bucket{le="5e-06"} 1`,
		`pgguard_decision_duration_seconds_bucket{le="0.1"} 0`,
		`pgguard_policy_version{version="v2"} 1`,
		`pgguard_error_details_withheld_total{action="removed"} 0`,
		`pgguard_error_details_withheld_total{action="flagged"} 0`,
		`pgguard_policy_reloads_total{outcome="failure"} 0`,
		`pgguard_alerts_emitted_total{event="query_blocked"} 0`,
		"pgguard_alerts_dedup_suppressed_total 0",
		`pgguard_alerts_queue_length{queue="dispatcher"} 0`,
		`pgguard_alerts_queue_length{queue="webhook"} 0`,
		`pgguard_alerts_dropped_total{sink="webhook"} 0`,
		`pgguard_alerts_webhook_deliveries_total{outcome="success"} 0`,
		"pgguard_alerts_webhook_retries_total 0",
	}
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("/metrics lacks %q", w)
		}
	}
	if strings.Contains(body, `version="v1"`) {
		t.Error("old policy version still exposed")
	}
}

func TestHealthz(t *testing.T) {
	tests := []struct {
		name     string
		healthy  func() error
		wantCode int
		wantBody string
	}{
		{"no check", nil, http.StatusOK, "ok"},
		{"healthy", func() error { return nil }, http.StatusOK, "ok"},
		{"unhealthy", func() error { return errString("policy not loaded") }, http.StatusServiceUnavailable, "policy not loaded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(Handler(prometheus.NewRegistry(), tc.healthy))
			defer srv.Close()
			for _, path := range []string{"/healthz", "/readyz"} {
				code, body := get(t, srv.URL+path)
				if code != tc.wantCode || body != tc.wantBody {
					t.Errorf("%s = %d %q, want %d %q", path, code, body, tc.wantCode, tc.wantBody)
				}
			}
			// Liveness does not depend on readiness.
			if code, body := get(t, srv.URL+"/livez"); code != http.StatusOK || body != "ok" {
				t.Errorf("/livez = %d %q, want 200 \"ok\"", code, body)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestHandlerRejectsOtherMethodsAndPaths(t *testing.T) {
	srv := httptest.NewServer(Handler(nil, nil))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
	if code, _ := get(t, srv.URL+"/"); code != http.StatusNotFound {
		t.Errorf("GET / = %d, want 404", code)
	}
	if code, _ := get(t, srv.URL+"/metrics"); code != http.StatusOK {
		t.Errorf("GET /metrics with nil gatherer = %d, want 200", code)
	}
}

func TestCountStatement(t *testing.T) {
	m := NewMetrics(nil)
	for _, v := range []string{VerdictAllowed, VerdictAllowed, VerdictDenied, "other"} {
		m.CountStatement(v)
	}
	for v, want := range map[string]float64{VerdictAllowed: 2, VerdictDenied: 1, VerdictFlagged: 0, "other": 1} {
		if got := value(t, m.Statements.WithLabelValues(v)); got != want {
			t.Errorf("statements{verdict=%q} = %v, want %v", v, got, want)
		}
	}
}

func TestNewMetricsRegistration(t *testing.T) {
	m := NewMetrics(nil)
	m.Statements.WithLabelValues(VerdictDenied).Inc()
	if got := value(t, m.Statements.WithLabelValues(VerdictDenied)); got != 1 {
		t.Errorf("unregistered metrics do not count: %v", got)
	}
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	defer func() {
		if recover() == nil {
			t.Error("second NewMetrics on one registry did not panic")
		}
	}()
	NewMetrics(reg)
}

func TestCountStarting(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	srv := httptest.NewServer(Handler(reg, nil))
	defer srv.Close()
	_, body := get(t, srv.URL+"/metrics")
	for _, w := range []string{`pgguard_connections_starting{stage="startup"} 0`, `pgguard_connections_starting{stage="authenticating"} 0`} {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("/metrics lacks %q before CountStarting", w)
		}
	}
	m.CountStarting(func() (int, int) { return 470, 50 })
	_, body = get(t, srv.URL+"/metrics")
	for _, w := range []string{`pgguard_connections_starting{stage="startup"} 470`, `pgguard_connections_starting{stage="authenticating"} 50`} {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("/metrics lacks %q", w)
		}
	}
}

func TestHealthzWithStatus(t *testing.T) {
	status := func() string { return "policy store db:5432/security: connection lost (refused); keeping version 3\n" }
	tests := []struct {
		name        string
		ready       func() error
		wantCode    int
		wantHealthz string
		wantReadyz  string
	}{
		{"ready: the status follows ok, readiness unchanged", nil, http.StatusOK,
			"ok\npolicy store db:5432/security: connection lost (refused); keeping version 3\n", "ok"},
		{"not ready: the status follows the reason", func() error { return errString("shutting down") }, http.StatusServiceUnavailable,
			"shutting down\npolicy store db:5432/security: connection lost (refused); keeping version 3\n", "shutting down"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(HandlerWithStatus(prometheus.NewRegistry(), tc.ready, status))
			defer srv.Close()
			if code, body := get(t, srv.URL+"/healthz"); code != tc.wantCode || body != tc.wantHealthz {
				t.Errorf("/healthz = %d %q, want %d %q", code, body, tc.wantCode, tc.wantHealthz)
			}
			if code, body := get(t, srv.URL+"/readyz"); code != tc.wantCode || body != tc.wantReadyz {
				t.Errorf("/readyz = %d %q, want %d %q", code, body, tc.wantCode, tc.wantReadyz)
			}
		})
	}
}

func TestPolicyInfoAndStore(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	loaded := time.Unix(1_780_000_000, 0)
	m.SetPolicyInfo("2", "aaaa", loaded.Add(-time.Hour))
	m.SetPolicyInfo("3", "bbbb", loaded) // replaces the series: one policy in force
	m.SetPolicyStore("db:5432/security", false, time.Time{})
	m.SetPolicyStore("db:5432/security", true, loaded)
	srv := httptest.NewServer(Handler(reg, nil))
	defer srv.Close()
	_, body := get(t, srv.URL+"/metrics")
	for _, tc := range []struct {
		series string
		want   bool
	}{
		{`pgguard_policy_info{checksum="bbbb",version="3"} 1`, true},
		{`pgguard_policy_info{checksum="aaaa",version="2"}`, false},
		{`pgguard_policy_loaded_timestamp_seconds 1.78e+09`, true},
		{`pgguard_policy_store_up{store="db:5432/security"} 1`, true},
		{`pgguard_policy_confirmed_timestamp_seconds{store="db:5432/security"} 1.78e+09`, true},
	} {
		if strings.Contains(body, tc.series) != tc.want {
			t.Errorf("/metrics has %s: %v, want %v", tc.series, !tc.want, tc.want)
		}
	}
}
