package alert

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEventJSONShape(t *testing.T) {
	contract := []string{
		"time", "event", "user", "roles", "purpose", "database", "client_addr",
		"application_name", "statement", "fingerprint", "denied", "policy_version",
		"mode", "count", "session_id",
	}
	local := time.FixedZone("CET", 3600)
	summary := sampleEvent()
	summary.Count = 3
	summary.FirstSeen = time.Date(2026, 3, 1, 13, 0, 0, 5, local)
	summary.LastSeen = time.Date(2026, 3, 1, 13, 0, 9, 0, local)
	reload := Event{Time: time.Unix(0, 0), Kind: KindPolicyReloadFailed, Error: "policy.csv:3: bad line"}
	bare := sampleEvent()
	bare.Roles, bare.Denied = nil, nil

	tests := []struct {
		name     string
		e        Event
		wantKeys []string
		check    func(t *testing.T, m map[string]any)
	}{
		{"single occurrence", single(sampleEvent()), contract, func(t *testing.T, m map[string]any) {
			if m["time"] != "2026-03-01T11:59:58.123456789Z" {
				t.Errorf("time = %v, want RFC3339Nano UTC", m["time"])
			}
			d := m["denied"].([]any)[0].(map[string]any)
			if got := slices.Sorted(maps.Keys(d)); !slices.Equal(got, []string{"act", "category", "column", "reason"}) {
				t.Errorf("denial keys = %v", got)
			}
			if m["event"] != "query_blocked" || m["mode"] != "enforce" || m["count"] != 1.0 {
				t.Errorf("event/mode/count = %v/%v/%v", m["event"], m["mode"], m["count"])
			}
		}},
		{"summary has seen-times in UTC", summary, append(slices.Clone(contract), "first_seen", "last_seen"), func(t *testing.T, m map[string]any) {
			if m["first_seen"] != "2026-03-01T12:00:00.000000005Z" || m["last_seen"] != "2026-03-01T12:00:09Z" {
				t.Errorf("first/last = %v / %v", m["first_seen"], m["last_seen"])
			}
		}},
		{"nil lists become []", bare, contract, func(t *testing.T, m map[string]any) {
			if _, ok := m["roles"].([]any); !ok {
				t.Errorf("roles = %#v, want []", m["roles"])
			}
			if _, ok := m["denied"].([]any); !ok {
				t.Errorf("denied = %#v, want []", m["denied"])
			}
		}},
		{"reload failure carries error", reload, append(slices.Clone(contract), "error"), func(t *testing.T, m map[string]any) {
			if m["event"] != "policy_reload_failed" || m["error"] != "policy.csv:3: bad line" {
				t.Errorf("event/error = %v/%v", m["event"], m["error"])
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(maps.Keys(m))
			if want := slices.Sorted(slices.Values(tc.wantKeys)); !slices.Equal(got, want) {
				t.Errorf("keys\n got %v\nwant %v", got, want)
			}
			tc.check(t, m)
		})
	}
}

func TestEventRoundTrip(t *testing.T) {
	in := sampleEvent()
	in.Count = 2
	in.FirstSeen, in.LastSeen = in.Time, in.Time.Add(time.Second)
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Event
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if !out.Time.Equal(in.Time) || out.User != in.User || out.Count != 2 || !slices.Equal(out.Denied, in.Denied) {
		t.Errorf("round trip changed the event:\n in %+v\nout %+v", in, out)
	}
}

func TestKindForMode(t *testing.T) {
	if KindForMode(ModeEnforce) != KindQueryBlocked || KindForMode(ModeMonitor) != KindQueryFlagged {
		t.Error("KindForMode pairs modes and kinds wrongly")
	}
}

func TestValidateEvent(t *testing.T) {
	withStmt := func(s string) Event { e := sampleEvent(); e.Statement = s; return e }
	tests := []struct {
		name    string
		e       Event
		wantErr string // substring; "" means valid
	}{
		{"normalized denial", sampleEvent(), ""},
		{"flagged in monitor", func() Event { e := sampleEvent(); e.Kind, e.Mode = KindQueryFlagged, ModeMonitor; return e }(), ""},
		{"reload failure needs no mode", Event{Kind: KindPolicyReloadFailed}, ""},
		{"catalog unavailable needs no mode", Event{Kind: KindCatalogUnavailable, Database: "app", Error: "timeout"}, ""},
		{"unknown kind", func() Event { e := sampleEvent(); e.Kind = "query_denied"; return e }(), "unknown event kind"},
		{"bad mode", func() Event { e := sampleEvent(); e.Mode = "audit"; return e }(), "mode"},
		{"kind contradicts mode", func() Event { e := sampleEvent(); e.Mode = ModeMonitor; return e }(), "does not match mode"},
		{"negative count", func() Event { e := sampleEvent(); e.Count = -1; return e }(), "negative count"},
		{"string literal", withStmt("SELECT a FROM t WHERE email = 'bob@example.com'"), "quoted string literal at byte 30"},
		{"number literal", withStmt("SELECT a FROM t WHERE id = 42"), "numeric literal at byte 27"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Validate() = %v, want ErrInvalidEvent containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestStoreEventsLogMessages(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		want string
	}{
		{KindPolicyStale, "policy stale"},
		{KindPolicyConfirmed, "policy confirmed"},
	} {
		if got := logMessage(tc.kind); got != tc.want {
			t.Errorf("log message of %s = %q, want %q", tc.kind, got, tc.want)
		}
		if err := (Event{Kind: tc.kind, Time: time.Now()}).Validate(); err != nil {
			t.Errorf("%s: %v", tc.kind, err)
		}
	}
}
