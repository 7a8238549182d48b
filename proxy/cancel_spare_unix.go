//go:build unix

package proxy

import "syscall"

// spareSupported: the liveness check of a spare peeks at its socket.
const spareSupported = true

// peekWouldBlock peeks at socket fd without waiting: true when nothing,
// not even an end of stream, is there to read.
func peekWouldBlock(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
}
