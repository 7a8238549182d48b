package guard

import "unicode/utf8"

// A statement's shape is its text with the values of its literal constants
// blanked out. Applications that put values into their SQL text (the
// simple protocol, client-side interpolation) send a new text for every
// value, which an exact-text cache never matches; their shapes repeat.
//
// Reusing a verdict for another text of the same shape is sound because the
// analysis never looks at a literal's value except where the statement has
// a session effect (SET, set_config), and such verdicts are never stored by
// shape. It is only safe if the shape is cut exactly where PostgreSQL's
// lexer would cut, so literalSpans accepts only the plain forms whose ends
// are certain (standard strings with standard_conforming_strings on,
// decimal numbers) and gives up on everything else: escape strings,
// dollar quotes, Unicode escapes, bit and hex strings, numbers run into
// names. A test holds it to PostgreSQL's own lexer.

// span is the byte range [start, end) of one literal.
type span struct{ start, end int }

// literalSpans returns where text's literal constants are, or false when it
// cannot say for certain.
func literalSpans(text []byte, out []span) ([]span, bool) {
	if !utf8.Valid(text) {
		return nil, false
	}
	prevIdent := false // the previous byte continues a name or a number
	for i := 0; i < len(text); {
		c := text[i]
		var end int
		var ok bool
		switch {
		case c == 0:
			return nil, false // ends the text for PostgreSQL; and it is the blank
		case c == '\'':
			if prevIdent {
				return nil, false // E'', B'', X'', N'' or a name run into a string
			}
			if end, ok = endOfContinuedString(text, i); !ok {
				return nil, false
			}
			out = append(out, span{i, end})
		case c == '"':
			if end, ok = endOfQuoted(text, i); !ok {
				return nil, false
			}
		case c == '-' && at(text, i+1) == '-':
			end = endOfLine(text, i)
		case c == '/' && at(text, i+1) == '*':
			if end, ok = endOfComment(text, i); !ok {
				return nil, false
			}
		case c == '&' && (at(text, i+1) == '\'' || at(text, i+1) == '"'):
			return nil, false // U&'' and U&"", whose UESCAPE clause is a literal
		case c == '$' && !prevIdent && !isDigit(at(text, i+1)):
			return nil, false // a dollar-quoted string
		case c == '$' && !prevIdent:
			// A parameter: $ and digits, after which a $ starts a quote
			// rather than continuing a name.
			end = digits(text, i+1)
			if isIdentByte(at(text, end)) {
				return nil, false
			}
		case c == '.' && isDigit(at(text, i+1)):
			return nil, false // .5 is a number, even right after a name
		case isDigit(c) && !prevIdent:
			if end, ok = endOfNumber(text, i); !ok {
				return nil, false
			}
			out = append(out, span{i, end})
		default:
			prevIdent = isIdentByte(c)
			i++
			continue
		}
		prevIdent = false
		i = end
	}
	return out, true
}

// endOfContinuedString finds the end of a string constant, which goes on
// in a next quoted part after white space that holds a newline.
func endOfContinuedString(text []byte, i int) (int, bool) {
	end, ok := endOfString(text, i)
	for ok {
		j, newline := end, false
		for ; j < len(text) && isSpace(text[j]); j++ {
			newline = newline || text[j] == '\n' || text[j] == '\r'
		}
		switch {
		case !newline:
			return end, true
		case at(text, j) == '\'':
			end, ok = endOfString(text, j)
		case at(text, j) == '-' && at(text, j+1) == '-':
			return 0, false // a comment may stand between the parts
		default:
			return end, true
		}
	}
	return 0, false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// endOfString finds the end of a standard string: doubled quotes stay in.
func endOfString(text []byte, i int) (int, bool) {
	for j := i + 1; j < len(text); j++ {
		if text[j] == '\'' {
			if at(text, j+1) == '\'' {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return 0, false
}

func endOfQuoted(text []byte, i int) (int, bool) {
	for j := i + 1; j < len(text); j++ {
		if text[j] == '"' {
			if at(text, j+1) == '"' {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return 0, false
}

func endOfLine(text []byte, i int) int {
	for j := i; j < len(text); j++ {
		if text[j] == '\n' || text[j] == '\r' {
			return j
		}
	}
	return len(text)
}

// endOfComment finds the end of a block comment; they nest.
func endOfComment(text []byte, i int) (int, bool) {
	depth := 0
	for j := i; j < len(text)-1; j++ {
		switch {
		case text[j] == '/' && text[j+1] == '*':
			depth++
			j++
		case text[j] == '*' && text[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1, true
			}
		}
	}
	return 0, false
}

// endOfNumber finds the end of digits[.digits][e[+-]digits], refusing a
// number that runs into a name, an underscore or another dot.
func endOfNumber(text []byte, i int) (int, bool) {
	j := digits(text, i)
	if at(text, j) == '.' && at(text, j+1) != '.' {
		j = digits(text, j+1)
	}
	if c := at(text, j); c == 'e' || c == 'E' {
		k := j + 1
		if c := at(text, k); c == '+' || c == '-' {
			k++
		}
		if !isDigit(at(text, k)) {
			return 0, false
		}
		j = digits(text, k)
	}
	if c := at(text, j); isIdentByte(c) || c == '.' {
		return 0, false
	}
	return j, true
}

func digits(text []byte, i int) int {
	for i < len(text) && isDigit(text[i]) {
		i++
	}
	return i
}

func at(text []byte, i int) byte {
	if i < len(text) {
		return text[i]
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || isDigit(c) || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// shapeKey appends text's shape to buf: each literal becomes a NUL byte,
// which no statement text can hold (the protocol ends texts at NUL).
func shapeKey(text []byte, spans []span, buf []byte) []byte {
	prev := 0
	for _, sp := range spans {
		buf = append(buf, text[prev:sp.start]...)
		buf = append(buf, 0)
		prev = sp.end
	}
	return append(buf, text[prev:]...)
}
