package proxy

// COPY FROM STDIN. Once a COPY FROM STDIN has started, PostgreSQL reads
// the client's messages as COPY data: it takes CopyData, ends the copy at
// CopyDone or CopyFail, ignores Sync and Flush (no ReadyForQuery comes for
// such a Sync), and ends the session on any other message, which it never
// runs. Whether a statement starts a copy only the server's answer tells
// (it may fail first, or be skipped behind an error), so after forwarding
// a message that may start one, pgguard reads nothing more from the client
// until the server has shown whether it did: a CopyInResponse, or the
// message's end without one. From there the client side knows, message by
// message, what the server makes of each, and counts ReadyForQuery
// messages as the server sends them.
//
// The server may also end a copy on its own, on data it cannot take; it
// then runs what follows normally. pgguard therefore never forwards a
// Sync or Flush sent during a copy (the server would ignore it, or answer
// it after such an error), and ends the session on any other message
// there, as PostgreSQL does, without forwarding it: either way the server
// runs nothing pgguard did not see.

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// copyWaiting is a forwarded message that may start a copy, until the
// server's answer shows whether it did.
type copyWaiting struct {
	active bool
	simple bool   // a Query: its later statements may start another copy
	seg    uint64 // its segment (the ReadyForQuery that ends it)
	before uint64 // Executes of its segment forwarded before it
	starts uint64 // copies the server had started when it went out
	// barrier: the client is held for a barrier's state query as well.
	barrier bool
}

// copyServerState is what the server side has seen of the segment the
// server is answering; under copyMu.
type copyServerState struct {
	starts      uint64 // CopyInResponse and CopyBothResponse messages, ever
	completions uint64 // Executes of the segment answered
	failed      bool   // the segment had an error: the rest is skipped
	copying     byte   // the server is in a copy that this response started
}

// copyError is a client message PostgreSQL does not take during COPY FROM
// STDIN; it ends the session.
type copyError struct{ typ byte }

func (e *copyError) Error() string {
	return fmt.Sprintf("unexpected message type 0x%02X during COPY from stdin", e.typ)
}

// mayCopy reports whether SQL may run COPY: its keyword cannot be quoted
// or escaped, so text without the word never starts a copy.
// It runs on every Parse and Query, so it compares bytes directly: a
// keyword is ASCII, and or-ing 0x20 lower-cases exactly the ASCII letters
// of "copy" (no other byte becomes c, o, p or y).
func mayCopy(sql []byte) bool {
	for i := 0; i+4 <= len(sql); i++ {
		if sql[i]|0x20 == 'c' && sql[i+1]|0x20 == 'o' && sql[i+2]|0x20 == 'p' && sql[i+3]|0x20 == 'y' {
			return true
		}
	}
	return false
}

// copyFilter is called by the client side, before the interceptor, for
// every client message but Terminate: during a copy, Sync and Flush are
// dropped (skip), CopyData, CopyDone and CopyFail go on, and anything else
// ends the session.
func (c *conn) copyFilter(typ byte) (skip bool, err error) {
	if !c.copyIn.Load() {
		return false, nil
	}
	switch typ {
	case 'd', 'c', 'f':
		return false, nil
	case 'S', 'H':
		return true, nil
	}
	return false, &copyError{typ: typ}
}

// copyTrack is called by the client side for a message it forwarded (or,
// for CopyData, CopyDone and CopyFail, replaced with a CopyFail): it
// follows what may start a copy and holds the client until the server's
// answer shows. It may write a Flush behind an Execute, so that the server
// sends its answer at once.
func (c *conn) copyTrack(typ byte, body []byte) error {
	m := NewClientMessage(typ, body, 0)
	switch typ {
	case 'P':
		if name, text, ok := m.Parse(); ok {
			if len(name) == 0 {
				c.copyStmts[""] = mayCopy(text)
			} else if mayCopy(text) {
				c.copyStmts[string(name)] = true
			}
		}
	case 'B':
		if portal, stmt, ok := m.Bind(); ok {
			may := c.copyStmts[string(stmt)]
			if len(portal) == 0 {
				c.copyPortals[""] = may
			} else if may {
				c.copyPortals[string(portal)] = true
			}
		}
	case 'E':
		c.execInSeg++
		if portal, ok := m.Portal(); ok && c.copyPortals[string(portal)] {
			if err := writeFrame(c.sw, 'H', nil); err != nil {
				return err
			}
			c.copyHold(copyWaiting{seg: c.readySent + 1, before: c.execInSeg - 1})
		}
	case 'Q':
		c.execInSeg = 0
		if text, ok := m.QueryText(); ok && mayCopy(text) {
			c.copyHold(copyWaiting{simple: true, seg: c.readySent})
		}
	case 'S', 'F':
		c.execInSeg = 0
	case 'c', 'f':
		if c.copyIn.Load() {
			c.copyIn.Store(false)
			if c.copySimple {
				c.copyHold(copyWaiting{simple: true, seg: c.readySent})
			}
		}
	}
	return nil
}

