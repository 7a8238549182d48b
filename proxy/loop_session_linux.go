//go:build linux

package proxy

// A loop session: the hand-over of an established session to an event loop
// (relayOnLoop), what the loop does on each of its events, and its end. See
// loop_linux.go for the loop itself.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopSession is a session relayed by a loop. Its fields belong to the
// loop's goroutine.
type loopSession struct {
	c      *conn
	l      *eventLoop
	client loopSide
	server loopSide
	// quick is the interceptor's non-blocking side; nil sends every
	// message to a goroutine of its own (decideSlow).
	quick QuickSessionInterceptor

	cin    []byte // client bytes not yet handled: a partial message, or what follows a paused one
	sin    []byte // a partial server header or state message
	stream int    // bytes of a streamed server message still to forward

	paused bool // a client message is being decided on a goroutine of its own
	ended  bool
}

// loopSide is one socket of a loop session.
type loopSide struct {
	s      *loopSession
	fd     int
	client bool
	out    loopSink
	events uint32 // registered with epoll; 0: not registered
}

// loopEnd is how a loop session ended, and what its end goroutine
// still has to write before closing the sockets.
type loopEnd struct {
	clientErr, serverErr error
	clientOut, serverOut []byte
	// cancel: the client left while the server may still run its
	// statement, which is to be cancelled before the upstream closes.
	cancel bool
}

// loopSink writes to a non-blocking socket; what the socket does not take
// waits in pending, and the loop stops reading the other side meanwhile.
type loopSink struct {
	fd      int
	pending []byte
	count   *atomic.Int64 // bytes written, for the client side
	err     error
}

// Write implements io.Writer for the session's bufWriter.
func (k *loopSink) Write(p []byte) (int, error) {
	if k.err != nil {
		return 0, k.err
	}
	if len(k.pending) > 0 {
		k.pending = append(k.pending, p...)
		return len(p), nil
	}
	n := k.write(p)
	if k.err != nil {
		return n, k.err
	}
	if n < len(p) {
		k.pending = append(k.pending, p[n:]...)
	}
	return len(p), nil
}

// write writes what the socket takes now.
func (k *loopSink) write(p []byte) int {
	done := 0
	for done < len(p) {
		n, errno := rawWrite(k.fd, p[done:])
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return done
		case errno != 0:
			k.err = errno
			return done
		}
		done += n
		if k.count != nil {
			k.count.Add(int64(n))
		}
	}
	return done
}

// drain writes pending bytes, keeping what the socket still refuses.
func (k *loopSink) drain() {
	n := k.write(k.pending)
	rest := copy(k.pending, k.pending[n:])
	k.pending = k.pending[:rest]
	if rest == 0 && cap(k.pending) > loopReadSize {
		k.pending = nil // a burst must not pin its buffer
	}
}

// rawRead and rawWrite skip the scheduler's system-call bookkeeping: on a
// non-blocking socket they return at once.
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	r, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), errno
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	r, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), errno
}

// relayOnLoop hands the established session to an event loop, which holds
// it without a goroutine: a message the interceptor cannot decide at once
// gets a goroutine of its own (decideSlow), and so does the session's end
// (end), which returns errHandedOff's promise by running the connection's
// cleanup. It reports false, having changed nothing, when the session
// cannot be relayed there (TLS on either side).
func (c *conn) relayOnLoop() (bool, error) {
	if c.srv.loops == nil {
		return false, nil
	}
	if _, plain := c.client.(*countingConn); !plain {
		return false, nil // TLS to the client
	}
	cfd, ok := dupSocket(c.rawClient)
	if !ok {
		return false, nil
	}
	sfd, ok := dupSocket(c.server)
	if !ok {
		unix.Close(cfd)
		return false, nil
	}
	l, err := c.srv.loops.pick()
	if err != nil {
		c.session.Logger.Warn().Err(err).Msg("relaying on goroutines")
		unix.Close(cfd)
		unix.Close(sfd)
		return false, nil
	}
	s := c.newLoopSession(l, cfd, sfd)
	// The loop owns the sockets now: the copies here leave Go's poller.
	c.rawClient.Close()
	c.sockMu.Lock()
	c.server.Close()
	c.sockMu.Unlock()
	if !l.post(s.start) {
		unix.Close(cfd)
		unix.Close(sfd)
		return true, errors.New("server stopping")
	}
	c.looped.Store(s)
	c.srv.looped.Add(1)
	if c.stopping.Load() { // hardStop may have run before looped was set
		s.stop()
	}
	return true, errHandedOff
}

