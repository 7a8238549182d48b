package guard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/alert"
)

// A statement nested deeper than the parser's stack allows used to end the
// whole process. It must get PostgreSQL's own answer, 54001, in both modes
// and both protocols, and the session and its neighbours must go on.
func TestDeepStatementIsRefusedNotFatal(t *testing.T) {
	deep := map[string]string{
		"plus chain":  "SELECT 1" + strings.Repeat("+1", 22_500),
		"parentheses": "SELECT " + strings.Repeat("(", 30_000) + "1" + strings.Repeat(")", 30_000),
		"casts":       "SELECT 1" + strings.Repeat("::int", 40_000),
		"subqueries":  "SELECT " + strings.Repeat("(SELECT ", 20_000) + "1" + strings.Repeat(")", 20_000),
	}
	for _, mode := range []alert.Mode{alert.ModeEnforce, alert.ModeMonitor} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode)
			ctx := context.Background()
			bystander := w.connect(t, "hr_app", "")
			for name, sql := range deep {
				for _, execMode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
					conn := w.connect(t, "sales_app", "")
					_, err := conn.Exec(ctx, sql, execMode)
					// Monitor mode forwards it, and PostgreSQL answers for
					// itself (54001, or 42601 where its parser gives up first).
					if pe := pgErr(t, err); mode == alert.ModeEnforce && pe.Code != "54001" {
						t.Fatalf("%s (%v): got %s %q, want 54001", name, execMode, pe.Code, pe.Message)
					}
					var one int
					if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
						t.Fatalf("%s: session unusable after the refusal: %v", name, err)
					}
				}
			}
			var one int
			if err := bystander.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Fatalf("another session was hurt: %v", err)
			}
		})
	}
}
