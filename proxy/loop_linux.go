//go:build linux

package proxy

// Event-loop relay.
//
// Relayed by two goroutines, every message exchange of a session costs a read
// that fails with EAGAIN, a park, a wake-up through the netpoller and often a
// futex wake of another thread. With pgbench's tiny transactions on two
// cores that runtime work, not the relaying itself, is most of the proxy's
// CPU per transaction. An established session over plain TCP or a Unix
// socket is therefore handed to an event loop: a goroutine with its own
// epoll set that reads and writes the non-blocking sockets directly and
// makes about the system calls PgBouncer makes.
//
// The loop runs the pumps' per-message code (act, deny, serverState) and
// never waits:
//   - a message a QuickSessionInterceptor cannot decide at once is decided on
//     a goroutine started for it, and the session pauses meanwhile (both
//     directions, so the interceptor never sees it from two threads);
//   - a socket that takes no more makes the loop stop reading the other side
//     until it drains;
//   - the session's end, with its last messages, is written out by the
//     goroutine started for it; an idle session holds no goroutine.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopGroup is a Server's event loops, started on first use.
type loopGroup struct {
	n     int
	once  sync.Once
	loops []*eventLoop
	err   error
	next  atomic.Uint32
}

func newLoopGroup(n int) *loopGroup {
	if n <= 0 {
		return nil
	}
	return &loopGroup{n: n}
}

// pick returns the loop for a new session, round robin.
func (g *loopGroup) pick() (*eventLoop, error) {
	g.once.Do(func() {
		for range g.n {
			l, err := newEventLoop()
			if err != nil {
				g.err = fmt.Errorf("start event loop: %w", err)
				return
			}
			g.loops = append(g.loops, l)
			go l.run()
		}
	})
	if g.err != nil {
		return nil, g.err
	}
	if len(g.loops) == 0 {
		return nil, errors.New("event loops closed")
	}
	return g.loops[int(g.next.Add(1))%len(g.loops)], nil
}

// close stops the loops once no session uses them any more.
func (g *loopGroup) close() {
	if g == nil {
		return
	}
	g.once.Do(func() {}) // none started: none start later
	for _, l := range g.loops {
		l.post(func() { l.exit = true })
	}
}

// eventLoop relays the sessions registered with it, on one goroutine.
type eventLoop struct {
	ep   int // epoll set
	wake int // eventfd: tasks are queued

	mu     sync.Mutex
	tasks  []func()
	woken  bool
	closed bool

	// Owned by the loop's goroutine.
	sides  map[int32]*loopSide
	rbuf   []byte
	events []unix.EpollEvent
	spare  []func()
	exit   bool
	busy   bool // the last wait found several events: poll before blocking
	// lastYield and quiet pace the yields (see yieldEvery); quiet counts
	// the blocking waits in a row that timed out with nothing to do.
	lastYield time.Time
	quiet     int
}

// loopReadSize is what the loop reads at once; one buffer serves all of its
// sessions.
const loopReadSize = 64 << 10

func newEventLoop() (*eventLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	return &eventLoop{
		ep: ep, wake: wake,
		sides:  make(map[int32]*loopSide),
		rbuf:   make([]byte, loopReadSize),
		events: make([]unix.EpollEvent, 256),
	}, nil
}

// post runs f on the loop's goroutine. It reports false once the loop has
// stopped.
func (l *eventLoop) post(f func()) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.tasks = append(l.tasks, f)
	wake := !l.woken
	l.woken = true
	l.mu.Unlock()
	if wake {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(l.wake, one[:])
	}
	return true
}

