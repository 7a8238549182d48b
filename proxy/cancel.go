package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelKey is the BackendKeyData pgguard gave a client.
type cancelKey struct {
	pid    uint32
	secret uint32
}

// cancelMap maps the keys pgguard hands out to the sessions holding the
// upstream's real keys.
type cancelMap struct {
	mu sync.Mutex
	m  map[cancelKey]*conn
}

// issue draws a fresh random key for c; keys are unguessable so that one
// client cannot cancel another's queries.
func (cm *cancelMap) issue(c *conn) cancelKey {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		k := cancelKey{pid: binary.BigEndian.Uint32(b[:4]) &^ (1 << 31), secret: binary.BigEndian.Uint32(b[4:])}
		if _, taken := cm.m[k]; !taken && k.pid != 0 {
			cm.m[k] = c
			return k
		}
	}
}

func (cm *cancelMap) lookup(k cancelKey) *conn {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	return cm.m[k]
}

func (cm *cancelMap) release(k cancelKey) {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	delete(cm.m, k)
}

// forwardCancel sends the upstream's real key for the session that owns k to
// the upstream, on a connection of its own as the protocol asks. Unknown
// keys are ignored silently, like PostgreSQL does.
func (s *Server) forwardCancel(ctx context.Context, req *pgproto3.CancelRequest) {
	if len(req.SecretKey) != 4 {
		return
	}
	target := s.cancels.lookup(cancelKey{pid: req.ProcessID, secret: binary.BigEndian.Uint32(req.SecretKey)})
	if target == nil || target.upstreamKey == nil {
		return
	}
	_ = s.cancelBackend(ctx, target.upstreamKey)
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
