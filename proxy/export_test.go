package proxy

// LoopedSessions is how many sessions s handed to an event loop.
func LoopedSessions(s *Server) int64 { return s.looped.Load() }
