package policystore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// Defaults of WatcherConfig.
const (
	DefaultHeartbeat      = 5 * time.Second
	DefaultRetryMin       = 250 * time.Millisecond
	DefaultRetryMax       = 5 * time.Second
	DefaultConnectTimeout = 5 * time.Second
)

// WatcherConfig configures a Watcher. URL, ReplicaID and Apply are
// required; the rest have defaults.
type WatcherConfig struct {
	// URL is the store's connection URL.
	URL string
	// ReplicaID names this replica in its heartbeat row.
	ReplicaID string
	// Apply puts a version in force and reports an error if it rejects it
	// (the replica keeps what it held). It is called from the watcher's
	// goroutine only, with each version that differs from the last one
	// applied; a rejected version is not offered again, only newer ones.
	Apply func(Record) error
	// Heartbeat is how often the replica writes its row and compares its
	// version with the store's, besides notifications (default 5s). The row
	// expires after three of them.
	Heartbeat time.Duration
	// RetryMin and RetryMax bound the backoff between connection attempts,
	// doubling from RetryMin (defaults 250ms and 5s).
	RetryMin, RetryMax time.Duration
	// ConnectTimeout bounds a connection attempt, and each query (default
	// 5s), so that a store that stops answering is noticed.
	ConnectTimeout time.Duration
	// OnStatus, if set, is called after every change of Status, from the
	// watcher's goroutine.
	OnStatus func(Status)
	// Logger gets the connection's losses and recoveries.
	Logger zerolog.Logger
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

func (c *WatcherConfig) withDefaults() (WatcherConfig, error) {
	out := *c
	switch {
	case out.URL == "":
		return out, errors.New("policy store watcher: URL is required")
	case out.ReplicaID == "":
		return out, errors.New("policy store watcher: ReplicaID is required")
	case out.Apply == nil:
		return out, errors.New("policy store watcher: Apply is required")
	}
	for _, d := range []struct {
		name  string
		value *time.Duration
		def   time.Duration
	}{{"Heartbeat", &out.Heartbeat, DefaultHeartbeat}, {"RetryMin", &out.RetryMin, DefaultRetryMin},
		{"RetryMax", &out.RetryMax, DefaultRetryMax}, {"ConnectTimeout", &out.ConnectTimeout, DefaultConnectTimeout}} {
		if *d.value < 0 {
			return out, fmt.Errorf("policy store watcher: %s %s: must not be negative", d.name, *d.value)
		}
		if *d.value == 0 {
			*d.value = d.def
		}
	}
	if out.RetryMax < out.RetryMin {
		return out, fmt.Errorf("policy store watcher: RetryMax %s is less than RetryMin %s", out.RetryMax, out.RetryMin)
	}
	if _, err := pgx.ParseConfig(out.URL); err != nil {
		return out, fmt.Errorf("policy store watcher: URL: %w", err)
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return out, nil
}

// Status is what a Watcher knows of the store.
type Status struct {
	// Up reports whether the watcher is connected and listening.
	Up bool
	// Err is why the last connection or query failed, while not Up.
	Err error
	// Confirmed is when the store last confirmed that the version held is
	// its newest (zero: never).
	Confirmed time.Time
	// Held is the version in force, as last applied.
	Held Record
	// Rejected is the checksum of a newer version Apply refused, if any.
	Rejected string
}

// Age is how long ago the store last confirmed the policy held, at now.
func (s Status) Age(now time.Time) time.Duration {
	if s.Confirmed.IsZero() {
		return 0
	}
	return now.Sub(s.Confirmed)
}

// Stale reports whether the policy held has gone unconfirmed for longer
// than maxAge at now (never when maxAge is zero or negative).
func (s Status) Stale(now time.Time, maxAge time.Duration) bool {
	return maxAge > 0 && !s.Confirmed.IsZero() && s.Age(now) > maxAge
}

// Watcher keeps a replica's policy current with the store: it LISTENs on
// Channel, compares versions on every (re)connection, notification and
// heartbeat, calls Apply with each newer version, and writes the replica's
// heartbeat row. When the connection is lost it keeps the policy applied
// and reconnects with backoff. A pgx connection of its own does the work:
// jackc/pgxlisten does the LISTEN loop well, but it retries at a fixed
// delay, reports no connection state and would need a second connection
// for the heartbeat.
type Watcher struct {
	cfg   WatcherConfig
	start time.Time

	mu     sync.Mutex
	status Status
	poke   chan struct{}
}

// NewWatcher checks cfg and returns a watcher that holds held, the version
// the replica loaded at start (from Load), confirmed at that moment.
func NewWatcher(cfg WatcherConfig, held Record) (*Watcher, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	now := c.Now()
	return &Watcher{cfg: c, start: now, status: Status{Held: held, Confirmed: now}, poke: make(chan struct{}, 1)}, nil
}

// Load connects once and returns the newest version: what a replica
// starts with. It fails with ErrEmpty when nothing was pushed.
func Load(ctx context.Context, url string, timeout time.Duration) (Record, error) {
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return Record{}, fmt.Errorf("policy store: connect: %w", err)
	}
	defer conn.Close(context.Background())
	return Latest(ctx, conn)
}

// Status returns what the watcher knows now.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Check asks the watcher to compare versions with the store now (SIGHUP
// does), without waiting for it.
func (w *Watcher) Check() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

func (w *Watcher) update(f func(*Status)) {
	w.mu.Lock()
	f(&w.status)
	s := w.status
	w.mu.Unlock()
	if w.cfg.OnStatus != nil {
		w.cfg.OnStatus(s)
	}
}

// Run watches until ctx ends, then returns nil. Errors of the store are
// not returned: they are the Status, logged and reported through OnStatus,
// and the watcher keeps trying.
func (w *Watcher) Run(ctx context.Context) error {
	wait := w.cfg.RetryMin
	for {
		began := w.cfg.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if w.cfg.Now().Sub(began) > w.cfg.RetryMax {
			wait = w.cfg.RetryMin // it worked for a while: start the backoff over
		}
		wasUp := w.Status().Up
		w.update(func(s *Status) { s.Up, s.Err = false, err })
		ev := w.cfg.Logger.Error().Err(err).Str("retry_in", wait.String())
		if wasUp {
			ev.Msg("policy store connection lost; keeping the policy in force and reconnecting")
		} else {
			ev.Msg("policy store unreachable; keeping the policy in force and retrying")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, w.cfg.RetryMax)
	}
}

// session connects, listens, and then checks the store's version at once
// and on every notification, heartbeat and Check, until the connection
// fails or ctx ends.
func (w *Watcher) session(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.ConnectTimeout)
	conn, err := pgx.Connect(cctx, w.cfg.URL)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if err := w.query(ctx, func(ctx context.Context) error {
		_, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize())
		return err
	}); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Listening before the first check: a push after this point notifies
	// us, one before it is what the check finds.
	if err := w.sync(ctx, conn); err != nil {
		return err
	}
	wasDown := w.Status().Err != nil
	w.update(func(s *Status) { s.Up, s.Err = true, nil })
	if wasDown {
		w.cfg.Logger.Info().Int64("store_version", w.Status().Held.Version).Msg("policy store connection restored; policy compared with the store")
	}
	next := w.cfg.Now().Add(w.cfg.Heartbeat)
	for {
		wait := next.Sub(w.cfg.Now())
		if wait > 0 {
			wctx, cancel := context.WithTimeout(ctx, wait)
			go func() { // Check ends the wait early
				select {
				case <-w.poke:
					cancel()
				case <-wctx.Done():
				}
			}()
			n, err := conn.WaitForNotification(wctx)
			cancel()
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case err == nil:
				w.cfg.Logger.Debug().Str("payload", n.Payload).Msg("policy store notification")
			case wctx.Err() != nil && !conn.IsClosed():
				// the heartbeat is due
			default:
				return fmt.Errorf("wait for notification: %w", err)
			}
		}
		if err := w.sync(ctx, conn); err != nil {
			return err
		}
		if !w.cfg.Now().Before(next) {
			next = w.cfg.Now().Add(w.cfg.Heartbeat)
		}
	}
}

