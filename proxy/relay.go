package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// errTerminated marks a session the client ended with Terminate.
var errTerminated = errors.New("client terminated the session")

// relay relays the session until either side ends: on an event loop where
// it can (see loop_linux.go), else with two pumps, client to server on this
// goroutine and server to client on another.
func (c *conn) relay() error {
	var marker [8]byte
	_, _ = rand.Read(marker[:])
	c.swaps.prefix = "pgguard_denied_" + hex.EncodeToString(marker[:]) + "_"
	c.copyStmts, c.copyPortals = map[string]bool{}, map[string]bool{}
	if ok, err := c.relayOnLoop(); ok {
		return err
	}

	serverDone := make(chan error, 1)
	// Made here, not for every session: a loop session never waits on it.
	c.resume = make(chan struct{}, 1)
	c.serverGone = make(chan struct{})
	go func() {
		defer close(c.serverGone)
		defer func() {
			if p := recover(); p != nil {
				c.session.Logger.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("server pump ended by an internal error")
				c.client.Close() // unblock the client pump
				serverDone <- fmt.Errorf("internal error: %v", p)
			}
		}()
		serverDone <- c.serverPump()
	}()

	clientErr := c.clientPump()
	c.clientEnded.Store(true)
	c.closeServer(clientErr)
	serverErr := <-serverDone

	// The client writer is ours again: report a client-side protocol fault.
	if code, msg, ok := clientFault(clientErr); ok {
		c.sendFatal(code, msg)
	}
	var upErr *UpstreamError
	if errors.As(serverErr, &upErr) {
		return serverErr
	}
	if errors.Is(clientErr, errTerminated) {
		return nil
	}
	return clientErr
}

// clientFault is the FATAL error a client gets for ending its session with
// a message pgguard cannot accept; ok is false for any other end.
func clientFault(err error) (code, msg string, ok bool) {
	var tooLarge *MessageTooLargeError
	var violation *protocolViolation
	var copyErr *copyError
	switch {
	case errors.As(err, &tooLarge):
		return "54000", "pgguard: " + tooLarge.Error(), true
	case errors.As(err, &violation):
		return "08P01", "pgguard: " + violation.Error(), true
	case errors.As(err, &copyErr):
		return "08P01", "pgguard: " + copyErr.Error(), true
	}
	return "", "", false
}

// upstreamFault is the FATAL error a client gets when the server side of
// its session ends under it; ok is false when PostgreSQL already said why.
func (c *conn) upstreamFault() (code, msg string, ok bool) {
	switch {
	case c.stopping.Load():
		return "57P01", "pgguard: terminating connection because pgguard is shutting down", true
	case !c.sawFatal:
		return "08006", fmt.Sprintf("pgguard: lost connection to upstream %s", c.srv.upstream.addr), true
	}
	return "", "", false
}

// closeServer ends the upstream session, politely when the client left on
// its own, after cancelling the statement it left running.
func (c *conn) closeServer(clientErr error) {
	if c.leftRunning(clientErr) {
		c.cancelOrphan("the client left")
	}
	if !errors.Is(clientErr, errTerminated) && c.sw != nil {
		_ = writeFrame(c.sw, 'X', nil)
		_ = c.sw.Flush()
	}
	c.sockMu.Lock()
	c.server.Close()
	c.sockMu.Unlock()
}

// protocolViolation is a client message pgguard cannot accept.
type protocolViolation struct{ typ byte }

func (e *protocolViolation) Error() string {
	return fmt.Sprintf("invalid frontend message type %q", e.typ)
}

// clientMessageTypes are the messages a client may send once the session is
// established; anything else could carry statements pgguard cannot see.
var clientMessageTypes = [256]bool{
	'Q': true, 'P': true, 'B': true, 'D': true, 'E': true, 'C': true,
	'S': true, 'H': true, 'F': true, 'd': true, 'c': true, 'f': true, 'X': true,
}

// clientPump reads client messages, asks the interceptor about each and
// forwards or denies it. It flushes to the server whenever the client has
// nothing more buffered, so pipelines go out in one write.
func (c *conn) clientPump() error {
	for {
		typ, n, err := c.cr.header()
		if err != nil {
			return err
		}
		if !clientMessageTypes[typ] {
			return &protocolViolation{typ: typ}
		}
		body, err := c.cr.body(typ, n)
		if err != nil {
			return err
		}
		if typ == 'X' {
			_ = writeFrame(c.sw, 'X', nil)
			_ = c.sw.Flush()
			return errTerminated
		}
		skip, err := c.copyFilter(typ)
		if err != nil {
			return err
		}
		if !skip {
			if err := c.clientMessage(typ, body); err != nil {
				return &UpstreamError{Addr: c.srv.upstream.addr, Err: err}
			}
		}
		for c.holding.Load() {
			// The segment of a barrier ended, or a Switch's prelude went
			// out: send it, and read on only once the server's state is
			// confirmed.
			if err := c.sw.Flush(); err != nil {
				return &UpstreamError{Addr: c.srv.upstream.addr, Err: err}
			}
			select {
			case <-c.resume:
			case <-c.serverGone:
				return io.EOF
			}
			if !c.replay {
				break
			}
			// The message that asked for the Switch, decided again on the
			// state the server now reports; the reader was not touched.
			c.replay = false
			if err := c.clientMessage(typ, body); err != nil {
				return &UpstreamError{Addr: c.srv.upstream.addr, Err: err}
			}
		}
		if c.cr.r.Buffered() == 0 {
			if err := c.sw.Flush(); err != nil {
				return &UpstreamError{Addr: c.srv.upstream.addr, Err: err}
			}
		}
	}
}

