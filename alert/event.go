package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kind says what happened. Its values are the alert's `event` field.
type Kind string

// The kinds of alert pgguard raises.
const (
	// KindQueryBlocked: enforce mode refused a statement.
	KindQueryBlocked Kind = "query_blocked"
	// KindQueryFlagged: monitor mode forwarded a statement that enforce mode
	// would have refused.
	KindQueryFlagged Kind = "query_flagged"
	// KindPolicyReloadFailed: a new policy could not be loaded, so the
	// previous one stays in force; the security team must know the rules
	// they wrote are not the rules being applied.
	KindPolicyReloadFailed Kind = "policy_reload_failed"
	// KindPolicyReloaded: a new policy is in force; Change says what it
	// changed and whether that can open access.
	KindPolicyReloaded Kind = "policy_reloaded"
	// KindCatalogUnavailable: a database's catalog could not be read, so
	// its new sessions are refused (enforce mode) and its statements denied
	// until a load succeeds; Database names it and Error says why.
	KindCatalogUnavailable Kind = "catalog_unavailable"
	// KindQueryBlockedByDatabase: PostgreSQL refused, for want of a
	// privilege (42501), a statement pgguard had let through: the second
	// lock held where the analysis did not, a gap to look into. Error is
	// the server's message.
	KindQueryBlockedByDatabase Kind = "query_blocked_by_database"
	// KindGrantsDrift: the privileges the policy's users hold in the
	// database differ from what the policy compiles to (serve
	// --grants-check); Denied lists the differences, Error sums them up.
	KindGrantsDrift Kind = "grants_drift"
	// KindPolicyStale: the policy store has not confirmed for longer than
	// serve --policy-max-age that the policy in force is its newest
	// version (the store is unreachable, or the newest version was
	// rejected); pgguard keeps enforcing it. PolicyVersion is the version
	// in force, Error says how old and why.
	KindPolicyStale Kind = "policy_stale"
	// KindPolicyConfirmed: after a policy_stale alert, the store confirmed
	// the policy in force again.
	KindPolicyConfirmed Kind = "policy_confirmed"
)

// Mode is the proxy mode an alert was raised under.
type Mode string

// The proxy modes of the --mode flag.
const (
	// ModeEnforce refuses denied statements.
	ModeEnforce Mode = "enforce"
	// ModeMonitor forwards denied statements and only alerts.
	ModeMonitor Mode = "monitor"
)

// query reports whether events of kind k are about a statement.
func (k Kind) query() bool {
	return k == KindQueryBlocked || k == KindQueryFlagged || k == KindQueryBlockedByDatabase
}

// KindForMode returns the alert kind a denial produces under mode m, so that
// callers cannot pair "blocked" with monitor mode by mistake.
func KindForMode(m Mode) Kind {
	if m == ModeMonitor {
		return KindQueryFlagged
	}
	return KindQueryBlocked
}

// Denial names one column access the policy refused. It deliberately has no
// room for a value: an alert says which column, never what was in it.
type Denial struct {
	// Column is schema.table.column as PostgreSQL stores it.
	Column string `json:"column"`
	// Category is the g2 data category of the column, empty if unclassified.
	Category string `json:"category"`
	// Act is "read" or "write".
	Act string `json:"act"`
	// Reason says in a few words why the access was refused (for example
	// "deny rule for marketing" or "no allow rule for purpose newsletter").
	Reason string `json:"reason"`
}

