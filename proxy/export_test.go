package proxy

// LoopedSessions is how many sessions s handed to an event loop.
func LoopedSessions(s *Server) int64 { return s.looped.Load() }

// PoisonReleasedBuffers turns the poisoning of buffers returned to the pool
// on or off (see putBuffer).
func PoisonReleasedBuffers(on bool) { poisonReleased.Store(on) }
