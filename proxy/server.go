package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Server accepts client connections and relays each to its own upstream
// connection.
type Server struct {
	cfg      Config
	upstream upstream
	loops    *loopGroup   // nil: sessions relay on their own goroutines
	looped   atomic.Int64 // sessions handed to a loop, for tests
	spare    *cancelSpare // nil: every cancel opens its own connection

	nextID atomic.Uint64
	wg     sync.WaitGroup
	// inStartup and authenticating count the connections of each stage
	// before relaying (see Starting).
	inStartup, authenticating atomic.Int64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	// stop is cancelled when the server hard-stops: sessions end at once.
	stop       context.Context
	cancelStop context.CancelFunc
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// New validates cfg and returns a Server ready to Serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	up, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	stop, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:        cfg,
		upstream:   up,
		loops:      newLoopGroup(cfg.EventLoops),
		listeners:  make(map[net.Listener]struct{}),
		conns:      make(map[*conn]struct{}),
		stop:       stop,
		cancelStop: cancel,
	}
	s.spare = newCancelSpare(s, cfg.CancelSpareAge)
	context.AfterFunc(stop, s.hardStopAll)
	return s, nil
}

// hardStopAll ends every session at once when the server hard-stops. One
// hook for all sessions, rather than one registered by each, spares every
// idle session the hook's context and its place in stop's list of
// children. No session is added once stop ends: Shutdown sets closing,
// which trackConn refuses new ones by, before it cancels stop.
func (s *Server) hardStopAll() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		go c.hardStop()
	}
}

// Serve accepts connections on l until Shutdown or Close. It always returns
// a non-nil error; after Shutdown, ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	if !s.trackListener(l, true) {
		return ErrServerClosed
	}
	defer s.trackListener(l, false)
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = nextBackoff(backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		c := s.newConn(nc)
		if !s.trackConn(c, true) {
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go c.serve(s.stop, func() {
			s.trackConn(c, false)
			s.wg.Done()
		})
	}
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	if d *= 2; d > time.Second {
		d = time.Second
	}
	return d
}

// Shutdown stops accepting, then waits for sessions to end until ctx is done,
// when it closes the remaining ones. It returns ctx's error if it had to.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.loops.close(); s.spare.close(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancelStop()
		<-done
		return ctx.Err()
	}
}

// Close stops accepting and ends every session at once.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// ActiveConnections is the number of client connections being served.
func (s *Server) ActiveConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Starting reports the client connections whose session is not established
// yet: in startup (encryption, the startup packet, a cancel request; no
// upstream connection yet) and authenticating (pgguard connected upstream:
// authentication and the session's opening, each holding a server backend).
// ActiveConnections counts them too.
func (s *Server) Starting() (startup, authenticating int) {
	return int(s.inStartup.Load()), int(s.authenticating.Load())
}

// stage is where a connection is on its way to relaying.
type stage uint8

const (
	stageNone stage = iota // not counted: relaying or ended
	stageStartup
	stageAuthenticating
)

// setStage moves c to st in the server's counts.
func (c *conn) setStage(st stage) {
	c.srv.stageCount(c.stage).Add(-1)
	c.srv.stageCount(st).Add(1)
	c.stage = st
}

// stageCount is st's counter; a scratch one for stageNone.
func (s *Server) stageCount(st stage) *atomic.Int64 {
	switch st {
	case stageStartup:
		return &s.inStartup
	case stageAuthenticating:
		return &s.authenticating
	}
	return new(atomic.Int64)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) trackListener(l net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing {
			return false
		}
		s.listeners[l] = struct{}{}
	} else {
		delete(s.listeners, l)
	}
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}
