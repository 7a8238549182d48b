package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// Config configures a Server. The zero value of every optional field picks
// the default documented on it.
type Config struct {
	// Upstream is the PostgreSQL server, as a URL:
	// postgres://HOST:PORT/?sslmode=disable|prefer|require|verify-full&sslrootcert=FILE.
	// A user and password in it are ignored: clients authenticate as
	// themselves.
	Upstream string
	// TLS, when set, is offered to clients that send SSLRequest.
	TLS *tls.Config
	// Interceptor decides on client messages; nil forwards everything.
	Interceptor Interceptor
	// Logger receives connection events. The zero Logger discards them.
	Logger zerolog.Logger
	// MaxMessageSize bounds a client message, in bytes (default 64 MiB).
	MaxMessageSize int
	// StartupTimeout bounds everything before the session is established:
	// startup packets, TLS handshake and authentication (default 30s).
	StartupTimeout time.Duration
	// DialTimeout bounds connecting to the upstream (default 10s).
	DialTimeout time.Duration
	// EventLoops is how many event loops relay established sessions whose
	// both legs are plain TCP or Unix sockets, on Linux (default: half of
	// GOMAXPROCS, at least one; the other threads are left to PostgreSQL
	// clients on the same machine and to pgguard's analysis). -1 relays every
	// session on two goroutines of its own instead, as TLS sessions always
	// are.
	EventLoops int
	// CancelSpareAge is how long pgguard keeps the upstream connection it
	// opens ahead of the next cancel request before it replaces it
	// (default DefaultCancelSpareAge, 20s). PostgreSQL closes such a
	// connection after its authentication_timeout (default 1 min); pgguard
	// checks a spare before use and keeps later ones younger when the
	// server closed one first. Negative: no spare, every cancel request
	// opens its own connection.
	CancelSpareAge time.Duration
}

// Defaults.
const (
	DefaultMaxMessageSize = 64 << 20
	DefaultStartupTimeout = 30 * time.Second
	DefaultDialTimeout    = 10 * time.Second
)

// upstream is the parsed form of Config.Upstream.
type upstream struct {
	addr string
	// attempts are the TLS settings to try in order: prefer tries TLS, then
	// plain; nil means plain.
	attempts []*tls.Config
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.MaxMessageSize == 0 {
		out.MaxMessageSize = DefaultMaxMessageSize
	}
	if out.StartupTimeout == 0 {
		out.StartupTimeout = DefaultStartupTimeout
	}
	if out.DialTimeout == 0 {
		out.DialTimeout = DefaultDialTimeout
	}
	if out.CancelSpareAge == 0 {
		out.CancelSpareAge = DefaultCancelSpareAge
	}
	if out.EventLoops == 0 {
		out.EventLoops = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if out.Interceptor == nil {
		out.Interceptor = AllowAll{}
	}
	return out
}

// Validate checks the configuration and says precisely what is wrong.
func (c *Config) Validate() error {
	if _, err := parseUpstream(c.Upstream); err != nil {
		return err
	}
	switch {
	case c.MaxMessageSize < 0:
		return fmt.Errorf("max message size %d: must not be negative", c.MaxMessageSize)
	case c.MaxMessageSize > 0 && c.MaxMessageSize < 1024:
		return fmt.Errorf("max message size %d: must be at least 1024 bytes", c.MaxMessageSize)
	case c.EventLoops < -1:
		return fmt.Errorf("event loops %d: must be -1 (none), 0 (default) or a positive number", c.EventLoops)
	case c.StartupTimeout < 0, c.DialTimeout < 0:
		return errors.New("timeouts must not be negative")
	case c.CancelSpareAge > 0 && c.CancelSpareAge < MinCancelSpareAge:
		return fmt.Errorf("cancel spare age %s: must be at least %s, or negative for none", c.CancelSpareAge, MinCancelSpareAge)
	case c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil:
		return errors.New("client TLS configured without a certificate")
	}
	return nil
}

// parseUpstream reads the upstream URL with pgconn's libpq-compatible parser,
// which also turns sslmode and sslrootcert into TLS settings.
func parseUpstream(raw string) (upstream, error) {
	if raw == "" {
		return upstream{}, errors.New("upstream: no URL given")
	}
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return upstream{}, fmt.Errorf("upstream: %w", err)
	}
	if cfg.Host == "" || cfg.Host[0] == '/' {
		return upstream{}, fmt.Errorf("upstream %q: a TCP host is required", redactURL(raw))
	}
	u := upstream{addr: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	u.attempts = append(u.attempts, cfg.TLSConfig)
	for _, fb := range cfg.Fallbacks {
		if fb.Host == cfg.Host && fb.Port == cfg.Port {
			u.attempts = append(u.attempts, fb.TLSConfig)
		}
	}
	return u, nil
}

// redactURL drops credentials from a URL for error messages.
func redactURL(raw string) string {
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}
