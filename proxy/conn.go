package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// conn is one client session and its upstream connection.
type conn struct {
	srv     *Server
	id      uint64
	started time.Time

	rawClient net.Conn     // the accepted socket
	counted   countingConn // rawClient, counting what crosses it
	client    net.Conn     // &counted, or TLS over it
	server    net.Conn
	sockMu    sync.Mutex // guards server while it is being set and closed

	// session is &sess: the interceptor's view of the session, whose
	// Logger is the connection's too. It is part of the connection rather
	// than an object of its own, one allocation less per session.
	session     *Session
	sess        Session
	si          SessionInterceptor
	rewriter    ErrorRewriter // si, when it rewrites errors
	upstreamKey *pgproto3.BackendKeyData
	// keyAt is when upstreamKey arrived (monoNow; 0: not yet): its backend
	// existed by then. Stored after upstreamKey, for other goroutines.
	keyAt atomic.Int64
	stage stage // owned by the session's goroutine
	// discarding (owned by the client pump) is set while skipping to Sync
	// after a denial; sawFatal (owned by the server pump) when the
	// server's last error was FATAL or PANIC. They sit beside stage, in
	// bytes the struct's alignment leaves free.
	discarding bool
	sawFatal   bool

	// stopping is set when the server hard-stops, so the session's end is
	// reported as an administrator's shutdown, not an upstream failure.
	stopping atomic.Bool

	bytesIn  atomic.Int64 // client to pgguard
	bytesOut atomic.Int64 // pgguard to client

	// Relay state, after authentication.
	cr *frameReader // client reads: client pump only
	cw *bufWriter   // client writes: server pump only, once relaying
	sr *frameReader // server reads: server pump only
	sw *bufWriter   // server writes: client pump only, once relaying

	swaps swapQueue
	// Owned by the client pump.
	readySent uint64 // messages forwarded that end with ReadyForQuery
	swapSeq   uint64
	// Owned by the server pump.
	readySeen uint64 // ReadyForQuery messages seen

	// Barriers and the state query (confirm.go); nil confirm: the
	// interceptor confirms no state.
	confirm        *confirmer
	barrierPending bool          // client side: a barrier's segment has not ended
	holding        atomic.Bool   // the client is not read until the state is confirmed
	holdReady      atomic.Uint64 // the ReadyForQuery that ends the barrier's segment
	confirming     bool          // server side: the state query's answer is coming
	preludeSent    atomic.Bool   // a Switch's prelude and state query went out (confirm.go)
	replay         bool          // client side: show the interceptor the held message again
	segmentOpen    bool          // client side: a message of the current segment was forwarded
	resume         chan struct{} // pumps: the server pump lets the client pump go on
	resumeClient   bool          // loop: read the client again after this server input
	serverGone     chan struct{} // pumps: closed when the server pump ends

	// COPY FROM STDIN (copyin.go). copyMu guards copyWait, copySrv and,
	// while the client is held, what copyRefuse takes from the client side.
	copyMu      sync.Mutex
	copyWait    copyWaiting
	copySrv     copyServerState
	copyIn      atomic.Bool     // the server reads the client's messages as COPY data
	copySimple  bool            // that copy was started by a Query
	copyStmts   map[string]bool // client side: prepared statements that may run COPY
	copyPortals map[string]bool // client side: portals that may run COPY
	execInSeg   uint64          // client side: Executes forwarded in the current segment

	// What the server may be running, for any goroutine (orphan.go).
	segmentsSent atomic.Uint64 // readySent
	executing    atomic.Bool   // an Execute was forwarded and no Sync yet

	clientEnded atomic.Bool
	relaying    atomic.Bool
	// looped is set once an event loop relays the session.
	looped atomic.Pointer[loopSession]
	// cleanup is what runs when the session ends (atEnd, runEnd), and done
	// what tells the server.
	cleanup []func()
	done    func()
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{srv: s, id: s.nextID.Add(1), started: time.Now(), rawClient: nc}
	c.counted = countingConn{Conn: nc, in: &c.bytesIn, out: &c.bytesOut}
	c.client = &c.counted
	c.session = &c.sess
	c.session.Logger = s.cfg.Logger.Hook(&sessionFields{id: c.id, addr: nc.RemoteAddr()})
	return c
}

// sessionFields adds a session's identity to each event its logger writes.
// It is a hook rather than a child logger's context because zerolog gives
// every child context a 500-byte buffer, which each idle session would hold
// for the few lines it ever logs.
type sessionFields struct {
	id             uint64
	addr           net.Addr
	user, database string // once the StartupMessage named them
}

// Run implements zerolog.Hook.
func (f *sessionFields) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Uint64("conn", f.id).Str("client_addr", f.addr.String())
	if f.user != "" {
		e.Str("user", f.user).Str("database", f.database)
	}
}