// clientMessage decides on and forwards one client message.
func (c *conn) clientMessage(typ byte, body []byte) error {
	if c.discards(typ) {
		return nil
	}
	return c.act(typ, body, c.si.ClientMessage(NewClientMessage(typ, body, c.readySent+1)))
}

// discards reports whether a client message of type typ is dropped without
// asking the interceptor: after a denial in the extended protocol,
// PostgreSQL would ignore everything up to Sync, and so does pgguard. The
// Sync itself goes on, and the interceptor sees it: it counts the
// ReadyForQuery messages to come.
func (c *conn) discards(typ byte) bool { return c.discarding && typ != 'S' }

// act forwards or denies a client message on the interceptor's verdict;
// callers have dropped what discards says to.
func (c *conn) act(typ byte, body []byte, v Verdict) error {
	if c.discarding { // typ is the Sync that ends the discard
		c.discarding = false
	} else if v.Action == Switch && typ != 'S' && typ != 'H' {
		if c.confirm == nil || c.segmentOpen || c.barrierPending {
			v = Verdict{Action: Deny, Error: &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42501",
				Message: "pgguard: the session's role cannot be switched within a pipeline segment",
				Hint:    "Send the statement after a Sync, or as a query of its own."}}
		} else {
			return c.switchFirst(v.Prelude)
		}
	}
	if v.Action == Deny && !c.discarding && typ != 'S' && typ != 'H' {
		err := c.deny(typ, v.Error)
		switch typ {
		case 'Q', 'F': // replaced by a Query: the segment ends
			c.segmentOpen = false
			c.holdAfter('Q', false)
			c.execInSeg = 0
		case 'd', 'c', 'f': // replaced by a CopyFail: a copy ends
			if err == nil {
				err = c.copyTrack('f', nil)
			}
		}
		return err
	}
	if typ == 'Q' || typ == 'S' || typ == 'F' {
		c.sentSegment()
		c.segmentOpen = false
	} else {
		c.segmentOpen = true
		if typ == 'E' {
			c.executing.Store(true)
		}
	}
	c.holdAfter(typ, v.Barrier)
	if err := writeFrame(c.sw, typ, body); err != nil {
		return err
	}
	return c.copyTrack(typ, body)
}

// deny keeps the message from the server and makes the server fail at its
// place instead, with a marker error the server pump swaps for e.
func (c *conn) deny(typ byte, e *pgproto3.ErrorResponse) error {
	if e == nil {
		e = &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42501", Message: "pgguard: permission denied"}
	}
	if e.SeverityUnlocalized == "" {
		// The interceptor's value may be shared between sessions: copy it
		// rather than write to it.
		cp := *e
		cp.SeverityUnlocalized = cp.Severity
		e = &cp
	}
	c.swapSeq++
	marker := c.swaps.prefix + strconv.FormatUint(c.swapSeq, 10)
	c.swaps.push(swap{seq: c.swapSeq, body: encode(e)[5:], after: c.readySent})
	switch typ {
	case 'Q', 'F':
		c.sentSegment()
		return writeFrame(c.sw, 'Q', encode(&pgproto3.Query{String: "EXECUTE " + marker})[5:])
	case 'd', 'c', 'f':
		return writeFrame(c.sw, 'f', encode(&pgproto3.CopyFail{Message: marker})[5:])
	default:
		c.discarding = true
		return writeFrame(c.sw, 'B', encode(&pgproto3.Bind{PreparedStatement: marker})[5:])
	}
}

// serverPump forwards server messages as framed bytes. Only messages that
// carry session state are read whole; rows and COPY data stream through.
func (c *conn) serverPump() error {
	for {
		typ, n, err := c.sr.header()
		if err != nil {
			return c.upstreamEnded(err)
		}
		c.preludeDue()
		hidden := c.confirming
		switch {
		case c.confirming:
			var body []byte
			if body, err = c.sr.body(typ, n); err == nil {
				err = c.confirmMessage(typ, body)
			}
		case typ == 'Z' || typ == 'S' || typ == 'E' || typ == 'C' || typ == 'G':
			err = c.serverStateMessage(typ, n)
		default:
			err = c.streamMessage(typ, n)
		}
		if err != nil {
			return c.upstreamEnded(err)
		}
		if !hidden && typ != 'G' {
			c.copyServer(typ)
		}
		if c.sr.r.Buffered() == 0 {
			if err := c.cw.Flush(); err != nil {
				return err
			}
		}
	}
}

