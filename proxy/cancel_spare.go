package proxy

// Spare cancel connection.
//
// A cancel request needs a connection of its own, and PostgreSQL forks a
// process for every connection before it reads a byte; with sslmode
// require or stronger that process then does a TLS handshake. A client
// reaching PostgreSQL directly pays that once. Through pgguard it came on
// top of the client's own connection to pgguard, strictly after it: under
// a load that keeps the CPUs busy, the fork, the scheduling of the new
// process and its handshake were most of a forwarded cancel's time, and
// nearly all of its 99th percentile (bench/README.md).
//
// So pgguard opens the upstream connection for the next cancel ahead of
// need, while it has sessions: connected, TLS negotiated per sslmode,
// nothing sent. PostgreSQL's process for it waits for a startup packet; a
// cancel request is written to it as to a fresh connection, and a new
// spare replaces it in the background. The request is the client's,
// unchanged.
//
// Which cancels a spare may carry is exact, not a guess. Before version 18
// PostgreSQL's process for a connection looks the key up in its own copy
// of the server's list of backends, taken when it was forked: a spare knows
// only the backends that existed when it was opened, and would still know
// one that has ended since, whose process id the system may have given to
// another process. So a spare carries a cancel only for a session of this
// pgguard that is still open and whose BackendKeyData arrived before the
// spare was dialled (its backend was in the list by then). Any other
// cancel, a session of another pgguard instance's included, gets a fresh
// connection as before; a spare too old for a cancel is replaced, so the
// session's next cancel finds one.
//
// PostgreSQL ends a connection that sends no startup packet within
// authentication_timeout (default 1 min), silently; the spare is replaced
// every CancelSpareAge and checked before use.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultCancelSpareAge is how long a spare cancel connection is kept
// before it is replaced: a third of PostgreSQL's default
// authentication_timeout, which ends it otherwise.
const DefaultCancelSpareAge = 20 * time.Second

// MinCancelSpareAge is the shortest spare age, configured or adapted to a
// server that closes spares sooner (authentication_timeout is at least 1s).
const MinCancelSpareAge = 500 * time.Millisecond

// spareDrain is how long a new TLS spare is read for post-handshake
// messages (session tickets), so that anything arriving later means the
// server closed it.
const spareDrain = 20 * time.Millisecond

// cancelSpare holds at most one open upstream connection for the next
// cancel request.
type cancelSpare struct {
	srv *Server
	// ctx ends a fill in progress when the spare is closed.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	conn    net.Conn     // nil: none held
	raw     *net.TCPConn // conn's socket, for the liveness check
	born    time.Time
	dialed  int64 // monoNow before conn was dialled
	stale   bool  // conn was too old for a cancel: replace it
	filling bool
	closed  bool
	maxAge  time.Duration // adapts down when the server closes spares early
	timer   *time.Timer
	// failures counts fills in a row that failed; each doubles the wait
	// before the next one (from refillBackoff).
	failures int
	retryAt  time.Time
	// opened counts the spares opened, used the cancel requests one
	// carried.
	opened, used atomic.Int64
}

// refillBackoff is the wait after the first failed fill; it doubles up to
// the spare age, so an upstream that is down is not dialled in a loop.
const refillBackoff = 100 * time.Millisecond

