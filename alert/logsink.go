package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/rs/zerolog"
)

// logSink writes each alert as one warn-level line on the logger pgguard
// was given, so alerts reach the log even when no webhook is configured.
type logSink struct {
	logger zerolog.Logger
	// addTime is false when the logger stamps its own `time` field, which
	// would otherwise appear twice in the JSON line.
	addTime bool
}

// newLogSink lowers a logger set to error or above to warn for alerts
// only: every alert is promised on the log (docs/reference.md), and an operator
// quietening pgguard's chatter must not silence the security team. A
// disabled logger stays disabled.
func newLogSink(logger zerolog.Logger) *logSink {
	if lvl := logger.GetLevel(); lvl > zerolog.WarnLevel && lvl <= zerolog.PanicLevel {
		logger = logger.Level(zerolog.WarnLevel)
	}
	return &logSink{logger: logger, addTime: !stampsTime(logger)}
}

// stampsTime reports whether logger already writes a `time` field (from
// .Timestamp() or a static context field). It writes one probe line to a
// private buffer, with the logger's level and sampling lifted so the probe
// cannot be filtered out; the real output is untouched.
func stampsTime(logger zerolog.Logger) bool {
	var buf bytes.Buffer
	probe := logger.Output(&buf).Sample(nil).Level(zerolog.TraceLevel)
	probe.Log().Msg("")
	var fields map[string]json.RawMessage
	if json.Unmarshal(buf.Bytes(), &fields) != nil {
		return false
	}
	_, ok := fields[zerolog.TimestampFieldName]
	return ok
}

// write is the worker's handleFunc; writing a log line cannot be aborted,
// so it always reports success.
func (s *logSink) write(_ context.Context, e Event) bool {
	ev := s.logger.Warn()
	if s.addTime {
		ev = ev.Str("time", formatTime(e.Time))
	}
	ev = ev.Str("event", string(e.Kind)).
		Str("user", e.User).
		Strs("roles", e.Roles).
		Str("purpose", e.Purpose).
		Str("database", e.Database).
		Str("client_addr", e.ClientAddr).
		Str("application_name", e.ApplicationName).
		Str("statement", e.Statement).
		Str("fingerprint", e.Fingerprint).
		Array("denied", denialList(e.Denied)).
		Str("policy_version", e.PolicyVersion).
		Str("mode", string(e.Mode)).
		Int("count", e.Count).
		Str("session_id", e.SessionID)
	if e.Count > 1 {
		ev = ev.Str("first_seen", formatTime(e.FirstSeen)).Str("last_seen", formatTime(e.LastSeen))
	}
	if e.Error != "" {
		ev = ev.Str("error", e.Error)
	}
	if c := e.Change; c != nil {
		ev = ev.Str("old_version", c.OldVersion).Strs("classified", c.Classified).Strs("declassified", c.Declassified).
			Strs("rules_added", c.RulesAdded).Strs("rules_removed", c.RulesRemoved).
			Bool("widens_access", c.WidensAccess).Strs("widens", c.Widens)
	}
	ev.Msg(logMessage(e.Kind))
	return true
}

// formatTime gives the log the same time format as the JSON wire shape.
func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

func logMessage(k Kind) string {
	switch k {
	case KindQueryBlocked:
		return "query blocked"
	case KindQueryFlagged:
		return "query flagged"
	case KindPolicyReloadFailed:
		return "policy reload failed"
	case KindPolicyReloaded:
		return "policy reloaded"
	case KindCatalogUnavailable:
		return "catalog unavailable"
	case KindPolicyStale:
		return "policy stale"
	case KindPolicyConfirmed:
		return "policy confirmed"
	}
	return "alert"
}

// denialList writes denials as a JSON array of objects without going through
// reflection.
type denialList []Denial

// MarshalZerologArray implements zerolog.LogArrayMarshaler.
func (l denialList) MarshalZerologArray(a *zerolog.Array) {
	for _, d := range l {
		a.Object(denialObject(d))
	}
}

type denialObject Denial

// MarshalZerologObject implements zerolog.LogObjectMarshaler.
func (d denialObject) MarshalZerologObject(e *zerolog.Event) {
	e.Str("column", d.Column).Str("category", d.Category).Str("act", d.Act).Str("reason", d.Reason)
}