// serverStateMessage reads, observes and forwards one small state message.
func (c *conn) serverStateMessage(typ byte, n int) error {
	body, err := c.sr.body(typ, n)
	if err != nil {
		return err
	}
	return c.serverState(typ, body)
}

// serverState observes one state message and forwards it, or the
// interceptor's error in place of a denial's marker error.
func (c *conn) serverState(typ byte, body []byte) error {
	switch typ {
	case 'Z':
		if len(body) == 1 {
			c.session.txStatus.Store(uint32(body[0]))
		}
		c.readySeen++
		c.session.readySeen.Store(c.readySeen)
		c.swaps.expire(c.readySeen)
		if c.confirmDue() {
			c.si.ServerMessage(NewServerMessage(typ, body))
			if err := writeFrame(c.cw, typ, body); err != nil {
				return err
			}
			return c.sendConfirm()
		}
	case 'S':
		c.trackParameter(body)
	case 'G': // observed by the proxy alone
		if c.copyServer(typ) {
			return nil
		}
		return writeFrame(c.cw, typ, body)
	case 'E':
		c.sawFatal = bytes.HasPrefix(body, []byte("SFATAL\x00")) || bytes.HasPrefix(body, []byte("SPANIC\x00"))
		if swapped, ok := c.swaps.match(body); ok {
			c.si.ServerMessage(NewServerMessage(typ, body))
			return writeFrame(c.cw, typ, swapped)
		}
		if c.rewriter != nil {
			c.si.ServerMessage(NewServerMessage(typ, body))
			if f, ok := DecodeErrorFields(body); ok {
				if replaced, ok := c.rewriter.RewriteError(body, f); ok {
					body = replaced
				}
			}
			return writeFrame(c.cw, typ, body)
		}
	}
	if typ != 'S' {
		c.si.ServerMessage(NewServerMessage(typ, body))
	}
	return writeFrame(c.cw, typ, body)
}

// streamMessage copies one message to the client through the buffers,
// without holding it whole.
func (c *conn) streamMessage(typ byte, n int) error {
	if err := c.cw.writeHeader(typ, n); err != nil {
		return err
	}
	for n > 0 {
		chunk, err := c.sr.r.Peek(min(n, bufferSize))
		if err != nil {
			return err
		}
		if _, err := c.cw.Write(chunk); err != nil {
			return err
		}
		c.sr.r.Discard(len(chunk))
		n -= len(chunk)
	}
	return nil
}

// upstreamEnded tells the client why the session ends, unless the client
// ended it, and unblocks the client pump.
func (c *conn) upstreamEnded(err error) error {
	if c.clientEnded.Load() {
		return err
	}
	if code, msg, ok := c.upstreamFault(); ok {
		c.sendFatal(code, msg)
	}
	c.client.Close()
	return &UpstreamError{Addr: c.srv.upstream.addr, Err: err}
}

// swap is a pending denial: the server's error that carries its marker
// (prefix and seq) becomes body, the interceptor's error.
type swap struct {
	seq  uint64
	body []byte
	// after is how many ReadyForQuery messages the client pump had counted
	// before the denial; once more have arrived, the marker error cannot
	// come any more. It only serves expiry; matching goes by seq.
	after uint64
}

// swapQueue hands denials from the client pump to the server pump.
type swapQueue struct {
	prefix string
	mu     sync.Mutex
	q      []swap
}

func (s *swapQueue) push(w swap) {
	s.mu.Lock()
	s.q = append(s.q, w)
	s.mu.Unlock()
}

// match returns the interceptor's error if body is the marker error of a
// pending denial, and drops that denial and all older ones: PostgreSQL
// answers in order, so their errors can no longer come.
func (s *swapQueue) match(body []byte) ([]byte, bool) {
	if !bytes.Contains(body, []byte(s.prefix)) {
		return nil, false
	}
	e := &pgproto3.ErrorResponse{}
	if e.Decode(body) != nil {
		return nil, false
	}
	i := strings.Index(e.Message, s.prefix)
	if i < 0 {
		return nil, false
	}
	digits := e.Message[i+len(s.prefix):]
	if end := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); end >= 0 {
		digits = digits[:end]
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for j, w := range s.q {
		if w.seq == seq {
			s.q = s.q[j+1:]
			return w.body, true
		}
	}
	return nil, false
}

// expire drops denials whose marker error can no longer come: the server was
// already failing (25P02, or discarding up to Sync) and said so itself.
func (s *swapQueue) expire(readySeen uint64) {
	s.mu.Lock()
	for len(s.q) > 0 && s.q[0].after < readySeen {
		s.q = s.q[1:]
	}
	s.mu.Unlock()
}
