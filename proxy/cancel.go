package proxy

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

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
// request, within DialTimeout.
func (s *Server) cancelBackend(ctx context.Context, key *pgproto3.BackendKeyData) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	nc, err := s.dialCancel(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(s.cfg.DialTimeout))
	msg := encode(&pgproto3.CancelRequest{ProcessID: key.ProcessID, SecretKey: key.SecretKey})
	if _, err := nc.Write(msg); err != nil {
		return fmt.Errorf("send cancel request: %w", err)
	}
	// PostgreSQL closes the connection once it has processed the request;
	// waiting for that keeps the cancel ordered before our own close.
	var one [1]byte
	_, _ = nc.Read(one[:])
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
