package proxy

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// bufferSize is the size of each side's read and write buffers: large
// enough to batch many small messages into one system call.
const bufferSize = 32 << 10

// frameReader reads typed, length-prefixed protocol messages.
type frameReader struct {
	r   bufReader
	buf []byte // reused for bodies read whole
	max int
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufReader{src: r}, max: max}
}

// MessageTooLargeError reports a message over the configured limit.
type MessageTooLargeError struct {
	Type  byte
	Size  int
	Limit int
}

func (e *MessageTooLargeError) Error() string {
	return fmt.Sprintf("message %q of %d bytes exceeds the limit of %d bytes", e.Type, e.Size, e.Limit)
}

// header reads a message's type and body length.
func (f *frameReader) header() (typ byte, n int, err error) {
	hdr, err := f.r.Peek(5)
	if err != nil {
		return 0, 0, err
	}
	// Decode before Discard: discarding the last buffered byte returns the
	// buffer, and hdr with it, to the pool.
	typ, n, err = decodeHeader(hdr)
	f.r.Discard(5)
	return typ, n, err
}

// decodeHeader reads a message's type and body length from its first five
// bytes.
func decodeHeader(hdr []byte) (typ byte, n int, err error) {
	typ = hdr[0]
	size := int(binary.BigEndian.Uint32(hdr[1:5]))
	if size < 4 {
		return typ, 0, fmt.Errorf("invalid length %d in message %q", size, typ)
	}
	return typ, size - 4, nil
}

// checkSize refuses a body of n bytes over max, for messages read whole.
func checkSize(typ byte, n, max int) error {
	if n > max {
		return &MessageTooLargeError{Type: typ, Size: n, Limit: max}
	}
	return nil
}

// body reads n bytes into the reusable buffer, within the size limit.
func (f *frameReader) body(typ byte, n int) ([]byte, error) {
	if err := checkSize(typ, n, f.max); err != nil {
		return nil, err
	}
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	b := f.buf[:n]
	if _, err := io.ReadFull(&f.r, b); err != nil {
		return nil, err
	}
	// Let one huge message not pin its buffer for the rest of the session.
	if cap(f.buf) > 1<<20 && n <= 1<<20 {
		f.buf = nil
	}
	return b, nil
}

// next reads one whole message.
func (f *frameReader) next() (byte, []byte, error) {
	typ, n, err := f.header()
	if err != nil {
		return 0, nil, err
	}
	b, err := f.body(typ, n)
	return typ, b, err
}

// writeFrame appends one message to w.
func writeFrame(w *bufWriter, typ byte, body []byte) error {
	if err := w.writeHeader(typ, len(body)); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// encode serialises a pgproto3 message; our messages always encode.
func encode(msg interface {
	Encode([]byte) ([]byte, error)
}) []byte {
	b, err := msg.Encode(nil)
	if err != nil {
		panic(fmt.Sprintf("proxy: encode %T: %v", msg, err))
	}
	return b
}

// fatal builds a FATAL ErrorResponse.
func fatal(code, msg string) []byte {
	return encode(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
}
