package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// stages splits a client's CancelRequest into the waits a proxy can add
// to, seen from the client's side of its socket: connect; the reply to the
// SSLRequest (the target has accepted and read it); the TLS handshake, up
// to the request's write; and the request until the target closes the
// connection (forwarded, processed by PostgreSQL, the close relayed).
type stages struct {
	connect, reply, handshake, close time.Duration
}

func (s stages) String() string {
	return fmt.Sprintf("connect %.2f reply %.2f handshake %.2f close %.2f ms",
		ms(s.connect), ms(s.reply), ms(s.handshake), ms(s.close))
}

// stageRecorder notes when the cancel connection's reads and writes
// return. Only the connection dialled while armed is watched.
type stageRecorder struct {
	mu    sync.Mutex
	armed bool
	start time.Time
	conn  *stageConn
}

// arm starts recording the next connection dialled.
func (r *stageRecorder) arm() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed, r.start, r.conn = true, time.Now(), nil
}

// result stops recording and returns the stages of the connection seen.
func (r *stageRecorder) result() (stages, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = false
	c := r.conn
	if c == nil {
		return stages{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The request is the last write before the last read (a TLS close
	// alert may follow it).
	var request time.Time
	for _, w := range c.writes {
		if w.Before(c.lastRead) {
			request = w
		}
	}
	if request.IsZero() {
		return stages{}, false
	}
	s := stages{connect: c.dialled.Sub(r.start), close: c.lastRead.Sub(request)}
	if c.firstRead.Before(request) {
		s.reply = c.firstRead.Sub(c.dialled)
		s.handshake = request.Sub(c.firstRead)
	} else {
		s.reply = request.Sub(c.dialled)
	}
	return s, true
}

// dial is a pgconn DialFunc that watches the connection when armed.
func (r *stageRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.armed || r.conn != nil {
		return nc, nil
	}
	r.conn = &stageConn{Conn: nc, dialled: time.Now()}
	return r.conn, nil
}

// stageConn records when reads return and writes start.
type stageConn struct {
	net.Conn
	mu                           sync.Mutex
	dialled, firstRead, lastRead time.Time
	writes                       []time.Time
}

func (c *stageConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	now := time.Now()
	c.mu.Lock()
	if c.firstRead.IsZero() {
		c.firstRead = now
	}
	c.lastRead = now
	c.mu.Unlock()
	return n, err
}

func (c *stageConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, time.Now())
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// stageSummary reports one run's stages: percentiles of each and the
// slowest cancels whole.
func stageSummary(all []stages) string {
	if len(all) == 0 {
		return "no stages recorded"
	}
	var b strings.Builder
	pick := func(name string, f func(stages) time.Duration) {
		ds := make([]time.Duration, len(all))
		for i, s := range all {
			ds[i] = f(s)
		}
		slices.Sort(ds)
		fmt.Fprintf(&b, "  %-9s p50 %7.2f  p90 %7.2f  p99 %7.2f  max %7.2f ms\n", name,
			ms(pct(ds, 50)), ms(pct(ds, 90)), ms(pct(ds, 99)), ms(ds[len(ds)-1]))
	}
	pick("connect", func(s stages) time.Duration { return s.connect })
	pick("reply", func(s stages) time.Duration { return s.reply })
	pick("handshake", func(s stages) time.Duration { return s.handshake })
	pick("close", func(s stages) time.Duration { return s.close })
	slowest := slices.Clone(all)
	total := func(s stages) time.Duration { return s.connect + s.reply + s.handshake + s.close }
	slices.SortFunc(slowest, func(a, b stages) int { return int(total(b) - total(a)) })
	for _, s := range slowest[:min(3, len(slowest))] {
		fmt.Fprintf(&b, "  slow: %s\n", s)
	}
	return b.String()
}
