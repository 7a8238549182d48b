package alert

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Statement verdicts, the `verdict` label of pgguard_statements_total.
const (
	VerdictAllowed = "allowed"
	VerdictDenied  = "denied"
	// VerdictFlagged: monitor mode forwarded a statement it would deny.
	VerdictFlagged = "flagged"
	// VerdictError: the statement could not be judged (and was refused).
	VerdictError = "error"
	// VerdictInvalid: a statement PostgreSQL itself would refuse (a syntax
	// error, a relation or column that does not exist), answered with the
	// server's own error and raising no alert.
	VerdictInvalid = "invalid"
)

// What became of a server error's detail that could show values of columns
// the session may not read: the `action` label of
// pgguard_error_details_withheld_total.
const (
	DetailRemoved = "removed"
	// DetailFlagged: monitor mode forwarded a detail it would remove.
	DetailFlagged = "flagged"
)

// Policy reload outcomes, the `outcome` label of pgguard_policy_reloads_total.
const (
	ReloadSuccess = "success"
	ReloadFailure = "failure"
)

// Stages of a connection whose session is not established yet, the
// `stage` label of pgguard_connections_starting.
const (
	// StageStartup: encryption, the startup packet or a cancel request;
	// no server connection yet.
	StageStartup = "startup"
	// StageAuthenticating: pgguard connected to the server, which is
	// authenticating the client or the session is being opened; each such
	// connection holds a server backend.
	StageAuthenticating = "authenticating"
)

// latencyBuckets span 1µs to 100ms: analysis and decisions are in-memory
// and usually take microseconds, so the default buckets (5ms and up) would
// put everything in the first one. A function, not a var, so no package
// state can be changed under a running histogram.
func latencyBuckets() []float64 {
	return []float64{
		1e-6, 2.5e-6, 5e-6,
		1e-5, 2.5e-5, 5e-5,
		1e-4, 2.5e-4, 5e-4,
		1e-3, 2.5e-3, 5e-3,
		1e-2, 2.5e-2, 5e-2,
		1e-1,
	}
}

