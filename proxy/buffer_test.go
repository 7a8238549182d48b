package proxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"testing/iotest"
)

// chunkedReader returns its data in reads of the given sizes, cycling.
type chunkedReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), c.sizes[c.i%len(c.sizes)])
	c.i++
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzBufReader checks that any mix of Peek, Discard and Read over any
// chunking returns the stream's bytes in order, and that the buffer is
// given back whenever nothing is held.
func FuzzBufReader(f *testing.F) {
	f.Add([]byte("hello, world"), []byte{1, 5, 200}, []byte{5, 3, 0, 9})
	f.Add(bytes.Repeat([]byte("x"), 3*bufferSize+7), []byte{255, 1}, []byte{200, 255, 17})
	f.Fuzz(func(t *testing.T, data, chunks, ops []byte) {
		if len(chunks) == 0 || len(ops) == 0 {
			return
		}
		sizes := make([]int, len(chunks))
		for i, c := range chunks {
			sizes[i] = int(c)*131 + 1
		}
		b := &bufReader{src: &chunkedReader{data: data, sizes: sizes}}
		scratch := make([]byte, bufferSize)
		var got []byte
		for i := 0; len(got) < len(data) && i < 10000; i++ {
			op := ops[i%len(ops)]
			n := int(op)*97%bufferSize + 1
			switch op % 3 {
			case 0:
				p, err := b.Peek(min(n, len(data)-len(got)))
				if err != nil {
					t.Fatalf("peek: %v", err)
				}
				got = append(got, p...)
				b.Discard(len(p))
			default:
				k, err := b.Read(scratch[:n])
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				got = append(got, scratch[:k]...)
			}
			if b.Buffered() == 0 && b.buf != nil {
				t.Fatal("an empty reader holds a pooled buffer")
			}
		}
		if !bytes.Equal(got, data[:len(got)]) || len(got) != len(data) {
			t.Fatalf("read %d bytes, not the stream's %d", len(got), len(data))
		}
	})
}

func TestBufReaderPassesErrors(t *testing.T) {
	b := &bufReader{src: iotest.ErrReader(io.ErrUnexpectedEOF)}
	if _, err := b.Peek(5); err != io.ErrUnexpectedEOF {
		t.Fatalf("Peek: %v", err)
	}
	if _, err := b.Peek(bufferSize + 1); err != errPeekTooLarge {
		t.Fatalf("Peek beyond the buffer: %v", err)
	}
}

func TestBufWriterBuffersAndReturnsItsBuffer(t *testing.T) {
	var out bytes.Buffer
	w := &bufWriter{dst: &out}
	big := bytes.Repeat([]byte("y"), 2*bufferSize+3)
	for _, p := range [][]byte{[]byte("small "), big, []byte(" end")} {
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if w.buf == nil {
		t.Fatal("the tail was not buffered")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte("small "), big...), " end"...)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wrote %d bytes, want %d in order", out.Len(), len(want))
	}
	if w.buf != nil {
		t.Fatal("Flush kept the pooled buffer")
	}
	// A large write with nothing buffered goes straight through.
	out.Reset()
	if _, err := w.Write(big); err != nil || w.buf != nil || out.Len() != len(big) {
		t.Fatalf("direct write: err %v, buffered %v, wrote %d", err, w.buf != nil, out.Len())
	}
}

// TestFrameReaderHeaderEmptiesItsBuffer reads frames whose header is the
// last buffered data, so consuming it returns the buffer to the pool: the
// header must be decoded first. Released buffers are poisoned here, so a
// header decoded after its release reads 0xff bytes and fails.
func TestFrameReaderHeaderEmptiesItsBuffer(t *testing.T) {
	// Poisoning on now; the previous setting back when the test ends.
	defer poisonReleased.Store(poisonReleased.Swap(true))

	var stream []byte
	bodies := [][]byte{[]byte("SELECT 1\x00"), {}, bytes.Repeat([]byte("z"), 700)}
	for i, body := range bodies {
		stream = append(stream, byte('A'+i), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(stream[len(stream)-4:], uint32(len(body)+4))
		stream = append(stream, body...)
	}
	for _, sizes := range [][]int{{5, 9, 5, 5, 700}, {5, 1}, {1}} {
		f := newFrameReader(&chunkedReader{data: stream, sizes: sizes}, 1<<20)
		for i, want := range bodies {
			typ, body, err := f.next()
			if err != nil {
				t.Fatalf("reads of %v: message %d: %v", sizes, i, err)
			}
			if typ != byte('A'+i) || !bytes.Equal(body, want) {
				t.Fatalf("reads of %v: message %d is %q %q, want %q %q", sizes, i, typ, body, byte('A'+i), want)
			}
		}
	}
}
