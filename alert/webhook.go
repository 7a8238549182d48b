package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rs/zerolog"
)

// maxDrain bounds how much of a response body is read to let the
// connection be reused; receivers' answers are of no interest beyond that.
const maxDrain = 64 << 10

// webhookSink POSTs each event as JSON, retrying transient failures.
type webhookSink struct {
	url     string
	client  *http.Client
	ownsC   bool // close idle connections of a client we created
	cfg     Config
	logger  zerolog.Logger
	metrics *dispatchMetrics
}

// attemptResult is what one HTTP request taught us.
type attemptResult struct {
	err        error
	retryable  bool
	retryAfter time.Duration // < 0: the server did not say
}

func newWebhookSink(cfg Config, logger zerolog.Logger, m *dispatchMetrics) *webhookSink {
	s := &webhookSink{url: cfg.WebhookURL, client: cfg.HTTPClient, cfg: cfg, logger: logger, metrics: m}
	if s.client == nil {
		s.client = newHTTPClient()
		s.ownsC = true
	}
	return s
}

// newHTTPClient refuses redirects: alerts hold user names and statements,
// and must go where the operator pointed them, not where a receiver says.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// deliver is the worker's handleFunc: marshal once, then attempt until
// success, a permanent failure, the attempt limit, or abort.
func (s *webhookSink) deliver(ctx context.Context, e Event) bool {
	body, err := json.Marshal(e)
	if err != nil {
		s.finish(e, outcomeFailed, 0, err)
		return true
	}
	for attempt := 1; ; attempt++ {
		res := s.attempt(ctx, body)
		if ctx.Err() != nil {
			return false
		}
		switch {
		case res.err == nil:
			s.finish(e, outcomeSuccess, attempt, nil)
			return true
		case !res.retryable:
			s.finish(e, outcomeRejected, attempt, res.err)
			return true
		case attempt >= s.cfg.WebhookMaxAttempts:
			s.finish(e, outcomeFailed, attempt, res.err)
			return true
		}
		s.metrics.retries.Inc()
		if !sleepCtx(ctx, s.delay(attempt, res.retryAfter)) {
			return false
		}
	}
}

// finish records the final outcome; failures are logged once per event, not
// per attempt, and never with the URL, whose path often holds a token.
func (s *webhookSink) finish(e Event, outcome string, attempts int, err error) {
	s.metrics.deliveries.WithLabelValues(outcome).Inc()
	if err == nil {
		return
	}
	s.logger.Warn().Str("sink", sinkWebhook).
		Str("event", string(e.Kind)).Str("fingerprint", e.Fingerprint).
		Str("outcome", outcome).Int("attempts", attempts).Err(err).
		Msg("alert webhook delivery failed")
}

// attempt sends one request with its own timeout.
func (s *webhookSink) attempt(ctx context.Context, body []byte) attemptResult {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return attemptResult{err: fmt.Errorf("build request: %w", err), retryAfter: -1}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pgguard")
	resp, err := s.client.Do(req)
	if err != nil {
		return attemptResult{err: fmt.Errorf("post: %w", stripURL(err)), retryable: true, retryAfter: -1}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return s.judge(resp)
}

// judge classifies a response: 2xx is delivered; 408, 429 and 5xx are worth
// another try; anything else (400, 401, 404, a redirect) will not improve.
func (s *webhookSink) judge(resp *http.Response) attemptResult {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return attemptResult{retryAfter: -1}
	}
	err := fmt.Errorf("receiver answered %s", resp.Status)
	retryable := code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
	return attemptResult{err: err, retryable: retryable, retryAfter: retryAfter(resp.Header.Get("Retry-After"), s.cfg.Now())}
}

// stripURL drops the *url.Error wrapper, whose message repeats the URL and
// with it any token the URL carries.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryAfter parses a Retry-After header (delay-seconds or HTTP-date);
// it returns -1 when absent or unparsable.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return -1
	}
	if secs, err := strconv.Atoi(h); err == nil {
		if secs < 0 {
			return -1
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return -1
	}
	return max(t.Sub(now), 0)
}

// delay honours a small Retry-After and otherwise backs off exponentially.
func (s *webhookSink) delay(attempt int, ra time.Duration) time.Duration {
	if ra >= 0 && ra <= s.cfg.WebhookMaxRetryAfter {
		return ra
	}
	return backoff(attempt, s.cfg.WebhookBackoffBase, s.cfg.WebhookBackoffMax)
}

// backoff returns the delay after the given failed attempt (1-based):
// base·2^(attempt-1) capped at ceiling, then "equal jitter" (half fixed, half
// random) so many pgguard instances hitting one receiver do not retry in
// lockstep, while a retry never comes sooner than half the nominal delay.
func backoff(attempt int, base, ceiling time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleepCtx waits d or until ctx ends; it reports whether the full wait
// happened.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// closeIdle releases keep-alive connections so a closed Dispatcher leaves
// no transport goroutines behind.
func (s *webhookSink) closeIdle() {
	if s.ownsC {
		s.client.CloseIdleConnections()
	}
}
