package alert

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink and queue names used as metric label values.
const (
	sinkDispatcher = "dispatcher" // the queue between Emit and dedup
	sinkLog        = "log"
	sinkWebhook    = "webhook"
)

// Webhook delivery outcomes, the `outcome` label of
// pgguard_alerts_webhook_deliveries_total.
const (
	outcomeSuccess  = "success"  // a 2xx answer
	outcomeFailed   = "failed"   // attempts exhausted, or aborted by Close
	outcomeRejected = "rejected" // a non-retryable answer such as 400
)

// dispatchMetrics are the alert pipeline's own metrics. They belong to one
// Dispatcher and are unregistered by its Close, so a replacement Dispatcher
// can register on the same Registerer.
type dispatchMetrics struct {
	emitted    *prometheus.CounterVec
	suppressed prometheus.Counter
	overflow   prometheus.Counter
	redacted   prometheus.Counter
	dropped    *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	retries    prometheus.Counter
	queues     []prometheus.Collector
}

func newDispatchMetrics() *dispatchMetrics {
	m := &dispatchMetrics{
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgguard_alerts_emitted_total",
			Help: "Alert events handed to the sinks after dedup, by event kind.",
		}, []string{"event"}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgguard_alerts_dedup_suppressed_total",
			Help: "Alert occurrences folded into a dedup summary instead of being sent on their own.",
		}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgguard_alerts_dedup_overflow_total",
			Help: "Alerts sent untracked because the dedup table was full.",
		}),
		redacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgguard_alerts_statement_redacted_total",
			Help: "Alerts whose statement still looked like it held a literal and was redacted.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgguard_alerts_dropped_total",
			Help: "Alert events lost because a queue was full or Close ran out of time, by sink.",
		}, []string{"sink"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgguard_alerts_webhook_deliveries_total",
			Help: "Webhook deliveries by final outcome (success, failed, rejected).",
		}, []string{"outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgguard_alerts_webhook_retries_total",
			Help: "Webhook requests repeated after a network error, 5xx, 408 or 429.",
		}),
	}
	m.preinit()
	return m
}

// preinit creates every known label combination so dashboards and alerting
// rules see zeros instead of absent series.
func (m *dispatchMetrics) preinit() {
	for _, k := range []Kind{KindQueryBlocked, KindQueryFlagged, KindPolicyReloadFailed, KindPolicyReloaded, KindCatalogUnavailable} {
		m.emitted.WithLabelValues(string(k))
	}
	for _, s := range []string{sinkDispatcher, sinkLog, sinkWebhook} {
		m.dropped.WithLabelValues(s)
	}
	for _, o := range []string{outcomeSuccess, outcomeFailed, outcomeRejected} {
		m.deliveries.WithLabelValues(o)
	}
}

// addQueue exposes the current length of a queue; len of a channel is safe
// to read from the scraping goroutine.
func (m *dispatchMetrics) addQueue(name string, q chan Event) {
	m.queues = append(m.queues, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "pgguard_alerts_queue_length",
		Help:        "Alert events waiting in a queue.",
		ConstLabels: prometheus.Labels{"queue": name},
	}, func() float64 { return float64(len(q)) }))
}

func (m *dispatchMetrics) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{m.emitted, m.suppressed, m.overflow, m.redacted, m.dropped, m.deliveries, m.retries}
	return append(cs, m.queues...)
}

// register registers all collectors or none: a half-registered set would
// make a retry with the same Registerer fail.
func (m *dispatchMetrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return fmt.Errorf("alert: register metrics: %w", err)
		}
		done = append(done, c)
	}
	return nil
}

func (m *dispatchMetrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}
