package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

type recordingConfirmer struct {
	allowSession
	calls []*pgproto3.ErrorResponse
}

func (r *recordingConfirmer) ConfirmQuery() string { return "SELECT 1" }
func (r *recordingConfirmer) Confirmed(_ [][]byte, e *pgproto3.ErrorResponse, _ byte) {
	r.calls = append(r.calls, e)
}

// TestConfirmerAsksAgainAfterACancel: a state query cancelled by a client's
// cancel request is sent again, a bounded number of times; any other error
// is reported at once.
func TestConfirmerAsksAgainAfterACancel(t *testing.T) {
	rec := &recordingConfirmer{}
	f := newConfirmer(rec)
	cancelled := encode(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "57014", Message: "canceling statement due to user request"})[5:]
	for i := 0; i < maxConfirmRetries; i++ {
		f.message('E', cancelled)
		if _, done, again := f.message('Z', []byte{'I'}); done || !again {
			t.Fatalf("attempt %d: done %v again %v, want asked again", i, done, again)
		}
	}
	f.message('E', cancelled)
	if _, done, again := f.message('Z', []byte{'I'}); !done || again || len(rec.calls) != 1 || rec.calls[0].Code != "57014" {
		t.Fatalf("after %d retries: done %v again %v calls %v", maxConfirmRetries, done, again, rec.calls)
	}
	// The count starts again for the next confirmation.
	f.message('E', cancelled)
	if _, _, again := f.message('Z', []byte{'I'}); !again {
		t.Fatal("the next confirmation was not retried")
	}
	other := encode(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "25P02", Message: "current transaction is aborted"})[5:]
	f.message('E', other)
	if _, done, again := f.message('Z', []byte{'E'}); !done || again {
		t.Fatalf("another error: done %v again %v", done, again)
	}
}
