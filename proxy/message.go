package proxy

import "bytes"

// The proxy is the one reader of the wire protocol: it decodes the parts of
// the messages it relays that an interceptor decides on, and hands them
// over as slices of the message's own bytes. An interceptor reads no
// message bodies itself, so its view of a message cannot differ from the
// proxy's.

// NewClientMessage is a client message as the proxy hands it to an
// interceptor; segment is as ClientMessage.Segment. Interceptors' tests use
// it to build messages.
func NewClientMessage(typ byte, body []byte, segment uint64) ClientMessage {
	return ClientMessage{Type: typ, Body: body, Segment: segment}
}

// QueryText returns a Query's SQL; ok is false when the body is not one
// (the server refuses such a message).
func (m ClientMessage) QueryText() (text []byte, ok bool) {
	if m.Type != 'Q' {
		return nil, false
	}
	return cstring(m.Body)
}

// Parse returns a Parse's statement name and SQL; ok is false when the
// body is not a well-formed Parse.
func (m ClientMessage) Parse() (name, text []byte, ok bool) {
	if m.Type != 'P' {
		return nil, nil, false
	}
	name, text, rest, ok := cutTwo(m.Body)
	if !ok || len(rest) < 2 || len(rest)-2 < 4*(int(rest[0])<<8|int(rest[1])) {
		return nil, nil, false
	}
	return name, text, true
}

// Bind returns the portal a Bind creates and the prepared statement it
// binds; ok is false when the body is not a well-formed Bind's start.
func (m ClientMessage) Bind() (portal, statement []byte, ok bool) {
	if m.Type != 'B' {
		return nil, nil, false
	}
	portal, statement, _, ok = cutTwo(m.Body)
	return portal, statement, ok
}

// Portal returns the portal an Execute runs.
func (m ClientMessage) Portal() (name []byte, ok bool) {
	if m.Type != 'E' {
		return nil, false
	}
	return cstring(m.Body)
}

// Target returns what a Close or Describe names: kind 'S' for a prepared
// statement or 'P' for a portal, and its name.
func (m ClientMessage) Target() (kind byte, name []byte, ok bool) {
	if (m.Type != 'C' && m.Type != 'D') || len(m.Body) < 2 || (m.Body[0] != 'S' && m.Body[0] != 'P') {
		return 0, nil, false
	}
	name, ok = cstring(m.Body[1:])
	return m.Body[0], name, ok
}

// cstring returns b up to its first NUL; ok is false without one.
func cstring(b []byte) ([]byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, false
	}
	return b[:i], true
}

// cutTwo splits off the first two NUL-terminated strings of b.
func cutTwo(b []byte) (first, second, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, nil, false
	}
	j := bytes.IndexByte(b[i+1:], 0)
	if j < 0 {
		return nil, nil, nil, false
	}
	return b[:i], b[i+1 : i+1+j], b[i+2+j:], true
}

// NewServerMessage decodes a server message as the proxy hands it to an
// interceptor.
func NewServerMessage(typ byte, body []byte) ServerMessage {
	m := ServerMessage{Type: typ, Body: body}
	switch typ {
	case 'Z':
		if len(body) == 1 {
			m.TxStatus = body[0]
		}
	case 'C':
		m.Tag, _ = cstring(body)
	}
	return m
}

// ErrorFields are the fields of an ErrorResponse an interceptor decides
// on, as slices of the message's body.
type ErrorFields struct {
	// Code is the SQLSTATE.
	Code []byte
	// Message is the primary message.
	Message []byte
	// Detail is the DETAIL field; HasDetail tells an empty one from none.
	Detail    []byte
	HasDetail bool
	// Schema, Table and Constraint name the object an integrity error is
	// about, where the server reports them.
	Schema, Table, Constraint []byte
}

// DecodeErrorFields reads an ErrorResponse or NoticeResponse body without
// copying; ok is false for a malformed body.
func DecodeErrorFields(body []byte) (f ErrorFields, ok bool) {
	for len(body) > 0 && body[0] != 0 {
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			return f, false
		}
		v := body[1 : 1+end]
		switch body[0] {
		case 'C':
			f.Code = v
		case 'M':
			f.Message = v
		case 'D':
			f.Detail, f.HasDetail = v, true
		case 's':
			f.Schema = v
		case 't':
			f.Table = v
		case 'n':
			f.Constraint = v
		}
		body = body[2+end:]
	}
	return f, len(body) == 1
}

// ReplaceErrorField returns a copy of a well-formed ErrorResponse body with
// every field of type code set to value, the other fields unchanged and in
// their order.
func ReplaceErrorField(body []byte, code byte, value string) []byte {
	out := make([]byte, 0, len(body)+len(value))
	for len(body) > 0 && body[0] != 0 {
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			break
		}
		if body[0] == code {
			out = append(append(append(out, code), value...), 0)
		} else {
			out = append(out, body[:2+end]...)
		}
		body = body[2+end:]
	}
	return append(out, 0)
}
