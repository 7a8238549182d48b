package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Request codes of the startup packets that are not a StartupMessage.
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
	// maxStartupPacket is PostgreSQL's own limit (MAX_STARTUP_PACKET_LENGTH).
	maxStartupPacket = 10000
)

// errStartup wraps errors that end a session before it started.
var errStartup = errors.New("startup")

// readStartupPacket reads exactly one length-prefixed startup packet, without
// read-ahead: bytes a client sends after an SSLRequest must reach the TLS
// handshake, never be taken for part of the session (CVE-2021-23222).
func (c *conn) readStartupPacket() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.client, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > maxStartupPacket {
		return nil, fmt.Errorf("%w: invalid startup packet length %d", errStartup, n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(c.client, body); err != nil {
		return nil, err
	}
	return body, nil
}

// readStartup negotiates encryption and returns the client's StartupMessage,
// or nil when the connection only carried a cancel request.
func (c *conn) readStartup(ctx context.Context) (*pgproto3.StartupMessage, error) {
	tlsDone := false
	for {
		body, err := c.readStartupPacket()
		if err != nil {
			return nil, err
		}
		switch code := binary.BigEndian.Uint32(body); code {
		case sslRequestCode:
			if tlsDone {
				return nil, c.refuse("08P01", "SSLRequest received twice")
			}
			if err := c.negotiateTLS(); err != nil {
				return nil, err
			}
			tlsDone = c.srv.cfg.TLS != nil
		case gssEncRequestCode:
			if _, err := c.client.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case cancelRequestCode:
			req := &pgproto3.CancelRequest{}
			if err := req.Decode(body); err != nil {
				return nil, fmt.Errorf("%w: %v", errStartup, err)
			}
			c.srv.forwardCancel(ctx, req)
			// The client waits for the close (libpq's PQcancel does), so
			// it comes before anything else.
			_ = c.rawClient.Close()
			c.session.Logger.Debug().Msg("cancel request relayed")
			return nil, nil
		default:
			return c.startupMessage(code, body)
		}
	}
}

// negotiateTLS answers an SSLRequest: 'S' and a TLS handshake when pgguard has
// a certificate, 'N' otherwise.
func (c *conn) negotiateTLS() error {
	if c.srv.cfg.TLS == nil {
		_, err := c.client.Write([]byte{'N'})
		return err
	}
	if _, err := c.client.Write([]byte{'S'}); err != nil {
		return err
	}
	tc := tls.Server(c.client, c.srv.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("%w: client TLS handshake: %v", errStartup, err)
	}
	c.client = tc
	return nil
}

// startupMessage checks the protocol version and parameters of a
// StartupMessage, negotiating the minor version down to 3.0.
func (c *conn) startupMessage(version uint32, body []byte) (*pgproto3.StartupMessage, error) {
	major, minor := version>>16, version&0xffff
	if major != 3 {
		return nil, c.refuse("0A000", fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0", major, minor))
	}
	// Decode as 3.0: the parameter layout is the same for every 3.x.
	binary.BigEndian.PutUint32(body, pgproto3.ProtocolVersion30)
	msg := &pgproto3.StartupMessage{}
	if err := msg.Decode(body); err != nil {
		return nil, c.refuse("08P01", "invalid startup packet layout")
	}
	var unrecognized []string
	for name := range msg.Parameters {
		if strings.HasPrefix(name, "_pq_.") {
			unrecognized = append(unrecognized, name)
			delete(msg.Parameters, name)
		}
	}
	if minor > 0 || len(unrecognized) > 0 {
		npv := &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unrecognized}
		if _, err := c.client.Write(encode(npv)); err != nil {
			return nil, err
		}
	}
	return msg, c.checkParameters(msg)
}

// checkParameters applies PostgreSQL's defaults and refuses what pgguard
// cannot guard: replication connections stream table contents unfiltered.
func (c *conn) checkParameters(msg *pgproto3.StartupMessage) error {
	user := msg.Parameters["user"]
	if user == "" {
		return c.refuse("28000", "no PostgreSQL user name specified in startup packet")
	}
	if msg.Parameters["database"] == "" {
		msg.Parameters["database"] = user
	}
	switch strings.ToLower(msg.Parameters["replication"]) {
	case "", "false", "off", "no", "0":
	default:
		return c.refuse("42501", "pgguard: replication connections are not allowed through pgguard")
	}
	c.session.Logger = c.srv.cfg.Logger.Hook(&sessionFields{id: c.id, addr: c.rawClient.RemoteAddr(), user: user, database: msg.Parameters["database"]})
	c.session.Logger.Info().Msg("connection opened")
	return nil
}

// refuse sends a FATAL error and returns it as the reason the session ended.
func (c *conn) refuse(code, msg string) error {
	c.sendFatal(code, msg)
	return fmt.Errorf("%w: %s", errStartup, msg)
}
