package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	"github.com/jackc/pgx/v5/pgproto3"
)

// forwardCancel passes a client's CancelRequest to the upstream unchanged,
// on a connection of its own as the protocol asks. The key is the server's
// own (BackendKeyData passes through), so pgguard need not know the
// session: a request for a key no backend holds is ignored by the server,
// as it would be directly.
func (s *Server) forwardCancel(ctx context.Context, req *pgproto3.CancelRequest) {
	if len(req.SecretKey) != 4 {
		return
	}
	_ = s.cancelBackend(ctx, &pgproto3.BackendKeyData{ProcessID: req.ProcessID, SecretKey: req.SecretKey})
}

// cancelBackend asks the upstream to cancel what the backend with key runs,
// on a connection of its own, and waits until the upstream has taken the
// request, within DialTimeout. A spare connection serves where it may
// (cancel_spare.go): for an open session of this server, opened after the
// session's backend. A spare the server had closed before the request
// arrived answers it with a reset, having read nothing; the request then
// goes again on a fresh connection.
func (s *Server) cancelBackend(ctx context.Context, key *pgproto3.BackendKeyData) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	msg := encode(&pgproto3.CancelRequest{ProcessID: key.ProcessID, SecretKey: key.SecretKey})
	if keyAt, ok := s.sessionKeyAt(key); ok {
		defer s.spare.replenish()
		if nc := s.spare.take(keyAt); nc != nil {
			err := sendCancel(ctx, nc, msg)
			if !resetBeforeRead(err) {
				s.spare.used.Add(1)
				return writeErr(err)
			}
		}
	}
	nc, err := s.dialCancel(ctx)
	if err != nil {
		return err
	}
	return writeErr(sendCancel(ctx, nc, msg))
}

// sessionKeyAt finds the open session of this server whose backend key is
// key and returns when the key arrived (monoNow).
func (s *Server) sessionKeyAt(key *pgproto3.BackendKeyData) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		at := c.keyAt.Load()
		if at != 0 && c.upstreamKey.ProcessID == key.ProcessID && slices.Equal(c.upstreamKey.SecretKey, key.SecretKey) {
			return at, true
		}
	}
	return 0, false
}

// errCancelWrite marks a cancel request that could not be written.
var errCancelWrite = errors.New("send cancel request")

// sendCancel writes a cancel request on nc, waits for the server to close
// the connection, and closes it. It returns the write's error, marked
// errCancelWrite, or else the read's, nil at the end of the stream.
func sendCancel(ctx context.Context, nc net.Conn, msg []byte) error {
	defer nc.Close()
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	if _, err := nc.Write(msg); err != nil {
		return fmt.Errorf("%w: %w", errCancelWrite, err)
	}
	// PostgreSQL closes the connection once it has processed the request;
	// waiting for that keeps the cancel ordered before our own close.
	var one [1]byte
	if _, err := nc.Read(one[:]); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// writeErr is sendCancel's error if the request could not be written: once
// it is out, how the server closes is its own affair.
func writeErr(err error) error {
	if errors.Is(err, errCancelWrite) {
		return err
	}
	return nil
}

// dialCancel opens the connection a cancel request goes out on. Where
// sslmode lets a session fall back to plain text (prefer, allow), the
// request goes in plain text, as libpq sends its own: a TLS handshake would
// cost the request more round trips and CPU than the rest of its way, and
// PostgreSQL applies no pg_hba.conf rule to it. Modes that demand TLS
// (require, verify-ca, verify-full) get it.
func (s *Server) dialCancel(ctx context.Context) (net.Conn, error) {
	if slices.Contains(s.upstream.attempts, nil) {
		return s.dialOnce(ctx, nil)
	}
	return s.dialUpstream(ctx)
}

// dialUpstream opens a TCP connection with TLS negotiated per sslmode. It
// sends nothing beyond the SSLRequest.
func (s *Server) dialUpstream(ctx context.Context) (net.Conn, error) {
	var lastErr error
	for _, tlsCfg := range s.upstream.attempts {
		nc, err := s.dialOnce(ctx, tlsCfg)
		if err == nil {
			return nc, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
