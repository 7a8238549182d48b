package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// copyResult is one COPY ... TO STDOUT through one target.
type copyResult struct {
	Target   string  `json:"target"`
	Round    int     `json:"round"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	ProxyCPU float64 `json:"proxy_cpu_seconds"`
	Err      string  `json:"error,omitempty"`
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// measureCopy streams copyMiB of rows (about 1 KiB each) through every
// target, interleaved, three rounds or -rounds, whichever is more.
func measureCopy(ctx context.Context, o *options, e *env, res *results) error {
	rows := o.copyMiB * 1024
	// g (up to 7 digits), a tab, 1016 characters and a newline: ~1 KiB a row.
	sql := fmt.Sprintf("COPY (SELECT g, repeat('x', 1016) FROM generate_series(1, %d) g) TO STDOUT", rows)
	res.CopySQL = sql
	rounds := max(3, o.rounds)
	logf("COPY: %d MiB through %s, %d rounds", o.copyMiB, strings.Join(o.targets, ", "), rounds)
	for r := 0; r < rounds; r++ {
		for _, t := range rotate(o.targets, r) {
			cr := copyResult{Target: t, Round: r + 1}
			p := e.proxyProc(t)
			conn, err := pgconn.Connect(ctx, e.benchURL(t))
			if err != nil {
				return fmt.Errorf("connect through %s: %w", t, err)
			}
			w := &countingWriter{}
			cpu0 := cpuSeconds(p)
			start := time.Now()
			_, err = conn.CopyTo(ctx, w, sql)
			cr.Seconds = time.Since(start).Seconds()
			cr.ProxyCPU = cpuSeconds(p) - cpu0
			cr.Bytes = w.n
			conn.Close(context.Background())
			if err != nil {
				cr.Err = err.Error()
				logf("COPY round %d %-9s ERROR %v", r+1, t, err)
			} else {
				logf("COPY round %d %-9s %.2f s  %.0f MiB/s  proxy cpu %.2f s", r+1, t, cr.Seconds,
					float64(cr.Bytes)/(1<<20)/cr.Seconds, cr.ProxyCPU)
			}
			res.Copy = append(res.Copy, cr)
		}
	}
	return nil
}

// idleResult is the memory idle client connections cost a proxy: the
// first Connections of a step-wise measurement.
type idleResult struct {
	Target      string             `json:"target"`
	Connections int                `json:"connections"`
	Upstream    string             `json:"upstream"`
	RSSBefore   int64              `json:"rss_before"`
	RSSAfter    int64              `json:"rss_after"`
	PerConn     float64            `json:"rss_per_connection"`
	OpenSeconds float64            `json:"open_seconds"`         // this step's connections
	Go          map[string][]int64 `json:"go_metrics,omitempty"` // name -> before, after
}

// goMetrics are the Go runtime metrics read from pgguard's /metrics.
var goMetrics = []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes"}

// measureIdle opens connections to a fresh instance of each proxy, in steps
// up to each count of o.idle, runs one statement on each, leaves them idle,
// and compares the proxy's RSS at each step with the RSS it had with one
// connection. With -idle-pool both proxies reach PostgreSQL through one
// transaction-mode PgBouncer, so that PostgreSQL needs a backend per pool
// connection, not per client.
func measureIdle(ctx context.Context, o *options, e *env, res *results) error {
	upstream := "PostgreSQL (a backend per connection)"
	if o.idlePool > 0 {
		pool, err := e.startBouncer(ctx, "pgbouncer-pool", o.maxIdle()+100, false, "transaction")
		if err != nil {
			return fmt.Errorf("pool: %w", err)
		}
		defer pool.stop()
		defer func(port int) { e.upstream = port }(e.upstream)
		e.upstream = pool.port
		upstream = fmt.Sprintf("transaction-mode PgBouncer, %d server connections", o.idlePool)
	}
	for _, t := range []string{"pgguard", "pgbouncer"} {
		if !has(o.targets, t) {
			continue
		}
		irs, err := e.idleOne(ctx, t, o.idle)
		for i := range irs {
			irs[i].Upstream = upstream
		}
		res.Idle = append(res.Idle, irs...)
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
	}
	return nil
}

func (e *env) idleOne(ctx context.Context, target string, steps []int) ([]idleResult, error) {
	var p *proc
	var metricsURL string
	var err error
	n := steps[len(steps)-1]
	if target == "pgguard" {
		port, perr := freePort()
		if perr != nil {
			return nil, perr
		}
		metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		p, err = e.startGuard(ctx, "pgguard-idle", "127.0.0.1:"+strconv.Itoa(port), false)
	} else {
		p, err = e.startBouncer(ctx, "pgbouncer-idle", n, false, "session")
	}
	if err != nil {
		return nil, err
	}
	defer p.stop()
	url := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", benchUser, benchPassword, p.addr(), benchDB)

	first, err := pgconn.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer first.Close(context.Background())
	if _, err := first.Exec(ctx, "SELECT abalance FROM pgbench_accounts WHERE aid = 1").ReadAll(); err != nil {
		return nil, err
	}
	time.Sleep(time.Second)
	rssBefore, err := rssBytes(p.pid())
	if err != nil {
		return nil, err
	}
	before := scrapeGo(metricsURL)

	conns := make([]*pgconn.PgConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	var out []idleResult
	opened := 0
	for _, step := range steps {
		logf("idle: opening connections %d to %d to %s", opened+1, step, target)
		start := time.Now()
		if err := openIdle(ctx, url, conns[opened:step], opened); err != nil {
			return out, err
		}
		opened = step
		ir := idleResult{Target: target, Connections: step, RSSBefore: rssBefore, Go: map[string][]int64{},
			OpenSeconds: time.Since(start).Seconds()}
		// Let the connections settle and the garbage collector run.
		time.Sleep(3 * time.Second)
		if ir.RSSAfter, err = rssBytes(p.pid()); err != nil {
			return out, err
		}
		after := scrapeGo(metricsURL)
		for _, m := range goMetrics {
			if b, ok := before[m]; ok {
				ir.Go[m] = []int64{b, after[m]}
			}
		}
		ir.PerConn = float64(ir.RSSAfter-ir.RSSBefore) / float64(step)
		logf("idle: %s RSS %.1f MiB -> %.1f MiB with %d: %.1f KiB per idle connection (opened in %.1f s)", target,
			float64(ir.RSSBefore)/(1<<20), float64(ir.RSSAfter)/(1<<20), step, ir.PerConn/1024, ir.OpenSeconds)
		out = append(out, ir)
	}
	return out, nil
}

// openIdle fills conns with connections that ran one statement each, the
// first reading account offset+1, from 32 goroutines.
func openIdle(ctx context.Context, url string, conns []*pgconn.PgConn, offset int) error {
	var failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				c, err := pgconn.Connect(ctx, url)
				if err == nil {
					_, err = c.Exec(ctx, fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d", offset+i+1)).ReadAll()
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					if c != nil {
						c.Close(context.Background())
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d connections failed; first: %v", f, len(conns), firstErr)
	}
	return nil
}

// scrapeGo reads the Go runtime gauges from a Prometheus endpoint.
func scrapeGo(url string) map[string]int64 {
	out := map[string]int64{}
	if url == "" {
		return out
	}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for _, m := range goMetrics {
			if name == m {
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					out[m] = int64(f)
				}
			}
		}
	}
	return out
}