// dupSocket returns a descriptor of its own for a plain TCP or Unix socket.
func dupSocket(nc net.Conn) (int, bool) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		return -1, false
	}
	// Go's sockets are non-blocking already, and the copy shares that flag;
	// the loop must never block on a read or write, so it does not rely on it.
	if unix.SetNonblock(fd, true) != nil {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

func (c *conn) newLoopSession(l *eventLoop, cfd, sfd int) *loopSession {
	s := &loopSession{c: c, l: l}
	s.quick, _ = c.si.(QuickSessionInterceptor)
	s.client = loopSide{s: s, fd: cfd, client: true, out: loopSink{fd: cfd, count: &c.bytesOut}}
	s.server = loopSide{s: s, fd: sfd, out: loopSink{fd: sfd}}
	// What the startup's readers hold already is the loop's first input.
	s.cin = c.cr.r.take()
	s.sin = c.sr.r.take()
	// The loop reads the sockets itself; the startup's readers go.
	c.cr, c.sr = nil, nil
	c.cw = &bufWriter{dst: &s.client.out}
	c.sw = &bufWriter{dst: &s.server.out}
	return s
}

// decideSlow runs on a goroutine of its own while the loop holds the
// message: it decides, and hands the verdict back to the loop.
func (s *loopSession) decideSlow(m ClientMessage) {
	v, err := s.decide(m)
	s.l.post(func() { s.resume(v, err) })
}

// end runs on a goroutine of its own once the loop let go of the session:
// it cancels what the server may still run for a client that left, writes
// the session's last bytes, closes the sockets and ends the connection.
func (s *loopSession) end(e loopEnd) {
	c := s.c
	defer c.runEnd()
	defer func() {
		if p := recover(); p != nil {
			c.session.Logger.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("session ended by an internal error")
		}
	}()
	if e.cancel {
		c.cancelOrphan("the client left")
	}
	s.close(e)
	c.end(e.err())
}

// err is the error the session's end is logged with.
func (e loopEnd) err() error {
	var upErr *UpstreamError
	if errors.As(e.serverErr, &upErr) {
		return e.serverErr
	}
	if errors.Is(e.clientErr, errTerminated) {
		return nil
	}
	return e.clientErr
}

// decide asks the interceptor, turning a panic into an error that ends
// only this session.
func (s *loopSession) decide(m ClientMessage) (v Verdict, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.c.session.Logger.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("session ended by an internal error")
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	return s.c.si.ClientMessage(m), nil
}

// close writes what the loop could not, within a second per side, and
// closes both sockets.
func (s *loopSession) close(e loopEnd) {
	finalWrite(s.server.fd, e.serverOut)
	unix.Close(s.server.fd)
	finalWrite(s.client.fd, e.clientOut)
	unix.Close(s.client.fd)
}

func finalWrite(fd int, p []byte) {
	if len(p) == 0 {
		return
	}
	if unix.SetNonblock(fd, false) != nil {
		return
	}
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err != nil || n <= 0 {
			return
		}
		p = p[n:]
	}
}

// stop ends the session as pgguard shuts down; any goroutine may call it.
func (s *loopSession) stop() {
	s.l.post(func() { s.guard(func() { s.finish(nil, errors.New("pgguard is shutting down")) }) })
}

// start registers the session and handles what the startup left buffered.
func (s *loopSession) start() {
	s.l.sides[int32(s.client.fd)] = &s.client
	s.l.sides[int32(s.server.fd)] = &s.server
	s.guard(func() {
		if len(s.sin) > 0 {
			s.serverBytes(nil)
		}
		if !s.ended && len(s.cin) > 0 {
			s.clientBytes(nil)
		}
	})
}

// handle serves one epoll event of side.
func (s *loopSession) handle(side *loopSide, ev uint32) {
	s.guard(func() {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && len(side.out.pending) > 0 {
			side.out.drain()
			if side.out.err != nil {
				s.sideFailed(side, side.out.err)
				return
			}
		}
		if ev&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 && side.events&unix.EPOLLIN != 0 {
			s.read(side)
		}
	})
}

// guard runs f, then flushes the session's output and updates what the loop
// waits for; a panic ends only this session.
func (s *loopSession) guard(f func()) {
	defer func() {
		if p := recover(); p != nil {
			s.c.session.Logger.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("session ended by an internal error")
			s.finish(fmt.Errorf("internal error: %v", p), nil)
		}
	}()
	f()
	if s.ended {
		return
	}
	if err := s.c.sw.Flush(); err != nil {
		s.finish(nil, err)
		return
	}
	if err := s.c.cw.Flush(); err != nil {
		s.finish(err, nil)
		return
	}
	s.update()
}

