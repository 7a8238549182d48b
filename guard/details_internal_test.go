package guard

import (
	"testing"

	"github.com/pgguard/pgguard/proxy"
)

func TestMayShowRows(t *testing.T) {
	for code, want := range map[string]bool{"23505": true, "44000": true, "22012": false} {
		f, ok := proxy.DecodeErrorFields([]byte("C" + code + "\x00Dx\x00\x00"))
		if !ok || mayShowRows(&f) != want {
			t.Errorf("%s: ok %v, want may show rows %v", code, ok, want)
		}
	}
	f, _ := proxy.DecodeErrorFields([]byte("C22012\x00tcustomers\x00Dx\x00\x00"))
	if !mayShowRows(&f) {
		t.Error("an error that names a table may show its rows")
	}
}
