package proxy

// Orphaned server work. PostgreSQL notices that a client is gone only when
// it next reads from or writes to it, so a statement whose client left, or
// whose pgguard stopped, would run to its end. pgguard holds the backend's
// cancel key, so it cancels such a statement itself before it closes the
// upstream connection. A session with nothing running needs no cancel: the
// backend, waiting for a message, ends on the Terminate or the close.

import (
	"context"
	"errors"
	"net"
)

// sentSegment counts a forwarded message that ends with ReadyForQuery: a
// Query, a Sync or a FunctionCall. It clears an open Execute, which such a
// message ends.
func (c *conn) sentSegment() {
	c.readySent++
	c.segmentsSent.Store(c.readySent)
	c.executing.Store(false)
}

// busy reports whether the server may be running something the client sent:
// a segment whose ReadyForQuery has not come, or an Execute no Sync has
// followed yet (it runs although no ReadyForQuery is due). It errs towards
// busy (an Execute skipped behind an error counts as running), which costs
// an idle backend a cancel request it ignores. Any goroutine may call it.
func (c *conn) busy() bool {
	return c.segmentsSent.Load() > c.session.readySeen.Load() || c.executing.Load()
}

// leftRunning reports whether the client pump ended because the client went
// away, or broke the protocol, while the server may still be running its
// statement and the server side is still open. It is false when the client
// sent Terminate (the server finishes what came before it, as it would
// without pgguard), when the client broke a COPY FROM STDIN (the server
// waits for its data), when the upstream failed, and when pgguard stops,
// which cancels on its own (hardStop).
func (c *conn) leftRunning(clientErr error) bool {
	var upErr *UpstreamError
	var copyErr *copyError
	switch {
	case errors.Is(clientErr, errTerminated), errors.Is(clientErr, net.ErrClosed),
		errors.As(clientErr, &upErr), c.stopping.Load():
		return false
	case errors.As(clientErr, &copyErr):
		// The server waits for COPY data; the Terminate that closes the
		// upstream fails the copy, as the message would have.
		return false
	}
	select {
	case <-c.serverGone:
		return false
	default:
	}
	return c.busy()
}

// cancelOrphan cancels what the session's backend runs, for the reason
// why, and waits until the upstream has taken the request (DialTimeout at
// most). Callers close the upstream connection afterwards.
func (c *conn) cancelOrphan(why string) {
	if c.upstreamKey == nil {
		return
	}
	if err := c.srv.cancelBackend(context.Background(), c.upstreamKey); err != nil {
		c.session.Logger.Warn().Err(err).Str("reason", why).Msg("could not cancel the statement still running on the server")
		return
	}
	c.session.Logger.Info().Str("reason", why).Msg("cancelled the statement still running on the server")
}