// Metrics are the pgguard-wide metrics the proxy, the analyser and the
// policy loader update. The fields are ready to use; all are safe for
// concurrent use.
type Metrics struct {
	// ConnectionsOpen is the number of client connections open now.
	ConnectionsOpen prometheus.Gauge
	// ConnectionsTotal counts client connections accepted.
	ConnectionsTotal prometheus.Counter
	// Statements counts statements by verdict (Verdict* constants).
	Statements *prometheus.CounterVec
	// Denials counts denied column accesses by role and data category.
	// Label it with policy roles and categories, never free-form values,
	// to keep the series count bounded.
	Denials *prometheus.CounterVec
	// VerdictCacheHits counts decisions answered from the verdict cache.
	VerdictCacheHits prometheus.Counter
	// VerdictCacheMisses counts decisions that had to be computed.
	VerdictCacheMisses prometheus.Counter
	// VerdictCacheBytes is the size of the verdict cache, in bytes as it
	// counts them (keys and what its verdicts hold).
	VerdictCacheBytes prometheus.Gauge
	// AnalysisDuration observes, in seconds, how long finding the columns
	// a statement touches took.
	AnalysisDuration prometheus.Histogram
	// DecisionDuration observes, in seconds, how long the policy decision
	// for a statement took.
	DecisionDuration prometheus.Histogram
	// PolicyReloads counts policy reloads by outcome (Reload* constants).
	PolicyReloads *prometheus.CounterVec
	// GrantsDrift is the number of differences between the users' live
	// privileges and the policy's grants at the last check.
	GrantsDrift prometheus.Gauge
	// DatabaseRefusals counts statements pgguard let through that
	// PostgreSQL refused for want of a privilege (42501).
	DatabaseRefusals prometheus.Counter
	// ErrorDetails counts server error details withheld from the client
	// because they could show values of columns the session may not read,
	// by action (Detail* constants).
	ErrorDetails *prometheus.CounterVec

	// PolicyLoaded is the Unix time the policy in force was loaded.
	PolicyLoaded prometheus.Gauge

	policyVersion *prometheus.GaugeVec
	policyInfo    *prometheus.GaugeVec
	storeUp       *prometheus.GaugeVec
	confirmed     *prometheus.GaugeVec
	mu            sync.Mutex // makes SetPolicyVersion's and SetPolicyInfo's reset-then-set atomic

	// starting reads the connections of each stage before a session is
	// established (see CountStarting); nil reads zeros.
	starting       atomic.Pointer[func() (startup, authenticating int)]
	startingGauges []prometheus.Collector

	// decisionCache reads the policy's decision cache size (see
	// MeasureDecisionCache); nil reads zero.
	decisionCache      atomic.Pointer[func() int64]
	decisionCacheGauge prometheus.Collector

	// verdicts are Statements' series of the fixed verdicts, resolved once:
	// CountStatement runs for every statement, and a label lookup (hashing
	// the value, a read lock shared by every loop thread) would cost more
	// than the counter it finds.
	verdicts map[string]prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg; a nil reg
// leaves them unregistered, which suits tests of other packages. Like
// promauto it panics if they are already registered there, since that is
// a wiring bug found at start-up.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConnectionsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgguard_connections_open", Help: "Client connections open now.",
		}),
		ConnectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgguard_connections_total", Help: "Client connections accepted.",
		}),
		Statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgguard_statements_total", Help: "Statements judged, by verdict.",
		}, []string{"verdict"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgguard_denials_total", Help: "Denied column accesses, by role and data category.",
		}, []string{"role", "category"}),
		GrantsDrift: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgguard_grants_drift",
			Help: "Differences between the users' live column privileges and the policy's grants at the last check (serve --grants-check).",
		}),
		DatabaseRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgguard_database_refusals_total",
			Help: "Statements pgguard let through that PostgreSQL refused for want of a privilege (42501): gaps the second lock closed.",
		}),
		VerdictCacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgguard_verdict_cache_hits_total", Help: "Decisions answered from the verdict cache.",
		}),
		VerdictCacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgguard_verdict_cache_misses_total", Help: "Decisions not found in the verdict cache.",
		}),
		VerdictCacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgguard_verdict_cache_bytes", Help: "Bytes the verdict cache holds: its keys and what its verdicts hold.",
		}),
		AnalysisDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pgguard_analysis_duration_seconds", Help: "Time to find the columns a statement touches.",
			Buckets: latencyBuckets(),
		}),
		DecisionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pgguard_decision_duration_seconds", Help: "Time to decide a statement against the policy.",
			Buckets: latencyBuckets(),
		}),
		PolicyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgguard_policy_reloads_total", Help: "Policy reloads, by outcome.",
		}, []string{"outcome"}),
		ErrorDetails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgguard_error_details_withheld_total",
			Help: "Server error details that could show values of columns the session may not read, by action (removed, or flagged in monitor mode).",
		}, []string{"action"}),
		policyVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgguard_policy_version", Help: "The policy version in force (value 1; the version is the label).",
		}, []string{"version"}),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgguard_policy_info",
			Help: "The policy in force (value 1): version is the policy store's version number, or \"file\" for a policy read from files; checksum is its SHA-256.",
		}, []string{"version", "checksum"}),
		PolicyLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgguard_policy_loaded_timestamp_seconds", Help: "Unix time the policy in force was loaded.",
		}),
		storeUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgguard_policy_store_up",
			Help: "1 while the connection to the policy store (serve --policy-store) is up and listening, 0 while it is lost; the label is the store's address.",
		}, []string{"store"}),
		confirmed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgguard_policy_confirmed_timestamp_seconds",
			Help: "Unix time the policy store last confirmed that the policy in force is its newest version.",
		}, []string{"store"}),
	}
	m.startingGauges = []prometheus.Collector{m.startingGauge(StageStartup), m.startingGauge(StageAuthenticating)}
	m.decisionCacheGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgguard_decision_cache_bytes",
		Help: "Bytes the policy in force holds in its decision cache: its questions and answers.",
	}, func() float64 {
		if f := m.decisionCache.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	m.preinit()
	if reg != nil {
		reg.MustRegister(m.collectors()...)
	}
	return m
}

// preinit makes the fixed label values visible as zero from the start, so
// rate() and absent() work before the first event.
func (m *Metrics) preinit() {
	m.verdicts = make(map[string]prometheus.Counter)
	for _, v := range []string{VerdictAllowed, VerdictDenied, VerdictFlagged, VerdictError, VerdictInvalid} {
		m.verdicts[v] = m.Statements.WithLabelValues(v)
	}
	for _, o := range []string{ReloadSuccess, ReloadFailure} {
		m.PolicyReloads.WithLabelValues(o)
	}
	for _, a := range []string{DetailRemoved, DetailFlagged} {
		m.ErrorDetails.WithLabelValues(a)
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.ConnectionsOpen, m.ConnectionsTotal, m.Statements, m.Denials,
		m.VerdictCacheHits, m.VerdictCacheMisses, m.VerdictCacheBytes, m.AnalysisDuration,
		m.DecisionDuration, m.PolicyReloads, m.ErrorDetails, m.DatabaseRefusals, m.GrantsDrift, m.policyVersion,
		m.policyInfo, m.PolicyLoaded, m.storeUp, m.confirmed,
		m.startingGauges[0], m.startingGauges[1], m.decisionCacheGauge,
	}
}