// Event is one alert as the security team receives it. The JSON field names
// are binding (docs/reference.md, "Alerts").
type Event struct {
	// Time is when the statement was seen (for a dedup summary: when the
	// summary was emitted). Emit fills it from the clock when zero; it is
	// always written as RFC 3339 with nanoseconds, in UTC.
	Time time.Time `json:"time"`
	// Kind is the alert's `event` field.
	Kind Kind `json:"event"`
	// User is the subject: the StartupMessage user name.
	User string `json:"user"`
	// Roles are the departments/roles the user has through g rules.
	Roles []string `json:"roles"`
	// Purpose is the declared purpose, empty when none was declared.
	Purpose string `json:"purpose"`
	// Database is the database the client connected to.
	Database string `json:"database"`
	// ClientAddr is the client's address as the proxy saw it.
	ClientAddr string `json:"client_addr"`
	// ApplicationName is the client's application_name startup parameter.
	ApplicationName string `json:"application_name"`
	// Statement MUST already be normalized by the caller (literal values
	// replaced by $n placeholders): the alert package never sees raw SQL and
	// must not, because literals are where personal data lives. As a last
	// safety net the Dispatcher redacts a Statement that fails Validate.
	Statement string `json:"statement"`
	// Fingerprint identifies the statement's shape; with User and Kind it is
	// the dedup key.
	Fingerprint string `json:"fingerprint"`
	// Denied lists every refused column access of the statement.
	Denied []Denial `json:"denied"`
	// PolicyVersion identifies the policy that made the decision.
	PolicyVersion string `json:"policy_version"`
	// Mode is the proxy mode the decision was made under.
	Mode Mode `json:"mode"`
	// Count is how many occurrences this event stands for: 1 for an event
	// seen for the first time, n for a dedup summary folding n repeats. The
	// sum of Count over all delivered events is the number of occurrences.
	Count int `json:"count"`
	// FirstSeen is the time of the first folded repeat; only set when
	// Count > 1.
	FirstSeen time.Time `json:"first_seen,omitzero"`
	// LastSeen is the time of the last folded repeat; only set when
	// Count > 1.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// SessionID identifies the client session within this pgguard process.
	SessionID string `json:"session_id"`
	// Error is the reason of a policy_reload_failed or catalog_unavailable
	// event; empty otherwise.
	Error string `json:"error,omitempty"`
	// Change is what a policy_reloaded event's reload changed.
	Change *PolicyChange `json:"change,omitempty"`
}

// PolicyChange summarises a policy reload. Widens lists the changes that
// may open access (declassified columns, allow rules or memberships added,
// deny rules removed, purpose hierarchy changes); WidensAccess is true when
// it is not empty, so a rule can page on one field.
type PolicyChange struct {
	OldVersion   string   `json:"old_version"`
	Classified   []string `json:"classified"`
	Declassified []string `json:"declassified"`
	RulesAdded   []string `json:"rules_added"`
	RulesRemoved []string `json:"rules_removed"`
	WidensAccess bool     `json:"widens_access"`
	Widens       []string `json:"widens"`
}

// wireEvent has Event's fields and tags but not its methods, so MarshalJSON
// can delegate to encoding/json without recursing.
type wireEvent Event

// MarshalJSON writes the documented shape: times in UTC, empty lists as []
// rather than null (consumers index into them), and seen-times only on
// summaries.
func (e Event) MarshalJSON() ([]byte, error) {
	w := wireEvent(e)
	w.Time = w.Time.UTC()
	if w.Roles == nil {
		w.Roles = []string{}
	}
	if w.Denied == nil {
		w.Denied = []Denial{}
	}
	if w.Count > 1 {
		w.FirstSeen, w.LastSeen = w.FirstSeen.UTC(), w.LastSeen.UTC()
	} else {
		w.FirstSeen, w.LastSeen = time.Time{}, time.Time{}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("alert: marshal %s event: %w", e.Kind, err)
	}
	return b, nil
}

// ErrInvalidEvent is wrapped by every error Validate returns.
var ErrInvalidEvent = errors.New("invalid alert event")

// Validate reports whether e is fit to leave the process: a known kind, a
// mode that matches it, and a Statement with no literal left in it. The
// literal check is heuristic (see statementLiteral); errors never quote the
// statement, since what they would quote is the personal data.
func (e Event) Validate() error {
	switch e.Kind {
	case KindQueryBlocked, KindQueryFlagged:
		if e.Mode != ModeEnforce && e.Mode != ModeMonitor {
			return fmt.Errorf("%w: mode %q, want %q or %q", ErrInvalidEvent, e.Mode, ModeEnforce, ModeMonitor)
		}
		if KindForMode(e.Mode) != e.Kind {
			return fmt.Errorf("%w: event %q does not match mode %q", ErrInvalidEvent, e.Kind, e.Mode)
		}
	case KindPolicyReloadFailed, KindPolicyReloaded, KindCatalogUnavailable, KindQueryBlockedByDatabase, KindGrantsDrift,
		KindPolicyStale, KindPolicyConfirmed:
	default:
		return fmt.Errorf("%w: unknown event kind %q", ErrInvalidEvent, e.Kind)
	}
	if e.Count < 0 {
		return fmt.Errorf("%w: negative count %d", ErrInvalidEvent, e.Count)
	}
	if err := statementLiteral(e.Statement); err != nil {
		return fmt.Errorf("%w: statement: %w", ErrInvalidEvent, err)
	}
	return nil
}
