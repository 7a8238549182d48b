package proxy

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"unique"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// Interceptor decides on the client traffic of every session.
type Interceptor interface {
	// OpenSession is called once the upstream accepted the client's
	// credentials and reported ReadyForQuery, before the client sees that
	// ReadyForQuery: a client that may start is always guarded. An error
	// ends the session with a FATAL error to the client instead, whose
	// SQLSTATE is XX000 unless an error in the chain names one with a
	// SQLState() string method. ctx ends with the startup timeout; work
	// done for the session later runs under Session.Context.
	OpenSession(ctx context.Context, s *Session) (SessionInterceptor, error)
}

// SessionInterceptor sees one session's messages.
//
// ClientMessage and ServerMessage may be called from different goroutines
// (the two pumps, or an event loop and a goroutine started for a slow decision): an
// implementation must synchronise its state. On an event loop, ServerMessage
// runs on the loop's thread, shared with other sessions, and must not block;
// it is never called while such a goroutine runs a ClientMessage of
// the same session.
type SessionInterceptor interface {
	// ClientMessage decides on one client message before anything of it
	// reaches the server. The message's body is only valid during the call.
	// It sees every message the proxy forwards: after a denial in the
	// extended protocol the proxy skips the client's messages up to Sync
	// without asking, and shows it that Sync (whose verdict it ignores).
	ClientMessage(m ClientMessage) Verdict
	// ServerMessage observes the server messages that mark statement and
	// transaction boundaries: CommandComplete ('C'), ErrorResponse ('E') and
	// ReadyForQuery ('Z'). The body is only valid during the call. An
	// ErrorRewriter may then replace an ErrorResponse (RewriteError).
	ServerMessage(m ServerMessage)
	// Close is called once when the session ends.
	Close()
}

// ErrorRewriter is a SessionInterceptor that may change the server's errors
// before the client sees them: an ErrorResponse can carry what the client
// may not see (a constraint violation's detail shows row values). Only
// ErrorResponses pay for it; every other message is relayed as the server
// sent it.
type ErrorRewriter interface {
	SessionInterceptor
	// RewriteError is called for each ErrorResponse the server sends the
	// client, right after ServerMessage observed it; pgguard's own errors
	// (denials) and the answers the client never sees are not passed. It
	// returns the body to send instead (ReplaceErrorField builds one), or
	// false to send body unchanged. f holds the fields decided on, decoded
	// from body. body is only valid during the call; the proxy copies the
	// replacement before the next call. Like ServerMessage, it must not
	// block.
	RewriteError(body []byte, f ErrorFields) (replacement []byte, ok bool)
}

// QuickSessionInterceptor is a SessionInterceptor that can decide most
// messages without waiting. On Linux the proxy relays sessions on a few event
// loops shared by all sessions; a call that waits there (a catalog load, a
// cold analysis, a lock held by another session) would hold up every session
// of that loop. The loop therefore asks TryClientMessage first and, when it
// declines, calls ClientMessage on the session's own goroutine while the
// session pauses in both directions.
type QuickSessionInterceptor interface {
	SessionInterceptor
	// TryClientMessage returns ClientMessage's verdict when it can reach it
	// from what it already holds, in microseconds and without blocking;
	// otherwise it returns false and has changed nothing, and ClientMessage
	// follows for the same message. The body is only valid during the call.
	TryClientMessage(m ClientMessage) (Verdict, bool)
}

// ClientMessage is one framed message from the client, after startup. Its
// methods (QueryText, Parse, Bind, Target) decode the parts an interceptor
// decides on, as slices of Body: the proxy is the one reader of the wire
// protocol.
type ClientMessage struct {
	// Type is the message type byte: 'Q', 'P', 'B', 'D', 'E', 'C', 'S', 'H',
	// 'F', 'd', 'c' or 'f'.
	Type byte
	// Body is the message without its type and length.
	Body []byte
	// Segment is the ordinal of the ReadyForQuery that will end this
	// message's sync segment (the Query itself, or the next Sync): compare
	// Session.ReadyCount to learn when the server is done with it.
	Segment uint64
}

// ServerMessage is one server message an interceptor observes, decoded by
// the proxy. The byte slices point into Body and are only valid during the
// call.
type ServerMessage struct {
	// Type is 'C' (CommandComplete), 'E' (ErrorResponse) or 'Z'
	// (ReadyForQuery).
	Type byte
	// Body is the message without its type and length.
	Body []byte
	// TxStatus is a ReadyForQuery's transaction status: 'I' idle, 'T' in a
	// transaction block, 'E' in a failed one.
	TxStatus byte
	// Tag is a CommandComplete's command tag.
	Tag []byte
}

// Action is what the proxy does with a client message.
type Action uint8

const (
	// Forward sends the message on to the server.
	Forward Action = iota
	// Deny answers the client with Verdict.Error instead; the message never
	// reaches the server.
	Deny
	// Switch runs Verdict.Prelude on the server first, unseen by the client,
	// then has the state confirmed, and then shows the interceptor the same
	// message again (confirm.go). Only the first message of a sync segment
	// can wait for that; the proxy denies it anywhere else.
	Switch
)