// sideFailed ends the session after a failed read or write on side.
func (s *loopSession) sideFailed(side *loopSide, err error) {
	if side.client {
		s.finish(err, nil)
	} else {
		s.finish(nil, err)
	}
}

func (s *loopSession) read(side *loopSide) {
	n, errno := rawRead(side.fd, s.l.rbuf)
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		return
	case errno != 0:
		s.sideFailed(side, errno)
		return
	case n == 0:
		s.sideFailed(side, io.EOF)
		return
	}
	if side.client {
		s.c.bytesIn.Add(int64(n))
		s.clientBytes(s.l.rbuf[:n])
		return
	}
	s.serverBytes(s.l.rbuf[:n])
	if s.c.resumeClient && !s.ended {
		// The state is confirmed: go on with what the client sent meanwhile.
		s.c.resumeClient = false
		s.clientBytes(nil)
	}
}

// clientBytes handles every whole client message in cin followed by p, and
// keeps the rest. It stops at a message that must be decided off the loop.
func (s *loopSession) clientBytes(p []byte) {
	data := p
	if len(s.cin) > 0 {
		s.cin = append(s.cin, p...)
		data = s.cin
	}
	c := s.c
	for len(data) >= 5 {
		typ, n, err := decodeHeader(data)
		if err == nil && !clientMessageTypes[typ] {
			err = &protocolViolation{typ: typ}
		}
		if err == nil {
			err = checkSize(typ, n, c.srv.cfg.MaxMessageSize)
		}
		if err != nil {
			s.finish(err, nil)
			return
		}
		size := 5 + n
		if len(data) < size {
			s.cin = keep(s.cin, data)
			return
		}
		body := data[5:size]
		if typ == 'X' {
			_ = writeFrame(c.sw, 'X', nil)
			s.finish(errTerminated, nil)
			return
		}
		skip, err := c.copyFilter(typ)
		if err != nil {
			s.finish(err, nil)
			return
		}
		if !skip && !c.discards(typ) {
			v, ok := s.try(typ, body)
			if !ok {
				s.cin = keep(s.cin, data)
				s.pause(typ, s.cin[5:size])
				return
			}
			if err := c.act(typ, body, v); err != nil {
				s.finish(nil, err)
				return
			}
			if c.replay {
				// A Switch holds the message: it is decided again, from
				// cin, once the server's state is confirmed.
				c.replay = false
				break
			}
		}
		data = data[size:]
		if c.holding.Load() { // a barrier's segment ended: wait for the state
			break
		}
	}
	s.cin = keep(s.cin, data)
}

// keep makes rest, a tail of buf or of the loop's read buffer, the whole
// of buf.
func keep(buf, rest []byte) []byte {
	if len(rest) == 0 {
		if cap(buf) > loopReadSize {
			return nil
		}
		return buf[:0]
	}
	return append(buf[:0], rest...)
}

func (s *loopSession) try(typ byte, body []byte) (Verdict, bool) {
	if s.quick == nil {
		return Verdict{}, false
	}
	return s.quick.TryClientMessage(NewClientMessage(typ, body, s.c.readySent+1))
}

// pause hands a message to a goroutine of its own; body lies in cin,
// which stays put until resume.
func (s *loopSession) pause(typ byte, body []byte) {
	s.paused = true
	go s.decideSlow(NewClientMessage(typ, body, s.c.readySent+1))
}

// resume acts on the verdict for the paused message and goes on with what
// followed it.
func (s *loopSession) resume(v Verdict, err error) {
	if s.ended {
		return
	}
	s.guard(func() {
		s.paused = false
		if err != nil {
			s.finish(err, nil)
			return
		}
		_, n, _ := decodeHeader(s.cin) // checked before the pause
		size := 5 + n
		if err := s.c.act(s.cin[0], s.cin[5:size], v); err != nil {
			s.finish(nil, err)
			return
		}
		if s.c.replay {
			s.c.replay = false // held by a Switch: decided again from cin
			return
		}
		s.cin = append(s.cin[:0], s.cin[size:]...)
		if !s.c.holding.Load() {
			s.clientBytes(nil)
		}
	})
}

