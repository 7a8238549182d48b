package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Session state is confirmed, never assumed. An interceptor that decides on
// session state (search_path, role, settings) marks every message that may
// change it as a barrier (Verdict.Barrier). The proxy then forwards the
// rest of that message's sync segment as usual, and at the segment's end
// (the Query, Sync or FunctionCall that the server answers with
// ReadyForQuery) it stops reading the client. Once that ReadyForQuery has
// reached the client, the proxy asks the server for the state with the
// interceptor's query, hides the answer from the client, hands it to the
// interceptor, and only then reads the client's next message. A pipelined
// statement behind a state change is thus decided on the state the server
// reports, whatever the change did (or failed to do).
//
// The query runs through the extended protocol under a statement and
// portal name of the session's own, unguessable, closed again before its
// Sync: the simple protocol would drop the client's unnamed statement and
// portal, which a driver may still use.

// StateConfirmer is a SessionInterceptor that reads session state from the
// server at the start of the session and after every barrier.
type StateConfirmer interface {
	// ConfirmQuery is the query whose single row carries the state. It is
	// called once per session.
	ConfirmQuery() string
	// Confirmed hands over the row (nil values are NULL), or the error the
	// server answered with (then row is nil): in a failed transaction
	// block the server refuses every query. txStatus is the transaction
	// status after the query.
	Confirmed(row [][]byte, err *pgproto3.ErrorResponse, txStatus byte)
}

// PreludeObserver is a StateConfirmer told how a Switch's prelude went,
// just before the state query's answer (Confirmed) that follows it.
type PreludeObserver interface {
	// PreludeDone hands over the prelude's error, nil when it succeeded.
	PreludeDone(err *pgproto3.ErrorResponse)
}

// StateArguments is a StateConfirmer whose state query may differ from
// one confirmation to the next, and take parameters ($1, $2, ...): what
// the interceptor needs to read depends on what the session did (the
// relations its open transaction changed, say), and a session that did
// nothing of the kind should not pay for planning a larger query.
type StateArguments interface {
	StateConfirmer
	// ConfirmStatement returns the query for the confirmation about to be
	// sent, with its parameters' values in text format (nil for NULL). It
	// is called before each sending, after the interceptor has seen the
	// ReadyForQuery that made the confirmation due; the answer still
	// comes to Confirmed as one row.
	ConfirmStatement() (query string, args [][]byte)
}

// confirmer is a session's state query, encoded once, or for a
// StateArguments at each sending.
type confirmer struct {
	si       StateConfirmer
	args     StateArguments // nil when the query takes none
	name     string
	messages []byte // the state query's messages, when it takes no arguments
	row      [][]byte
	err      *pgproto3.ErrorResponse
	retries  int // cancelled attempts of the current confirmation
	// prelude is set while a Switch's prelude is being answered, before
	// the state query's own answer; preludeErr is its error.
	prelude    bool
	preludeErr *pgproto3.ErrorResponse
}