// startingGauge is pgguard_connections_starting's series of one stage.
func (m *Metrics) startingGauge(stage string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "pgguard_connections_starting",
		Help:        "Client connections whose session is not established yet, by stage.",
		ConstLabels: prometheus.Labels{"stage": stage},
	}, func() float64 {
		f := m.starting.Load()
		if f == nil {
			return 0
		}
		startup, authenticating := (*f)()
		if stage == StageStartup {
			return float64(startup)
		}
		return float64(authenticating)
	})
}

// CountStarting makes pgguard_connections_starting read its values from
// f at each scrape (the proxy's Server.Starting).
func (m *Metrics) CountStarting(f func() (startup, authenticating int)) {
	m.starting.Store(&f)
}

// MeasureDecisionCache makes pgguard_decision_cache_bytes read its value
// from f at each scrape (the policy in force's CacheBytes).
func (m *Metrics) MeasureDecisionCache(f func() int64) {
	m.decisionCache.Store(&f)
}

// CountStatement counts one judged statement under verdict, one of the
// Verdict* constants; another value gets a series of its own.
func (m *Metrics) CountStatement(verdict string) {
	if c, ok := m.verdicts[verdict]; ok {
		c.Inc()
		return
	}
	m.Statements.WithLabelValues(verdict).Inc()
}

// SetPolicyVersion makes v the only version reported, so a dashboard sees
// exactly one series with value 1 after every reload.
func (m *Metrics) SetPolicyVersion(v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policyVersion.Reset()
	m.policyVersion.WithLabelValues(v).Set(1)
}

// SetPolicyInfo makes (version, checksum) the only series of
// pgguard_policy_info and sets the time the policy was loaded.
func (m *Metrics) SetPolicyInfo(version, checksum string, loaded time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policyInfo.Reset()
	m.policyInfo.WithLabelValues(version, checksum).Set(1)
	m.PolicyLoaded.Set(float64(loaded.UnixNano()) / 1e9)
}

// SetPolicyStore reports the policy store connection: up, and when the
// store last confirmed the policy in force (zero: leave as it was).
func (m *Metrics) SetPolicyStore(store string, up bool, confirmed time.Time) {
	v := 0.0
	if up {
		v = 1
	}
	m.storeUp.WithLabelValues(store).Set(v)
	if !confirmed.IsZero() {
		m.confirmed.WithLabelValues(store).Set(float64(confirmed.UnixNano()) / 1e9)
	}
}

// Handler serves /metrics from reg and the health checks: /livez answers
// 200 "ok" as long as the process serves HTTP at all; /readyz and /healthz
// (its older name) ask ready and answer 200 "ok", or 503 with the error's
// text when the process should get no new clients. A nil ready means always
// ready; a nil reg serves no metrics. It never logs: scrape errors go to
// the scraper.
func Handler(reg prometheus.Gatherer, ready func() error) http.Handler {
	return HandlerWithStatus(reg, ready, nil)
}

// HandlerWithStatus is Handler whose /healthz also says, after its first
// line ("ok" or the reason it is not ready), what status returns: state
// that an operator should see but that does not make the process unready,
// such as a lost policy store connection. /readyz is unchanged, so probes
// that compare its body with "ok" keep working.
func HandlerWithStatus(reg prometheus.Gatherer, ready func() error, status func() string) http.Handler {
	if reg == nil {
		reg = prometheus.Gatherers{}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { health(w, nil) })
	readiness := func(w http.ResponseWriter, _ *http.Request) { health(w, ready) }
	mux.HandleFunc("GET /readyz", readiness)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if status == nil {
			readiness(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		first, code := "ok", http.StatusOK
		if ready != nil {
			if err := ready(); err != nil {
				first, code = err.Error(), http.StatusServiceUnavailable
			}
		}
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "%s\n%s", first, status())
	})
	return mux
}

// health answers a health check: 200 "ok", or 503 with check's error.
func health(w http.ResponseWriter, check func() error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if check != nil {
		if err := check(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(err.Error()))
			return
		}
	}
	_, _ = w.Write([]byte("ok"))
}
