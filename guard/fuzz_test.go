package guard

import (
	"testing"

	"github.com/pgguard/pgguard/proxy"
)

// FuzzClientMessage feeds arbitrary message bodies to a session: whatever a
// client sends, the guard must answer without panicking, and a message it
// could not read must not be forwarded as if it were harmless SQL.
func FuzzClientMessage(f *testing.F) {
	f.Add(byte('Q'), []byte("SELECT email FROM crm.customers\x00"))
	f.Add(byte('P'), []byte("s\x00SELECT 1\x00\x00\x00"))
	f.Add(byte('B'), []byte("\x00s\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(byte('B'), []byte("no terminator"))
	f.Add(byte('C'), []byte("S"))
	f.Add(byte('P'), []byte("\x00"))
	f.Add(byte('F'), []byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		s := benchSessionT(t)
		v := s.ClientMessage(proxy.NewClientMessage(typ, body, 0))
		if v.Action == proxy.Deny && v.Error == nil {
			t.Fatal("denial without an error for the client")
		}
		if typ == 'F' && v.Action != proxy.Deny {
			t.Fatal("fast-path call forwarded")
		}
	})
}
