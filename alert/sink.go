package alert

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// handleFunc delivers one event. It returns false when it gave up because
// ctx was cancelled (Close ran out of time), so the event counts as lost.
type handleFunc func(ctx context.Context, e Event) bool

// worker is the part every sink shares: a bounded queue and one goroutine
// draining it. Giving each sink its own queue means a hanging webhook fills
// only the webhook queue; the log keeps flowing.
type worker struct {
	q       chan Event
	handle  handleFunc
	dropped prometheus.Counter
	abort   context.Context // cancelled when Close's deadline passes
	cancel  context.CancelFunc
	done    chan struct{}
	lost    atomic.Int64 // events given up on during Close
}

func newWorker(size int, handle handleFunc, dropped prometheus.Counter) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{
		q:       make(chan Event, size),
		handle:  handle,
		dropped: dropped,
		abort:   ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
}

func (w *worker) start() { go w.run() }

func (w *worker) run() {
	defer close(w.done)
	for e := range w.q {
		if w.abort.Err() != nil || !w.handle(w.abort, e) {
			w.lose()
		}
	}
}

func (w *worker) lose() {
	w.lost.Add(1)
	w.dropped.Inc()
}

// offer enqueues without blocking; a full queue drops the event and counts
// it, because the data path must never wait for a sink.
func (w *worker) offer(e Event) {
	select {
	case w.q <- e:
	default:
		w.dropped.Inc()
	}
}

// offerWait enqueues, waiting for room until ctx ends. Only Close's flush
// uses it: by then no client is waiting, and summaries deserve the effort.
func (w *worker) offerWait(ctx context.Context, e Event) {
	select {
	case w.q <- e:
	case <-ctx.Done():
		w.lose()
	}
}

// close lets the worker drain its queue until ctx ends, then aborts what is
// left, and returns how many events were lost during the close. The caller
// must guarantee no offer runs concurrently or afterwards.
func (w *worker) close(ctx context.Context) int64 {
	close(w.q)
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		<-w.done
	}
	w.cancel()
	return w.lost.Load()
}