// yieldEvery is how often a loop yields to the scheduler. A goroutine that
// never does looks stuck to the runtime's monitor thread (sysmon): after
// 10 ms it preempts the loop, or takes its P away in the middle of a wait,
// and then polls every 20 µs for a while, which with one busy client cost a
// tenth of pgguard's CPU. A yield of the loop's locked goroutine passes its
// P to another thread and back, two wake-ups, so it happens no more often
// than needed: every 8 ms leaves sysmon's 10 ms a margin for a late
// wake-up.
//
// The loop can yield only while awake, so a blocking wait lasts at most
// until the next yield is due. Without that bound, a client pausing a few
// milliseconds between statements (pgbench --rate 150) had the loop
// preempted in most pauses, and sysmon's polling afterwards cost pgguard
// more CPU than the statements. A loop with nothing to do for quietWaits
// periods in a row waits without a bound: idle, it should cost nothing,
// and losing its P then is harmless.
const (
	yieldEvery = 8 * time.Millisecond
	quietWaits = 12
)

// run serves events until the loop is closed, on a thread of its own.
//
// The lock is about the kernel, not Go: a loop goroutine free to move
// resumes on whichever thread takes it after a yield, that thread last ran
// on another CPU, and the kernel's wake-up placement then often settles
// into moving the loop between the CPUs on nearly every wake-up (1.0-1.9
// migrations per pgbench transaction with one client, against PgBouncer's
// 0.01), each a costly cross-CPU wake-up in a VM. Locked, the loop keeps
// one thread and one wake-up history; CPU per transaction with one client
// dropped by 5-10 µs in the runs where it escaped that state (bench/README.md).
func (l *eventLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.shut()
	l.lastYield = time.Now()
	for !l.exit {
		if now := time.Now(); now.Sub(l.lastYield) >= yieldEvery {
			l.yield(now)
		}
		n := l.wait()
		for _, ev := range l.events[:n] {
			if int(ev.Fd) == l.wake {
				l.runTasks()
				continue
			}
			// A side whose session ended earlier in this batch is gone.
			if side := l.sides[ev.Fd]; side != nil {
				side.s.handle(side, ev.Events)
			}
		}
	}
}

func (l *eventLoop) yield(now time.Time) {
	runtime.Gosched()
	l.lastYield = now
}

// wait returns the number of ready events. While the loop is busy it polls
// first, without the scheduler's system-call bookkeeping; a poll that finds
// nothing would only add a system call to the blocking wait that follows, so
// after one the loop blocks at once until a wait finds several events ready.
func (l *eventLoop) wait() int {
	for {
		if l.busy {
			r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep),
				uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
			if errno == 0 && r > 0 {
				return int(r)
			}
			l.busy = false
		}
		now := time.Now()
		timeout, yieldFirst := waitTimeout(now.Sub(l.lastYield), l.quiet)
		if yieldFirst {
			l.yield(now)
		}
		n, err := unix.EpollWait(l.ep, l.events, timeout)
		switch {
		case err == nil && n == 0: // timed out: the yield is due
			l.quiet++
			l.yield(time.Now())
		case err == nil:
			l.quiet = 0
			l.busy = n > 1
			return n
		case !errors.Is(err, unix.EINTR):
			panic(fmt.Sprintf("proxy: epoll_wait: %v", err)) // a bad epoll fd is a bug
		}
	}
}

// waitTimeout returns the timeout of a blocking wait, in epoll_wait's
// milliseconds, sinceYield after the last yield and after quiet waits in a
// row timed out: the time left until the next yield, rounded down, or -1
// (no bound) once the loop is quiet. yieldFirst says the yield is due within
// a millisecond and must come before the wait, which then gets a whole
// period.
func waitTimeout(sinceYield time.Duration, quiet int) (timeout int, yieldFirst bool) {
	if quiet >= quietWaits {
		return -1, false
	}
	left := yieldEvery - sinceYield
	if left < time.Millisecond {
		return int(yieldEvery / time.Millisecond), true
	}
	return int(left / time.Millisecond), false
}

func (l *eventLoop) runTasks() {
	var buf [8]byte
	_, _ = unix.Read(l.wake, buf[:])
	l.mu.Lock()
	tasks := l.tasks
	l.tasks, l.spare = l.spare[:0], nil
	l.woken = false
	l.mu.Unlock()
	for i, f := range tasks {
		f()
		tasks[i] = nil
	}
	l.spare = tasks
}

func (l *eventLoop) shut() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	unix.Close(l.ep)
	unix.Close(l.wake)
}