// Verdict is an interceptor's decision on one client message.
type Verdict struct {
	Action Action
	// Error is sent to the client in place of the server's answer when
	// Action is Deny. Its severity should be ERROR.
	Error *pgproto3.ErrorResponse
	// Barrier marks a forwarded message that may change session state: the
	// proxy reads nothing more from the client after the end of its sync
	// segment until a StateConfirmer has the server's state (confirm.go).
	Barrier bool
	// Prelude is the statement a Switch runs (one, without parameters,
	// such as SET ROLE).
	Prelude string
}

// Allow is the Verdict that forwards a message.
var Allow = Verdict{Action: Forward}

// AllowAll is an Interceptor that forwards everything.
type AllowAll struct{}

// OpenSession implements Interceptor.
func (AllowAll) OpenSession(context.Context, *Session) (SessionInterceptor, error) {
	return allowSession{}, nil
}

type allowSession struct{}

func (allowSession) ClientMessage(ClientMessage) Verdict { return Allow }
func (allowSession) TryClientMessage(ClientMessage) (Verdict, bool) {
	return Allow, true
}
func (allowSession) ServerMessage(ServerMessage) {}
func (allowSession) Close()                      {}

// Session describes one client session to the interceptor.
type Session struct {
	// ID is unique within the process and names the session in logs.
	ID uint64
	// User and Database come from the client's StartupMessage; User is the
	// subject pgguard enforces on once the upstream authenticated it.
	User     string
	Database string
	// ClientAddr is the client's network address.
	ClientAddr net.Addr
	// Logger is the session's child logger (connection id, user, database).
	Logger zerolog.Logger

	ctx       context.Context
	txStatus  atomic.Uint32
	readySeen atomic.Uint64
	// params are the run-time parameters from ParameterStatus, in the
	// order first reported, each "name\x00value". A server reports about
	// fifteen, read rarely (alerts), and nearly all the same in every
	// session: interned, the pairs are held once for all sessions, and each
	// session keeps only a short list of handles under a lock.
	paramsMu sync.Mutex
	params   []unique.Handle[string]
	// startup are the StartupMessage's parameters, names and values in
	// turn: a slice of exact length costs an idle session less than a map.
	startup []string
}

// StartupParameter returns a parameter of the client's StartupMessage
// ("options", "application_name", ...; "" when it sent none).
func (s *Session) StartupParameter(name string) string {
	for i := 0; i+1 < len(s.startup); i += 2 {
		if s.startup[i] == name {
			return s.startup[i+1]
		}
	}
	return ""
}

// SetStartupParameter records a parameter as if the client's StartupMessage
// had held it, for tools that evaluate statements outside a live session.
// It must not be called once the session is shared with other goroutines.
func (s *Session) SetStartupParameter(name, value string) {
	for i := 0; i+1 < len(s.startup); i += 2 {
		if s.startup[i] == name {
			s.startup[i+1] = value
			return
		}
	}
	s.startup = append(s.startup, name, value)
}

// Context ends when the session does (or the server stops hard): work an
// interceptor does for the session should end with it.
func (s *Session) Context() context.Context {
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}

// ReadyCount is how many ReadyForQuery messages of the client's segments
// the server has sent; during ServerMessage of a ReadyForQuery it counts
// that one.
func (s *Session) ReadyCount() uint64 { return s.readySeen.Load() }

// TxStatus is the transaction status of the last ReadyForQuery: 'I' idle,
// 'T' in a transaction block, 'E' in a failed transaction block.
func (s *Session) TxStatus() byte { return byte(s.txStatus.Load()) }

// Parameter returns the last value the server reported for a run-time
// parameter (client_encoding, standard_conforming_strings, application_name,
// server_version, ...) through ParameterStatus.
func (s *Session) Parameter(name string) string {
	s.paramsMu.Lock()
	defer s.paramsMu.Unlock()
	for _, p := range s.params {
		if v, ok := parameterValue(p.Value(), name); ok {
			return v
		}
	}
	return ""
}

// parameterValue returns pair's value if pair ("name\x00value") is name's.
func parameterValue(pair, name string) (string, bool) {
	if len(pair) > len(name) && pair[len(name)] == 0 && pair[:len(name)] == name {
		return pair[len(name)+1:], true
	}
	return "", false
}

// SetParameter records a run-time parameter as if the server had reported
// it. The proxy calls it for every ParameterStatus; tools that evaluate
// statements outside a live session (pgguard check) set what a server would
// report.
func (s *Session) SetParameter(name, value string) {
	s.setParameter(name+"\x00"+value, len(name))
}

// setParameter records pair, "name\x00value" with a name of n bytes.
func (s *Session) setParameter(pair string, n int) {
	h := unique.Make(pair)
	s.paramsMu.Lock()
	defer s.paramsMu.Unlock()
	for i, p := range s.params {
		if _, ok := parameterValue(p.Value(), pair[:n]); ok {
			s.params[i] = h
			return
		}
	}
	s.params = append(s.params, h)
}
