package alert

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultQueueSize            = 1024
	DefaultDedupWindow          = 60 * time.Second
	DefaultDedupMaxEntries      = 10000
	DefaultWebhookQueueSize     = 1024
	DefaultWebhookTimeout       = 5 * time.Second
	DefaultWebhookMaxAttempts   = 5
	DefaultWebhookBackoffBase   = 500 * time.Millisecond
	DefaultWebhookBackoffMax    = 30 * time.Second
	DefaultWebhookMaxRetryAfter = 30 * time.Second
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns, so
// callers can tell a configuration mistake from a runtime failure.
var ErrInvalidConfig = errors.New("invalid alert config")

// Config configures a Dispatcher. The zero value is usable: log sink only,
// default queue sizes and a 60 s dedup window.
type Config struct {
	// QueueSize bounds the queue between Emit and the dispatcher goroutine,
	// and the log sink's queue. Default DefaultQueueSize.
	QueueSize int
	// DedupWindow is how long repeats of the same (user, fingerprint, kind)
	// are folded into one summary. Zero means DefaultDedupWindow; a negative
	// value turns dedup off.
	DedupWindow time.Duration
	// DedupMaxEntries caps the dedup table; beyond it new keys are emitted
	// without being tracked, so memory stays bounded under a flood of
	// distinct statements. Default DefaultDedupMaxEntries.
	DedupMaxEntries int
	// SweepInterval is how often the dispatcher looks for dedup windows that
	// have closed. Default: a quarter of DedupWindow, at most one second.
	SweepInterval time.Duration

	// WebhookURL, when set, receives every alert as a JSON POST. It must be
	// an absolute http or https URL.
	WebhookURL string
	// WebhookQueueSize bounds the webhook's queue. Default
	// DefaultWebhookQueueSize.
	WebhookQueueSize int
	// WebhookTimeout bounds one HTTP request. Default DefaultWebhookTimeout.
	WebhookTimeout time.Duration
	// WebhookMaxAttempts is how many requests one event gets before it is
	// counted as failed. Default DefaultWebhookMaxAttempts.
	WebhookMaxAttempts int
	// WebhookBackoffBase is the delay before the first retry; each further
	// retry doubles it, with jitter. Default DefaultWebhookBackoffBase.
	WebhookBackoffBase time.Duration
	// WebhookBackoffMax caps the retry delay. Default
	// DefaultWebhookBackoffMax.
	WebhookBackoffMax time.Duration
	// WebhookMaxRetryAfter is the longest Retry-After the webhook honours;
	// a longer one falls back to the computed backoff, so a receiver cannot
	// park the worker for hours. Default DefaultWebhookMaxRetryAfter.
	WebhookMaxRetryAfter time.Duration
	// HTTPClient replaces the webhook's HTTP client (for proxies, custom TLS
	// roots or tests). Its Timeout, if any, adds to WebhookTimeout.
	HTTPClient *http.Client

	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	c.QueueSize = orDefault(c.QueueSize, DefaultQueueSize)
	c.DedupWindow = orDefault(c.DedupWindow, DefaultDedupWindow)
	c.DedupMaxEntries = orDefault(c.DedupMaxEntries, DefaultDedupMaxEntries)
	c.SweepInterval = orDefault(c.SweepInterval, defaultSweep(c.DedupWindow))
	c.WebhookQueueSize = orDefault(c.WebhookQueueSize, DefaultWebhookQueueSize)
	c.WebhookTimeout = orDefault(c.WebhookTimeout, DefaultWebhookTimeout)
	c.WebhookMaxAttempts = orDefault(c.WebhookMaxAttempts, DefaultWebhookMaxAttempts)
	c.WebhookBackoffBase = orDefault(c.WebhookBackoffBase, DefaultWebhookBackoffBase)
	c.WebhookBackoffMax = orDefault(c.WebhookBackoffMax, DefaultWebhookBackoffMax)
	c.WebhookMaxRetryAfter = orDefault(c.WebhookMaxRetryAfter, DefaultWebhookMaxRetryAfter)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// defaultSweep keeps window-close latency a small fraction of the window
// without waking up more than needed.
func defaultSweep(window time.Duration) time.Duration {
	return min(max(window/4, time.Millisecond), time.Second)
}

// Validate checks c after defaults are applied and reports every problem at
// once, each naming the field, so an operator fixes them in one go.
func (c Config) Validate() error {
	c = c.withDefaults()
	errs := []error{
		positive("QueueSize", c.QueueSize),
		positive("DedupMaxEntries", c.DedupMaxEntries),
		positive("SweepInterval", c.SweepInterval),
		positive("WebhookQueueSize", c.WebhookQueueSize),
		positive("WebhookTimeout", c.WebhookTimeout),
		positive("WebhookMaxAttempts", c.WebhookMaxAttempts),
		positive("WebhookBackoffBase", c.WebhookBackoffBase),
		positive("WebhookBackoffMax", c.WebhookBackoffMax),
		positive("WebhookMaxRetryAfter", c.WebhookMaxRetryAfter),
		validWebhookURL(c.WebhookURL),
	}
	if c.WebhookBackoffBase > c.WebhookBackoffMax {
		errs = append(errs, fmt.Errorf("%w: WebhookBackoffBase %s exceeds WebhookBackoffMax %s",
			ErrInvalidConfig, c.WebhookBackoffBase, c.WebhookBackoffMax))
	}
	return errors.Join(errs...)
}

func positive[T int | time.Duration](field string, v T) error {
	if v > 0 {
		return nil
	}
	return fmt.Errorf("%w: %s must be positive, got %v", ErrInvalidConfig, field, v)
}

// validWebhookURL checks the URL without ever echoing it: webhook URLs often
// carry their secret token in the path or query.
func validWebhookURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: WebhookURL does not parse as a URL", ErrInvalidConfig)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: WebhookURL scheme %q not supported, want http or https", ErrInvalidConfig, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: WebhookURL has no host", ErrInvalidConfig)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%w: WebhookURL must not have a #fragment, which is never sent", ErrInvalidConfig)
	}
	return nil
}
