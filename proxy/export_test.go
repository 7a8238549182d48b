package proxy

import "time"

// LoopedSessions is how many sessions s handed to an event loop.
func LoopedSessions(s *Server) int64 { return s.looped.Load() }

// PoisonReleasedBuffers turns the poisoning of buffers returned to the pool
// on or off (see putBuffer).
func PoisonReleasedBuffers(on bool) { poisonReleased.Store(on) }

// SparesUsed is how many cancel requests went out on a spare connection.
func SparesUsed(s *Server) int64 { return s.spare.used.Load() }

// SparesOpened is how many spare cancel connections s opened.
func SparesOpened(s *Server) int64 { return s.spare.opened.Load() }

// SpareHeld reports whether s holds a spare cancel connection.
func SpareHeld(s *Server) bool { return s.spare.held() }

// SpareAge is how long s keeps a spare before replacing it now.
func SpareAge(s *Server) time.Duration {
	s.spare.mu.Lock()
	defer s.spare.mu.Unlock()
	return s.spare.maxAge
}