func newCancelSpare(s *Server, age time.Duration) *cancelSpare {
	if age < 0 || !spareSupported {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &cancelSpare{srv: s, maxAge: age, ctx: ctx, cancel: cancel}
}

// want starts filling the spare if none is held or on its way. Sessions
// call it once established: with no session there is nothing to cancel.
func (p *cancelSpare) want() {
	if p == nil {
		return
	}
	p.mu.Lock()
	start := !p.closed && p.conn == nil && !p.filling && !time.Now().Before(p.retryAt)
	if start {
		p.filling = true
	}
	p.mu.Unlock()
	if start {
		go p.fill()
	}
}

// fill opens a spare connection and holds it, replacing any held before.
func (p *cancelSpare) fill() {
	ctx, cancel := context.WithTimeout(p.ctx, p.srv.cfg.DialTimeout)
	defer cancel()
	dialed := monoNow()
	nc, err := p.srv.dialCancel(ctx)
	var raw *net.TCPConn
	if err == nil {
		raw, err = settleSpare(nc)
	}
	p.mu.Lock()
	p.filling = false
	if err != nil {
		p.failures++
		p.retryAt = time.Now().Add(min(refillBackoff<<min(p.failures-1, 16), p.maxAge))
		p.mu.Unlock()
		return
	}
	p.failures, p.retryAt = 0, time.Time{}
	if p.closed {
		p.mu.Unlock()
		nc.Close()
		return
	}
	old := p.conn
	p.conn, p.raw, p.born, p.dialed, p.stale = nc, raw, time.Now(), dialed, false
	p.opened.Add(1)
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timer = time.AfterFunc(p.maxAge, p.refresh)
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// refresh replaces the spare before the server's authentication_timeout
// ends it, while sessions remain; without them it lets the spare go.
func (p *cancelSpare) refresh() {
	if p.srv.ActiveConnections() == 0 {
		p.mu.Lock()
		nc := p.conn
		p.conn, p.raw = nil, nil
		p.mu.Unlock()
		if nc != nil {
			nc.Close()
		}
		return
	}
	p.renew()
}

// take hands over the spare for a cancel of a backend that existed at
// keyAt (monoNow), if one is held that was dialled later and is still
// open. A spare dialled earlier stays, marked for replacement. The caller
// calls replenish once its cancel is out, so that the next spare's fork
// does not compete with the cancel.
func (p *cancelSpare) take(keyAt int64) net.Conn {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	nc, raw, born := p.conn, p.raw, p.born
	if nc != nil && p.dialed <= keyAt {
		p.stale = true
		p.mu.Unlock()
		return nil
	}
	p.conn, p.raw = nil, nil
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	if nc != nil && !idleOpen(raw) {
		// The server closed it first: its authentication_timeout is shorter
		// than the age; keep later spares well under what this one lived.
		nc.Close()
		nc = nil
		p.mu.Lock()
		p.maxAge = max(MinCancelSpareAge, min(p.maxAge, time.Since(born)/2))
		p.mu.Unlock()
	}
	return nc
}

// replenish opens the next spare after a cancel: a new one where none is
// held, a replacement for one too old for the last cancel.
func (p *cancelSpare) replenish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	stale := p.stale
	p.stale = false
	p.mu.Unlock()
	if stale {
		p.renew()
		return
	}
	p.want()
}

// renew replaces the held spare with a new one, in the background.
func (p *cancelSpare) renew() {
	p.mu.Lock()
	start := !p.closed && !p.filling && !time.Now().Before(p.retryAt)
	if start {
		p.filling = true
	}
	p.mu.Unlock()
	if start {
		go p.fill()
	}
}

// close drops the spare and stops filling; the server is stopping.
func (p *cancelSpare) close() {
	if p == nil {
		return
	}
	p.cancel()
	p.mu.Lock()
	p.closed = true
	nc := p.conn
	p.conn, p.raw = nil, nil
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// held reports whether a spare is held, for tests.
func (p *cancelSpare) held() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn != nil
}

// settleSpare prepares a new spare: over TLS it reads, briefly, what the server
// sends after the handshake (PostgreSQL's TLS 1.3 may send session tickets,
// which crypto/tls consumes), so that later any byte or end of stream on
// the socket means the server has given the connection up. It returns the
// TCP socket beneath.
func settleSpare(nc net.Conn) (*net.TCPConn, error) {
	switch c := nc.(type) {
	case *net.TCPConn:
		return c, nil
	case *tls.Conn:
		raw, ok := c.NetConn().(*net.TCPConn)
		if !ok {
			return nil, errors.New("spare cancel connection: not TCP")
		}
		_ = c.SetReadDeadline(time.Now().Add(spareDrain))
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			nc.Close()
			return nil, errors.New("spare cancel connection: the server spoke or closed first")
		}
		_ = c.SetReadDeadline(time.Time{})
		return raw, nil
	}
	return nil, errors.New("spare cancel connection: not TCP")
}

// idleOpen reports whether nothing has arrived on raw, not even its end: a
// PostgreSQL connection waiting for a startup packet never speaks first.
func idleOpen(raw *net.TCPConn) bool {
	rc, err := raw.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	if err := rc.Read(func(fd uintptr) bool {
		open = peekWouldBlock(fd)
		return true
	}); err != nil {
		return false
	}
	return open
}

// resetBeforeRead reports whether err says the peer had closed the
// connection before it read what was written: the write was refused
// (EPIPE) or answered with a reset. A server process that took the cancel
// request ends with an orderly close instead.
func resetBeforeRead(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// monoBase and monoNow order events on the monotonic clock.
var monoBase = time.Now()

// monoNow is the monotonic time since the process started, in nanoseconds,
// never 0.
func monoNow() int64 { return int64(time.Since(monoBase)) + 1 }
