package alert

import (
	"net"
	"strings"
	"time"
)

// dedupKey is what makes two alerts "the same": everything the event
// reports but its time, its session and the client's port. A summary shows
// one event's fields for all the repeats it folds, so repeats that differ
// in any field it shows (the purpose, a denied column, the database) are
// not folded together.
type dedupKey struct {
	user, fingerprint, statement   string
	kind                           Kind
	mode                           Mode
	purpose, database, clientHost  string
	applicationName, policyVersion string
	roles, denied                  string
}

func keyOf(e Event) dedupKey {
	return dedupKey{
		user: e.User, fingerprint: e.Fingerprint, statement: e.Statement, kind: e.Kind, mode: e.Mode,
		purpose: e.Purpose, database: e.Database, clientHost: clientHost(e.ClientAddr),
		applicationName: e.ApplicationName, policyVersion: e.PolicyVersion,
		roles: strings.Join(e.Roles, "\x00"), denied: deniedKey(e.Denied),
	}
}

// clientHost is the client's address without its port: a client that
// connects anew for each statement is still one client.
func clientHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// deniedKey renders the denied accesses in order.
func deniedKey(ds []Denial) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.Column)
		b.WriteByte(0)
		b.WriteString(d.Category)
		b.WriteByte(0)
		b.WriteString(d.Act)
		b.WriteByte(0)
		b.WriteString(d.Reason)
		b.WriteByte(1)
	}
	return b.String()
}

// dedupEntry is an open window for one key.
type dedupEntry struct {
	windowEnd time.Time
	latest    Event // the last repeat; a summary carries its fields
	repeats   int
	firstSeen time.Time
	lastSeen  time.Time
}

// admission is what dedup did with an occurrence.
type admission int

const (
	admittedFirst     admission = iota // new key: sent at once
	admittedFolded                     // repeat inside the window: counted, not sent
	admittedUntracked                  // table full: sent at once, not tracked
)

// dedup folds repeats. Semantics:
//   - The first occurrence of a key is sent immediately and opens a window
//     of the configured length: the security team sees a new problem at
//     once.
//   - Repeats inside the window are only counted.
//   - When the window closes with repeats, one summary is sent (Count = the
//     number of repeats, FirstSeen/LastSeen their times) and a new window
//     opens, so a sustained flood costs one event per window per key.
//   - When a window closes without repeats the key is forgotten, and its
//     next occurrence is again sent immediately.
//   - Beyond maxEntries keys, new keys are sent untracked rather than
//     growing the table.
//
// Every occurrence is thus accounted for exactly once: the Counts of
// delivered events add up to the number of occurrences. It is owned by the
// dispatcher goroutine and needs no locking.
type dedup struct {
	window     time.Duration
	maxEntries int
	entries    map[dedupKey]*dedupEntry
}

func newDedup(window time.Duration, maxEntries int) *dedup {
	return &dedup{window: window, maxEntries: maxEntries, entries: make(map[dedupKey]*dedupEntry)}
}

// add handles one occurrence at time now, passing whatever must be sent to
// out (possibly a summary of the key's previous window first).
func (d *dedup) add(e Event, now time.Time, out func(Event)) admission {
	k := keyOf(e)
	if ent, ok := d.entries[k]; ok && !now.Before(ent.windowEnd) {
		d.closeWindow(k, ent, now, out)
	}
	if ent, ok := d.entries[k]; ok {
		ent.fold(e)
		return admittedFolded
	}
	out(single(e))
	if len(d.entries) >= d.maxEntries {
		return admittedUntracked
	}
	d.entries[k] = &dedupEntry{windowEnd: now.Add(d.window)}
	return admittedFirst
}

// sweep closes every window that has ended by now.
func (d *dedup) sweep(now time.Time, out func(Event)) {
	for k, ent := range d.entries {
		if !now.Before(ent.windowEnd) {
			d.closeWindow(k, ent, now, out)
		}
	}
}

// flush sends every pending summary and forgets all keys; Close uses it so
// no counted repeat is lost at shutdown.
func (d *dedup) flush(now time.Time, out func(Event)) {
	for k, ent := range d.entries {
		if ent.repeats > 0 {
			out(ent.summary(now))
		}
		delete(d.entries, k)
	}
}

func (d *dedup) closeWindow(k dedupKey, ent *dedupEntry, now time.Time, out func(Event)) {
	if ent.repeats == 0 {
		delete(d.entries, k)
		return
	}
	out(ent.summary(now))
	*ent = dedupEntry{windowEnd: now.Add(d.window)}
}

func (ent *dedupEntry) fold(e Event) {
	if ent.repeats == 0 {
		ent.firstSeen = e.Time
	}
	ent.repeats++
	ent.lastSeen = e.Time
	ent.latest = e
}

// summary is the latest repeat standing for all repeats of the window.
func (ent *dedupEntry) summary(now time.Time) Event {
	s := ent.latest
	s.Time = now
	s.Count = ent.repeats
	s.FirstSeen, s.LastSeen = ent.firstSeen, ent.lastSeen
	if s.Count == 1 {
		s.Time = ent.lastSeen
		s.FirstSeen, s.LastSeen = time.Time{}, time.Time{}
	}
	return s
}

// single marks e as standing for itself alone.
func single(e Event) Event {
	e.Count = 1
	e.FirstSeen, e.LastSeen = time.Time{}, time.Time{}
	return e
}
