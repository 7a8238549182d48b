package sqlscan

import (
	"strings"
	"unicode/utf8"
)

// encodingClass says how safely pg_query, which reads UTF-8, can read
// text sent in a client encoding.
type encodingClass int

const (
	// The zero class is an encoding the table below does not name.
	_ encodingClass = iota
	// encUTF8: read as is; the text must be valid UTF-8.
	encUTF8
	// encASCIISafe: single-byte or EUC-style encodings whose non-ASCII
	// characters use only bytes >= 0x80. Tokens split the same, but names
	// and strings with such bytes would be read wrongly, so only 7-bit
	// ASCII text is accepted.
	encASCIISafe
	// encUnsafe: encodings whose multibyte characters may contain bytes
	// like \ or ' (0x5C, 0x27): the server may end a string where pg_query
	// does not. Never accepted.
	encUnsafe
)

// encodings maps PostgreSQL's encoding names and aliases, cleaned as
// PostgreSQL cleans them (lower case, letters and digits only), to their
// class.
var encodings = map[string]encodingClass{
	"utf8": encUTF8, "unicode": encUTF8,
	"sqlascii": encASCIISafe, "muleinternal": encASCIISafe,
	"eucjp": encASCIISafe, "euccn": encASCIISafe, "euckr": encASCIISafe, "euctw": encASCIISafe,
	"eucjis2004": encASCIISafe,
	"latin1":     encASCIISafe, "latin2": encASCIISafe, "latin3": encASCIISafe, "latin4": encASCIISafe,
	"latin5": encASCIISafe, "latin6": encASCIISafe, "latin7": encASCIISafe, "latin8": encASCIISafe,
	"latin9": encASCIISafe, "latin10": encASCIISafe,
	"iso88591": encASCIISafe, "iso88592": encASCIISafe, "iso88593": encASCIISafe, "iso88594": encASCIISafe,
	"iso88595": encASCIISafe, "iso88596": encASCIISafe, "iso88597": encASCIISafe, "iso88598": encASCIISafe,
	"iso88599": encASCIISafe, "iso885910": encASCIISafe, "iso885913": encASCIISafe, "iso885914": encASCIISafe,
	"iso885915": encASCIISafe, "iso885916": encASCIISafe,
	"win": encASCIISafe, "win866": encASCIISafe, "win874": encASCIISafe, "win1250": encASCIISafe,
	"win1251": encASCIISafe, "win1252": encASCIISafe, "win1253": encASCIISafe, "win1254": encASCIISafe,
	"win1255": encASCIISafe, "win1256": encASCIISafe, "win1257": encASCIISafe, "win1258": encASCIISafe,
	"windows866": encASCIISafe, "windows874": encASCIISafe, "windows1250": encASCIISafe,
	"windows1251": encASCIISafe, "windows1252": encASCIISafe, "windows1253": encASCIISafe,
	"windows1254": encASCIISafe, "windows1255": encASCIISafe, "windows1256": encASCIISafe,
	"windows1257": encASCIISafe, "windows1258": encASCIISafe,
	"alt": encASCIISafe, "tcvn": encASCIISafe, "tcvn5712": encASCIISafe, "vscii": encASCIISafe,
	"abc": encASCIISafe, "koi8": encASCIISafe, "koi8r": encASCIISafe, "koi8u": encASCIISafe,
	"sjis": encUnsafe, "shiftjis": encUnsafe, "mskanji": encUnsafe, "shiftjis2004": encUnsafe,
	"big5": encUnsafe, "gbk": encUnsafe, "cp936": encUnsafe, "uhc": encUnsafe, "cp949": encUnsafe,
	"gb18030": encUnsafe, "johab": encUnsafe, "cp932": encUnsafe,
}

// cleanEncodingName folds an encoding name as PostgreSQL's
// clean_encoding_name does: lower case, non-alphanumerics dropped.
func cleanEncodingName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CheckLexical reports whether the server would read sql exactly as
// pg_query does, given the session's standard_conforming_strings and
// client_encoding (as the server reported them in ParameterStatus). It
// returns nil when it would, else a Denial with code lexical.
//
//   - standard_conforming_strings on, or text without any backslash: with
//     it off, a backslash in '...' escapes the quote and the string ends
//     elsewhere for the server; without a backslash both modes split and
//     read every string the same way. An empty value (not yet known) is
//     treated like off.
//   - client_encoding UTF8: the text must be valid UTF-8.
//   - single-byte and EUC encodings (LATIN1..10, WIN125x, ISO_8859_*,
//     KOI8R/U, EUC_*, SQL_ASCII, MULE_INTERNAL): only pure 7-bit ASCII
//     text, since names and strings with other bytes would be decoded
//     differently.
//   - SJIS, BIG5, GBK, UHC, GB18030, JOHAB, whose characters may contain
//     the bytes of \ and ': never. An unknown encoding name: never.
//
// A NUL byte is refused always: the server never sees text past it.
func CheckLexical(sql string, standardConformingStrings, clientEncoding string) *Denial {
	if strings.IndexByte(sql, 0) >= 0 {
		return &Denial{Code: CodeLexical, Reason: "the statement contains a NUL byte"}
	}
	switch strings.ToLower(strings.TrimSpace(standardConformingStrings)) {
	case "on", "true", "yes", "1":
	case "":
		if strings.IndexByte(sql, '\\') >= 0 {
			return &Denial{Code: CodeLexical, Reason: "standard_conforming_strings is not known and the statement contains a backslash"}
		}
	default:
		if strings.IndexByte(sql, '\\') >= 0 {
			return &Denial{Code: CodeLexical, Reason: "standard_conforming_strings is off and the statement contains a backslash, which strings would read differently"}
		}
	}
	switch encodings[cleanEncodingName(clientEncoding)] {
	case encUTF8:
		if !utf8.ValidString(sql) {
			return &Denial{Code: CodeLexical, Reason: "the statement is not valid UTF-8"}
		}
	case encASCIISafe:
		if !isASCII(sql) {
			return &Denial{Code: CodeLexical, Reason: "client_encoding " + clientEncoding + " with non-ASCII text"}
		}
	case encUnsafe:
		return &Denial{Code: CodeLexical, Reason: "client_encoding " + clientEncoding + " may hide quotes and backslashes inside characters"}
	default:
		return &Denial{Code: CodeLexical, Reason: "client_encoding is not a known encoding"}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
