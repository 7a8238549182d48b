// Package alert tells the security team, at once and without slowing the
// data path, that pgguard refused (or in monitor mode would have refused) a
// statement, and exposes pgguard's Prometheus metrics.
//
// The wire shape of an alert is part of pgguard's interface, documented in
// docs/reference.md ("Alerts"): every field name of Event is binding. An alert never carries
// data values: callers hand in a normalized statement, and the Dispatcher
// redacts a statement that still looks like it holds a literal (see
// Event.Validate) before any sink sees it.
//
// Flow: Emit enqueues without blocking; one dispatcher goroutine folds
// repeats (dedup) and fans events out to the sinks (the log, and optionally a
// webhook), each of which has its own bounded queue and worker, so a slow
// sink only ever loses its own events, counted in
// pgguard_alerts_dropped_total{sink}.
package alert
