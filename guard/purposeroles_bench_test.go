package guard_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkPurposeSwitch measures what a purpose role switch costs: one
// read of a customer's email by primary key (pgx's extended protocol, the
// statement cached), directly in order_fulfilment's role, through pgguard
// with --purpose-roles and one purpose throughout (no switch), and through
// pgguard alternating two purposes whose roles differ (order_fulfilment and
// shipping: a switch before every statement), interleaved; it reports
// each one's time per statement and the ratios to direct.
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
	// One statement of each kind per round, in turn, so that the three
	// share whatever else the machine does.
	kinds := []struct {
		name  string
		conn  *pgx.Conn
		texts []string
	}{
		{"direct", direct, []string{read}},
		{"same", same, []string{read}},
		{"switch", alternating, []string{read + " /*purpose='order_fulfilment'*/", read + " /*purpose='shipping'*/"}},
	}
	spent := make([]time.Duration, len(kinds))
	var email string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, kind := range kinds {
			start := time.Now()
			if err := kind.conn.QueryRow(ctx, kind.texts[i%len(kind.texts)], 1).Scan(&email); err != nil {
				b.Fatalf("%s: %v", kind.name, err)
			}
			spent[k] += time.Since(start)
		}
	}
	b.StopTimer()
	for k, kind := range kinds {
		b.ReportMetric(float64(spent[k].Nanoseconds())/float64(b.N), kind.name+"-ns/stmt")
	}
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "same/direct")
	b.ReportMetric(float64(spent[2])/float64(spent[0]), "switch/direct")
}
