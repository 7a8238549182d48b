package guard

import (
	"strings"
)

// PurposeParameter is the run-time parameter through which clients declare
// their purpose (contract §2).
const PurposeParameter = "pgguard.purpose"

// setting is one session-level value with PostgreSQL's SET semantics:
// a session value, a SET LOCAL value that lasts to the end of the
// transaction, and the value at the start of the transaction, to come back to
// when the transaction rolls back.
type setting struct {
	value string
	// known is false while the value is the server's default, which
	// pgguard learns elsewhere (search_path: from the catalog, per role).
	known      bool
	local      *string
	atTxStart  string
	knownAtTx  bool
	inTx       bool
	resetValue string // what RESET and SET ... TO DEFAULT return to: the value at session start
	resetKnown bool
}

func newSetting(initial string, known bool) setting {
	return setting{value: initial, known: known, resetValue: initial, resetKnown: known}
}

// current is the value in force now.
func (s *setting) current() (string, bool) {
	if s.local != nil {
		return *s.local, true
	}
	return s.value, s.known
}

// begin marks the start of a transaction, implicit or explicit.
func (s *setting) begin() {
	if !s.inTx {
		s.inTx, s.atTxStart, s.knownAtTx = true, s.value, s.known
	}
}

// end closes the transaction: SET LOCAL ends; a rollback undoes SETs. It
// reports whether the value in force changed.
func (s *setting) end(committed bool) bool {
	before, knownBefore := s.current()
	if s.inTx && !committed {
		s.value, s.known = s.atTxStart, s.knownAtTx
	}
	s.inTx, s.local = false, nil
	after, knownAfter := s.current()
	return before != after || knownBefore != knownAfter
}

func (s *setting) set(v string, local bool) {
	if local {
		s.local = &v
		return
	}
	s.value, s.known, s.local = v, true, nil
}

// reset is RESET, and SET ... TO DEFAULT outside a transaction's LOCAL.
func (s *setting) reset() {
	s.value, s.known, s.local = s.resetValue, s.resetKnown, nil
}

// startupOption returns the value of `-c name=value` (or `--name=value`) in a
// libpq options string, PostgreSQL's own parsing rules: words split on
// unescaped spaces, a backslash escapes the next character.
func startupOption(options, name string) (string, bool) {
	words := splitOptions(options)
	for i := 0; i < len(words); i++ {
		w := words[i]
		var kv string
		switch {
		case w == "-c" && i+1 < len(words):
			i++
			kv = words[i]
		case strings.HasPrefix(w, "-c"):
			kv = w[2:]
		case strings.HasPrefix(w, "--"):
			kv = w[2:]
		default:
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.EqualFold(strings.ReplaceAll(k, "-", "_"), name) {
			return v, true
		}
	}
	return "", false
}

func splitOptions(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped, inWord = true, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