// serve runs the connection's life: startup and TLS, upstream, auth, relay.
// done runs when the session has ended and everything it held is let go
// of. A session an event loop relays outlives serve: the loop holds it
// without a goroutine while it is idle, and its end runs done (see
// loop_session_linux.go).
func (c *conn) serve(stop context.Context, done func()) {
	c.done = done
	handedOff := false
	defer func() {
		// A bug reached through one session must not take down the others.
		if p := recover(); p != nil {
			c.session.Logger.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("session ended by an internal error")
		}
		if !handedOff {
			c.runEnd()
		}
	}()
	// StartupTimeout bounds both legs until the session is established.
	deadline := time.Now().Add(c.srv.cfg.StartupTimeout)
	_ = c.rawClient.SetDeadline(deadline)
	startupCtx, cancelStartup := context.WithDeadline(stop, deadline)
	defer cancelStartup()

	c.setStage(stageStartup)
	// 1. Startup: SSL and GSS negotiation, cancel requests, StartupMessage.
	startup, err := c.readStartup(stop)
	if err != nil || startup == nil {
		c.end(err)
		return
	}
	// 2. Upstream: its own connection, TLS per sslmode.
	if err := c.connectUpstream(startupCtx, startup); err != nil {
		c.end(err)
		return
	}
	c.setStage(stageAuthenticating)
	// 3. Authentication passes through; the session starts at ReadyForQuery.
	if err := c.authenticate(); err != nil {
		c.end(err)
		return
	}
	_ = c.rawClient.SetDeadline(time.Time{})
	_ = c.server.SetDeadline(time.Time{})
	// 4. The interceptor opens its view of the session, within the startup
	// timeout; the session's own context ends with it.
	sessionCtx, endSession := context.WithCancel(stop)
	c.atEnd(endSession)
	c.session.ctx = sessionCtx
	si, err := c.srv.cfg.Interceptor.OpenSession(startupCtx, c.session)
	if err != nil {
		c.sendFatal(sqlState(err, "XX000"), fmt.Sprintf("pgguard: cannot open session: %v", err))
		c.end(fmt.Errorf("open session: %w", err))
		return
	}
	c.si = si
	c.rewriter, _ = si.(ErrorRewriter)
	c.atEnd(si.Close)
	// The interceptor starts from the state the server reports.
	c.confirm = newConfirmer(si)
	if err := c.confirmAtStart(); err != nil {
		c.sendFatal("08006", fmt.Sprintf("pgguard: cannot read the session's state: %v", err))
		c.end(fmt.Errorf("confirm session state: %w", err))
		return
	}
	// The session is open: now the client may start.
	if err := c.readyForQuery(); err != nil {
		c.end(err)
		return
	}
	// The startup's deadline and its timer are no longer needed; an idle
	// session should hold as little as it can.
	cancelStartup()
	c.setStage(stageNone)
	c.relaying.Store(true)
	// A session that can be cancelled: have a connection ready for it.
	c.srv.spare.want()
	if c.stopping.Load() {
		c.end(errors.New("server stopping"))
		return
	}
	// 5. Relay until either side ends, or hand the session to a loop.
	err = c.relay()
	if errors.Is(err, errHandedOff) {
		handedOff = true
		return
	}
	c.end(err)
}

// errHandedOff reports that an event loop relays the session now and will
// end it (loop_session_linux.go).
var errHandedOff = errors.New("handed to an event loop")

// atEnd adds f to what runs when the session ends, before what was added
// earlier, as deferred calls would.
func (c *conn) atEnd(f func()) { c.cleanup = append(c.cleanup, f) }

// runEnd lets go of everything the session held: atEnd's functions in
// reverse order, then the sockets; then it reports the end to the server.
func (c *conn) runEnd() {
	for i := len(c.cleanup) - 1; i >= 0; i-- {
		c.cleanup[i]()
	}
	c.cleanup = nil
	c.finish()
	if c.done != nil {
		c.done()
	}
}

// hardStop ends the session at once, after cancelling a statement the
// server still runs: the server pump reports the shutdown to the client,
// and the client pump unblocks when that socket closes.
func (c *conn) hardStop() {
	c.stopping.Store(true)
	if c.relaying.Load() && c.busy() {
		c.cancelOrphan("pgguard is shutting down")
	}
	if s := c.looped.Load(); s != nil {
		s.stop()
		return
	}
	c.sockMu.Lock()
	server := c.server
	c.sockMu.Unlock()
	if server != nil {
		server.Close()
	}
	if !c.relaying.Load() {
		c.rawClient.Close()
		return
	}
	// The server pump may be blocked writing to a client that does not
	// read; it would never see the upstream close. Give the write a moment,
	// then fail it, so the pump can end the session.
	_ = c.rawClient.SetWriteDeadline(time.Now().Add(time.Second))
}

// end logs why the session ended.
func (c *conn) end(err error) {
	ev := c.session.Logger.Info()
	if err != nil && !isClosedErr(err) {
		ev = c.session.Logger.Info().Str("reason", err.Error())
	}
	ev.Str("duration", time.Since(c.started).String()).
		Int64("bytes_in", c.bytesIn.Load()).
		Int64("bytes_out", c.bytesOut.Load()).
		Msg("connection closed")
}

func (c *conn) finish() {
	c.setStage(stageNone)
	c.sockMu.Lock()
	if c.server != nil {
		c.server.Close()
	}
	c.sockMu.Unlock()
	c.client.Close()
	c.rawClient.Close()
}

// sendFatal writes a FATAL error to the client after whatever is buffered
// for it, best effort. Only the goroutine that owns the client writer may
// call it: the startup sequence, or the server pump while relaying.
func (c *conn) sendFatal(code, msg string) {
	_ = c.client.SetWriteDeadline(time.Now().Add(time.Second))
	if c.cw == nil {
		_, _ = c.client.Write(fatal(code, msg))
		return
	}
	_ = writeFrame(c.cw, 'E', fatal(code, msg)[5:])
	_ = c.cw.Flush()
}

// sqlState is the SQLSTATE an error in err's chain names through a
// SQLState method, or def.
func sqlState(err error, def string) string {
	var st interface{ SQLState() string }
	if errors.As(err, &st) && len(st.SQLState()) == 5 {
		return st.SQLState()
	}
	return def
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// countingConn counts the bytes that cross the client socket.
type countingConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// readyForQuery sends the startup's final ReadyForQuery, held back by
// authenticate, with everything buffered before it.
func (c *conn) readyForQuery() error {
	if err := writeFrame(c.cw, 'Z', []byte{c.session.TxStatus()}); err != nil {
		return err
	}
	return c.cw.Flush()
}
