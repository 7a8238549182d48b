package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Authentication request codes (the first int32 of an 'R' message).
const (
	authOK          = 0
	authSASL        = 10
	authSASLFinal   = 12
	scramPlusSuffix = "-PLUS"
)

// UpstreamError reports that the upstream could not be reached or went away.
type UpstreamError struct {
	Addr string
	Err  error
}

func (e *UpstreamError) Error() string { return fmt.Sprintf("upstream %s: %v", e.Addr, e.Err) }
func (e *UpstreamError) Unwrap() error { return e.Err }

// connectUpstream dials the server and sends it the client's StartupMessage
// at protocol 3.0.
func (c *conn) connectUpstream(ctx context.Context, startup *pgproto3.StartupMessage) error {
	// The session lives in the connection (newConn), its logger set already.
	c.session.ID = c.id
	c.session.User = startup.Parameters["user"]
	c.session.Database = startup.Parameters["database"]
	c.session.ClientAddr = c.rawClient.RemoteAddr()
	c.session.startup = make([]string, 0, 2*len(startup.Parameters))
	for name, value := range startup.Parameters {
		c.session.startup = append(c.session.startup, name, value)
	}
	nc, err := c.srv.dialUpstream(ctx)
	if err != nil {
		c.sendFatal("08006", fmt.Sprintf("pgguard: could not connect to upstream %s: %v", c.srv.upstream.addr, err))
		return &UpstreamError{Addr: c.srv.upstream.addr, Err: err}
	}
	c.sockMu.Lock()
	c.server = nc
	c.sockMu.Unlock()
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline) // authentication; cleared once established
	}
	if c.stopping.Load() {
		return errors.New("server stopping")
	}
	startup.ProtocolVersion = pgproto3.ProtocolVersion30
	if _, err := nc.Write(encode(startup)); err != nil {
		return c.upstreamLost(err)
	}
	c.cr = newFrameReader(c.client, c.srv.cfg.MaxMessageSize)
	c.cw = &bufWriter{dst: c.client}
	c.sr = newFrameReader(nc, maxServerMessage)
	c.sw = &bufWriter{dst: nc}
	return nil
}

// maxServerMessage bounds the server messages pgguard reads whole, which are
// all small; row data and COPY data stream through without this limit.
const maxServerMessage = 1 << 30

func (c *conn) upstreamLost(err error) error {
	c.sendFatal("08006", fmt.Sprintf("pgguard: lost connection to upstream %s", c.srv.upstream.addr))
	return &UpstreamError{Addr: c.srv.upstream.addr, Err: err}
}

// authenticate relays the authentication exchange until the server reports
// ReadyForQuery. PostgreSQL checks the credentials; pgguard only watches.
func (c *conn) authenticate() error {
	for {
		typ, body, err := c.sr.next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.sendFatal("08006", fmt.Sprintf("pgguard: upstream %s did not complete authentication within %s",
					c.srv.upstream.addr, c.srv.cfg.StartupTimeout))
				return &UpstreamError{Addr: c.srv.upstream.addr, Err: err}
			}
			return c.upstreamLost(err)
		}
		done, err := c.authMessage(typ, body)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// authMessage handles one server message of the startup phase and reports
// whether the session is ready.
func (c *conn) authMessage(typ byte, body []byte) (bool, error) {
	switch typ {
	case 'R':
		return false, c.authRequest(body)
	case 'K':
		return false, c.passKey(body)
	case 'S':
		c.trackParameter(body)
	case 'Z':
		// Held back until the interceptor has opened the session: a client
		// that sees ReadyForQuery may rely on being guarded.
		if len(body) != 1 {
			return false, c.refuseRelay("08P01", "invalid ReadyForQuery from upstream")
		}
		c.session.txStatus.Store(uint32(body[0]))
		return true, nil
	case 'E':
		// Wrong password, unknown database, too many connections: the
		// client sees PostgreSQL's own error.
		_ = writeFrame(c.cw, typ, body)
		_ = c.cw.Flush()
		return false, errors.New("upstream refused the session")
	}
	return false, writeFrame(c.cw, typ, body)
}

// authRequest forwards an authentication request and, when it expects an
// answer, relays the client's answer.
func (c *conn) authRequest(body []byte) error {
	if len(body) < 4 {
		return c.refuseRelay("08P01", "invalid authentication request from upstream")
	}
	kind := binary.BigEndian.Uint32(body)
	if kind == authSASL {
		var err error
		if body, err = withoutChannelBinding(body); err != nil {
			return c.refuseRelay("28000", "pgguard: "+err.Error())
		}
	}
	if err := writeFrame(c.cw, 'R', body); err != nil {
		return err
	}
	if kind == authOK || kind == authSASLFinal {
		return nil
	}
	if err := c.cw.Flush(); err != nil {
		return err
	}
	return c.relayAuthAnswer()
}

// relayAuthAnswer moves one password, SASL or GSS message from the client to
// the server.
func (c *conn) relayAuthAnswer() error {
	typ, answer, err := c.cr.next()
	if err != nil {
		return err
	}
	if typ != 'p' {
		return c.refuseRelay("08P01", fmt.Sprintf("expected authentication response, got message type %q", typ))
	}
	if err := writeFrame(c.sw, typ, answer); err != nil {
		return c.upstreamLost(err)
	}
	if err := c.sw.Flush(); err != nil {
		return c.upstreamLost(err)
	}
	return nil
}

// withoutChannelBinding drops SCRAM-SHA-256-PLUS from the offered mechanisms:
// the client's TLS session ends at pgguard, so channel binding could never
// verify against the server's.
func withoutChannelBinding(body []byte) ([]byte, error) {
	sasl := &pgproto3.AuthenticationSASL{}
	if err := sasl.Decode(body); err != nil {
		return nil, fmt.Errorf("invalid SASL request from upstream: %w", err)
	}
	kept := sasl.AuthMechanisms[:0]
	for _, m := range sasl.AuthMechanisms {
		if len(m) < len(scramPlusSuffix) || m[len(m)-len(scramPlusSuffix):] != scramPlusSuffix {
			kept = append(kept, m)
		}
	}
	if len(kept) == 0 {
		return nil, errors.New("upstream offers only channel-bound SASL mechanisms, which cannot pass a proxy")
	}
	sasl.AuthMechanisms = kept
	return encode(sasl)[5:], nil
}

// passKey records the server's cancel key and passes it to the client as
// the server sent it: a CancelRequest then reaches the right backend
// through any pgguard process, which forwards it unchanged.
func (c *conn) passKey(body []byte) error {
	key := &pgproto3.BackendKeyData{}
	if err := key.Decode(body); err != nil {
		return c.refuseRelay("08P01", "invalid BackendKeyData from upstream")
	}
	c.upstreamKey = key
	c.keyAt.Store(monoNow())
	return writeFrame(c.cw, 'K', body)
}

// trackParameter records a ParameterStatus for the interceptor.
func (c *conn) trackParameter(body []byte) {
	// The body is the pair as Session keeps it: name, NUL, value, NUL.
	n := bytes.IndexByte(body, 0)
	if n < 0 || len(body) < n+2 || body[len(body)-1] != 0 || bytes.IndexByte(body[n+1:len(body)-1], 0) >= 0 {
		return // not a well-formed ParameterStatus; ignored, as before
	}
	c.session.setParameter(string(body[:len(body)-1]), n)
}

// refuseRelay sends a FATAL error after what the client has been sent and
// ends the session.
func (c *conn) refuseRelay(code, msg string) error {
	c.sendFatal(code, msg)
	return errors.New(msg)
}
