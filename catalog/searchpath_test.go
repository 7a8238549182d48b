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
		// PostgreSQL refuses an empty unquoted name.
		{`a,,b`, []string{"a"}, false},
		{`a,`, []string{"a"}, false},
		// A vertical tab is part of a name up to PostgreSQL 15 and white
		// space from 16 on: neither is guessed.
		{"decoy\v,hr", []string{}, false},
		{"decoy,\vhr", []string{"decoy"}, false},
		{"decoy \v, hr", []string{"decoy"}, false},
		{"\"de\vcoy\", hr", []string{"de\vcoy", "hr"}, true},
		{"a\f,\tb", []string{"a", "b"}, true},
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
