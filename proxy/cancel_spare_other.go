//go:build !unix

package proxy

// spareSupported: without a way to peek at a socket a spare could not be
// checked before use, so every cancel opens its own connection.
const spareSupported = false

func peekWouldBlock(uintptr) bool { return false }