// query runs f with the query timeout.
func (w *Watcher) query(ctx context.Context, f func(context.Context) error) error {
	qctx, cancel := context.WithTimeout(ctx, w.cfg.ConnectTimeout)
	defer cancel()
	return f(qctx)
}

// sync compares the store's newest version with the one held, applies it
// when it differs, writes the heartbeat, and marks the policy confirmed.
func (w *Watcher) sync(ctx context.Context, conn *pgx.Conn) error {
	var sum string
	err := w.query(ctx, func(ctx context.Context) (err error) {
		_, sum, err = head(ctx, conn)
		return err
	})
	if err != nil && !errors.Is(err, ErrEmpty) {
		return err
	}
	st := w.Status()
	confirmed := err == nil && sum == st.Held.Checksum
	if err == nil && sum != st.Held.Checksum && sum != st.Rejected {
		var rec Record
		if err := w.query(ctx, func(ctx context.Context) (err error) { rec, err = latest(ctx, conn); return err }); err != nil {
			return err
		}
		if aerr := w.cfg.Apply(rec); aerr != nil {
			w.update(func(s *Status) { s.Rejected = rec.Checksum })
		} else {
			confirmed = true
			w.update(func(s *Status) { s.Held, s.Rejected = rec, "" })
		}
	}
	held := w.Status().Held
	if err := w.query(ctx, func(ctx context.Context) error {
		return Beat(ctx, conn, Heartbeat{ReplicaID: w.cfg.ReplicaID, Version: held.Version, Checksum: held.Checksum,
			StartedAt: w.start, TTL: 3 * w.cfg.Heartbeat})
	}); err != nil && !errors.Is(err, ErrEmpty) {
		return err
	}
	if confirmed {
		now := w.cfg.Now()
		w.update(func(s *Status) { s.Confirmed = now })
	}
	return nil
}
