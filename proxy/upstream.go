package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// errUpstreamNoTLS says the server declined TLS that sslmode requires.
var errUpstreamNoTLS = errors.New("server does not support TLS")

// dialOnce connects to the upstream, with TLS when tlsCfg is set.
func (s *Server) dialOnce(ctx context.Context, tlsCfg *tls.Config) (net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", s.upstream.addr)
	if err != nil {
		return nil, fmt.Errorf("dial upstream %s: %w", s.upstream.addr, err)
	}
	if tlsCfg == nil {
		return nc, nil
	}
	tc, err := startUpstreamTLS(ctx, nc, tlsCfg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("upstream %s TLS: %w", s.upstream.addr, err)
	}
	return tc, nil
}

func startUpstreamTLS(ctx context.Context, nc net.Conn, tlsCfg *tls.Config) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline)
		defer nc.SetDeadline(time.Time{})
	}
	if _, err := nc.Write(encode(&pgproto3.SSLRequest{})); err != nil {
		return nil, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(nc, answer[:]); err != nil {
		return nil, err
	}
	if answer[0] != 'S' {
		return nil, errUpstreamNoTLS
	}
	tc := tls.Client(nc, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}
