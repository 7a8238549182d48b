package pgtest

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// Start launches a cluster for one test and stops it when the test ends. A
// missing PostgreSQL fails the test: tests never skip for want of a database.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Launch(opts)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

var shared struct {
	sync.Mutex
	server *Server
	err    error
}

// Shared returns the test binary's shared cluster, starting it on first use.
// Tests that use it must not change server-wide settings. RunMain stops it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.server == nil && shared.err == nil {
		shared.server, shared.err = Launch(Options{})
	}
	if shared.err != nil {
		tb.Fatalf("pgtest: %v", shared.err)
	}
	return shared.server
}

// RunMain runs the tests and then stops the shared cluster, if one was started.
// Use it from TestMain: os.Exit(pgtest.RunMain(m)).
func RunMain(m *testing.M) int {
	code := m.Run()
	shared.Lock()
	if shared.server != nil {
		shared.server.Close()
		shared.server = nil
	}
	shared.Unlock()
	return code
}

// MustExec runs sql as the superuser in db, failing the test on error.
func (s *Server) MustExec(tb testing.TB, db, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Exec(ctx, db, sql); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// MustCreateRole creates a login role, failing the test on error.
func (s *Server) MustCreateRole(tb testing.TB, name, password string, method AuthMethod) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateRole(ctx, name, password, method); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// FreeAddr returns a loopback address with a port no one listens on now,
// for a server a test is about to start.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SyncBuffer collects output written from several goroutines, such as a
// process's stdout and stderr or a protocol trace.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
