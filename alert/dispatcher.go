package alert

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// RedactedStatement replaces a statement that still looked like it held a
// literal value, so the alert goes out without the personal data.
const RedactedStatement = "[redacted: statement was not normalized]"

// Dispatcher takes alerts from the data path and delivers them to the log
// and the optional webhook. It is safe for concurrent use.
type Dispatcher struct {
	cfg     Config
	diag    zerolog.Logger // the package's own diagnostics, never alerts
	reg     prometheus.Registerer
	metrics *dispatchMetrics
	dedup   *dedup // nil when dedup is off

	in        chan Event
	inDropped prometheus.Counter
	sinks     []*worker
	webhook   *webhookSink // nil when no webhook is configured

	mu     sync.RWMutex // guards closed against Emit racing Close
	closed bool

	stop      chan struct{}
	loopDone  chan struct{}
	closeCtx  context.Context // written by Close before stop is closed
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, registers the alert metrics on reg (nil: none) and
// starts the dispatcher and sink goroutines; Close stops them.
//
// Alerts are written on logger at warn level. If logger already stamps a
// `time` field, that stamp stays the line's `time` instead of a second one
// being added. New returns an error wrapping ErrInvalidConfig for a bad
// cfg, and the registry's error if the metrics are already registered
// (one live Dispatcher per Registerer).
func New(cfg Config, logger zerolog.Logger, reg prometheus.Registerer) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("alert: new dispatcher: %w", err)
	}
	cfg = cfg.withDefaults()
	d := &Dispatcher{
		cfg:      cfg,
		diag:     logger.With().Str("component", "alert").Logger(),
		reg:      reg,
		metrics:  newDispatchMetrics(),
		in:       make(chan Event, cfg.QueueSize),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	if cfg.DedupWindow > 0 {
		d.dedup = newDedup(cfg.DedupWindow, cfg.DedupMaxEntries)
	}
	d.inDropped = d.metrics.dropped.WithLabelValues(sinkDispatcher)
	d.metrics.addQueue(sinkDispatcher, d.in)
	d.addSinks(logger)
	if err := d.metrics.register(reg); err != nil {
		return nil, fmt.Errorf("alert: new dispatcher: %w", err)
	}
	d.start()
	return d, nil
}

// addSinks builds the log sink and, if configured, the webhook sink.
func (d *Dispatcher) addSinks(logger zerolog.Logger) {
	ls := newLogSink(logger)
	d.addWorker(sinkLog, d.cfg.QueueSize, ls.write)
	if d.cfg.WebhookURL == "" {
		return
	}
	d.webhook = newWebhookSink(d.cfg, d.diag, d.metrics)
	d.addWorker(sinkWebhook, d.cfg.WebhookQueueSize, d.webhook.deliver)
}

func (d *Dispatcher) addWorker(name string, size int, h handleFunc) {
	w := newWorker(size, h, d.metrics.dropped.WithLabelValues(name))
	d.metrics.addQueue(name, w.q)
	d.sinks = append(d.sinks, w)
}

func (d *Dispatcher) start() {
	for _, w := range d.sinks {
		w.start()
	}
	go d.run()
}

// Emit hands e to the dispatcher and returns at once: it never blocks and
// never does I/O, because it runs on the proxy's data path. When the queue
// is full (or the Dispatcher is closed) e is dropped and counted in
// pgguard_alerts_dropped_total{sink="dispatcher"}.
//
// A zero e.Time is set from the clock. Count, FirstSeen and LastSeen are the
// Dispatcher's to set. e.Statement must be normalized (see Event). The
// slices of e are copied, so the caller may reuse them.
func (d *Dispatcher) Emit(e Event) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		d.inDropped.Inc()
		return
	}
	select {
	case d.in <- d.prepare(e):
	default:
		d.inDropped.Inc()
	}
}

// prepare detaches e from the caller's memory and stamps its time.
func (d *Dispatcher) prepare(e Event) Event {
	if e.Time.IsZero() {
		e.Time = d.cfg.Now()
	}
	e.Roles = slices.Clone(e.Roles)
	e.Denied = slices.Clone(e.Denied)
	return e
}

// run is the dispatcher goroutine: it owns the dedup table, so dedup needs
// no lock and Emit stays a channel send.
func (d *Dispatcher) run() {
	defer close(d.loopDone)
	var tick <-chan time.Time // nil, never ready, when dedup is off
	if d.dedup != nil {
		t := time.NewTicker(d.cfg.SweepInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case e := <-d.in:
			d.process(e, d.fanout)
		case <-tick:
			d.dedup.sweep(d.cfg.Now(), d.fanout)
		case <-d.stop:
			d.drain()
			return
		}
	}
}

// process runs one occurrence through redaction and dedup.
func (d *Dispatcher) process(e Event, out func(Event)) {
	e = d.redact(e)
	if d.dedup == nil || !e.Kind.query() {
		// Operational events are rare and each says something new: a
		// folded reload would hide what it changed.
		out(single(e))
		return
	}
	switch d.dedup.add(e, d.cfg.Now(), out) {
	case admittedFolded:
		d.metrics.suppressed.Inc()
	case admittedUntracked:
		d.metrics.overflow.Inc()
	}
}

// redact is the last safety net against personal data in alerts: a
// statement that still looks like it holds a literal is replaced. Other
// validation problems are reported but the alert still goes out, because a
// malformed alert is better than a missing one.
func (d *Dispatcher) redact(e Event) Event {
	if err := statementLiteral(e.Statement); err != nil {
		e.Statement = RedactedStatement
		d.metrics.redacted.Inc()
		d.diag.Warn().Str("fingerprint", e.Fingerprint).Err(err).Msg("alert statement was not normalized; redacted")
	}
	if err := e.Validate(); err != nil {
		d.diag.Warn().Str("fingerprint", e.Fingerprint).Err(err).Msg("alert event is malformed; sending it anyway")
	}
	return e
}

// fanout hands e to every sink without waiting.
func (d *Dispatcher) fanout(e Event) {
	d.metrics.emitted.WithLabelValues(string(e.Kind)).Inc()
	for _, w := range d.sinks {
		w.offer(e)
	}
}

// fanoutWait hands e to every sink, waiting for room until Close's deadline.
func (d *Dispatcher) fanoutWait(e Event) {
	d.metrics.emitted.WithLabelValues(string(e.Kind)).Inc()
	for _, w := range d.sinks {
		w.offerWait(d.closeCtx, e)
	}
}

// drain processes what Emit queued before Close, then sends every pending
// dedup summary.
func (d *Dispatcher) drain() {
	for {
		select {
		case e := <-d.in:
			d.process(e, d.fanoutWait)
		default:
			if d.dedup != nil {
				d.dedup.flush(d.cfg.Now(), d.fanoutWait)
			}
			return
		}
	}
}

// Close stops accepting events, delivers everything already emitted
// (including pending dedup summaries) until ctx's deadline, then stops all
// goroutines and unregisters the alert metrics. It returns an error wrapping
// ctx.Err() if events had to be given up. Calling it again returns the first
// call's result.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() { d.closeErr = d.shutdown(ctx) })
	return d.closeErr
}

func (d *Dispatcher) shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()

	d.closeCtx = ctx
	close(d.stop)
	<-d.loopDone

	var lost int64
	for _, w := range d.sinks {
		lost += w.close(ctx)
	}
	if d.webhook != nil {
		d.webhook.closeIdle()
	}
	d.metrics.unregister(d.reg)
	if lost > 0 {
		return fmt.Errorf("alert: close: %d alert deliveries given up: %w", lost, ctx.Err())
	}
	return nil
}
