package proxy_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/pgtest"
	"github.com/pgguard/pgguard/proxy"
)

// waitForCancel is a statement that tells the client it is running (a
// notice, which PostgreSQL flushes at once) and then sleeps until a cancel
// ends it.
const waitForCancel = `DO $$BEGIN RAISE NOTICE 'running'; PERFORM pg_sleep(60); END$$`

// BenchmarkCancel measures what a client waits for when it cancels a
// running statement: from dialling the cancel connection until the
// statement's 57014 error arrives on the session. It compares PostgreSQL
// reached directly with the same server through pgguard, idle and under a
// load of clients running short statements while others sit in startup
// (connected, silent) or in authentication (holding a backend). It reports
// the 50th and 99th percentile in milliseconds besides the mean.
//
// PGGUARD_BENCH_TLS_CHURN=1 adds clients that connect with TLS and leave,
// in a crowd; they run in this process and share its CPUs with pgguard, so
// they load the machine as much as pgguard.
//
//	go test ./proxy/ -run '^$' -bench BenchmarkCancel -benchtime 200x
func BenchmarkCancel(b *testing.B) {
	pg := pgtest.Start(b, pgtest.Options{TLS: true})
	pg.MustCreateRole(b, appUser, appPassword, pgtest.SCRAM)
	serverTLS, _ := proxyTLS(b)
	plain := startProxy(b, proxy.Config{Upstream: plainUpstream(pg), TLS: serverTLS})
	prefer := startProxy(b, proxy.Config{Upstream: "postgres://" + pg.Addr() + "/?sslmode=prefer", TLS: serverTLS})
	require := startProxy(b, proxy.Config{Upstream: "postgres://" + pg.Addr() + "/?sslmode=require", TLS: serverTLS})
	targets := []struct{ name, addr string }{
		{"direct", pg.Addr()}, {"pgguard", plain.Addr}, {"pgguard-prefer", prefer.Addr}, {"pgguard-require", require.Addr},
	}
	for _, load := range []bool{false, true} {
		for _, via := range targets {
			name := via.name
			if load {
				name += "-load"
			}
			b.Run(name, func(b *testing.B) {
				if load {
					stop := startCancelLoad(b, via.addr)
					defer stop()
				}
				benchCancel(b, via.addr)
			})
		}
	}
}

// benchCancel cancels b.N statements of one session on addr, one at a time.
func benchCancel(b *testing.B, addr string) {
	rc := rawStartup(b, addr, pgtest.Superuser)
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		_ = rc.SetDeadline(time.Now().Add(ioTimeout))
		rc.send(b, &pgproto3.Query{String: waitForCancel})
		if m, ok := rc.recv(b).(*pgproto3.NoticeResponse); !ok || m.Message != "running" {
			b.Fatalf("want the statement's notice, got %T", m)
		}
		start := time.Now()
		sendCancel(b, addr, rc.pid, rc.key)
		if e := rc.recvError(b); e.Code != "57014" {
			b.Fatalf("statement ended with %s, want 57014", e.Code)
		}
		took = append(took, time.Since(start))
		if m, ok := rc.recv(b).(*pgproto3.ReadyForQuery); !ok {
			b.Fatalf("want ReadyForQuery, got %s", describe(m))
		}
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
}

// sendCancel does what libpq's PQcancel does: connect, send the request and
// wait for the server to close the connection.
func sendCancel(b testing.TB, addr string, pid, key uint32) {
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := nc.Write(cancelPacket(pid, key)); err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, nc)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Load beside the measured cancels: clients that run short statements in a
// loop, connections that stay in startup, and connections that wait in
// authentication, each of which holds a backend.
const (
	loadClients       = 8
	loadSilent        = 100
	loadAuthenticated = 20
	loadHandshakes    = 16
)

// startCancelLoad puts the load on addr and returns the function that ends
// it.
func startCancelLoad(b *testing.B, addr string) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var conns []net.Conn
	for range loadSilent {
		conns = append(conns, rawDial(b, addr).Conn)
	}
	for range loadAuthenticated {
		rc := rawDial(b, addr)
		// appUser authenticates with SCRAM: the server's challenge is
		// never answered.
		rc.send(b, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": appUser, "database": "postgres"}})
		if _, ok := rc.recv(b).(*pgproto3.AuthenticationSASL); !ok {
			b.Fatal("want a SCRAM challenge")
		}
		conns = append(conns, rc.Conn)
	}
	if os.Getenv("PGGUARD_BENCH_TLS_CHURN") != "" {
		for range loadHandshakes {
			wg.Go(func() { churnTLS(ctx, addr) })
		}
	}
	for i := range loadClients {
		rc := rawStartup(b, addr, pgtest.Superuser)
		conns = append(conns, rc.Conn)
		wg.Go(func() {
			q := fmt.Sprintf("SELECT %d, pg_sleep(0.001)", i)
			for ctx.Err() == nil {
				_ = rc.SetDeadline(time.Now().Add(ioTimeout))
				rc.fe.Send(&pgproto3.Query{String: q})
				if rc.fe.Flush() != nil {
					return
				}
				for {
					m, err := rc.fe.Receive()
					if err != nil {
						return
					}
					if _, ok := m.(*pgproto3.ReadyForQuery); ok {
						break
					}
				}
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}
}

// churnTLS opens connections that negotiate TLS and close, as a crowd of
// clients connecting at once does, until ctx ends.
func churnTLS(ctx context.Context, addr string) {
	for ctx.Err() == nil {
		nc, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			continue
		}
		_ = nc.SetDeadline(time.Now().Add(ioTimeout))
		var answer [1]byte
		if _, err := nc.Write(requestPacket(sslRequestCode)); err == nil {
			if _, err := io.ReadFull(nc, answer[:]); err == nil && answer[0] == 'S' {
				_ = tls.Client(nc, &tls.Config{InsecureSkipVerify: true}).HandshakeContext(ctx)
			}
		}
		nc.Close()
	}
}
