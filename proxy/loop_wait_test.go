//go:build linux

package proxy

import (
	"testing"
	"time"
)

// TestWaitTimeout: a blocking wait never outlasts the next yield, so the
// runtime's monitor never finds the loop's goroutine running for 10 ms;
// only a quiet loop waits without a bound.
func TestWaitTimeout(t *testing.T) {
	tests := []struct {
		name        string
		sinceYield  time.Duration
		quiet       int
		wantTimeout int
		wantYield   bool
	}{
		{"just yielded", 0, 0, 8, false},
		{"rounds down", 2*time.Millisecond + 900*time.Microsecond, 0, 5, false},
		{"one millisecond left", 7 * time.Millisecond, 0, 1, false},
		{"under a millisecond left: yield first", 7*time.Millisecond + time.Microsecond, 0, 8, true},
		{"overdue: yield first", 30 * time.Millisecond, 0, 8, true},
		{"some quiet waits", time.Millisecond, quietWaits - 1, 7, false},
		{"quiet: no bound", time.Millisecond, quietWaits, -1, false},
		{"quiet and overdue: no bound, no yield", 30 * time.Millisecond, quietWaits + 5, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout, yield := waitTimeout(tt.sinceYield, tt.quiet)
			if timeout != tt.wantTimeout || yield != tt.wantYield {
				t.Errorf("waitTimeout(%v, %d) = %d, %v; want %d, %v",
					tt.sinceYield, tt.quiet, timeout, yield, tt.wantTimeout, tt.wantYield)
			}
			// Whatever the case, a bounded wait ends by the time a yield is
			// due (to the millisecond epoll_wait counts in).
			if timeout >= 0 {
				since := tt.sinceYield
				if yield {
					since = 0
				}
				if end := since + time.Duration(timeout)*time.Millisecond; end > yieldEvery {
					t.Errorf("the wait would end %v after the last yield, past %v", end, yieldEvery)
				}
			}
		})
	}
}
