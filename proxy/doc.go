// Package proxy speaks the PostgreSQL wire protocol between clients and one
// upstream server, so that applications cannot tell it from PostgreSQL.
//
// A connection's life is a fixed sequence of steps:
//
//  1. startup: SSLRequest (TLS terminated here when configured), GSSENCRequest
//     (declined), CancelRequest (mapped to the upstream's key), StartupMessage
//     (protocol 3.0; newer minors are answered with NegotiateProtocolVersion);
//  2. upstream: one server connection per client session, TLS per sslmode;
//  3. authentication: passed through to PostgreSQL untouched, except that
//     SCRAM-SHA-256-PLUS is never offered (channel binding cannot span two TLS
//     sessions); BackendKeyData passes through, so a CancelRequest, which
//     pgguard forwards unchanged, works through any pgguard;
//  4. relay: every client message goes to the Interceptor before it may
//     reach the server; server output is forwarded as framed bytes, decoding
//     only the few message types that carry session state. On Linux a
//     session with plain sockets on both legs is relayed by an event loop
//     shared with other sessions (loop_linux.go); any other by two pumps of
//     its own (relay.go). An interceptor that implements ErrorRewriter may
//     replace the body of a server's ErrorResponse (the frame is resized);
//     all other server output reaches the client byte for byte.
//
// The package knows no SQL and no policy: those live behind Interceptor.
//
// A denied message never reaches the server. To keep the server's transaction
// state and the client's view in step, the proxy sends instead a harmless
// message that fails with a known marker (EXECUTE or Bind of a prepared
// statement that cannot exist), and the relay swaps that error for the
// interceptor's. PostgreSQL thereby fails the transaction, discards the rest
// of an extended-protocol batch up to Sync and reports the right status in
// ReadyForQuery, exactly as it would for an error of its own.
package proxy
