//go:build !linux

package proxy

// Event loops are built on epoll: elsewhere every session is relayed by its
// two pumps.

type loopGroup struct{}

func newLoopGroup(int) *loopGroup { return nil }

func (g *loopGroup) close() {}

type loopSession struct{}

func (s *loopSession) stop() {}

func (c *conn) relayOnLoop() (bool, error) { return false, nil }
