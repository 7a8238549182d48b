package guard_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// BenchmarkPurposeSwitch measures what a purpose role switch costs: one
// read of a customer's email by primary key (pgx's extended protocol, the
// statement cached), directly in order_fulfilment's role, through pgguard
// with --purpose-roles and one purpose throughout (no switch), and through
// pgguard alternating two purposes whose roles differ (order_fulfilment and
// shipping: a switch before every statement). Run with -count to
// interleave them, and compare each with direct.
func BenchmarkPurposeSwitch(b *testing.B) {
	w := purposeWorldSeeing(b, 0)
	ctx := context.Background()
	const read = "SELECT email FROM crm.customers WHERE id = $1"
	direct, err := pgx.Connect(ctx, w.pg.URL("sales_app", password, "postgres"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Close(ctx) })
	if _, err := direct.Exec(ctx, "SET ROLE "+pgx.Identifier{roleOf(b, w, "sales_app", "order_fulfilment")}.Sanitize()); err != nil {
		b.Fatal(err)
	}
	same := w.connect(b, "sales_app", "-c pgguard.purpose=order_fulfilment")
	alternating := w.connect(b, "sales_app", "")
	run := func(b *testing.B, conn *pgx.Conn, texts ...string) {
		var email string
		for i := 0; i < b.N; i++ {
			if err := conn.QueryRow(ctx, texts[i%len(texts)], 1).Scan(&email); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, direct, read) })
	b.Run("pgguard-same-purpose", func(b *testing.B) { run(b, same, read) })
	b.Run("pgguard-switch-every-statement", func(b *testing.B) {
		run(b, alternating, read+" /*purpose='order_fulfilment'*/", read+" /*purpose='shipping'*/")
	})
}
