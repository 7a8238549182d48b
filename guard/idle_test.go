package guard_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/alert"
)

// idleHeapProfile, when set, is where TestIdleSessionFootprint writes a heap
// profile (every allocation sampled) while its sessions are idle.
var idleHeapProfile = flag.String("idle-heap-profile", "", "write a heap profile of the idle sessions to this file")

// idleClientsEnv tells a child process of this test binary to be the clients
// of TestIdleSessionFootprint: "address count". Their memory then stays out
// of the heap the test measures.
const idleClientsEnv = "GUARD_TEST_IDLE_CLIENTS"

// idleSessionBudget is how many bytes of live heap objects an idle session
// may hold: the proxy's and the guard's state for it, its two sockets, and
// its share of anything kept per session (this test's log of it, about 150
// bytes, included). It holds about 3.7 KiB; a regression by a buffer, a
// child logger's context or a map per session passes the bound.
const idleSessionBudget = 4096

// TestIdleSessionFootprint opens sessions through pgguard to a real
// PostgreSQL from another process, runs one statement on each, and leaves
// them idle. The live heap grows by at most idleSessionBudget per session,
// and on Linux no session holds a goroutine: the event loops hold them.
// Live bytes, not the heap's spans in use, are bounded: how many of the
// spans' free slots the handshakes' garbage leaves behind varies from run
// to run, and is logged.
func TestIdleSessionFootprint(t *testing.T) {
	if *idleHeapProfile != "" {
		rate := runtime.MemProfileRate
		runtime.MemProfileRate = 1 // every allocation, for the profile
		defer func() { runtime.MemProfileRate = rate }()
	}
	w := newWorld(t, alert.ModeEnforce)
	// First use of the shape, the catalog and the pools happens here, not
	// in the sessions measured.
	warm := w.connect(t, "sales_app", "-c pgguard.purpose=order_fulfilment")
	if _, err := warm.Exec(context.Background(), "SELECT id FROM crm.orders WHERE id = 0"); err != nil {
		t.Fatal(err)
	}
	const sessions = 200
	settle()
	goroutines := runtime.NumGoroutine()
	before := heapNow()
	writeHeapProfile(t, ".base")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleClientsEnv+"="+w.addr+" "+strconv.Itoa(sessions))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the clients close their sessions and exit
		if err := cmd.Wait(); err != nil {
			t.Errorf("clients: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("clients did not open their sessions: %q %v", line, err)
	}
	settle()
	after := heapNow()
	perSession := int64(after.HeapAlloc-before.HeapAlloc) / sessions
	spans := (int64(after.HeapInuse) - int64(before.HeapInuse)) / sessions
	extra := runtime.NumGoroutine() - goroutines
	writeHeapProfile(t, "")
	t.Logf("%d idle sessions: %d bytes of live heap each (%d of the heap's spans in use), %d goroutines more in all",
		sessions, perSession, spans, extra)
	if perSession > idleSessionBudget {
		t.Errorf("an idle session holds %d bytes of live heap, more than the %d budgeted", perSession, idleSessionBudget)
	}
	if runtime.GOOS == "linux" && extra > sessions/20 {
		t.Errorf("%d idle sessions hold %d goroutines more; the event loops should hold them", sessions, extra)
	}
}

// writeHeapProfile writes the heap profile -idle-heap-profile asks for, with
// suffix added to its name.
func writeHeapProfile(t *testing.T, suffix string) {
	if *idleHeapProfile == "" {
		return
	}
	f, err := os.Create(*idleHeapProfile + suffix)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

// heapNow reads the heap's statistics after full collections.
func heapNow() runtime.MemStats {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m
}

// settle gives the sessions time to reach the event loops and the
// goroutines that ended time to go.
func settle() { time.Sleep(500 * time.Millisecond) }

// idleClients is the child process of TestIdleSessionFootprint: it opens
// the sessions, runs a statement on each, says "ready", and holds them until
// its standard input closes.
func idleClients(spec string) int {
	var addr string
	var n int
	if _, err := fmt.Sscan(spec, &addr, &n); err != nil {
		fmt.Fprintln(os.Stderr, "idle clients:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := "postgres://sales_app:" + password + "@" + addr + "/postgres?sslmode=disable&options=-c%20pgguard.purpose%3Dorder_fulfilment"
	conns := make([]*pgconn.PgConn, 0, n)
	for i := 0; i < n; i++ {
		c, err := pgconn.Connect(ctx, url)
		if err == nil {
			_, err = c.Exec(ctx, fmt.Sprintf("SELECT id FROM crm.orders WHERE id = %d", i+1)).ReadAll()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "idle clients: session %d: %v\n", i, err)
			return 1
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close(context.Background())
	}
	return 0
}