// serverBytes forwards server output: state messages whole, through
// serverState, everything else streamed as it comes.
func (s *loopSession) serverBytes(p []byte) {
	c := s.c
	if s.stream > 0 {
		k := min(s.stream, len(p))
		if _, err := c.cw.Write(p[:k]); err != nil {
			s.finish(err, nil)
			return
		}
		s.stream -= k
		p = p[k:]
	}
	data := p
	if len(s.sin) > 0 {
		s.sin = append(s.sin, p...)
		data = s.sin
	}
	for len(data) >= 5 {
		typ, n, err := decodeHeader(data)
		if err != nil {
			s.finish(nil, err)
			return
		}
		size := 5 + n
		c.preludeDue()
		hidden := c.confirming
		switch {
		case c.confirming, typ == 'Z', typ == 'S', typ == 'E', typ == 'C', typ == 'G':
			if err := checkSize(typ, n, maxServerMessage); err != nil {
				s.finish(nil, err)
				return
			}
			if len(data) < size {
				s.sin = keep(s.sin, data)
				return
			}
			var err error
			if c.confirming {
				err = c.confirmMessage(typ, data[5:size])
			} else {
				err = c.serverState(typ, data[5:size])
			}
			if err != nil {
				s.finish(err, nil)
				return
			}
			data = data[size:]
			if !hidden && typ != 'G' {
				c.copyServer(typ)
			}
		default:
			if !hidden {
				c.copyServer(typ)
			}
			k := min(size, len(data))
			if _, err := c.cw.Write(data[:k]); err != nil {
				s.finish(err, nil)
				return
			}
			s.stream = size - k
			data = data[k:]
		}
	}
	s.sin = keep(s.sin, data)
}

// update registers what the session waits for: reading a side while the
// other takes its output and no decision is pending, writing a side that has
// output pending. A side that waits for nothing leaves the epoll set, so a
// hang-up cannot wake the loop over and over.
func (s *loopSession) update() {
	var cw, sw uint32
	if !s.paused && len(s.client.out.pending) == 0 {
		sw |= unix.EPOLLIN
	}
	if !s.paused && !s.c.holding.Load() && len(s.server.out.pending) == 0 {
		cw |= unix.EPOLLIN
	}
	if len(s.client.out.pending) > 0 {
		cw |= unix.EPOLLOUT
	}
	if len(s.server.out.pending) > 0 {
		sw |= unix.EPOLLOUT
	}
	if err := s.l.register(&s.client, cw); err != nil {
		s.finish(err, nil)
		return
	}
	if err := s.l.register(&s.server, sw); err != nil {
		s.finish(nil, err)
	}
}

func (l *eventLoop) register(side *loopSide, want uint32) error {
	if want == side.events {
		return nil
	}
	op := unix.EPOLL_CTL_MOD
	switch {
	case want == 0:
		op = unix.EPOLL_CTL_DEL
	case side.events == 0:
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: want, Fd: int32(side.fd)}
	if err := unix.EpollCtl(l.ep, op, side.fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	side.events = want
	return nil
}

// finish ends the session the way the pumps end it: when the client ended
// it, the server gets a Terminate (unless the client sent one), preceded by
// a cancel when a statement may still run, and the client an error for a
// protocol fault; when the server side ended, the client learns why. The
// goroutine started for the end cancels and writes what remains.
func (s *loopSession) finish(clientErr, serverErr error) {
	if s.ended {
		return
	}
	s.ended = true
	c := s.c
	if clientErr != nil {
		c.clientEnded.Store(true)
		if !errors.Is(clientErr, errTerminated) {
			_ = writeFrame(c.sw, 'X', nil)
		}
		if code, msg, ok := clientFault(clientErr); ok {
			_ = writeFrame(c.cw, 'E', fatal(code, msg)[5:])
		}
	} else {
		if code, msg, ok := c.upstreamFault(); ok {
			_ = writeFrame(c.cw, 'E', fatal(code, msg)[5:])
		}
		serverErr = &UpstreamError{Addr: c.srv.upstream.addr, Err: serverErr}
	}
	e := loopEnd{clientErr: clientErr, serverErr: serverErr}
	// Stopping, hardStop has cancelled already.
	e.cancel = clientErr != nil && !errors.Is(clientErr, errTerminated) && !c.stopping.Load() && c.busy()
	e.serverOut = s.leftover(c.sw, &s.server)
	e.clientOut = s.leftover(c.cw, &s.client)
	_ = s.l.register(&s.client, 0)
	_ = s.l.register(&s.server, 0)
	delete(s.l.sides, int32(s.client.fd))
	delete(s.l.sides, int32(s.server.fd))
	s.cin, s.sin = nil, nil
	go s.end(e)
}

// leftover is what w and side's sink still hold for a healthy socket.
func (s *loopSession) leftover(w *bufWriter, side *loopSide) []byte {
	if side.out.err != nil {
		return nil
	}
	out := side.out.pending
	if w.buf != nil {
		out = append(out, (*w.buf)[:w.n]...)
		putBuffer(w.buf)
		w.buf, w.n = nil, 0
	}
	side.out.pending = nil
	return out
}
