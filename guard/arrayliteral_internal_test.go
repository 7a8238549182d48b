package guard

import "testing"

// TestArrayLiteral: every name reaches the server as exactly itself,
// whatever quotes, backslashes, commas or braces it holds.
func TestArrayLiteral(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, `{}`},
		{[]string{"t"}, `{"t"}`},
		{[]string{"a", "B c"}, `{"a","B c"}`},
		{[]string{`q"uote`, `back\slash`, "{,}"}, `{"q\"uote","back\\slash","{,}"}`},
	} {
		if got := string(arrayLiteral(tc.names)); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.names, got, tc.want)
		}
	}
}
