//go:build linux

package proxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzLoopChunking: however the bytes of a message stream arrive (split
// inside headers, inside state messages, inside long streamed rows), a loop
// session forwards exactly the stream it was given, in both directions.
// The seed picks the messages (type and length) and the chunk sizes.
func FuzzLoopChunking(f *testing.F) {
	f.Add([]byte{0, 10, 1, 200, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{5, 255, 255, 3, 0, 1, 250, 7, 7, 7})
	f.Add(bytes.Repeat([]byte{9, 128, 1}, 20))
	f.Fuzz(func(t *testing.T, seed []byte) {
		if len(seed) == 0 {
			return
		}
		for _, toServer := range []bool{false, true} {
			types := []byte("ZSECDTNAdI")
			if toServer {
				types = []byte("QPBDECSHdcf")
			}
			stream := messageStream(seed, types)
			got := relayInChunks(t, stream, chunkSizes(seed), toServer)
			if !bytes.Equal(got, stream) {
				t.Fatalf("toServer=%v: forwarded %d bytes, want the %d given (first difference at %d)",
					toServer, len(got), len(stream), firstDifference(got, stream))
			}
		}
	})
}

// messageStream builds well-framed messages of the given types from seed;
// some are longer than the loop's read buffer.
func messageStream(seed, types []byte) []byte {
	var out []byte
	for i := 0; i+1 < len(seed) && len(out) < 1<<20; i += 2 {
		typ := types[int(seed[i])%len(types)]
		n := int(seed[i+1]) * int(seed[i+1]) * 3 // 0 to about 195 KB
		if typ == 'Z' {
			n = 1
		}
		body := bytes.Repeat([]byte{byte('a' + i%26)}, n)
		if typ == 'S' || typ == 'E' {
			body = append(body, 0)
		}
		out = append(out, typ, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(out[len(out)-4:], uint32(len(body)+4))
		out = append(out, body...)
	}
	return out
}

func chunkSizes(seed []byte) []int {
	sizes := make([]int, len(seed))
	for i, b := range seed {
		sizes[i] = 1 + int(b)*int(b)
	}
	return sizes
}

// relayInChunks feeds stream to a loop session in chunks and returns what
// the session wrote to the other side.
func relayInChunks(t *testing.T, stream []byte, sizes []int, toServer bool) []byte {
	l, err := newEventLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.shut()
	fd, peer := loopSocket(t)
	defer peer.Close()
	received := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		received <- b
	}()

	// The side that must stay silent has no socket: a write there fails.
	s := testLoopSession(l, fd, -1)
	side := &s.client
	if toServer {
		s = testLoopSession(l, -1, fd)
		side = &s.server
	}
	c := s.c

	for i := 0; len(stream) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(stream))
		chunk := append([]byte(nil), stream[:n]...) // the loop's read buffer is reused
		stream = stream[n:]
		if toServer {
			s.clientBytes(chunk)
		} else {
			s.serverBytes(chunk)
		}
		if s.ended || s.paused {
			t.Fatalf("session ended=%v paused=%v on a well-framed stream", s.ended, s.paused)
		}
		if err := c.sw.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := c.cw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, side)
	unix.Close(fd)
	return <-received
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