func newConfirmer(si SessionInterceptor) *confirmer {
	sc, ok := si.(StateConfirmer)
	if !ok {
		return nil
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	name := "pgguard_state_" + hex.EncodeToString(id[:])
	f := &confirmer{si: sc, name: name}
	if a, ok := si.(StateArguments); ok {
		f.args = a
		return f
	}
	f.messages = f.encode(encode(&pgproto3.Parse{Name: name, Query: sc.ConfirmQuery()}), nil)
	return f
}

// encode builds the state query's messages with these parameter values.
// Those after the Bind are the same every time, but encoding them again
// costs less than each idle session holding them.
func (f *confirmer) encode(parse []byte, args [][]byte) []byte {
	b := append([]byte{}, parse...)
	for _, m := range []interface{ Encode([]byte) ([]byte, error) }{
		&pgproto3.Bind{DestinationPortal: f.name, PreparedStatement: f.name, Parameters: args},
		&pgproto3.Execute{Portal: f.name},
		&pgproto3.Close{ObjectType: 'P', Name: f.name},
		&pgproto3.Close{ObjectType: 'S', Name: f.name},
		&pgproto3.Sync{},
	} {
		var err error
		if b, err = m.Encode(b); err != nil {
			panic(fmt.Sprintf("proxy: encode %T: %v", m, err))
		}
	}
	return b
}

// next returns the messages of the confirmation about to be sent.
func (f *confirmer) next() []byte {
	if f.args == nil {
		return f.messages
	}
	query, args := f.args.ConfirmStatement()
	return f.encode(encode(&pgproto3.Parse{Name: f.name, Query: query}), args)
}

// preludeMessages runs sql under the state query's own names, in a sync
// segment of its own: its answer ends with a ReadyForQuery before the
// state query's, whatever it did.
func (f *confirmer) preludeMessages(sql string) []byte {
	var b []byte
	for _, m := range []interface{ Encode([]byte) ([]byte, error) }{
		&pgproto3.Parse{Name: f.name, Query: sql},
		&pgproto3.Bind{DestinationPortal: f.name, PreparedStatement: f.name},
		&pgproto3.Execute{Portal: f.name},
		&pgproto3.Close{ObjectType: 'P', Name: f.name},
		&pgproto3.Close{ObjectType: 'S', Name: f.name},
		&pgproto3.Sync{},
	} {
		b = append(b, encode(m)...)
	}
	return b
}

// message takes one server message of the state query's answer and
// reports whether it was the last (ReadyForQuery). Asynchronous messages
// (notices, notifications, parameter changes) are not its own: ours is
// false and the caller forwards them.
func (f *confirmer) message(typ byte, body []byte) (ours, done, again bool) {
	switch {
	case typ == 'N' || typ == 'A' || typ == 'S':
		return false, false, false
	case f.prelude:
		switch typ {
		case 'E':
			e := &pgproto3.ErrorResponse{}
			if e.Decode(body) != nil {
				e = &pgproto3.ErrorResponse{Code: "08P01", Message: "malformed error response"}
			}
			f.preludeErr = e
		case 'Z':
			f.prelude = false
			if po, ok := f.si.(PreludeObserver); ok {
				po.PreludeDone(f.preludeErr)
			}
			f.preludeErr = nil
		}
		return true, false, false
	}
	switch typ {
	case 'D':
		f.row = decodeRow(body)
	case 'E':
		e := &pgproto3.ErrorResponse{}
		if e.Decode(body) != nil {
			e = &pgproto3.ErrorResponse{Code: "08P01", Message: "malformed error response"}
		}
		f.err = e
	case 'Z':
		status := byte('I')
		if len(body) == 1 {
			status = body[0]
		}
		row, err := f.row, f.err
		f.row, f.err = nil, nil
		if err != nil && err.Code == "57014" && f.retries < maxConfirmRetries {
			// A client's cancel request, meant for its own statement, may
			// arrive while the state query runs: ask again.
			f.retries++
			return true, false, true
		}
		f.retries = 0
		if row == nil && err == nil {
			err = &pgproto3.ErrorResponse{Code: "XX000", Message: "the state query returned no row"}
		}
		f.si.Confirmed(row, err, status)
		return true, true, false
	}
	return true, false, false
}

// maxConfirmRetries bounds how often a cancelled state query is sent again.
const maxConfirmRetries = 3

// decodeRow copies a DataRow's values; nil for NULL or a malformed row.
func decodeRow(body []byte) [][]byte {
	var d pgproto3.DataRow
	if d.Decode(body) != nil {
		return nil
	}
	row := make([][]byte, len(d.Values))
	for i, v := range d.Values {
		if v != nil {
			row[i] = append([]byte{}, v...)
		}
	}
	return row
}

// confirmAtStart reads the session's initial state before the client may
// send anything: options and parameters of the StartupMessage, role and
// database settings all apply by then, as the server reports them.
func (c *conn) confirmAtStart() error {
	if c.confirm == nil {
		return nil
	}
	if _, err := c.sw.Write(c.confirm.next()); err != nil {
		return c.upstreamLost(err)
	}
	if err := c.sw.Flush(); err != nil {
		return c.upstreamLost(err)
	}
	for {
		typ, body, err := c.sr.next()
		if err != nil {
			return c.upstreamLost(err)
		}
		ours, done, again := c.confirm.message(typ, body)
		if again {
			if _, err := c.sw.Write(c.confirm.next()); err != nil {
				return c.upstreamLost(err)
			}
			if err := c.sw.Flush(); err != nil {
				return c.upstreamLost(err)
			}
		}
		switch {
		case typ == 'Z':
			if len(body) == 1 {
				c.session.txStatus.Store(uint32(body[0]))
			}
		case typ == 'S':
			c.trackParameter(body)
		}
		if !ours {
			if err := writeFrame(c.cw, typ, body); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

// holdAfter is called by the client side for every message it forwarded
// (or replaced with a denial's marker). A barrier's segment ends at the
// next message the server answers with ReadyForQuery: from there on the
// client is not read until the state query has been answered.
func (c *conn) holdAfter(typ byte, barrier bool) {
	if c.confirm == nil {
		return
	}
	if barrier {
		c.barrierPending = true
	}
	if c.barrierPending && (typ == 'Q' || typ == 'S' || typ == 'F') {
		c.barrierPending = false
		c.holdReady.Store(c.readySent)
		c.holding.Store(true)
	}
}

// confirmDue reports, for a ReadyForQuery just counted, whether it ends a
// barrier's segment: then the state query is to be sent (unless a Switch
// sent it already).
func (c *conn) confirmDue() bool {
	return c.confirm != nil && c.holding.Load() && !c.confirming && !c.preludeSent.Load() && c.readySeen == c.holdReady.Load()
}

// switchFirst holds a client message that asked for a Switch: the prelude
// and the state query go to the server at once, behind whatever the client
// sent before (the server answers in order), and the client is not read
// until the state query's answer is in; then the held message is shown to
// the interceptor again (replay). Only the client side calls it, at the
// start of a sync segment, so no barrier's segment is open.
func (c *conn) switchFirst(prelude string) error {
	c.confirm.prelude = true
	c.replay = true
	c.holdReady.Store(c.readySent)
	// Stored last: the server side reads the answers as the prelude's once
	// it sees this, with everything above in place.
	c.preludeSent.Store(true)
	c.holding.Store(true)
	if _, err := c.sw.Write(c.confirm.preludeMessages(prelude)); err != nil {
		return err
	}
	_, err := c.sw.Write(c.confirm.next())
	return err
}

// preludeDue is called by the server side before each server message: once
// the client's segments sent before a Switch are answered, what follows
// is the prelude's answer and the state query's.
func (c *conn) preludeDue() {
	if !c.confirming && c.preludeSent.Load() && c.readySeen == c.holdReady.Load() {
		c.preludeSent.Store(false)
		c.confirming = true
	}
}

// sendConfirm sends the state query after the ReadyForQuery that ended a
// barrier's segment. On a loop the session's writer is free; with pumps the
// client pump, which owns it, is parked until the answer, and its last
// flush went out before this ReadyForQuery could come, so the query is
// written to the socket directly.
func (c *conn) sendConfirm() error {
	c.confirming = true
	if c.looped.Load() != nil {
		_, err := c.sw.Write(c.confirm.next())
		return err
	}
	_, err := c.server.Write(c.confirm.next())
	return err
}

// confirmMessage takes one server message while the state query is being
// answered; the answer's own messages never reach the client.
func (c *conn) confirmMessage(typ byte, body []byte) error {
	ours, done, again := c.confirm.message(typ, body)
	if again {
		return c.sendConfirm()
	}
	switch typ {
	case 'S':
		c.trackParameter(body)
	case 'Z':
		if len(body) == 1 {
			c.session.txStatus.Store(uint32(body[0]))
		}
	}
	if !ours {
		if err := writeFrame(c.cw, typ, body); err != nil {
			return err
		}
	}
	if done {
		c.confirming = false
		c.holding.Store(false)
		if c.looped.Load() != nil {
			c.resumeClient = true
		} else {
			c.resume <- struct{}{}
		}
	}
	return nil
}