// copyHold holds the client until w is resolved, unless it is already.
func (c *conn) copyHold(w copyWaiting) {
	c.copyMu.Lock()
	defer c.copyMu.Unlock()
	w.active = true
	w.starts = c.copySrv.starts
	w.barrier = c.holding.Load()
	c.copyWait = w
	if done, copying := c.copyResolved(); done {
		c.copyWait.active = false
		c.copyIn.Store(copying)
		c.copySimple = copying && w.simple
		return
	}
	c.holding.Store(true)
}

// copyResolved reports whether the waiting message's answer is in, and
// whether it started a copy. copyMu is held.
func (c *conn) copyResolved() (done, copying bool) {
	w, s := &c.copyWait, &c.copySrv
	seen := c.session.readySeen.Load()
	switch {
	case seen >= w.seg:
		return true, false // its segment ended
	case seen+1 < w.seg:
		return false, false // the server is still answering earlier ones
	case s.starts > w.starts:
		return true, true
	case !w.simple && (s.failed || s.completions > w.before):
		return true, false // skipped behind an error, failed, or ran without copying
	}
	return false, false
}

// copyServer is called by the server side after each server message that
// is the client's (not the state query's). It follows what the server
// answers and releases a client held by copyHold once its answer is in.
// It reports whether typ, a CopyInResponse, is to be withheld: the copy
// was started by a Query that is also a barrier's (pgguard could not read
// the client's data while it waits for the state), and the server side
// fails it instead, with an error of its own.
func (c *conn) copyServer(typ byte) (withhold bool) {
	switch typ {
	case 'G', 'W', 'H', 'C', 'I', 's', 'E', 'Z':
	default:
		return false
	}
	c.copyMu.Lock()
	defer c.copyMu.Unlock()
	s := &c.copySrv
	switch typ {
	case 'G', 'W', 'H':
		if typ != 'H' {
			s.starts++
		}
		s.completions++
		s.copying = typ
	case 'C':
		if s.copying != 0 {
			s.copying = 0
		} else {
			s.completions++
		}
	case 'I', 's':
		s.completions++
	case 'E':
		s.copying, s.failed = 0, true
	case 'Z':
		s.completions, s.failed, s.copying = 0, false, 0
	}
	if !c.copyWait.active {
		return false
	}
	done, copying := c.copyResolved()
	if !done {
		return false
	}
	w := c.copyWait
	c.copyWait.active = false
	if w.barrier {
		// The barrier's state query releases the client.
		if copying {
			c.copyRefuse()
			return true
		}
		return false
	}
	c.copyIn.Store(copying)
	c.copySimple = copying && w.simple
	c.holding.Store(false)
	if c.resume == nil { // an event loop: set before the session started
		c.resumeClient = true
	} else {
		c.resume <- struct{}{}
	}
	return false
}

// copyRefuse fails the copy the server just started, from the server
// side, while the client is held: the server answers with the marker
// error, which the client gets as pgguard's, and the ReadyForQuery that
// ends the barrier's segment follows.
func (c *conn) copyRefuse() {
	e := &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "0A000",
		Message: "pgguard: COPY FROM STDIN cannot share a Query with a statement that changes the session's state",
		Hint:    "Send the COPY as a query of its own."}
	// The swap's sequence comes from the client side's counter, parked
	// while the client is held; a sequence past it keeps the order.
	c.swapSeq++
	marker := c.swaps.prefix + fmt.Sprint(c.swapSeq)
	c.swaps.push(swap{seq: c.swapSeq, body: encode(e)[5:], after: c.readySent})
	msg := encode(&pgproto3.CopyFail{Message: marker})
	if c.resume == nil {
		_, _ = c.sw.Write(msg)
		return
	}
	_, _ = c.server.Write(msg)
}
