package proxy

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// Sessions borrow their read and write buffers from a pool while traffic
// flows and return them before they wait: an idle session, which is most
// sessions of a connection pool most of the time, then holds a few hundred
// bytes instead of four 32 KiB buffers.
var bufferPool = sync.Pool{New: func() any {
	b := make([]byte, bufferSize)
	return &b
}}

// poisonReleased makes putBuffer overwrite every buffer it returns. Tests
// set it, so that a slice still used after its buffer went back to the pool
// reads garbage at once instead of passing until another session reuses
// the buffer.
var poisonReleased atomic.Bool

// putBuffer returns b to the pool; no slice of it may be used afterwards.
func putBuffer(b *[]byte) {
	if poisonReleased.Load() {
		for i := range *b {
			(*b)[i] = 0xff
		}
	}
	bufferPool.Put(b)
}

// idleReadSize is what a reader keeps for the read it blocks in while idle.
const idleReadSize = 512

// errPeekTooLarge is returned by Peek for more than one buffer's worth.
var errPeekTooLarge = errors.New("proxy: peek beyond the buffer size")

// bufReader is a buffered reader whose buffer is borrowed only while unread
// data is held.
type bufReader struct {
	src  io.Reader
	buf  *[]byte // nil while idle
	r, w int     // unread data is (*buf)[r:w]
	idle [idleReadSize]byte
}

// Buffered is the number of bytes that can be read without blocking.
func (b *bufReader) Buffered() int { return b.w - b.r }

// fill reads at least one more byte, keeping what is unread.
func (b *bufReader) fill() error {
	if b.r == b.w {
		return b.fillIdle()
	}
	buf := *b.buf
	if b.r > 0 {
		b.w = copy(buf, buf[b.r:b.w])
		b.r = 0
	}
	n, err := b.src.Read(buf[b.w:])
	b.w += n
	if n > 0 {
		return nil
	}
	return readErr(err)
}

// fillIdle returns the buffer, waits with the small one, and borrows again
// once data arrived.
func (b *bufReader) fillIdle() error {
	b.release()
	n, err := b.src.Read(b.idle[:])
	if n == 0 {
		return readErr(err)
	}
	b.buf = bufferPool.Get().(*[]byte)
	b.r, b.w = 0, copy(*b.buf, b.idle[:n])
	return nil
}

func (b *bufReader) release() {
	if b.buf != nil {
		putBuffer(b.buf)
		b.buf = nil
	}
	b.r, b.w = 0, 0
}

func readErr(err error) error {
	if err == nil {
		return io.ErrNoProgress
	}
	return err
}

// take returns a copy of the buffered bytes and empties the reader.
func (b *bufReader) take() []byte {
	if b.r == b.w {
		b.release()
		return nil
	}
	out := append([]byte(nil), (*b.buf)[b.r:b.w]...)
	b.release()
	return out
}

// Peek returns the next n bytes without consuming them; n is at most
// bufferSize.
func (b *bufReader) Peek(n int) ([]byte, error) {
	if n > bufferSize {
		return nil, errPeekTooLarge
	}
	for b.w-b.r < n {
		if err := b.fill(); err != nil {
			return nil, err
		}
	}
	return (*b.buf)[b.r : b.r+n], nil
}

// Discard skips n buffered bytes; n must not exceed Buffered. Slices from
// Peek are invalid afterwards: the buffer goes back to the pool once empty.
func (b *bufReader) Discard(n int) {
	b.r += n
	if b.r == b.w {
		b.release()
	}
}

// Read implements io.Reader, serving buffered bytes first.
func (b *bufReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if len(p) >= bufferSize {
			b.release()
			return b.src.Read(p) // a large read needs no staging
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*b.buf)[b.r:b.w])
	b.Discard(n)
	return n, nil
}

// bufWriter is a buffered writer whose buffer is borrowed from the first
// write until the flush.
type bufWriter struct {
	dst io.Writer
	buf *[]byte
	n   int
}

// Write buffers p, writing out full buffers.
func (w *bufWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			if len(p) >= bufferSize {
				n, err := w.dst.Write(p) // nothing buffered: no need to copy
				return written + n, err
			}
			w.buf = bufferPool.Get().(*[]byte)
		}
		c := copy((*w.buf)[w.n:], p)
		w.n += c
		written += c
		p = p[c:]
		if w.n == len(*w.buf) {
			if err := w.Flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// writeHeader appends a message header for a body of n bytes. It writes
// into the buffer itself: a header passed to Write would escape to the heap
// through the destination's interface, one allocation per message.
func (w *bufWriter) writeHeader(typ byte, n int) error {
	if w.buf != nil && len(*w.buf)-w.n < 5 {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if w.buf == nil {
		w.buf = bufferPool.Get().(*[]byte)
	}
	b := (*w.buf)[w.n : w.n+5]
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(n+4))
	w.n += 5
	return nil
}

// Flush writes what is buffered and returns the buffer.
func (w *bufWriter) Flush() error {
	if w.buf == nil {
		return nil
	}
	if w.n > 0 {
		if _, err := w.dst.Write((*w.buf)[:w.n]); err != nil {
			return err
		}
	}
	putBuffer(w.buf)
	w.buf, w.n = nil, 0
	return nil
}
