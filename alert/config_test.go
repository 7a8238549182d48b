package alert

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings; none means valid
	}{
		{"zero value", Config{}, nil},
		{"https webhook", Config{WebhookURL: "https://hooks.example.com/T0/B0/secret"}, nil},
		{"dedup off", Config{DedupWindow: -1}, nil},
		{"ftp scheme", Config{WebhookURL: "ftp://example.com/x"}, []string{`scheme "ftp" not supported`}},
		{"relative URL", Config{WebhookURL: "/hook"}, []string{`scheme "" not supported`}},
		{"no host", Config{WebhookURL: "http:///hook"}, []string{"has no host"}},
		{"unparsable", Config{WebhookURL: "http://exa mple.com/%zz"}, []string{"does not parse"}},
		{"fragment", Config{WebhookURL: "https://example.com/h#x"}, []string{"#fragment"}},
		{"several at once", Config{QueueSize: -1, WebhookMaxAttempts: -2}, []string{
			"QueueSize must be positive, got -1", "WebhookMaxAttempts must be positive, got -2",
		}},
		{"base above max", Config{WebhookBackoffBase: time.Minute, WebhookBackoffMax: time.Second}, []string{
			"WebhookBackoffBase 1m0s exceeds WebhookBackoffMax 1s",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// Webhook URLs carry tokens; a config error must not print them.
func TestConfigErrorsDoNotEchoURL(t *testing.T) {
	for _, u := range []string{"ftp://example.com/TOKEN123", "http://exa mple.com/TOKEN123", "https://example.com/TOKEN123#f"} {
		err := Config{WebhookURL: u}.Validate()
		if err == nil || strings.Contains(err.Error(), "TOKEN123") {
			t.Errorf("Validate(%q) = %v, want an error without the token", u, err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	d, err := New(Config{WebhookURL: "gopher://x"}, zerolog.Nop(), prometheus.NewRegistry())
	if d != nil || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New = %v, %v; want nil, ErrInvalidConfig", d, err)
	}
}

func TestDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.DedupWindow != 60*time.Second || c.QueueSize != DefaultQueueSize || c.SweepInterval != time.Second ||
		c.WebhookMaxAttempts != DefaultWebhookMaxAttempts || c.Now == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if got := (Config{DedupWindow: 40 * time.Millisecond}).withDefaults().SweepInterval; got != 10*time.Millisecond {
		t.Errorf("sweep for a short window = %s, want 10ms", got)
	}
}
