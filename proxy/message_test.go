package proxy_test

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/proxy"
)

func body(t testing.TB, m pgproto3.FrontendMessage) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b[5:]
}

func TestNewClientMessageDecodes(t *testing.T) {
	cases := []struct {
		name                    string
		typ                     byte
		body                    []byte
		text, statement, portal string
		target                  byte
		malformed               bool
	}{
		{"query", 'Q', body(t, &pgproto3.Query{String: "SELECT 1"}), "SELECT 1", "", "", 0, false},
		{"parse", 'P', body(t, &pgproto3.Parse{Name: "s1", Query: "SELECT $1", ParameterOIDs: []uint32{23}}), "SELECT $1", "s1", "", 0, false},
		{"bind", 'B', body(t, &pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1"}), "", "s1", "p1", 0, false},
		{"close statement", 'C', body(t, &pgproto3.Close{ObjectType: 'S', Name: "s1"}), "", "s1", "", 'S', false},
		{"describe portal", 'D', body(t, &pgproto3.Describe{ObjectType: 'P', Name: "p1"}), "", "", "p1", 'P', false},
		{"sync", 'S', nil, "", "", "", 0, false},
		{"query without terminator", 'Q', []byte("SELECT 1"), "", "", "", 0, true},
		{"parse without parameter count", 'P', []byte("s1\x00SELECT 1\x00"), "", "", "", 0, true},
		{"parse with too few parameter types", 'P', []byte("s1\x00SELECT 1\x00\x00\x02\x00\x00\x00\x17"), "", "", "", 0, true},
		{"bind cut short", 'B', []byte("p1\x00s1"), "", "", "", 0, true},
		{"close of an unknown kind", 'C', []byte("Xs1\x00"), "", "", "", 0, true},
	}
	for _, c := range cases {
		m := proxy.NewClientMessage(c.typ, c.body, 7)
		var text, statement, portal []byte
		var target byte
		ok := true
		switch c.typ {
		case 'Q':
			text, ok = m.QueryText()
		case 'P':
			statement, text, ok = m.Parse()
		case 'B':
			portal, statement, ok = m.Bind()
		case 'C', 'D':
			var name []byte
			target, name, ok = m.Target()
			if target == 'S' {
				statement = name
			} else {
				portal = name
			}
		case 'E':
			continue
		}
		if ok == c.malformed {
			t.Errorf("%s: ok %v, want malformed %v", c.name, ok, c.malformed)
			continue
		}
		if ok && (string(text) != c.text || string(statement) != c.statement || string(portal) != c.portal || target != c.target) {
			t.Errorf("%s: text %q statement %q portal %q target %q", c.name, text, statement, portal, target)
		}
	}
}

func TestNewServerMessageDecodes(t *testing.T) {
	if m := proxy.NewServerMessage('Z', []byte{'T'}); m.TxStatus != 'T' {
		t.Errorf("ReadyForQuery: %+v", m)
	}
	if m := proxy.NewServerMessage('C', []byte("INSERT 0 1\x00")); string(m.Tag) != "INSERT 0 1" {
		t.Errorf("CommandComplete: %+v", m)
	}
}

// ReplaceErrorField changes the one field and nothing else: every other
// field, unknown ones included, keeps its bytes and its place.
func TestReplaceErrorFieldKeepsEveryOtherField(t *testing.T) {
	e := &pgproto3.ErrorResponse{Severity: "FEHLER", SeverityUnlocalized: "ERROR", Code: "23505",
		Message: "doppelter Schlüsselwert", Detail: "Schlüssel »(iban)=(NL00BANK0123456789)« existiert bereits.",
		Hint: "h", SchemaName: "crm", TableName: "customers", ConstraintName: "customers_iban_key",
		File: "nbtinsert.c", Line: 666, Routine: "_bt_check_unique",
		UnknownFields: map[byte]string{'X': "future"}}
	full, err := e.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := full[5:]
	f, ok := proxy.DecodeErrorFields(b)
	if !ok || string(f.Code) != "23505" || string(f.Schema) != "crm" || string(f.Table) != "customers" ||
		string(f.Constraint) != "customers_iban_key" || !f.HasDetail {
		t.Fatalf("decoded %+v, ok %v", f, ok)
	}
	const withheld = "removed"
	out := proxy.ReplaceErrorField(b, 'D', withheld)
	want := bytes.Replace(b, []byte("D"+e.Detail+"\x00"), []byte("D"+withheld+"\x00"), 1)
	if !bytes.Equal(out, want) {
		t.Fatalf("replaced:\n%q\nwant\n%q", out, want)
	}
}

func TestDecodeErrorFieldsRefusesMalformedBodies(t *testing.T) {
	for _, b := range []string{"", "C23505", "C23505\x00", "C23505\x00\x00extra", "D\x00t"} {
		if _, ok := proxy.DecodeErrorFields([]byte(b)); ok {
			t.Errorf("%q accepted", b)
		}
	}
}

// FuzzDecode: no body makes the decoders panic, and what they return lies
// within the body.
func FuzzDecode(f *testing.F) {
	f.Add(byte('P'), []byte("s\x00SELECT 1\x00\x00\x00"))
	f.Add(byte('B'), []byte("\x00s\x00\x00\x00"))
	f.Add(byte('C'), []byte("Ss\x00"))
	f.Add(byte('E'), []byte("C23505\x00Dx\x00\x00"))
	f.Fuzz(func(t *testing.T, typ byte, b []byte) {
		m := proxy.NewClientMessage(typ, b, 1)
		q, _ := m.QueryText()
		pn, pt, _ := m.Parse()
		bp, bs, _ := m.Bind()
		_, tn, _ := m.Target()
		for _, part := range [][]byte{q, pn, pt, bp, bs, tn} {
			if len(part) > 0 && !bytes.Contains(b, part) {
				t.Fatalf("%q is not part of the body", part)
			}
		}
		if e, ok := proxy.DecodeErrorFields(b); ok {
			if out := proxy.ReplaceErrorField(b, 'D', "x"); e.HasDetail && !bytes.Contains(out, []byte("Dx\x00")) {
				t.Fatalf("no replaced detail in %q", out)
			}
		}
		proxy.NewServerMessage(typ, b)
	})
}
