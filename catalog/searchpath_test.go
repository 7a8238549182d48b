package catalog_test

import (
	"slices"
	"testing"

	"github.com/pgguard/pgguard/catalog"
)

func TestParseSearchPath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`"$user", public`, []string{"$user", "public"}, true},
		{`"My Schema",app`, []string{"My Schema", "app"}, true},
		{`  App ,  PUBLIC  `, []string{"app", "public"}, true},
		{`"with ""quotes"", and comma"`, []string{`with "quotes", and comma`}, true},
		{`"Ünïcode", ÄBC`, []string{"Ünïcode", "Äbc"}, true},
		{``, []string{}, true},
		{`""`, []string{}, true},
		{`a,,b`, []string{"a", "b"}, true},
		{`"unterminated`, []string{}, false},
		{`a b`, []string{"a"}, false},
		{`"a"b`, []string{"a"}, false},
	} {
		got, ok := catalog.ParseSearchPath(tc.in)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("ParseSearchPath(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
