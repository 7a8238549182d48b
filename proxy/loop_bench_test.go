//go:build linux

package proxy

import (
	"io"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"
)

// BenchmarkLoopExchange relays one simple-protocol exchange through a loop
// session's code: a Query from the client (decided on the loop) and the
// server's four-message answer, each flushed with one write to a socket
// whose other end a goroutine drains. Sockets stand in for the client and
// PostgreSQL: what is measured is pgguard's work per exchange, system calls
// included, without the peers'.
func BenchmarkLoopExchange(b *testing.B) {
	l, err := newEventLoop()
	if err != nil {
		b.Fatal(err)
	}
	defer l.shut()
	s := testLoopSession(l, drainedSocket(b), drainedSocket(b))

	query := encode(&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = $1"})
	var answer []byte
	for _, m := range []interface{ Encode([]byte) ([]byte, error) }{
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("0")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	} {
		answer = append(answer, encode(m)...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(query) + len(answer)))
	b.ResetTimer()
	for range b.N {
		s.guard(func() { s.clientBytes(query) })
		settle(b, &s.server)
		s.guard(func() { s.serverBytes(answer) })
		settle(b, &s.client)
		if s.ended {
			b.Fatal("session ended")
		}
	}
}

// settle waits until side's socket took all output, as the loop would
// before reading more for it.
func settle(tb testing.TB, side *loopSide) {
	tb.Helper()
	for len(side.out.pending) > 0 {
		fds := []unix.PollFd{{Fd: int32(side.fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			tb.Fatal(err)
		}
		side.out.drain()
		if side.out.err != nil {
			tb.Fatal(side.out.err)
		}
	}
}

// testLoopSession is a loop session over the given sockets (-1: none) for
// an interceptor that allows everything, without a startup before it.
func testLoopSession(l *eventLoop, cfd, sfd int) *loopSession {
	c := &conn{srv: &Server{cfg: Config{MaxMessageSize: DefaultMaxMessageSize}}, session: &Session{}, si: allowSession{}}
	c.swaps.prefix = "pgguard_denied_test_"
	c.cr, c.sr = &frameReader{}, &frameReader{}
	return c.newLoopSession(l, cfd, sfd)
}

// drainedSocket returns one end of a socket pair whose other end a goroutine
// reads and discards until the benchmark ends.
func drainedSocket(b *testing.B) int {
	fd, peer := loopSocket(b)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	b.Cleanup(func() {
		unix.Close(fd)
		peer.Close()
	})
	return fd
}

// loopSocket returns a socket pair: a non-blocking end for a loop session,
// and its peer as a blocking file.
func loopSocket(tb testing.TB) (int, *os.File) {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		tb.Fatal(err)
	}
	return fds[0], os.NewFile(uintptr(fds[1]), "peer")
}
